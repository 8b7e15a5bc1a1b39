"""Serving (mx2trt/serving.py): a real Triton server (PyTriton) answering concurrent tritonclient requests for a saved
optimized ResNet-50, checked against MXNet; bounded in requests and time."""
from __future__ import annotations

import socket
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import mx2trt
from mx2trt import zoo
from mx2trt.serving import ModelRunner, bind, python_library_path, triton_server

from harness import assert_close, run_symbol, wait_until_ready


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_the_interpreters_libdir_comes_first_once():
    libdir = sysconfig.get_config_var("LIBDIR")
    assert python_library_path({"LD_LIBRARY_PATH": f"/usr/lib:{libdir}:/opt/x"}) == f"{libdir}:/usr/lib:/opt/x"
    assert python_library_path({}) == libdir


@pytest.fixture(scope="module")
def saved_resnet50(tmp_path_factory):
    sym, params, shapes = zoo.get("resnet50_v1", batch=1, size=32)
    sym2, params2 = mx2trt.optimize(sym, params, shapes, runtime="reference",
                                    cache_dir=tmp_path_factory.mktemp("cache"))
    prefix = tmp_path_factory.mktemp("model") / "resnet50-trt"
    mx2trt.save(prefix, sym2, params2)
    return sym, {k: v.asnumpy() for k, v in params.items()}, shapes, prefix


def test_runner_checks_requests(saved_resnet50):
    _, _, shapes, prefix = saved_resnet50
    runner = ModelRunner(prefix)
    assert runner.shapes == {"data": tuple(shapes["data"])}
    with pytest.raises(mx2trt.InputError, match="has shape"):
        runner({"data": np.zeros((2, 3, 32, 32), np.float32)})
    with pytest.raises(mx2trt.InputError, match="no input 'data'"):
        runner({"x": np.zeros(shapes["data"], np.float32)})


@pytest.mark.slow
def test_triton_answers_concurrent_requests_like_mxnet(saved_resnet50):
    import tritonclient.http as http

    sym, params, shapes, prefix = saved_resnet50
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal(shapes["data"]).astype(np.float32) for _ in range(8)]
    want = [run_symbol(sym, {"data": b, **params})[0] for b in batches]
    runner = ModelRunner(prefix)
    out_name = runner.outputs[0]
    http_port, grpc_port, metrics_port = _free_ports(3)
    triton = triton_server(http_port, grpc_port, metrics_port)
    with triton:
        bind(triton, runner, "resnet50")
        triton.run()

        def ask(b: np.ndarray) -> np.ndarray:
            client = http.InferenceServerClient(f"127.0.0.1:{http_port}", network_timeout=120)
            x = http.InferInput("data", list(b.shape), "FP32")
            x.set_data_from_numpy(b)
            return client.infer("resnet50", [x]).as_numpy(out_name)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(ask, batches))
        seconds = time.perf_counter() - t0
    for g, w in zip(got, want):
        assert_close(g, w, 1e-4, "Triton's answer")
    print(f"PyTriton, reference runtime: {len(batches) / seconds:.1f} requests/s over 4 clients")


@pytest.mark.slow
def test_the_serve_command_answers_and_stops_on_ctrl_c(saved_resnet50):
    import os
    import signal
    import subprocess
    import sys

    import tritonclient.http as http

    sym, params, shapes, prefix = saved_resnet50
    http_port, grpc_port, metrics_port = _free_ports(3)
    proc = subprocess.Popen([sys.executable, "-m", "mx2trt", "serve", str(prefix), "--name", "r50",
                             "--http-port", str(http_port), "--grpc-port", str(grpc_port),
                             "--metrics-port", str(metrics_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MXNET_MKLDNN_ENABLED": "0"})
    try:
        client = http.InferenceServerClient(f"127.0.0.1:{http_port}", network_timeout=60)
        wait_until_ready(client, "r50", proc, 120, "mx2trt serve")
        x = np.random.default_rng(1).standard_normal(shapes["data"]).astype(np.float32)
        inp = http.InferInput("data", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        got = client.infer("r50", [inp]).as_numpy("trt_engine0_out0")
        assert_close(got, run_symbol(sym, {"data": x, **params})[0], 1e-4, "mx2trt serve's answer")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


@pytest.fixture(scope="module")
def saved_dynamic_resnet50(tmp_path_factory):
    sym, params, _ = zoo.get("resnet50_v1", batch=1, size=32)
    shapes = {"data": [(1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32)]}
    sym2, params2 = mx2trt.optimize(sym, params, shapes, runtime="reference",
                                    cache_dir=tmp_path_factory.mktemp("cache"))
    prefix = tmp_path_factory.mktemp("model") / "resnet50-dyn"
    mx2trt.save(prefix, sym2, params2)
    return sym, {k: v.asnumpy() for k, v in params.items()}, prefix


def test_a_dynamic_batch_runner_takes_any_batch_up_to_the_profiles(saved_dynamic_resnet50):
    sym, params, prefix = saved_dynamic_resnet50
    runner = ModelRunner(prefix)
    assert runner.max_batch == 8 and runner.dims == {"data": (-1, 3, 32, 32)}
    for n in (1, 5, 8, 5):
        x = np.random.default_rng(n).standard_normal((n, 3, 32, 32)).astype(np.float32)
        assert_close(runner({"data": x})[runner.outputs[0]], run_symbol(sym, {"data": x, **params})[0], 1e-4)
    with pytest.raises(mx2trt.InputError, match="at most 8"):
        runner({"data": np.zeros((9, 3, 32, 32), np.float32)})
    with pytest.raises(mx2trt.InputError, match=r"optimized for \(-1, 3, 32, 32\)"):
        runner({"data": np.zeros((2, 3, 16, 16), np.float32)})
    with pytest.raises(mx2trt.serving.ServingError, match="at most 8"):
        ModelRunner(prefix, max_batch=16)


@pytest.mark.slow
def test_triton_batches_concurrent_requests_of_a_dynamic_model_like_mxnet(saved_dynamic_resnet50):
    """Requests of batch 1 to 3 from 4 clients, behind Triton's dynamic batcher (max_batch_size 8)."""
    import tritonclient.http as http

    sym, params, prefix = saved_dynamic_resnet50
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((n, 3, 32, 32)).astype(np.float32) for n in (1, 2, 3, 1, 2, 1, 3, 1)]
    want = [run_symbol(sym, {"data": b, **params})[0] for b in batches]
    runner = ModelRunner(prefix)
    http_port, grpc_port, metrics_port = _free_ports(3)
    triton = triton_server(http_port, grpc_port, metrics_port)
    with triton:
        bind(triton, runner, "resnet50")
        triton.run()
        client = http.InferenceServerClient(f"127.0.0.1:{http_port}", network_timeout=120)
        assert client.get_model_config("resnet50")["max_batch_size"] == 8

        def ask(b: np.ndarray) -> np.ndarray:
            c = http.InferenceServerClient(f"127.0.0.1:{http_port}", network_timeout=120)
            x = http.InferInput("data", list(b.shape), "FP32")
            x.set_data_from_numpy(b)
            return c.infer("resnet50", [x]).as_numpy(runner.outputs[0])

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(ask, batches))
        seconds = time.perf_counter() - t0
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert_close(g, w, 1e-4, "Triton's batched answer")
    print(f"PyTriton, dynamic batch, reference runtime: {len(batches) / seconds:.1f} requests/s "
          f"({sum(len(b) for b in batches) / seconds:.1f} images/s) over 4 clients")
