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
    (["convert", "m", "0", "--shape", "data=1", "--precision", "fp8"], ["--precision", "fp8"]),
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

    for argv, words in ((["--help"], ["explain", "convert", "cache", "bench", "exit codes"]),
                        (["bench", "--help"], ["quick", "tools/bench_cache.py"])):
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
