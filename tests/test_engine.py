"""Engine lifetime (mx2trt/engine.py): engines live while a symbol or executor can run them, plus a bounded set of
recent ones; repeated optimize in one process does not accumulate engines."""
from __future__ import annotations

import gc
import time
import weakref

import numpy as np
import pytest

import mx2trt
from mx2trt._mx import mx
from mx2trt.engine import STORE, EngineNotLoadedError, EngineSpec, EngineStore

from harness import assert_close, run_symbol

RNG = np.random.default_rng(5)


def _fc(seed: int) -> tuple:
    w = np.random.default_rng(seed).standard_normal((8, 16)).astype(np.float32)
    sym = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=8, no_bias=True, name="fc")
    return sym, {"fc_weight": mx.nd.array(w)}, w


def _spec(key: str, nbytes: int) -> EngineSpec:
    return EngineSpec(key, key, [], [], [], [], [], "fp32", plan=b"x" * nbytes)


def _freed(ref: weakref.ref, timeout_s: float = 20.0) -> bool:
    """Whether `ref` dies once MXNet's engine is idle. MXNet's threaded engine drops the executor's op state (and
    with it the CustomOp that holds the spec) on a worker thread after the forward's outputs are ready, so the last
    reference can outlive `del ex` by a moment: wait for the engine, collect, and look again until `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        mx.nd.waitall()
        gc.collect()
        if ref() is None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_engine_lives_while_a_symbol_or_executor_uses_it():
    sym, params, w = _fc(0)
    c = mx2trt.convert(sym, params, {"data": (2, 16)}, runtime="reference")
    spec = weakref.ref(c.engines[0])
    sym2 = c.symbol
    ex = sym2.simple_bind(mx.cpu(), data=(2, 16), grad_req="null")
    del c
    STORE._recent.clear()  # the store's recent set must not be what keeps it
    gc.collect()
    alive = spec() is not None  # (not inside assert: pytest's rewritten assert would keep the spec referenced)
    assert alive, "the symbol's engine node holds its engine"
    del sym2
    gc.collect()
    alive = spec() is not None
    assert alive, "the executor still runs the engine"
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    assert_close(ex.forward(is_train=False, data=mx.nd.array(x))[0].asnumpy(), x @ w.T, 1e-5)
    del ex
    assert _freed(spec), "nothing can run the engine any more: it is freed"


def test_repeated_optimize_does_not_accumulate_engines(monkeypatch):
    """Thirty optimize calls with new weights, each result dropped: only the most recent engine survives a bound of
    0 bytes (tools/bench_engine_memory.py measures the process's memory the same way)."""
    monkeypatch.setattr(STORE, "limit_bytes", 0)
    STORE._recent.clear()
    refs = []
    for seed in range(30):
        sym, params, _ = _fc(seed)
        c = mx2trt.convert(sym, params, {"data": (2, 16)}, runtime="reference")
        refs.append(weakref.ref(c.engines[0]))
        del c
    gc.collect()
    assert [r() is not None for r in refs] == [False] * 29 + [True]


def test_recent_engines_are_kept_up_to_the_bound_and_evicted_oldest_first():
    store = EngineStore(limit_bytes=250)
    for k in "abc":
        store.register(_spec(k, 100))
    gc.collect()
    assert store.keys() == ["b", "c"], "the oldest beyond 250 bytes is dropped"
    assert store.find("b") is not None  # a use makes it the most recent
    store.register(_spec("d", 100))
    gc.collect()
    assert sorted(store.keys()) == ["b", "d"]
    with pytest.raises(EngineNotLoadedError, match="engine c is not in this process"):
        store.get("c")


def test_one_engine_larger_than_the_bound_is_still_kept_while_most_recent():
    store = EngineStore(limit_bytes=10)
    store.register(_spec("big", 100))
    gc.collect()
    assert store.keys() == ["big"]


def test_json_reloaded_in_the_same_process_finds_a_recent_engine():
    sym, params, w = _fc(3)
    sym2, params2 = mx2trt.optimize(sym, params, {"data": (2, 16)}, runtime="reference")
    js = sym2.tojson()
    del sym2
    gc.collect()
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    assert_close(run_symbol(mx.sym.load_json(js), {"data": x})[0], x @ w.T, 1e-5)


def test_store_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MX2TRT_ENGINE_STORE_MB", "1.5")
    assert EngineStore().limit_bytes == int(1.5 * 2**20)
    monkeypatch.setenv("MX2TRT_ENGINE_STORE_MB", "lots")
    with pytest.raises(mx2trt.Mx2TrtError, match="MX2TRT_ENGINE_STORE_MB must be a number of MiB, not 'lots'"):
        EngineStore()
