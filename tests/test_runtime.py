"""Runtime selection, and running a real engine where a TensorRT-capable GPU exists."""
from __future__ import annotations

import logging

import numpy as np
import pytest

import mx2trt
from mx2trt import _trt, runtime, zoo
from mx2trt._mx import mx

from harness import max_rel_error, run_python, run_symbol


def test_auto_picks_reference_here_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_resolved", {})
    monkeypatch.setattr(_trt, "can_execute_engines", lambda: (False, "no GPU in this test"))
    with caplog.at_level(logging.INFO, logger="mx2trt"):
        assert runtime.resolve_runtime("auto") == "reference"
        assert runtime.resolve_runtime("auto") == "reference"
    msgs = [r.getMessage() for r in caplog.records if "runtime" in r.getMessage()]
    assert len(msgs) == 1 and "no GPU in this test" in msgs[0], "logged exactly once, with the reason"
    with pytest.raises(mx2trt.errors.Mx2TrtError, match="no GPU in this test"):
        runtime.resolve_runtime("tensorrt")
    with pytest.raises(ValueError, match="runtime must be one of"):
        runtime.resolve_runtime("cuda")
    monkeypatch.setattr(_trt, "can_execute_engines", lambda: (True, "GPU 0 (test)"))
    monkeypatch.setattr(runtime, "_resolved", {})
    assert runtime.resolve_runtime("auto") == "tensorrt"
    assert runtime.resolve_runtime("reference") == "reference"


def test_can_execute_engines_gives_a_reason():
    ok, why = _trt.can_execute_engines()
    assert isinstance(ok, bool) and why


@pytest.mark.requires_engine
@pytest.mark.parametrize("on_gpu", [False, True])
def test_real_engine_matches_mxnet(on_gpu):
    """TensorRT executes the engine inside the Custom op: CPU arrays staged, GPU arrays zero-copy."""
    sym, params, shapes = zoo.get("resnet18_v1", batch=2)
    x = np.random.default_rng(0).standard_normal(shapes["data"]).astype(np.float32)
    want = run_symbol(sym, {"data": x, **{k: v.asnumpy() for k, v in params.items()}})[0]
    sym2, params2 = mx2trt.optimize(sym, params, shapes, runtime="tensorrt")
    ctx = mx.gpu(0) if on_gpu else mx.cpu()
    ex = sym2.simple_bind(ctx, data=shapes["data"], grad_req="null")
    ex.forward(is_train=False, data=mx.nd.array(x, ctx=ctx))
    assert max_rel_error(ex.outputs[0].asnumpy(), want) <= 1e-3  # TF32 and fused kernels on the GPU


@pytest.mark.requires_engine
@pytest.mark.parametrize("on_gpu", [False, True])
def test_real_engine_integer_division_float64_and_a_carried_label(on_gpu):
    """On TensorRT's kernels: int32/int64 division (truncating) and mod (the divisor's sign) with negative operands,
    a float64 model computed in float32 (the node's casts finish before the engine reads them), and a SoftmaxOutput
    label carried by the engine node without reaching the engine."""
    ctx = mx.gpu(0) if on_gpu else mx.cpu()
    rng = np.random.default_rng(5)
    for dtype in ("int32", "int64"):
        a, b = (mx.sym.var(n) for n in "ab")
        sym = mx.sym.Group([mx.sym.broadcast_div(a, b, name="div"), mx.sym.broadcast_mod(a, b, name="mod")])
        x, y = rng.integers(-50, 50, (4, 6)).astype(dtype), rng.choice([-7, -3, -1, 2, 5], (1, 6)).astype(dtype)
        want = run_symbol(sym, {"a": x, "b": y})
        sym2, _ = mx2trt.optimize(sym, {}, {"a": x.shape, "b": y.shape}, dtypes={"a": dtype, "b": dtype},
                                  runtime="tensorrt", cache=False)
        ex = sym2.simple_bind(ctx, a=x.shape, b=y.shape, type_dict={"a": dtype, "b": dtype}, grad_req="null")
        outs = ex.forward(is_train=False, a=mx.nd.array(x, ctx=ctx, dtype=dtype),
                          b=mx.nd.array(y, ctx=ctx, dtype=dtype))
        assert all(np.array_equal(o.asnumpy(), w) for o, w in zip(outs, want)), dtype
    data = rng.standard_normal((2, 1 << 16))
    w = rng.standard_normal((3, 1 << 16)) * 1e-2
    sym = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc"), name="softmax")
    want = run_symbol(sym, {"data": data, "fc_weight": w, "fc_bias": np.zeros(3), "softmax_label": np.zeros(2)})[0]
    sym2, params2 = mx2trt.optimize(sym, {"fc_weight": mx.nd.array(w, dtype="float64"),
                                          "fc_bias": mx.nd.zeros(3, dtype="float64")},
                                    {"data": data.shape}, dtypes={"data": "float64"}, float64="float32",
                                    runtime="tensorrt", cache=False)
    assert "softmax_label" in sym2.list_arguments()
    ex = sym2.simple_bind(ctx, data=data.shape, softmax_label=(2,), type_dict={"data": "float64"}, grad_req="null")
    for k, v in params2.items():
        v.copyto(ex.arg_dict[k])
    out = ex.forward(is_train=False, data=mx.nd.array(data, ctx=ctx, dtype="float64"))[0]
    assert out.dtype == np.float64 and max_rel_error(out.asnumpy(), want) <= 1e-3


def test_symbol_loaded_in_a_fresh_process_without_its_engine_says_so(tmp_path):
    """The rewritten JSON names engines by key; a new process that never built them gets mx2trt's message in the
    exception it catches, not MXNet's generic custom-op check."""
    import subprocess
    import sys

    sym = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc")
    sym2, _ = mx2trt.optimize(sym, {"fc_weight": mx.nd.ones((3, 4)), "fc_bias": mx.nd.zeros(3)}, {"data": (2, 4)},
                              runtime="reference")
    path = tmp_path / "model-symbol.json"
    path.write_text(sym2.tojson())
    script = (
        "import mx2trt\nfrom mx2trt._mx import mx\n"
        f"sym = mx.sym.load({str(path)!r})\n"
        "try:\n    sym.simple_bind(mx.cpu(), data=(2, 4), grad_req='null').forward()\n"
        "except RuntimeError as exc:\n    print('CAUGHT', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "CAUGHT" in out.stdout, out.stdout
    caught = out.stdout.split("CAUGHT", 1)[1]  # before it, MXNet's own print of the callback's traceback
    assert "is not in this process" in caught and "Check failed" not in caught, caught


class _FailingShapeProp(mx.operator.CustomOpProp):
    def __init__(self) -> None:
        super().__init__(need_top_grad=False)

    def infer_shape(self, in_shape):  # noqa: ANN001
        raise ValueError("user op: bad shape")


mx.operator.register("mx2trt_test_failing_shape")(_FailingShapeProp)


@pytest.mark.parametrize("stale", [("kCustomOpForward", "trt_engine0", "an engine forward nobody waited for",
                                    runtime.EngineNodeError),
                                   ("kCustomOpPropInferShape", "trt_engine7", "another engine node's shape",
                                    runtime.EngineInputError)])
def test_a_users_own_custom_op_failure_is_not_given_an_engines_message(monkeypatch, stale):
    """A recorded engine-node failure is paired only with MXNet's check of the same callback (and node): a user's
    custom op failing afterwards keeps MXNet's own error."""
    monkeypatch.setattr(runtime, "_pending", [stale])
    sym = mx.sym.Custom(mx.sym.var("x"), op_type="mx2trt_test_failing_shape", name="userop")
    with pytest.raises(mx.base.MXNetError) as info:
        sym.infer_shape(x=(2, 3))
    assert not isinstance(info.value, runtime.EngineNodeError) and stale[2] not in str(info.value)
    assert runtime._pending == [stale], "the engine's message waits for its own check"


def test_an_engine_failure_in_forward_names_its_engine(monkeypatch):
    sym = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc")
    sym2, _ = mx2trt.optimize(sym, {"fc_weight": mx.nd.ones((3, 4)), "fc_bias": mx.nd.zeros(3)}, {"data": (2, 4)},
                              runtime="reference")

    def explode(self, *args):  # noqa: ANN001
        raise RuntimeError("device lost")

    monkeypatch.setattr(runtime._ReferenceRunner, "forward", explode)
    ex = sym2.simple_bind(mx.cpu(), data=(2, 4), grad_req="null")
    with pytest.raises(runtime.EngineNodeError, match="engine node 'trt_engine0': RuntimeError: device lost"):
        ex.forward(is_train=False, data=mx.nd.ones((2, 4)))[0].asnumpy()


_EXIT_EARLY = """
import numpy as np
import mx2trt
from mx2trt import zoo
from mx2trt._mx import mx
sym, params, shapes = zoo.get("resnet18_v1", batch=32, size=32)
trt_sym, trt_params = mx2trt.optimize(sym, params, shapes, runtime="reference", cache=False)
args = {k: v for k, v in trt_params.items() if k in trt_sym.list_arguments()}
args["data"] = mx.nd.array(np.random.rand(*shapes["data"]))
for _ in range(2):
    out = trt_sym.bind(mx.cpu(), args, grad_req="null").forward(is_train=False)[0]
print(out.shape)  # the forward is still running: MXNet executes asynchronously
"""


def test_a_script_that_exits_before_its_last_forward_finishes_exits_cleanly():
    """MXNet's own atexit shutdown under a running engine node's Python forward aborted or hung the process (1 in 2
    runs before mx2trt waited for pending work at exit)."""
    for _ in range(2):
        proc = run_python(_EXIT_EARLY, env={"MX2TRT_CACHE": "0"}, timeout=240)
        assert proc.returncode == 0 and "(32, 1000)" in proc.stdout
