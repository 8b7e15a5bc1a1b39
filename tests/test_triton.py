"""Triton model repository export (mx2trt/triton.py): a one-engine model as a TensorRT-plan model whose config.pbtxt
parses as Triton's ModelConfig (tritonclient's protobufs) and whose model.plan is the engine's plan."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

import mx2trt
from mx2trt._mx import mx
from mx2trt.triton import TritonExportError, export_repository


def _model():
    x = mx.sym.var("data")
    y = mx.sym.Convolution(x, num_filter=4, kernel=(3, 3), pad=(1, 1), name="conv")
    y = mx.sym.Activation(y, act_type="relu", name="relu")
    ids = mx.sym.argmax(mx.sym.FullyConnected(y, num_hidden=3, name="fc"), axis=1, name="top")
    sym = mx.sym.Group([mx.sym.softmax(mx.sym.FullyConnected(y, num_hidden=3, name="fc2"), name="prob"), ids])
    arg_shapes, _, _ = sym.infer_shape(data=(2, 3, 8, 8))
    rng = np.random.default_rng(0)
    params = {n: mx.nd.array(rng.standard_normal(s) * 0.2) for n, s in zip(sym.list_arguments(), arg_shapes)
              if n != "data"}
    return sym, params


def _config(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_one_engine_model_exports_a_tensorrt_plan_model(tmp_path, precision):
    sym, params = _model()
    c = mx2trt.convert(sym, params, {"data": (2, 3, 8, 8)}, precision=precision, runtime="reference", cache=False,
                       progress=False)
    model = export_repository(c.symbol, tmp_path / "repo", name="tiny", version=3)
    assert model == tmp_path / "repo" / "tiny"
    assert (model / "3" / "model.plan").read_bytes() == c.engines[0].plan
    cfg = _config(model / "config.pbtxt")
    assert (cfg.name, cfg.platform, cfg.max_batch_size) == ("tiny", "tensorrt_plan", 0)
    T = model_config_pb2.DataType
    assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [("in0", T.Value("TYPE_FP32"), [2, 3, 8, 8])]
    # MXNet's float32 outputs stay float32 at the boundary in either precision; argmax's indices are float32 too
    assert [(o.name, o.data_type, list(o.dims)) for o in cfg.output] == [
        ("out0", T.Value("TYPE_FP32"), [2, 3]), ("out1", T.Value("TYPE_FP32"), [2])]
    assert "MXNet's data" in (model / "config.pbtxt").read_text()


def test_a_loaded_model_exports_the_same(tmp_path):
    sym, params = _model()
    sym2, params2 = mx2trt.optimize(sym, params, {"data": (2, 3, 8, 8)}, runtime="reference",
                                    cache_dir=tmp_path / "cache")
    mx2trt.save(tmp_path / "m", sym2, params2)
    first = export_repository(sym2, tmp_path / "a")
    again = export_repository(mx2trt.load(tmp_path / "m")[0], tmp_path / "b")
    assert (first / "1" / "model.plan").read_bytes() == (again / "1" / "model.plan").read_bytes()
    assert (first / "config.pbtxt").read_text() == (again / "config.pbtxt").read_text()


def test_integer_and_carried_inputs(tmp_path):
    """An int32 input is TYPE_INT32; SoftmaxOutput's label, which the engine node carries without reading, is not an
    input of the plan and not in the config."""
    x, n = mx.sym.var("data"), mx.sym.var("offsets")
    y = mx.sym.broadcast_add(mx.sym.relu(x, name="pre"), mx.sym.Cast(n, dtype="float32", name="cast"), name="add")
    sym = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(y, num_hidden=2, flatten=False, name="fc"), name="softmax")
    rng = np.random.default_rng(1)
    params = {"fc_weight": mx.nd.array(rng.standard_normal((2, 3))), "fc_bias": mx.nd.array(np.zeros(2))}
    c = mx2trt.convert(sym, params, {"data": (4, 2, 3), "offsets": (1, 1, 3)}, dtypes={"offsets": np.int32},
                       runtime="reference", cache=False, progress=False)
    assert "softmax_label" in c.symbol.list_arguments()
    cfg = _config(export_repository(c.symbol, tmp_path) / "config.pbtxt")
    T = model_config_pb2.DataType
    assert [(i.name, T.Name(i.data_type), list(i.dims)) for i in cfg.input] == [
        ("in0", "TYPE_FP32", [4, 2, 3]), ("in1", "TYPE_INT32", [1, 1, 3])]


def test_partly_converted_models_and_bad_options_are_refused(tmp_path):
    from harness import mxnet_only

    x = mx.sym.var("data")
    sym = mx.sym.relu(mxnet_only(mx.sym.sigmoid(x, name="pre"), "mid"), name="post")
    c = mx2trt.convert(sym, {}, {"data": (2, 3)}, runtime="reference", cache=False, progress=False)
    with pytest.raises(TritonExportError, match=r"2 engine node\(s\) and 1 node\(s\) left in MXNet: Custom 'mid'.*"
                       r"give params="):
        export_repository(c.symbol, tmp_path)
    one = mx2trt.convert(mx.sym.relu(x, name="r"), {}, {"data": (2, 3)}, runtime="reference", cache=False,
                         progress=False)
    with pytest.raises(mx2trt.InputError, match="Triton model name"):
        export_repository(one.symbol, tmp_path, name="a/b")
    with pytest.raises(mx2trt.InputError, match="version"):
        export_repository(one.symbol, tmp_path, version=0)
    nodes = json.loads(one.symbol.tojson())["nodes"]
    assert [n["op"] for n in nodes] == ["null", "Custom"]


def test_cli_exports_a_saved_model(tmp_path):
    import subprocess
    import sys

    sym, params = _model()
    sym2, params2 = mx2trt.optimize(sym, params, {"data": (2, 3, 8, 8)}, runtime="reference",
                                    cache_dir=tmp_path / "cache")
    mx2trt.save(tmp_path / "m", sym2, params2)
    out = subprocess.run([sys.executable, "-m", "mx2trt", "triton", str(tmp_path / "m"), "-o", str(tmp_path / "repo"),
                          "--name", "net", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["model"] == str(tmp_path / "repo" / "net")
    assert _config(tmp_path / "repo" / "net" / "config.pbtxt").name == "net"
    bad = subprocess.run([sys.executable, "-m", "mx2trt", "triton", str(tmp_path / "nothing"), "-o",
                          str(tmp_path / "repo")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "is not a model saved by mx2trt.save" in bad.stderr, bad.stderr


def test_a_dynamic_batch_exports_max_batch_size_from_the_profile(tmp_path):
    """Batch 1..16: max_batch_size 16 and dims without the batch axis; saved and loaded, the same config."""
    sym, params = _model()
    shapes = {"data": [(1, 3, 8, 8), (4, 3, 8, 8), (16, 3, 8, 8)]}
    sym2, params2 = mx2trt.optimize(sym, params, shapes, runtime="reference", cache_dir=tmp_path / "cache")
    cfg = _config(export_repository(sym2, tmp_path / "repo", name="dyn") / "config.pbtxt")
    assert cfg.max_batch_size == 16
    assert [list(i.dims) for i in cfg.input] == [[3, 8, 8]] and [list(o.dims) for o in cfg.output] == [[3], [1]]
    assert list(cfg.output[1].reshape.shape) == [] and cfg.output[1].HasField("reshape")  # argmax: one per image
    mx2trt.save(tmp_path / "m", sym2, params2)
    again = export_repository(mx2trt.load(tmp_path / "m")[0], tmp_path / "b", name="dyn")
    assert (again / "config.pbtxt").read_text() == (tmp_path / "repo" / "dyn" / "config.pbtxt").read_text()
    # a range that does not start at batch 1 cannot batch in Triton: whole shapes, -1 where they vary
    sym3, _ = mx2trt.optimize(sym, params, {"data": [(2, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8)]},
                              runtime="reference", cache=False)
    cfg = _config(export_repository(sym3, tmp_path / "c", name="dyn") / "config.pbtxt")
    assert cfg.max_batch_size == 0 and [list(i.dims) for i in cfg.input] == [[-1, 3, 8, 8]]



def _partly_converted(tmp_path, shapes):
    """conv -> sigmoid (kept in MXNet) -> FC: two engines around an MXNet node."""
    x = mx.sym.var("data")
    y = mx.sym.sigmoid(mx.sym.Convolution(x, num_filter=4, kernel=(3, 3), pad=(1, 1), name="conv"), name="mid")
    sym = mx.sym.softmax(mx.sym.FullyConnected(y, num_hidden=3, name="fc"), name="prob")
    arg_shapes, _, _ = sym.infer_shape(data=(2, 3, 8, 8))
    rng = np.random.default_rng(0)
    params = {n: rng.standard_normal(s).astype(np.float32) * 0.2 for n, s in zip(sym.list_arguments(), arg_shapes)
              if n != "data"}
    sym2, params2 = mx2trt.optimize(sym, {k: mx.nd.array(v) for k, v in params.items()}, shapes, exclude_ops=["sigmoid"],
                                    runtime="reference", cache_dir=tmp_path / "cache")
    return sym, params, sym2, params2


def test_a_partly_converted_model_exports_a_python_backend_model(tmp_path):
    _, _, sym2, params2 = _partly_converted(tmp_path, {"data": [(1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)]})
    model = export_repository(sym2, tmp_path / "repo", name="part", params=params2, pythonpath=["/opt/env"])
    cfg = _config(model / "config.pbtxt")
    assert (cfg.name, cfg.backend, cfg.max_batch_size) == ("part", "python", 4)
    assert [(i.name, list(i.dims)) for i in cfg.input] == [("data", [3, 8, 8])]
    assert [list(o.dims) for o in cfg.output] == [[3]] and cfg.HasField("dynamic_batching")
    assert cfg.parameters["MX2TRT_PYTHONPATH"].string_value == "/opt/env"
    assert (model / "1" / "model.py").is_file() and (model / "1" / "model-mx2trt.json").is_file()
    compile((model / "1" / "model.py").read_text(), "model.py", "exec")


@pytest.mark.slow
def test_stock_tritonserver_serves_the_exported_python_backend_model(tmp_path):
    """The tritonserver binary PyTriton bundles (no PyTriton in between) loads the repository as a user's server would
    and answers requests of batch 1 and 3 for a partly converted model like MXNet."""
    import os
    import shutil
    import subprocess
    import sys

    import tritonclient.http as http
    from pytriton.triton import TRITONSERVER_DIST_DIR
    from pytriton.utils.distribution import get_libs_path, get_stub_path

    from harness import assert_close, run_symbol, wait_until_ready
    from mx2trt.serving import python_library_path
    from test_serving import _free_ports

    sym, params, sym2, params2 = _partly_converted(tmp_path, {"data": [(1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)]})
    export_repository(sym2, tmp_path / "repo", name="part", params=params2)
    server = tmp_path / "tritonserver"
    shutil.copytree(TRITONSERVER_DIST_DIR, server, ignore=shutil.ignore_patterns("python_backend_stubs"))
    shutil.copy(get_stub_path(f"{sys.version_info[0]}.{sys.version_info[1]}"),
                server / "backends" / "python" / "triton_python_backend_stub")
    http_port, grpc_port, metrics_port = _free_ports(3)
    env = {**os.environ, "LD_LIBRARY_PATH": python_library_path() + ":" + str(get_libs_path()),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "MXNET_MKLDNN_ENABLED": "0"}
    proc = subprocess.Popen([str(server / "bin" / "tritonserver"), f"--model-repository={tmp_path / 'repo'}",
                             f"--backend-directory={server / 'backends'}", f"--http-port={http_port}",
                             f"--grpc-port={grpc_port}", f"--metrics-port={metrics_port}", "--allow-gpu-metrics=false",
                             "--exit-timeout-secs=5"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        client = http.InferenceServerClient(f"127.0.0.1:{http_port}", network_timeout=120)
        wait_until_ready(client, "part", proc, 180, "tritonserver")
        for n in (1, 3):
            x = np.random.default_rng(n).standard_normal((n, 3, 8, 8)).astype(np.float32)
            inp = http.InferInput("data", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            got = client.infer("part", [inp]).as_numpy(sym2.list_outputs()[0])
            assert_close(got, run_symbol(sym, {"data": x, **params})[0], 1e-5, f"tritonserver's answer, batch {n}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
