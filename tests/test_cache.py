"""The on-disk engine cache (mx2trt/cache.py, entry.py, source.py): keys, hits in new processes, bad entries,
concurrent writers, eviction, Ctrl-C during a build. Real files and real subprocesses throughout."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mx2trt
import mx2trt.build
from mx2trt._mx import mx
from mx2trt.build import build_env
from mx2trt.cache import EngineCache
from mx2trt.entry import EngineFile, EntryError, encode, write

from harness import assert_close, last_json, mxnet_only, run_python, run_symbol

RNG = np.random.default_rng(11)


def _model(seed: int = 0, hidden: int = 16) -> tuple:
    """fc+relu -> sin (stays in MXNet) -> fc+relu: two engines; (symbol, params, shapes, input, MXNet's output)."""
    rng = np.random.default_rng(seed)
    x = mx.sym.var("data")
    y = mx.sym.relu(mx.sym.FullyConnected(x, num_hidden=hidden, name="fc1"), name="relu1")
    y = mx.sym.relu(mx.sym.FullyConnected(mxnet_only(y, "sin"), num_hidden=8, name="fc2"), name="relu2")
    params = {"fc1_weight": rng.standard_normal((hidden, 16)), "fc1_bias": rng.standard_normal(hidden),
              "fc2_weight": rng.standard_normal((8, hidden)), "fc2_bias": rng.standard_normal(8)}
    params = {k: mx.nd.array(v.astype(np.float32)) for k, v in params.items()}
    xv = rng.standard_normal((4, 16)).astype(np.float32)
    want = run_symbol(y, {"data": xv, **{k: v.asnumpy() for k, v in params.items()}})[0]
    return y, params, {"data": (4, 16)}, xv, want


def _checkpoint(tmp_path: Path, seed: int = 0) -> tuple[str, np.ndarray, np.ndarray]:
    """The model as an MXNet checkpoint (prefix, epoch 0), its input and MXNet's output."""
    sym, params, _, xv, want = _model(seed)
    prefix = str(tmp_path / f"model{seed}")
    mx.model.save_checkpoint(prefix, 0, sym, params, {})
    np.save(f"{prefix}-x.npy", xv)
    return prefix, xv, want


# A child process: optimize the checkpoint with the cache at CACHE, run it, print what happened as JSON.
_CHILD = textwrap.dedent("""
    import json, sys, numpy as np
    import mx2trt, mx2trt.build
    from mx2trt._mx import mx
    sys.path.insert(0, {tests!r})
    import harness  # registers the MXNet-only test op
    prefix, cache = {prefix!r}, {cache!r}
    sym, arg, aux = mx.model.load_checkpoint(prefix, 0)
    c = mx2trt.convert(sym, {{**arg, **aux}}, {{"data": (4, 16)}}, cache_dir=cache, runtime="reference",
                       progress=False)
    x = np.load(prefix + "-x.npy")
    out = harness.run_symbol(c.symbol, {{"data": x, **{{k: v.asnumpy() for k, v in c.params.items()}}}})[0]
    print(json.dumps({{"builds": mx2trt.build.BUILDS, "origins": [e.origin for e in c.engines],
                      "keys": [e.key for e in c.engines], "err": float(np.abs(out - np.load(prefix + "-want.npy")).max())}}))
""")


def _child(prefix: str, cache: Path) -> str:
    return _CHILD.format(tests=str(Path(__file__).parent), prefix=prefix, cache=str(cache))


def test_second_optimize_in_a_new_process_loads_every_engine_and_builds_none(tmp_path):
    prefix, _, want = _checkpoint(tmp_path)
    np.save(f"{prefix}-want.npy", want)
    cache = tmp_path / "cache"
    cold = last_json(run_python(_child(prefix, cache)).stdout)
    assert cold["builds"] == 2 and cold["origins"] == ["built", "built"], cold
    warm = last_json(run_python(_child(prefix, cache)).stdout)
    assert warm["builds"] == 0, "a cache hit must not build any engine"
    assert warm["origins"] == ["cache", "cache"] and warm["keys"] == cold["keys"], warm
    assert warm["err"] <= 1e-4 * max(1.0, float(np.abs(want).max())), warm
    assert sorted(p.name for p in cache.glob("*.engine")) == sorted(f"{k}.engine" for k in cold["keys"])


def test_concurrent_processes_building_the_same_engines_build_each_once(tmp_path):
    """Three processes start on an empty cache at once: the per-key lock makes the others wait for the first build
    and load it; every process gets correct outputs and the cache holds exactly the two entries, no temporaries."""
    prefix, _, want = _checkpoint(tmp_path)
    np.save(f"{prefix}-want.npy", want)
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", _child(prefix, cache)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-4000:]
        results.append(last_json(out))
    assert sum(r["builds"] for r in results) == 2, results
    assert all(r["err"] <= 1e-4 * max(1.0, float(np.abs(want).max())) for r in results), results
    assert len({tuple(r["keys"]) for r in results}) == 1
    assert len(list(cache.glob("*.engine"))) == 2 and not list(cache.glob(".*.tmp"))
    for path in cache.glob("*.engine"):
        EngineFile.read(path).section("plan")  # whole and verified


def test_identical_subgraphs_of_one_model_share_one_engine(tmp_path):
    """The same fc+relu (shared weights) on both sides of an MXNet op: one key, one build, two engine nodes."""
    w, b = mx.sym.var("w"), mx.sym.var("b")
    x = mx.sym.var("data")
    y = mx.sym.relu(mx.sym.FullyConnected(x, w, b, num_hidden=16, name="fca"), name="ra")
    y = mx.sym.relu(mx.sym.FullyConnected(mxnet_only(y, "sin"), w, b, num_hidden=16, name="fcb"), name="rb")
    params = {"w": mx.nd.array(RNG.standard_normal((16, 16)).astype(np.float32)), "b": mx.nd.zeros(16)}
    before = mx2trt.build.BUILDS
    c = mx2trt.convert(y, params, {"data": (2, 16)}, runtime="reference", cache_dir=tmp_path)
    assert mx2trt.build.BUILDS - before == 1
    assert len(c.engines) == 2 and c.engines[0] is c.engines[1]
    xv = RNG.standard_normal((2, 16)).astype(np.float32)
    assert_close(run_symbol(c.symbol, {"data": xv})[0], run_symbol(y, {"data": xv, **{k: v.asnumpy() for k, v in
                                                                                  params.items()}})[0], 1e-5)


def test_the_key_follows_content_not_names(tmp_path):
    sym, params, shapes, _, _ = _model(0)
    key = mx2trt.convert(sym, params, shapes, runtime="reference", cache=False).engines[0].key
    renamed = mx.sym.load_json(sym.tojson().replace('"relu1"', '"act_one"'))
    assert mx2trt.convert(renamed, params, shapes, runtime="reference", cache=False).engines[0].key == key
    other = dict(params, fc1_bias=params["fc1_bias"] + 1)
    assert mx2trt.convert(sym, other, shapes, runtime="reference", cache=False).engines[0].key != key
    assert mx2trt.convert(sym, params, shapes, precision="fp16", runtime="reference",
                          cache=False).engines[0].key != key


def _cached(tmp_path: Path) -> tuple:
    sym, params, shapes, xv, want = _model(0)
    c = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path)
    return sym, params, shapes, xv, want, [tmp_path / f"{e.key}.engine" for e in c.engines]


def _flip(path: Path, offset_from_end: int) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def _reencode(path: Path, **env: str) -> None:
    """Rewrite an entry as if another build environment had made it."""
    f = EngineFile.read(path)
    write(path, encode(f.spec(), {**f.env, **env}, f.source()))


@pytest.mark.parametrize("damage", ["flipped plan byte", "truncated", "appended", "foreign file", "empty",
                                    "other format", "other TensorRT version", "other mx2trt code", "header"])
def test_a_bad_entry_is_logged_removed_and_rebuilt(tmp_path, caplog, damage):
    sym, params, shapes, xv, want, paths = _cached(tmp_path)
    path = paths[0]
    size = path.stat().st_size
    if damage == "flipped plan byte":
        f = EngineFile.read(path)
        offset, length, _ = f.meta["sections"]["plan"]
        data = bytearray(path.read_bytes())
        data[f._base + offset + length // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: size // 2])
    elif damage == "appended":
        path.write_bytes(path.read_bytes() + b"\0")
    elif damage == "foreign file":
        path.write_bytes(RNG.bytes(size))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other format":
        data = bytearray(path.read_bytes())
        data[7] = 99
        path.write_bytes(bytes(data))
    elif damage == "other TensorRT version":
        _reencode(path, version="0.0.1")
    elif damage == "other mx2trt code":
        _reencode(path, mx2trt="0" * 32)
    elif damage == "header":
        _flip(path, size - 60)  # inside the JSON header
    before = mx2trt.build.BUILDS
    with caplog.at_level(logging.WARNING, logger="mx2trt"):
        c = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path)
    assert mx2trt.build.BUILDS - before == 1, "only the bad entry is rebuilt"
    assert [e.origin for e in c.engines] == ["built", "cache"]
    assert any("ignoring bad entry" in r.getMessage() and path.name in r.getMessage() for r in caplog.records), \
        caplog.text
    assert_close(run_symbol(c.symbol, {"data": xv})[0], want, 1e-4)
    EngineFile.read(path).section("plan")  # replaced by a whole entry


def test_entry_reader_names_what_is_wrong(tmp_path):
    _, _, _, _, _, paths = _cached(tmp_path)
    path = paths[0]
    good = path.read_bytes()
    for data, why in [(good[:-1], "truncated"), (good + b"x", "longer than written"), (b"PK\x03\x04" + good, "not an mx2trt"),
                      (good[:7] + b"\x02" + good[8:], "format 2")]:
        path.write_bytes(data)
        with pytest.raises(EntryError, match=why):
            EngineFile.read(path)


def test_an_unwritable_cache_directory_warns_and_converts_without_caching(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    sym, params, shapes, xv, want = _model(0)
    with caplog.at_level(logging.WARNING, logger="mx2trt"):
        c = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=blocker / "cache")
    assert [e.origin for e in c.engines] == ["built", "built"]
    assert sum("engines are built without caching" in r.getMessage() for r in caplog.records) == 1, caplog.text
    assert_close(run_symbol(c.symbol, {"data": xv})[0], want, 1e-4)


def test_least_recently_used_entries_are_evicted_beyond_the_size_limit(tmp_path, monkeypatch):
    sym, params, shapes, _, _ = _model(0)
    c = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path)
    sizes = {e.key: (tmp_path / f"{e.key}.engine").stat().st_size for e in c.engines}
    first, second = (e.key for e in c.engines)
    import os

    os.utime(tmp_path / f"{first}.engine", (1, 1))  # the oldest use
    monkeypatch.setenv("MX2TRT_CACHE_MB", str((max(sizes.values()) + 1) / 2**20))
    cache = EngineCache(tmp_path)
    cache.evict()
    assert [e.key for e in cache.entries()] == [second]
    assert cache.clear() == 1 and cache.entries() == []


def test_cache_false_and_the_environment_switches(tmp_path, monkeypatch):
    sym, params, shapes, _, _ = _model(0)
    mx2trt.convert(sym, params, shapes, runtime="reference", cache=False, cache_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists()
    monkeypatch.setenv("MX2TRT_CACHE", "1")
    monkeypatch.setenv("MX2TRT_CACHE_DIR", str(tmp_path / "b"))
    mx2trt.convert(sym, params, shapes, runtime="reference")
    assert len(list((tmp_path / "b").glob("*.engine"))) == 2
    monkeypatch.setenv("MX2TRT_CACHE", "0")
    mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path / "c")  # cache_dir= wins
    assert len(list((tmp_path / "c").glob("*.engine"))) == 2


def test_a_json_reloaded_in_a_new_process_finds_its_engines_in_the_cache(tmp_path):
    sym, params, shapes, xv, want = _model(0)
    c = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path / "cache")
    (tmp_path / "m.json").write_text(c.symbol.tojson())
    np.save(tmp_path / "x.npy", xv)
    script = textwrap.dedent(f"""
        import sys, json, numpy as np
        import mx2trt, mx2trt.build
        from mx2trt._mx import mx
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import harness
        sym = mx.sym.load({str(tmp_path / "m.json")!r})
        out = harness.run_symbol(sym, {{"data": np.load({str(tmp_path / "x.npy")!r})}})[0]
        np.save({str(tmp_path / "out.npy")!r}, out)
        print(json.dumps({{"builds": mx2trt.build.BUILDS}}))
    """)
    res = run_python(script, env={"MX2TRT_CACHE": "1", "MX2TRT_CACHE_DIR": str(tmp_path / "cache")})
    assert last_json(res.stdout)["builds"] == 0
    assert_close(np.load(tmp_path / "out.npy"), want, 1e-4)


def test_ctrl_c_during_a_build_cancels_it_and_caches_nothing(tmp_path):
    """A real SIGINT sent to the process while TensorRT builds (from its first progress phase): the build is
    cancelled, KeyboardInterrupt reaches the caller, and the cache holds no entry and no temporary file."""
    prefix, _, _ = _checkpoint(tmp_path)
    script = textwrap.dedent(f"""
        import logging, os, signal, sys, json
        import mx2trt, mx2trt.build
        from mx2trt._mx import mx
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import harness

        class CtrlC(logging.Handler):
            def emit(self, record):
                if ": Building engine" in record.getMessage():  # the first phase of a build
                    os.kill(os.getpid(), signal.SIGINT)

        log = logging.getLogger("mx2trt")
        log.setLevel(logging.DEBUG)
        log.addHandler(CtrlC())
        sym, arg, aux = mx.model.load_checkpoint({prefix!r}, 0)
        try:
            mx2trt.convert(sym, {{**arg, **aux}}, {{"data": (4, 16)}}, cache_dir={str(tmp_path / "cache")!r},
                           runtime="reference", progress=None)
            print(json.dumps({{"interrupted": False}}))
        except KeyboardInterrupt:
            print(json.dumps({{"interrupted": True, "builds": mx2trt.build.BUILDS}}))
    """)
    res = run_python(script)
    assert last_json(res.stdout) == {"interrupted": True, "builds": 1}, res.stdout + res.stderr
    assert list((tmp_path / "cache").glob("*.engine")) == []
    assert list((tmp_path / "cache").glob(".*.tmp")) == []


def test_build_environment_names_what_decides_a_plan():
    env = build_env()
    assert set(env) == {"mx2trt", "flavor", "version", "target", "builder"}
    assert env["flavor"] == mx2trt.TRT_FLAVOR and env["version"] == mx2trt.TRT_VERSION
    assert json.dumps(env)  # JSON, as stored in every entry


def test_a_converter_registered_by_the_user_is_part_of_the_key(tmp_path):
    """Overriding a converter with code outside mx2trt changes its engines' keys: no engine the old code defined is
    served to the new one (mx2trt's own converters are covered by the hash of mx2trt's source)."""
    import dataclasses

    from mx2trt import REGISTRY

    sym, params, shapes, _, _ = _model(0)
    first = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path)
    shipped = REGISTRY.get("relu")

    def relu_again(ctx, node, inputs):  # noqa: ANN001 - the same mapping, in a module of the user's
        return shipped.fn(ctx, node, inputs)

    REGISTRY.register(dataclasses.replace(shipped, fn=relu_again), override=True)
    try:
        again = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path)
    finally:
        REGISTRY.register(shipped, override=True)
    assert [e.origin for e in again.engines] == ["built", "built"]
    assert {e.key for e in again.engines}.isdisjoint(e.key for e in first.engines)
    back = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path)
    assert [e.key for e in back.engines] == [e.key for e in first.engines] and back.engines[0].origin == "cache"


@pytest.mark.parametrize("meta_change", ["spec-not-an-object", "spec-without-in_shapes", "in_shapes-a-number",
                                         "no-plan-section"])
def test_a_well_checksummed_header_of_the_wrong_shape_is_a_bad_entry(tmp_path, caplog, meta_change):
    import struct

    from mx2trt import entry

    sym, params, shapes, xv, want, paths = _cached(tmp_path)
    path = paths[0]
    f = EngineFile.read(path)
    plan = f.section("plan")
    meta = json.loads(json.dumps(f.meta))
    meta["sections"] = {"plan": [0, len(plan), meta["sections"]["plan"][2]]}
    if meta_change == "spec-not-an-object":
        meta["spec"] = []
    elif meta_change == "spec-without-in_shapes":
        del meta["spec"]["in_shapes"]
    elif meta_change == "in_shapes-a-number":
        meta["spec"]["in_shapes"] = 5
    else:
        meta["sections"] = {}
        plan = b""
    header = json.dumps(meta).encode()
    write(path, [entry.MAGIC, struct.pack("<Q", len(header)), entry._digest(header).encode(), header, plan])
    with caplog.at_level(logging.WARNING, logger="mx2trt"):
        c = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path)
    assert [e.origin for e in c.engines] == ["built", "cache"], caplog.text
    assert "ignoring bad entry" in caplog.text
    assert_close(run_symbol(c.symbol, {"data": xv})[0], want, 1e-4)
