"""The one equivalence harness: MXNet CPU output vs the optimized graph through partition -> build -> Custom op."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import is_hypothesis_test

import mx2trt
from mx2trt._mx import mx
from mx2trt._trt import round_bf16
from mx2trt.profiles import parse as parse_profiles


def run_symbol(sym: Any, values: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Bind `sym` on CPU with `values` (data, params and aux by name) and return its outputs."""
    args = {n: mx.nd.array(values[n], dtype=values[n].dtype) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(values[n], dtype=values[n].dtype) for n in sym.list_auxiliary_states()}
    ex = sym.bind(mx.cpu(), args, aux_states=aux, grad_req="null")
    return [o.asnumpy() for o in ex.forward(is_train=False)]


def max_rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| relative to max |want| over finite values; NaN and inf must sit in the same places."""
    if not want.size:
        return 0.0
    g, w = got.astype(np.float64), want.astype(np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(w)):
        return float("inf")
    finite = np.isfinite(w)
    if not np.array_equal(g[~finite & ~np.isnan(w)], w[~finite & ~np.isnan(w)]):
        return float("inf")  # infinities must match exactly
    if not finite.any():
        return 0.0
    scale = max(float(np.abs(w[finite]).max()), 1e-6)
    return float(np.abs(g[finite] - w[finite]).max()) / scale


# Per test: the largest measured error / tolerance of its numeric checks (conftest prints the tightest at the end).
MARGINS: dict[str, tuple[float, float, float]] = {}


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float, what: str = "") -> float:
    """max_rel_error(got, want) <= rtol, recorded in MARGINS; returns the error."""
    err = max_rel_error(got, want)
    if rtol > 0:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
        if test not in MARGINS or err / rtol > MARGINS[test][0]:
            MARGINS[test] = (err / rtol, err, rtol)
    assert err <= rtol, f"{what or 'output'}: max relative error {err:.3g} > {rtol:g}"
    return err


def check_graph(
    sym: Any,
    data: Mapping[str, np.ndarray],
    params: Mapping[str, np.ndarray],
    *,
    on_trt: Sequence[str] | None = None,
    in_mxnet: Sequence[str] = (),
    engines: int | None = None,
    rtol: float = 1e-5,
    **options: Any,
) -> mx2trt.Conversion:
    """Optimize `sym` (reference runtime), check placement of the named nodes and that outputs match MXNet."""
    want = run_symbol(sym, {**data, **params})
    shapes = {k: v.shape for k, v in data.items()}
    dtypes = {k: v.dtype for k, v in data.items()}
    nd_params = {k: mx.nd.array(v, dtype=v.dtype) for k, v in params.items()}
    options.setdefault("runtime", "reference")
    c = mx2trt.convert(sym, nd_params, shapes, dtypes=dtypes, **options)
    where = {row.node: row.placement for row in c.report.rows}
    reasons = {row.node: row.reason for row in c.report.rows}
    for name in on_trt if on_trt is not None else []:
        assert where[name] != "mxnet", f"{name} stayed in MXNet: {reasons[name]}"
    for name in in_mxnet:
        assert where[name] == "mxnet", f"{name} was expected to stay in MXNet"
    if engines is not None:
        assert len(c.engines) == engines, c.report.summary()
    lost = set(data) - set(c.symbol.list_arguments()) - set(c.symbol.list_auxiliary_states())
    assert not lost, f"data inputs {sorted(lost)} are no longer arguments: Module.bind(data_shapes=...) would refuse them"
    assert binds_alone(c.symbol, shapes, dtypes) or not binds_alone(sym, shapes, dtypes), \
        "the optimized symbol needs more than the data shapes to bind, the original did not"
    got = run_symbol(c.symbol, {**data, **{k: v.asnumpy() for k, v in c.params.items()}})
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"output {k}: shape {g.shape} vs MXNet {w.shape}"
        assert g.dtype == w.dtype, f"output {k}: dtype {g.dtype} vs MXNet {w.dtype}"
        assert_close(g, w, rtol, f"output {k} ({c.report.summary().splitlines()[0]})")
    return c


def check_profiles(
    sym: Any,
    params: Mapping[str, np.ndarray],
    shapes: Any,
    values: Any,
    *,
    engines: int | None = 1,
    rtol: float = 1e-5,
    also: Sequence[Mapping[str, Sequence[int]]] = (),
    **options: Any,
) -> mx2trt.Conversion:
    """Optimize `sym` once with optimization profiles `shapes` (reference runtime), then check the one optimized
    symbol against MXNet at every profile's min, opt and max and at the shapes in `also`; `values(shapes)` gives the
    data at a point. Every node must convert (with `engines` engines) and no bind may rebuild an engine."""
    import mx2trt.build

    ranges = parse_profiles(shapes)
    options.setdefault("runtime", "reference")
    options.setdefault("cache", False)
    c = mx2trt.convert(sym, {k: mx.nd.array(v, dtype=v.dtype) for k, v in params.items()}, shapes, **options)
    assert c.report.nodes_trt == c.report.nodes_total, c.report.op_table()
    if engines is not None:
        assert len(c.engines) == engines, c.report.summary()
    assert all(e.profiles for e in c.engines), "no engine varies: the check does not test profiles"
    builds = mx2trt.build.BUILDS
    points = [{k: r[j] for k, r in p.items()} for p in ranges.ranges for j in range(3)] + [dict(a) for a in also]
    for point in points:
        data = values(point)
        want = run_symbol(sym, {**data, **params})
        got = run_symbol(c.symbol, {**data, **{k: v.asnumpy() for k, v in c.params.items()}})
        for k, (g, w) in enumerate(zip(got, want)):
            assert g.shape == w.shape, f"output {k} at {point}: shape {g.shape} vs MXNet {w.shape}"
            assert_close(g, w, rtol, f"output {k} at {point}")
    assert mx2trt.build.BUILDS == builds, "a bind within the profiles rebuilt an engine"
    return c


def binds_alone(sym: Any, shapes: Mapping[str, Any], dtypes: Mapping[str, Any]) -> bool:
    """Whether `sym` binds with the data shapes and dtypes alone (`simple_bind(ctx, data=shape)`, as users and the
    MXNet docs do): every other variable's shape inferred or declared."""
    try:
        sym.simple_bind(mx.cpu(), grad_req="null", type_dict=dict(dtypes), **{k: tuple(v) for k, v in shapes.items()})
    except mx.base.MXNetError:
        return False
    return True


def sym_fn(op: str) -> Any:
    """MXNet's symbol function of an op name as it appears in graphs (`_contrib_x` lives at mx.sym.contrib.x)."""
    if op.startswith("_contrib_"):
        return getattr(mx.sym.contrib, op[len("_contrib_"):])
    return getattr(mx.sym, op, None) or getattr(mx.sym._internal, op)


def check_op(
    op: str,
    inputs: Sequence[np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    *,
    params: Sequence[int] = (),
    expect_trt: bool = True,
    rtol: float = 1e-5,
    **options: Any,
) -> mx2trt.Conversion:
    """One-node graph `op(inputs, **attrs)`; inputs at indices `params` are parameters, the rest data inputs.

    expect_trt=True asserts the node converted and matches MXNet; False asserts it stayed in MXNet and still runs.
    """
    names = [f"x{i}" for i in range(len(inputs))]
    fn = sym_fn(op)
    sym = fn(*[mx.sym.var(n) for n in names], name="node", **(attrs or {}))
    data = {n: a for i, (n, a) in enumerate(zip(names, inputs)) if i not in params}
    prm = {n: a for i, (n, a) in enumerate(zip(names, inputs)) if i in params}
    options.setdefault("min_subgraph_size", 1)
    if expect_trt:
        return check_graph(sym, data, prm, on_trt=["node"], rtol=rtol, **options)
    return check_graph(sym, data, prm, in_mxnet=["node"], rtol=rtol, **options)


def registered_ops(module: str) -> set[str]:
    """Ops whose converter is defined in `module` (e.g. 'mx2trt.converters.nn')."""
    return {op for op, spec in mx2trt.REGISTRY.specs.items() if spec.fn.__module__ == module}


def _parametrized_ops(test: Any) -> tuple[str, ...] | None:
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize" and mark.args[0] == "op":
            return tuple(mark.args[1])
    return None


def check_property_tests(module: str, tests: Mapping[str, Any]) -> None:
    """Every op `module` registers has a hypothesis property test in `tests` (op -> test function), parametrized
    with that op where the test is parametrized over ops; no entry names an op the module no longer registers."""
    ops = registered_ops(module)
    assert ops, f"no converter registered from {module}"
    missing = sorted(ops - set(tests))
    assert not missing, f"ops of {module} without a property test: {missing}"
    stale = sorted(set(tests) - ops)
    assert not stale, f"property tests name ops that {module} no longer registers: {stale}"
    for op, test in tests.items():
        assert is_hypothesis_test(test), f"{op}: {test.__name__} is not a hypothesis property test"
        drawn = _parametrized_ops(test)
        assert drawn is None or op in drawn, f"{test.__name__} is not parametrized with op {op!r}"


def check_alias_entry(op: str, num_inputs: int) -> None:
    """MXNet writes an alias (flatten, _plus...) into the graph under its canonical op name, so property tests reach
    the canonical registry entry; the alias's own entry must be the very same converter."""
    fn = sym_fn(op)
    canon = json.loads(fn(*[mx.sym.var(f"x{i}") for i in range(num_inputs)]).tojson())["nodes"][-1]["op"]
    assert canon in mx2trt.REGISTRY, f"{op} resolves to {canon}, which has no converter"
    a, b = mx2trt.REGISTRY.get(op), mx2trt.REGISTRY.get(canon)
    assert (a.fn, a.attrs, a.validator, a.compute, a.dtypes) == (b.fn, b.attrs, b.validator, b.compute, b.dtypes)


class _SinOp(mx.operator.CustomOp):
    def forward(self, is_train, req, in_data, out_data, aux):  # noqa: ANN001
        self.assign(out_data[0], req[0], mx.nd.sin(in_data[0]))


@mx.operator.register("mx2trt_test_mxnet_only")
class _SinProp(mx.operator.CustomOpProp):
    """sin(x) as a Python CustomOp: an op no converter will ever take, for tests that need a node to stay in MXNet."""

    def __init__(self) -> None:
        super().__init__(need_top_grad=False)

    def create_operator(self, ctx, shapes, dtypes):  # noqa: ANN001
        return _SinOp()


def mxnet_only(x: Any, name: str) -> Any:
    """sin(x) that always stays in MXNet (a Python CustomOp, which no converter handles)."""
    return mx.sym.Custom(x, op_type="mx2trt_test_mxnet_only", name=name)


# fp16 engines: one layer's rounding is 2^-11 relative; tests allow twice that. bf16 (8-bit significand): 2^-8 relative,
# twice that allowed. bf16 is not in `precisions` (CI time): tests/test_precision_bf16.py tests it per special case.
FP16_RTOL = 1e-3
BF16_RTOL = 8e-3
precisions = pytest.mark.parametrize("precision", ["fp32", "fp16"])
# Quantized engines: (precision, int8_fallback) — the quantized dtype, and the float precision of the rest.
quantizations = pytest.mark.parametrize("quant", [("int8", "fp32"), ("int8", "fp16"), ("fp8", "fp16")],
                                        ids=["int8-fp32", "int8-fp16", "fp8-fp16"])


def fake_quant(x: np.ndarray, amax: Any, dtype: str, axis: int | None = None) -> np.ndarray:
    """What a Q/DQ pair gives, computed here: scale = amax/127 (int8) or amax/448 (fp8 e4m3); x / scale rounded half
    to even (int8) or to the nearest e4m3 value (fp8), saturated, times the scale. `axis`: amax per slice along it."""
    import ml_dtypes

    qmax = 127.0 if dtype == "int8" else 448.0
    s = np.maximum(np.asarray(amax, np.float64) / qmax, np.finfo(np.float32).tiny).astype(np.float32)
    if axis is not None:
        s = s.reshape([-1 if i == axis else 1 for i in range(x.ndim)])
    y = x.astype(np.float32) / s
    if dtype == "int8":
        q = np.clip(np.rint(y), -128, 127)
    else:
        q = np.clip(y, -qmax, qmax).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    return (q * s).astype(np.float32)


def check_quantized(
    op: str,
    inputs: Sequence[np.ndarray],
    attrs: Mapping[str, Any],
    quant: tuple[str, str],
    *,
    params: Sequence[int] = (),
    weight_axis: Mapping[int, int | None] | None = None,
    rtol: float | None = None,
) -> mx2trt.Conversion:
    """One-node graph `op(inputs)` quantized (`quant` = (dtype, int8_fallback)) with a table calibrated on these very
    inputs ('max'), against MXNet fed fake-quantized inputs: data per tensor, parameters per slice along
    `weight_axis[k]` (None: per tensor; parameters not named there stay float, like biases)."""
    dtype, fallback = quant
    names = [f"x{i}" for i in range(len(inputs))]
    inputs = exact_in(fallback, *inputs)
    sym = sym_fn(op)(*[mx.sym.var(n) for n in names], name="node", **attrs)
    data = {n: a for i, (n, a) in enumerate(zip(names, inputs)) if i not in params}
    prm = {n: a for i, (n, a) in enumerate(zip(names, inputs)) if i in params}
    table = mx2trt.calibrate(sym, {k: mx.nd.array(v) for k, v in prm.items()}, {k: v.shape for k, v in data.items()},
                             [data], progress=False)
    weight_axis = dict(weight_axis or {})
    fed = {}
    for i, (n, a) in enumerate(zip(names, inputs)):
        if i not in params:
            fed[n] = fake_quant(a, np.abs(a).max(), dtype)
        elif i in weight_axis:
            ax = weight_axis[i]
            amax = np.abs(a).max() if ax is None else np.abs(np.moveaxis(a, ax, 0).reshape(a.shape[ax], -1)).max(1)
            fed[n] = fake_quant(a, amax, dtype, ax)
        else:
            fed[n] = a
    want = run_symbol(sym, fed)
    c = mx2trt.convert(sym, {k: mx.nd.array(v) for k, v in prm.items()}, {k: v.shape for k, v in data.items()},
                       precision=dtype, int8_fallback=fallback, calibration=table, runtime="reference",
                       min_subgraph_size=1)
    row = {r.node: r for r in c.report.rows}["node"]
    assert row.placement != "mxnet" and row.reason.startswith(f"converted; {dtype}"), row
    for step in c.engines[0].program.steps:  # TensorRT's int8/fp8 kernel: the layer reads the Q/DQ'd operands
        if step.kind in ("CONVOLUTION", "MATRIX_MULTIPLY"):
            assert len(step.inputs) == 4, f"{step.name} computes on dequantized values (not fused)"
    got = run_symbol(c.symbol, {**data, **{k: v.asnumpy() for k, v in c.params.items()}})
    for g, w in zip(got, want):
        assert_close(g, w, rtol if rtol is not None else rtol_for(fallback), f"{op} {dtype} in {fallback}")
    return c


def rtol_for(precision: str, fp16: float = FP16_RTOL, fp32: float = 1e-5, bf16: float = BF16_RTOL) -> float:
    return {"fp16": fp16, "bf16": bf16}.get(precision, fp32)


def exact_in(precision: str, *arrays: np.ndarray) -> list[np.ndarray]:
    """For an fp16 (bf16) engine, float32 arrays holding fp16 (bf16) values: the boundary cast then loses nothing, and
    the check measures the engine's own rounding rather than how much an op amplifies its inputs' rounding."""
    if precision == "bf16":
        return [round_bf16(a) for a in arrays]
    if precision != "fp16":
        return list(arrays)
    return [a.astype(np.float16).astype(np.float32) for a in arrays]


def run_python(script: str, env: Mapping[str, str] | None = None, timeout: float = 300, check: bool = True,
               cwd: Any = None) -> Any:
    """Run `script` in a fresh interpreter like this one, with `env` added to this environment (subprocess.run's
    result); with `check`, a non-zero exit fails the test showing the child's stderr."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})}, cwd=cwd)
    if check:
        assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}"
    return out


def wait_until_ready(client: Any, model: str, proc: Any, seconds: float, what: str) -> None:
    """Poll a tritonclient `client` until Triton has `model` ready; fails if the server process `proc` exits or
    `seconds` pass, naming `what` and showing the server's stderr."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.is_model_ready(model):
                return
        except Exception:  # not listening yet
            pass
        assert proc.poll() is None, f"{what} exited: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"{what} did not come up with model {model!r} in {seconds:.0f} s"
        time.sleep(0.5)


def last_json(stdout: str) -> Any:
    """The JSON object on the last line of a child's stdout."""
    return json.loads(stdout.strip().splitlines()[-1])


README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_block(marker: str) -> tuple[str, int]:
    """The python block right after README.md's `<!-- marker: ... -->` line, and the README line it starts on."""
    import re

    with open(README, encoding="utf-8") as f:
        text = f.read()
    tag = f"<!-- {marker}:"
    assert text.count(tag) == 1, f"README.md must have exactly one {tag!r} marker"
    head, _, tail = text.partition(tag)
    m = re.match(r"[^\n]*-->\n```python\n(.*?)\n```\n", tail, re.S)
    assert m, f"README.md: the {tag!r} marker must be followed directly by a ```python block"
    return m.group(1) + "\n", head.count("\n") + 3  # marker line, fence line, then the code
