"""Saved optimized models (mx2trt/saved.py): save -> load in a fresh process with no build, MXNet's own checkpoint
files, Gluon, plans for another TensorRT, damaged saved models; and the on/off switch."""
from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mx2trt
import mx2trt.build
from mx2trt._mx import mx
from mx2trt.entry import EngineFile, encode, write
from mx2trt.saved import SavedModelError

from harness import assert_close, last_json, run_python, run_symbol
from test_cache import _model

TESTS = str(Path(__file__).parent)


def _saved(tmp_path: Path, **save_options: object) -> tuple[str, np.ndarray, np.ndarray]:
    sym, params, shapes, xv, want = _model(0)
    sym2, params2 = mx2trt.optimize(sym, params, shapes, runtime="reference", cache_dir=tmp_path / "cache")
    prefix = str(tmp_path / "saved" / "model")
    mx2trt.save(prefix, sym2, params2, **save_options)
    np.save(tmp_path / "x.npy", xv)
    return prefix, xv, run_symbol(sym2, {"data": xv, **{k: v.asnumpy() for k, v in params2.items()}})[0]


_LOAD = textwrap.dedent("""
    import json, sys, numpy as np
    import mx2trt, mx2trt.build
    from mx2trt._mx import mx
    sys.path.insert(0, {tests!r})
    import harness
    sym, params = mx2trt.load({prefix!r})
    out = harness.run_symbol(sym, {{"data": np.load({x!r}), **{{k: v.asnumpy() for k, v in params.items()}}}})[0]
    np.save({out!r}, out)
    print(json.dumps({{"builds": mx2trt.build.BUILDS}}))
""")


def _load_in_fresh_process(tmp_path: Path, prefix: str) -> tuple[dict, np.ndarray]:
    out = tmp_path / "out.npy"
    res = run_python(_LOAD.format(tests=TESTS, prefix=prefix, x=str(tmp_path / "x.npy"), out=str(out)))
    return last_json(res.stdout), np.load(out)


def test_save_then_load_in_a_fresh_process_gives_identical_outputs_without_building(tmp_path):
    prefix, _, want = _saved(tmp_path)
    info, got = _load_in_fresh_process(tmp_path, prefix)
    assert info["builds"] == 0
    np.testing.assert_array_equal(got, want)


def test_a_saved_model_is_an_mxnet_checkpoint(tmp_path):
    prefix, _, _ = _saved(tmp_path)
    files = sorted(p.name for p in Path(prefix).parent.iterdir())
    assert files == ["model-0000.params", "model-engines", "model-mx2trt.json", "model-symbol.json"]
    sym, arg, aux = mx.model.load_checkpoint(prefix, 0)  # what MXNet users already call
    ops = [n["op"] for n in json.loads(sym.tojson())["nodes"] if n["op"] != "null"]
    assert ops.count("Custom") == 3  # two engines and the MXNet-only test op
    assert arg == {} and aux == {}, "every weight is inside an engine"
    manifest = json.loads(Path(f"{prefix}-mx2trt.json").read_text())
    assert manifest["inputs"] == ["data"] and len(manifest["engines"]) == 2


def test_a_plan_built_for_another_tensorrt_is_rebuilt_from_its_stored_subgraph(tmp_path, caplog):
    prefix, _, want = _saved(tmp_path)
    for path in Path(f"{prefix}-engines").glob("*.engine"):
        f = EngineFile.read(path)
        write(path, encode(f.spec(), {**f.env, "version": "0.0.1"}, f.source()))
    before = mx2trt.build.BUILDS
    with caplog.at_level(logging.WARNING, logger="mx2trt"):
        sym, params = mx2trt.load(prefix)
    assert mx2trt.build.BUILDS - before == 2
    assert "its plan was built for" in caplog.text and "0.0.1" in caplog.text
    assert_close(run_symbol(sym, {"data": np.load(tmp_path / "x.npy")})[0], want, 1e-6)


def test_without_its_subgraph_a_plan_for_another_tensorrt_is_a_clear_error(tmp_path):
    prefix, _, _ = _saved(tmp_path, include_source=False)
    for path in Path(f"{prefix}-engines").glob("*.engine"):
        f = EngineFile.read(path)
        write(path, encode(f.spec(), {**f.env, "version": "0.0.1"}, None))
    with pytest.raises(SavedModelError, match=r"built for \S+ 0\.0\.1 .* saved without its subgraph"):
        mx2trt.load(prefix)


def test_plans_only_save_loads_but_the_reference_runtime_says_what_it_lacks(tmp_path):
    prefix, xv, _ = _saved(tmp_path, include_source=False)
    sym, params = mx2trt.load(prefix)
    with pytest.raises(mx2trt.EngineNodeError, match="no stored subgraph to define one from"):
        run_symbol(sym, {"data": xv})


@pytest.mark.parametrize("damage", ["missing plan file", "corrupt plan file", "no manifest", "corrupt manifest"])
def test_a_damaged_saved_model_is_a_clear_error(tmp_path, damage):
    prefix, _, _ = _saved(tmp_path)
    engine = sorted(Path(f"{prefix}-engines").glob("*.engine"))[0]
    manifest = Path(f"{prefix}-mx2trt.json")
    if damage == "missing plan file":
        engine.unlink()
        match = f"engine file .*{engine.name} is missing"
    elif damage == "corrupt plan file":
        engine.write_bytes(engine.read_bytes()[:-10])
        match = f"saved engine is unusable: .*{engine.name}: truncated"
    elif damage == "no manifest":
        manifest.unlink()
        match = "is not a model saved by mx2trt.save"
    else:
        manifest.write_text("{")
        match = "mx2trt.json is corrupt"
    with pytest.raises(SavedModelError, match=match):
        mx2trt.load(prefix)


def test_gluon_block_saved_and_loaded_in_a_fresh_process(tmp_path):
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(8, activation="relu"), mx.gluon.nn.Dense(4))
    net.initialize(mx.init.Xavier())
    xv = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    want = net(mx.nd.array(xv)).asnumpy()
    block = mx2trt.optimize_block(net, {"data": (3, 5)}, runtime="reference", cache_dir=tmp_path / "cache")
    prefix = str(tmp_path / "gluon")
    mx2trt.save(prefix, block)
    np.save(tmp_path / "x.npy", xv)
    script = textwrap.dedent(f"""
        import numpy as np, mx2trt
        from mx2trt._mx import mx
        net = mx2trt.load_block({prefix!r})
        np.save({str(tmp_path / "out.npy")!r}, net(mx.nd.array(np.load({str(tmp_path / "x.npy")!r}))).asnumpy())
    """)
    run_python(script)
    assert_close(np.load(tmp_path / "out.npy"), want, 1e-5)


def test_the_on_off_switch_returns_the_model_unchanged(monkeypatch, caplog):
    sym, params, shapes, _, _ = _model(0)
    with caplog.at_level(logging.WARNING, logger="mx2trt"):
        got, got_params = mx2trt.optimize(sym, params, shapes, enabled=False)
    assert got is sym and got_params == params and "mx2trt is disabled (enabled=False)" in caplog.text
    monkeypatch.setenv("MX2TRT_ENABLE", "0")
    assert mx2trt.optimize(sym, params, shapes)[0] is sym
    net = mx.gluon.nn.Dense(3)
    assert mx2trt.optimize_block(net, {"data": (1, 2)}) is net
    assert mx2trt.optimize(sym, params, shapes, enabled=True, runtime="reference", cache=False)[0] is not sym
    monkeypatch.setenv("MX2TRT_ENABLE", "maybe")
    with pytest.raises(mx2trt.InputError, match="MX2TRT_ENABLE must be 0 or 1"):
        mx2trt.optimize(sym, params, shapes)


def test_with_the_cache_engines_hold_no_weights_and_save_reads_them_from_their_entries(tmp_path):
    sym, params, shapes, xv, want = _model(0)
    c = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path / "cache")
    assert all(getattr(e.source, "weights", None) is None for e in c.engines), "a reader, not the weights"
    mx2trt.save(tmp_path / "m", c.symbol, c.params)
    assert all(EngineFile.read(p).has_source for p in (tmp_path / "m-engines").glob("*.engine"))
    mx2trt.cache.EngineCache(tmp_path / "cache").clear()  # evicted, or cleared by another process
    mx2trt.save(tmp_path / "again", c.symbol, c.params)  # each engine reads the entry it opened
    assert all(EngineFile.read(p).has_source for p in (tmp_path / "again-engines").glob("*.engine"))
    assert_close(run_symbol(mx2trt.load(tmp_path / "again")[0], {"data": xv})[0], want, 1e-4)


def test_engines_built_without_the_cache_keep_no_subgraph_and_save_says_so(tmp_path):
    sym, params, shapes, _, _ = _model(0)
    sym2, params2 = mx2trt.optimize(sym, params, shapes, runtime="reference", cache=False)
    with pytest.raises(SavedModelError, match="built without the engine cache.*include_source=False"):
        mx2trt.save(tmp_path / "m", sym2, params2)
    mx2trt.save(tmp_path / "m", sym2, params2, include_source=False)
    assert mx2trt.load(tmp_path / "m")[0] is not None
