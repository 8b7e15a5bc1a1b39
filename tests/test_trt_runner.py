"""TensorRTRunner, the GPU runtime of engine nodes: pinned staging of CPU arrays, zero-copy GPU arrays, one scratch
shared by the engines of a GPU, one stream per context, several executors and threads, several GPUs.

Tests that execute engines are marked requires_engine: they run where TensorRT can execute engines and skip elsewhere
with the reason (the CUDA-only parts are exercised on a real GPU by tests/test_cuda.py). The rest run anywhere.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import mx2trt
from mx2trt import _trt, trt_runner
from mx2trt._mx import mx
from mx2trt.engine import EngineSpec
from mx2trt.trt_runner import TensorRTRunner

from harness import max_rel_error, run_symbol

TOL = 1e-3  # TF32 and fused kernels on the GPU


def _gpus() -> int:
    try:
        from mx2trt import cuda

        return cuda.device_count()
    except ImportError:
        return 0


# ---- anywhere --------------------------------------------------------------------------------------------------------


def test_runner_without_a_usable_gpu_names_the_engine_and_the_gpu():
    pytest.importorskip("cuda.bindings")
    if _gpus():
        pytest.skip("a GPU is visible here: the requires_engine tests cover the runner")
    spec = EngineSpec(key="k123", name="trt_engine7", nodes=[], in_shapes=[(2, 4)], in_dtypes=["float32"],
                      out_shapes=[(2, 3)], out_dtypes=["float32"], precision="fp32")
    with pytest.raises(mx2trt.Mx2TrtError, match=r"engine trt_engine7 \(k123\) on GPU 0: .*selecting GPU 0"):
        TensorRTRunner(spec, 0)


class _Engine:
    """Records which context-creation call the runner makes (the flavour switch only; nothing executes)."""

    def __init__(self, **sizes: int) -> None:
        self.__dict__.update(sizes)
        self.created_with: Any = None

    def create_runtime_config(self) -> SimpleNamespace:
        config = SimpleNamespace(strategy=None)
        config.set_execution_context_allocation_strategy = lambda s: setattr(config, "strategy", s)
        return config

    def create_execution_context(self, arg: Any) -> str:
        self.created_with = arg
        return "context"


@pytest.mark.parametrize("flavor", ["tensorrt", "tensorrt_rtx"])
def test_contexts_are_user_managed_in_each_flavour(monkeypatch, flavor):
    monkeypatch.setattr(_trt, "FLAVOR", flavor)
    engine = _Engine()
    assert trt_runner.user_managed_context(engine) == "context"
    user_managed = _trt.trt.ExecutionContextAllocationStrategy.USER_MANAGED
    if flavor == "tensorrt":  # TensorRT 10.x/11.x: create_execution_context(strategy)
        assert engine.created_with == user_managed
    else:  # RTX: through an IRuntimeConfig
        assert engine.created_with.strategy == user_managed


def test_scratch_size_and_setter_fall_back_to_the_older_api():
    assert trt_runner.device_memory_size(_Engine(device_memory_size_v2=4096, device_memory_size=1)) == 4096
    assert trt_runner.device_memory_size(_Engine(device_memory_size=512)) == 512
    new, old = SimpleNamespace(), SimpleNamespace(device_memory=0)
    new.set_device_memory = lambda ptr, size: setattr(new, "got", (ptr, size))
    trt_runner.set_device_memory(new, 0x1000, 4096)
    trt_runner.set_device_memory(old, 0x2000, 4096)
    assert new.got == (0x1000, 4096) and old.device_memory == 0x2000


# ---- where TensorRT executes engines ---------------------------------------------------------------------------------


def _mlp(seed: int = 0, split: bool = False) -> tuple[Any, dict, dict]:
    """fc -> relu -> fc; with `split`, the relu stays in MXNet and the model has two engines."""
    rng = np.random.default_rng(seed)
    x = mx.sym.var("data")
    h = mx.sym.Activation(mx.sym.FullyConnected(x, num_hidden=32, name="fc1"), act_type="relu", name="mid")
    y = mx.sym.FullyConnected(h, num_hidden=5, name="fc2")
    params = {"fc1_weight": rng.standard_normal((32, 16)), "fc1_bias": rng.standard_normal(32),
              "fc2_weight": rng.standard_normal((5, 32)), "fc2_bias": rng.standard_normal(5)}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    opts = {"exclude_nodes": ["mid"]} if split else {}
    return y, params, opts


def _convert(split: bool = False, batch: int = 4) -> tuple[Any, Any, dict]:
    sym, params, opts = _mlp(split=split)
    shapes = {"data": (batch, 16)}
    c = mx2trt.convert(sym, {k: mx.nd.array(v) for k, v in params.items()}, shapes, runtime="tensorrt", **opts)
    return c, sym, params


def _bind(c: Any, ctx: Any, batch: int = 4) -> Any:
    args = {k: v.as_in_context(ctx) for k, v in c.params.items() if k in c.symbol.list_arguments()}
    args["data"] = mx.nd.zeros((batch, 16), ctx=ctx)
    return c.symbol.bind(ctx, args, grad_req="null")


def _run(ex: Any, x: np.ndarray) -> np.ndarray:
    ex.arg_dict["data"][:] = x
    return ex.forward(is_train=False)[0].asnumpy()


def _want(sym: Any, params: dict, x: np.ndarray) -> np.ndarray:
    return run_symbol(sym, {"data": x, **params})[0]


@pytest.mark.requires_engine
@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_engine_node_matches_mxnet_with_cpu_and_gpu_arrays(device):
    c, sym, params = _convert()
    ctx = mx.gpu(0) if device == "gpu" else mx.cpu()
    ex = _bind(c, ctx)
    rng = np.random.default_rng(1)
    for _ in range(3):  # repeated forwards reuse the staging buffers
        x = rng.standard_normal((4, 16)).astype(np.float32)
        assert max_rel_error(_run(ex, x), _want(sym, params, x)) <= TOL
    runner = c.engines[0].runners[("tensorrt", 0)]
    if device == "gpu":  # zero-copy: nothing staged
        assert not runner.io.pinned and "in0" not in runner.io.buffers and "out0" not in runner.io.buffers
    else:
        assert {"in0", "out0"} <= set(runner.io.pinned)


@pytest.mark.requires_engine
@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_forward_honours_add_and_null_requests(device):
    c, sym, params = _convert()
    spec = c.engines[0]
    runner = TensorRTRunner(spec, 0)
    try:
        ctx = mx.gpu(0) if device == "gpu" else mx.cpu()
        x = np.random.default_rng(2).standard_normal((4, 16)).astype(np.float32)
        y = mx.nd.ones(spec.out_shapes[0], ctx=ctx)
        runner.forward(mx.operator.CustomOp(), ["add"], [mx.nd.array(x, ctx=ctx)], [y])
        assert max_rel_error(y.asnumpy(), 1 + _want(sym, params, x)) <= TOL
        runner.forward(mx.operator.CustomOp(), ["null"], [mx.nd.array(x, ctx=ctx)], [y])
        assert max_rel_error(y.asnumpy(), 1 + _want(sym, params, x)) <= TOL, "'null' leaves the output alone"
    finally:
        runner.close()


@pytest.mark.requires_engine
def test_engines_of_a_model_share_one_scratch_allocation():
    from mx2trt import cuda

    c, sym, params = _convert(split=True)
    assert len(c.engines) == 2
    ex = _bind(c, mx.gpu(0))
    x = np.random.default_rng(3).standard_normal((4, 16)).astype(np.float32)
    assert max_rel_error(_run(ex, x), _want(sym, params, x)) <= TOL
    runners = [spec.runners[("tensorrt", 0)] for spec in c.engines]
    shared = cuda.scratch(0)
    assert all(r.scratch is shared for r in runners)
    assert shared.nbytes >= max(r.scratch_bytes for r in runners) and shared.users >= 2
    assert cuda.pointer_device(shared.ptr) == ("device", 0)


@pytest.mark.requires_engine
def test_closing_a_runner_releases_its_share_of_the_scratch():
    from mx2trt import cuda

    c, _, _ = _convert()
    shared = cuda.scratch(0)
    before = shared.users
    runner = TensorRTRunner(c.engines[0], 0)
    assert shared.users == before + 1 and shared.nbytes >= runner.scratch_bytes
    runner.close()
    runner.close()
    assert shared.users == before
    with pytest.raises(mx2trt.Mx2TrtError, match="was closed"):
        runner.forward(mx.operator.CustomOp(), ["write"], [mx.nd.zeros((4, 16))], [mx.nd.zeros((4, 5))])


@pytest.mark.requires_engine
def test_several_executors_of_one_symbol_in_several_threads():
    """Executors bound from one symbol share each engine's runner; MXNet runs their custom ops on its worker threads
    (MXNET_CUSTOM_OP_NUM_THREADS) and Python threads drive them at once: every result must still be its own."""
    c, sym, params = _convert(split=True)
    executors = [_bind(c, mx.gpu(0) if i % 2 else mx.cpu()) for i in range(4)]
    errors: list[str] = []

    def work(i: int) -> None:
        rng = np.random.default_rng(10 + i)
        for it in range(10):
            x = rng.standard_normal((4, 16)).astype(np.float32)
            err = max_rel_error(_run(executors[i], x), _want(sym, params, x))
            if err > TOL:
                errors.append(f"executor {i} iteration {it}: error {err:.3g}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(executors))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.requires_engine
def test_engines_run_on_the_gpu_of_their_arrays():
    """mx.gpu(1): the engine is deserialized there, with its context, stream, buffers and scratch on GPU 1."""
    from mx2trt import cuda

    if _gpus() < 2:
        pytest.skip(f"needs two GPUs: {_gpus()} visible")
    c, sym, params = _convert()
    x = np.random.default_rng(4).standard_normal((4, 16)).astype(np.float32)
    for device in (1, 0):
        assert max_rel_error(_run(_bind(c, mx.gpu(device)), x), _want(sym, params, x)) <= TOL
    r0, r1 = (c.engines[0].runners[("tensorrt", d)] for d in (0, 1))
    assert r1.device_id == 1 and r1.scratch is cuda.scratch(1) and r0.scratch is cuda.scratch(0)
    assert cuda.pointer_device(r1.scratch.ptr) == ("device", 1)
    ex = _bind(c, mx.cpu())
    with pytest.raises(mx2trt.Mx2TrtError, match="on GPU 1: input 0 is on GPU 0"):
        r1.forward(mx.operator.CustomOp(), ["write"], [mx.nd.array(x, ctx=mx.gpu(0))],
                   [mx.nd.zeros((4, 5), ctx=mx.gpu(1))])
    assert max_rel_error(_run(ex, x), _want(sym, params, x)) <= TOL
