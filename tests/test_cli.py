"""The `mx2trt` command line, through real subprocesses, on a checkpoint written by mx.model.save_checkpoint."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import assert_close, run_python, run_symbol
from mx2trt._mx import mx

SHAPE = (2, 3, 8, 8)
SHAPE_ARG = "data=" + ",".join(map(str, SHAPE))
EPOCH = 3


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prefix of a conv+bn+relu+fc checkpoint (epoch 3) with random weights and BatchNorm statistics."""
    prefix = tmp_path_factory.mktemp("ckpt") / "net"
    x = mx.sym.Convolution(mx.sym.var("data"), num_filter=8, kernel=(3, 3), pad=(1, 1), name="conv0")
    x = mx.sym.Activation(mx.sym.BatchNorm(x, name="bn0"), act_type="relu", name="relu0")
    sym = mx.sym.FullyConnected(x, num_hidden=10, name="fc0")
    arg_shapes, _, aux_shapes = sym.infer_shape(data=SHAPE)
    rng = np.random.default_rng(0)
    arg = {n: mx.nd.array(rng.standard_normal(s).astype("f4") * 0.3)
           for n, s in zip(sym.list_arguments(), arg_shapes) if n != "data"}
    aux = {n: mx.nd.array(rng.uniform(0.5, 1.5, s).astype("f4"))
           for n, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    mx.model.save_checkpoint(str(prefix), EPOCH, sym, arg, aux)
    return prefix


def cli(*argv: Any, cache: Path | None = None, exe: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run `mx2trt ARGV` (python -m mx2trt unless `exe`) with the engine cache on, in `cache`."""
    env = {**os.environ, "MXNET_MKLDNN_ENABLED": "0", "MX2TRT_CACHE": "1"}
    if cache is not None:
        env["MX2TRT_CACHE_DIR"] = str(cache)
    cmd = (exe or [sys.executable, "-m", "mx2trt"]) + [str(a) for a in argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr
    return out


def failed(out: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """stderr of a run that must exit `code` without a traceback, naming `words`."""
    assert out.returncode == code, f"exit {out.returncode}, not {code}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    assert "Traceback" not in out.stderr, out.stderr
    for w in words:
        assert w in out.stderr, f"{w!r} not in stderr:\n{out.stderr}"
    return out.stderr


def test_explain_prints_the_placement_table(ckpt: Path, tmp_path: Path) -> None:
    out = ok(cli("explain", ckpt, EPOCH, "--shape", SHAPE_ARG, "--exclude-op", "Activation", "--ops", cache=tmp_path))
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["node", "op", "placement"]
    table = {ln.split()[0]: ln.split()[2] for ln in lines[1:5]}
    assert table == {"conv0": "subgraph0", "bn0": "subgraph0", "relu0": "mxnet", "fc0": "subgraph1"}
    assert "2 engine(s); 3/4 op nodes in TensorRT" in out.stdout
    assert any(ln.startswith("Activation ") for ln in lines)  # the --ops table
    assert not list(tmp_path.glob("**/*.engine")), "explain must build nothing"


def test_explain_json(ckpt: Path, tmp_path: Path) -> None:
    out = json.loads(ok(cli("explain", ckpt, EPOCH, "--shape", SHAPE_ARG, "--json", cache=tmp_path)).stdout)
    assert [(r["node"], r["op"], r["placement"]) for r in out["rows"]] == [
        ("conv0", "Convolution", "subgraph0"), ("bn0", "BatchNorm", "subgraph0"),
        ("relu0", "Activation", "subgraph0"), ("fc0", "FullyConnected", "subgraph0")]
    assert [(e["name"], e["nodes"], e["inputs"]) for e in out["engines"]] == [("subgraph0", 4, ["data"])]
    assert out["coverage"]["nodes"] == 1.0 and out["coverage"]["macs"] == 1.0


def test_convert_saves_a_model_that_loads_and_matches_mxnet(ckpt: Path, tmp_path: Path) -> None:
    out_prefix = tmp_path / "out" / "net-trt"
    out = ok(cli("convert", ckpt, EPOCH, "--shape", SHAPE_ARG, "--runtime", "reference", "-o", out_prefix,
                 cache=tmp_path / "cache"))
    assert "1 engine(s); 4/4 op nodes in TensorRT" in out.stdout
    for suffix in ("-symbol.json", "-0000.params", "-mx2trt.json"):
        assert f"{out_prefix}{suffix}" in out.stdout and Path(f"{out_prefix}{suffix}").is_file()
    data = np.random.default_rng(1).standard_normal(SHAPE).astype("f4")
    np.save(tmp_path / "data.npy", data)
    run_python(f"""
import numpy as np, mx2trt
from mx2trt._mx import mx
sym, params = mx2trt.load({str(out_prefix)!r})
assert sym.list_arguments() == ["data"], sym.list_arguments()
args = {{"data": mx.nd.array(np.load({str(tmp_path / "data.npy")!r}))}}
aux = {{k: v for k, v in params.items() if k in sym.list_auxiliary_states()}}
out = sym.bind(mx.cpu(), args, aux_states=aux, grad_req="null").forward(is_train=False)[0]
np.save({str(tmp_path / "got.npy")!r}, out.asnumpy())
""", env={"MXNET_MKLDNN_ENABLED": "0", "MX2TRT_CACHE": "0"})
    sym, arg, aux = mx.model.load_checkpoint(str(ckpt), EPOCH)
    want = run_symbol(sym, {"data": data, **{k: v.asnumpy() for k, v in {**arg, **aux}.items()}})[0]
    assert_close(np.load(tmp_path / "got.npy"), want, 1e-5, "loaded model vs MXNet")


def test_convert_from_symbol_and_params_files(ckpt: Path, tmp_path: Path) -> None:
    sym_file = tmp_path / "m-symbol.json"
    shutil.copy(f"{ckpt}-symbol.json", sym_file)
    shutil.copy(f"{ckpt}-{EPOCH:04d}.params", tmp_path / "m.params")  # keys keep their arg:/aux: prefixes
    out = json.loads(ok(cli("convert", "--symbol", sym_file, "--params", tmp_path / "m.params", "--shape", SHAPE_ARG,
                            "--precision", "fp16", "--exclude-op", "FullyConnected", "--no-cache", "--json")).stdout)
    assert out["output"] == str(tmp_path / "m-trt")  # the default: next to the symbol file
    assert out["coverage"]["nodes_trt"] == 3 and [e["origin"] for e in out["engines"]] == ["built"]
    assert all(Path(f).is_file() for f in out["files"])


def test_calibrate_then_convert_int8(ckpt: Path, tmp_path: Path) -> None:
    """calibrate writes a table from .npy samples; convert --precision int8 uses it and the saved model runs."""
    np.save(tmp_path / "calib.npy", np.random.default_rng(2).standard_normal((7,) + SHAPE[1:]).astype("f4"))
    table = tmp_path / "table.json"
    out = json.loads(ok(cli("calibrate", ckpt, EPOCH, "--shape", SHAPE_ARG, "--data", f"data={tmp_path / 'calib.npy'}",
                            "--method", "percentile", "-o", table, "--json")).stdout)
    assert out["batches"] == 4 and out["tensors"] == 2  # 7 samples in batches of 2; conv0's and fc0's inputs
    saved = json.loads(table.read_text())
    assert saved["method"] == "percentile" and sorted(saved["amax"]) == ["data", "relu0_output"]
    conv = json.loads(ok(cli("convert", ckpt, EPOCH, "--shape", SHAPE_ARG, "--precision", "int8", "--calibration",
                             table, "--int8-fallback", "fp32", "--runtime", "reference", "-o", tmp_path / "q",
                             "--json", cache=tmp_path / "cache")).stdout)
    assert [e["nodes"] for e in conv["engines"]] == [4]
    failed(cli("convert", ckpt, EPOCH, "--shape", SHAPE_ARG, "--precision", "int8", "--no-cache"), 1,
           "needs a calibration table")
    failed(cli("calibrate", ckpt, EPOCH, "--shape", SHAPE_ARG, "--data", f"data={tmp_path / 'none.npy'}", "-o",
               table), 1, "cannot read")
    failed(cli("calibrate", ckpt, EPOCH, "--shape", SHAPE_ARG, "--data", "data", "-o", table), 2,
           "argument --data: bad value")


def test_quantization_choices_are_the_librarys() -> None:
    """The CLI spells its choices out (it imports no MXNet for --help): they must be the library's."""
    from mx2trt.calibration import METHODS
    from mx2trt.cli import parser
    from mx2trt.quant import FALLBACKS, QUANT_DTYPES

    subs = next(a for a in parser()._actions if a.dest == "command").choices
    opts = {a.dest: a for a in subs["convert"]._actions} | {"method": next(
        a for a in subs["calibrate"]._actions if a.dest == "method")}
    assert tuple(opts["method"].choices) == tuple(METHODS)
    assert tuple(opts["int8_fallback"].choices) == tuple(FALLBACKS)
    assert set(QUANT_DTYPES) <= set(opts["precision"].choices)


def test_second_convert_hits_the_cache_and_cache_ls_and_clear(ckpt: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ("convert", ckpt, EPOCH, "--shape", SHAPE_ARG, "-o", tmp_path / "a", "--json")
    first = json.loads(ok(cli(*args, cache=cache)).stdout)
    second = json.loads(ok(cli(*args, cache=cache)).stdout)
    assert [e["origin"] for e in first["engines"]] == ["built"]
    assert [e["origin"] for e in second["engines"]] == ["cache"]
    key = second["engines"][0]["key"]

    listing = ok(cli("cache", "ls", cache=cache)).stdout
    assert f"{cache}: 1 engine(s)" in listing and key[:16] in listing and "trt_engine0" in listing
    entries = json.loads(ok(cli("cache", "ls", "--json", "--cache-dir", cache)).stdout)["entries"]
    assert [(e["key"], e["nodes"], e["precision"], e["problem"]) for e in entries] == [(key, 4, "fp32", "")]

    assert f"removed 1 engine(s) from {cache}" in ok(cli("cache", "clear", "--cache-dir", cache)).stdout
    assert json.loads(ok(cli("cache", "ls", "--json", cache=cache)).stdout)["entries"] == []


@pytest.mark.parametrize("argv, words", [
    (["explain", "m", "0", "--shape", "data=1,x,3"], ["--shape", "'data=1,x,3'"]),
    (["explain", "m", "0", "--shape", "1,3,8,8"], ["--shape", "'1,3,8,8'"]),
    (["explain", "m", "0", "--shape", "data=1,0"], ["'data=1,0'"]),
    (["explain", "m", "0", "--shape", "data=1", "--shape", "data=2"], ["'data' is given twice"]),
    (["explain", "m", "0"], ["--shape"]),
    (["convert", "m", "0", "--shape", "data=1", "--precision", "int4"], ["--precision", "int4"]),
    (["debug", "m", "0", "--shape", "data=1", "--input", "data=x.npy", "--precision", "int8"], ["--precision"]),
    (["explain", "m", "--shape", "data=1"], ["needs an EPOCH"]),
    (["frobnicate"], ["frobnicate"]),
    (["cache", "purge"], ["purge"]),
    ([], ["COMMAND"]),
])
def test_usage_errors_exit_2(argv: list[str], words: list[str], capsys: pytest.CaptureFixture) -> None:
    from mx2trt.cli import main

    with pytest.raises(SystemExit) as exc:  # in-process: argparse exits before anything runs
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for w in ["usage: mx2trt", *words]:
        assert w in err, f"{w!r} not in stderr:\n{err}"


@pytest.mark.parametrize("argv, word", [(["explain", "m", "0", "--shape", "data=1,x"], "'data=1,x'"),
                                        (["frobnicate"], "invalid choice: 'frobnicate'"),
                                        (["convert", "m", "0", "--shape", "data=1", "--symbol", "m.json"], "not both")])
def test_usage_errors_exit_2_from_the_command(argv: list[str], word: str) -> None:
    failed(cli(*argv), 2, "usage: mx2trt", word)


def test_help_names_the_subcommands_and_the_benchmarks(capsys: pytest.CaptureFixture) -> None:
    from mx2trt.cli import main

    for argv, words in ((["--help"], ["explain", "convert", "calibrate", "cache", "bench", "exit codes"]),
                        (["bench", "--help"], ["quick", "--zoo", "--vs-onnx", "tools/bench.py"])):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        assert all(w in text for w in words), text


def test_missing_checkpoint_exits_1(ckpt: Path, tmp_path: Path) -> None:
    failed(cli("explain", tmp_path / "nothing", 0, "--shape", SHAPE_ARG), 1,
           "mx2trt: error: cannot read the model:", f"{tmp_path / 'nothing'}-symbol.json does not exist")
    err = failed(cli("convert", ckpt, 7, "--shape", SHAPE_ARG, "-o", tmp_path / "x"), 1, "net-0007.params",
                 f"has epoch(s) {EPOCH}")
    assert len(err.strip().splitlines()) == 1, err


def test_conversion_errors_exit_1_with_the_message(ckpt: Path, tmp_path: Path) -> None:
    failed(cli("convert", ckpt, EPOCH, "--shape", SHAPE_ARG, "--shape", "image=1,3", "-o", tmp_path / "x",
               cache=tmp_path), 1, "mx2trt: error: shapes: 'image' is not an input of the symbol")
    failed(cli("explain", ckpt, EPOCH, "--shape", SHAPE_ARG, "--exclude-op", "NoSuchOp"), 1,
           "mx2trt: error: exclude_ops: ['NoSuchOp'] is not an MXNet op")
    failed(cli("convert", ckpt, EPOCH, "--shape", SHAPE_ARG, "-o", ckpt), 1, "would overwrite the input")
    assert not list(tmp_path.glob("x*")), "a failed convert writes no model"


def test_bench_prints_its_table(ckpt: Path, tmp_path: Path) -> None:
    out = ok(cli("bench", ckpt, EPOCH, "--shape", SHAPE_ARG, "--repeat", "2", cache=tmp_path / "cache")).stdout
    for step in ("convert, cache off", "convert into an empty cache", "convert, cache hit", "save", "load"):
        assert any(ln.startswith(step) for ln in out.splitlines()), f"{step!r} missing:\n{out}"
    assert "cache hit: 1/1 engine(s) from the cache" in out
    assert not (tmp_path / "cache").exists(), "bench uses a temporary cache of its own"


def test_bench_zoo_runs_the_benchmark_against_the_onnx_route(tmp_path: Path) -> None:
    """mx2trt bench --zoo: mx2trt.benchmark's fresh-process figures for zoo models, as JSON and a plot."""
    out = ok(cli("bench", "--zoo", "tiny_cnn", "--vs-onnx", "--runs", "1", "--no-extras", "--json",
                 "--plot", tmp_path / "b.png"))
    res = json.loads(out.stdout)
    (case,) = res["cases"]
    assert case["model"] == "tiny_cnn" and case["mx2trt"]["ok"] and case["onnx"]["ok"], case
    assert case["ratios"]["to_plan"] > 0 and res["command"].startswith("mx2trt bench --zoo tiny_cnn")
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, word", [(["--vs-onnx", "m", "0", "--shape", "data=1"], "--vs-onnx only apply with --zoo"),
                                        (["m", "0"], "--shape (or --zoo MODEL ...)"),
                                        (["m", "0", "--zoo", "tiny_cnn"], "give no CHECKPOINT with it"),
                                        (["--zoo", "tiny_cnn", "--exclude-op", "relu"], "give no --exclude-op"),
                                        (["m", "0", "--shape", "data=1", "--runs", "2"], "--runs only apply"),
                                        (["--zoo", "resnet"], "unknown model(s) ['resnet']"),
                                        (["--zoo", "tiny_cnn", "--batch", "0"], "--batch must be positive")])
def test_bench_usage_errors_exit_2(argv: list[str], word: str) -> None:
    failed(cli("bench", *argv), 2, "usage: mx2trt bench", word)


def test_console_script(ckpt: Path, tmp_path: Path) -> None:
    exe = shutil.which("mx2trt", path=os.path.dirname(sys.executable)) or shutil.which("mx2trt")
    if exe is None:
        pytest.skip("the mx2trt console script is not installed (pip install -e .)")
    out = json.loads(ok(cli("explain", ckpt, EPOCH, "--shape", SHAPE_ARG, "--json", exe=[exe])).stdout)
    assert out["coverage"]["nodes_trt"] == 4
    failed(cli("explain", ckpt, EPOCH, "--shape", "data=", exe=[exe]), 2, "'data='")


def test_an_mxnet_error_reading_the_model_is_one_line_naming_the_problem(tmp_path: Path) -> None:
    """MXNet 1.9's error text starts with 'Traceback': the message shown is the line that says what failed."""
    from harness import mxnet_only

    js = mxnet_only(mx.sym.var("data"), "odd").tojson().replace("mx2trt_test_mxnet_only", "no_such_custom_op")
    (tmp_path / "odd-symbol.json").write_text(js)
    err = failed(cli("explain", "--symbol", tmp_path / "odd-symbol.json", "--shape", "data=1,2"), 1, "mx2trt: error:")
    assert "no_such_custom_op" in err or "Cannot find custom operator" in err, err


def test_convert_without_a_usable_cache_still_saves_every_subgraph(ckpt: Path, tmp_path: Path) -> None:
    env_off = {**os.environ, "MXNET_MKLDNN_ENABLED": "0", "MX2TRT_CACHE": "0"}
    out = subprocess.run([sys.executable, "-m", "mx2trt", "convert", str(ckpt), str(EPOCH), "--shape", SHAPE_ARG,
                          "-o", str(tmp_path / "m")], capture_output=True, text=True, timeout=300, env=env_off)
    assert out.returncode == 0, out.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli("convert", ckpt, EPOCH, "--shape", SHAPE_ARG, "-o", tmp_path / "n", "--cache-dir",
               blocker / "c").returncode == 0
    from mx2trt.entry import EngineFile

    for d in ("m", "n"):
        files = list((tmp_path / f"{d}-engines").glob("*.engine"))
        assert files and all(EngineFile.read(p).has_source for p in files)


# ---- mx2trt debug ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overflow_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prefix of an epoch-0 checkpoint whose node 'big' (x * 3e4, with |x| up to ~3) overflows in fp16 only."""
    prefix = tmp_path_factory.mktemp("overflow") / "net"
    x = mx.sym.relu(mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=16, name="fc0"), name="relu0")
    big = mx.sym.broadcast_mul(x, mx.sym.var("gain", shape=(1,)), name="big")
    sym = mx.sym.sum(mx.sym.broadcast_mul(big, mx.sym.var("shrink", shape=(1,)), name="back"), axis=1, name="total")
    rng = np.random.default_rng(0)
    arg = {"fc0_weight": mx.nd.array(rng.standard_normal((16, 8)).astype("f4")),
           "fc0_bias": mx.nd.array(rng.standard_normal(16).astype("f4")),
           "gain": mx.nd.array([3e4]), "shrink": mx.nd.array([1e-4])}
    mx.model.save_checkpoint(str(prefix), 0, sym, arg, {})
    return prefix


def _npy(path: Path, shape: tuple[int, ...], seed: int = 1, dtype: str = "f4") -> Path:
    np.save(path, np.random.default_rng(seed).standard_normal(shape).astype(dtype))
    return path


def test_debug_of_a_clean_model_exits_0_with_json_and_a_png(ckpt: Path, tmp_path: Path) -> None:
    x = _npy(tmp_path / "x.npy", SHAPE, dtype="f8")  # numpy's default: read as float32, like every --shape input
    png = tmp_path / "err.png"
    out = ok(cli("debug", ckpt, EPOCH, "--shape", SHAPE_ARG, "--input", f"data={x}", "--json", "--plot", png))
    rep = json.loads(out.stdout)
    assert rep["first_bad"] is None and rep["precision"] == "fp32" and rep["tolerance"] == 1e-5
    assert [(r["node"], r["engine"], r["bad"]) for r in rep["rows"]] == [
        ("conv0", "trt_engine0", False), ("bn0", "trt_engine0", False), ("relu0", "trt_engine0", False),
        ("fc0", "trt_engine0", False)]
    assert all(r["max_rel"] <= 1e-5 for r in rep["rows"])
    assert rep["divergence"].startswith("no divergence")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_debug_names_the_first_divergence_and_exits_1(overflow_ckpt: Path, tmp_path: Path) -> None:
    x = _npy(tmp_path / "x.npy", (4, 8))
    args = ("debug", overflow_ckpt, 0, "--shape", "data=4,8", "--input", f"data={x}")
    assert "no divergence" in ok(cli(*args)).stdout  # fp32
    out = cli(*args, "--precision", "fp16")
    assert out.returncode == 1, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr
    assert "first divergence at node big (op broadcast_mul, engine trt_engine0): " in out.stdout, out.stdout
    assert "inf/NaN value(s) where MXNet is finite" in out.stdout and "relu0 (relu): rel err" in out.stdout
    rep = json.loads(cli(*args, "--precision", "fp16", "--json").stdout)
    assert rep["first_bad"]["node"] == "big" and rep["first_bad"]["nonfinite"] > 0
    assert [r["bad"] for r in rep["rows"]][:2] == [False, False]
    assert json.loads(cli(*args, "--precision", "fp16", "--json", "--tolerance", "10").stdout)["tolerance"] == 10


def test_convert_fp32_nodes_are_reported(overflow_ckpt: Path, tmp_path: Path) -> None:
    out = ok(cli("convert", overflow_ckpt, 0, "--shape", "data=4,8", "--precision", "fp16", "--fp32-node", "big",
                 "--fp32-op", "sum", "--no-cache", "-o", tmp_path / "m")).stdout
    assert "2 node(s) in float32 inside reduced-precision engines: big, total" in out, out
    failed(cli("convert", overflow_ckpt, 0, "--shape", "data=4,8", "--fp32-node", "big", "--no-cache"), 1,
           "fp32_nodes is for fp16/bf16 engines")


@pytest.mark.parametrize("argv, words", [
    (["--input", "data={x}", "--input", "image={x}"], ["--input 'image' has no --shape"]),
    (["--input", "data={x}", "--shape", "mask=2,8"], ["--shape 'mask' has no --input"]),
    (["--input", "data={small}"], ["--input data:", "has shape (1, 3, 8, 8), not the --shape (2, 3, 8, 8)"]),
    (["--input", "data={missing}"], ["--input data: cannot read", "missing.npy"]),
    (["--input", "data={x}", "--shape", "image=2,3", "--input", "image={y}"],
     ["'image' is not an input of the symbol"]),
])
def test_debug_bad_input_exits_2_naming_it(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                           argv: list[str], words: list[str]) -> None:
    from mx2trt.cli import main

    files = {"x": _npy(tmp_path / "x.npy", SHAPE), "small": _npy(tmp_path / "small.npy", (1, 3, 8, 8)),
             "y": _npy(tmp_path / "y.npy", (2, 3)), "missing": tmp_path / "missing.npy"}
    assert main(["debug", str(ckpt), str(EPOCH), "--shape", SHAPE_ARG] + [a.format(**files) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mx2trt: error: ") and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_debug_help_gives_its_exit_codes(capsys: pytest.CaptureFixture) -> None:
    from mx2trt.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["debug", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for w in ("--input NAME=FILE.npy", "--plot", "0 no divergence", "1 a divergence found", "2 usage error or bad "
              "input", "docs/debugging.md"):
        assert w in text, text


def test_debug_other_errors_exit_3(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mx2trt._trt import can_execute_engines
    from mx2trt.cli import main

    if can_execute_engines()[0]:
        pytest.skip("TensorRT can execute engines here: --runtime tensorrt is no error")
    x = _npy(tmp_path / "x.npy", SHAPE)
    assert main(["debug", str(ckpt), str(EPOCH), "--shape", SHAPE_ARG, "--input", f"data={x}", "--runtime",
                 "tensorrt"]) == 3
    assert "runtime='tensorrt' cannot run here" in capsys.readouterr().err


def test_float64_stays_in_mxnet_unless_asked_for_float32(tmp_path: Path) -> None:
    x = mx.sym.Convolution(mx.sym.var("data"), num_filter=4, kernel=(3, 3), pad=(1, 1), name="conv0")
    sym = mx.sym.FullyConnected(mx.sym.relu(x, name="relu0"), num_hidden=3, name="fc0")
    arg_shapes, _, _ = sym.infer_shape(data=SHAPE)
    rng = np.random.default_rng(2)
    arg = {n: mx.nd.array(rng.standard_normal(s), dtype="float64")
           for n, s in zip(sym.list_arguments(), arg_shapes) if n != "data"}
    mx.model.save_checkpoint(str(tmp_path / "f64"), 0, sym, arg, {})
    argv = ["explain", tmp_path / "f64", 0, "--shape", SHAPE_ARG, "--dtype", "data=float64", "--json"]
    refused = json.loads(ok(cli(*argv, cache=tmp_path)).stdout)
    assert refused["coverage"]["nodes"] == 0.0
    assert all("dtype float64 is not supported" in r["reason"] for r in refused["rows"]), refused["rows"]
    taken = json.loads(ok(cli(*argv, "--float64", "float32", cache=tmp_path)).stdout)
    assert taken["coverage"]["nodes"] == 1.0
    assert all("float64 computed in float32" in r["reason"] for r in taken["rows"]), taken["rows"]
