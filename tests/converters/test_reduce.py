"""sum/mean/max/min/prod/nansum/nanprod (and sum_axis/max_axis/min_axis), norm, argmax/argmin/argmax_channel:
hypothesis draws shapes, axes (None, (), one or several, negative ones), keepdims/exclude and inputs (NaN for the nan*
ops, distinct values for arg*); the node must convert and match MXNet CPU, as an fp32 and as an fp16 engine (fp16
inputs are drawn exactly representable in fp16, so the tolerance measures the engine's arithmetic).

Bugs and limits these tests pin have regression tests at the end.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mx2trt
from harness import check_alias_entry, check_graph, check_op, check_property_tests, registered_ops
from mx2trt import REGISTRY
from mx2trt._mx import mx

MODULE = "mx2trt.converters.reduce"
SEEDS = st.integers(0, 2**32 - 1)
PRECISIONS = ("fp32", "fp16")
# Whether an example also builds the TensorRT plan (about 90% of its time): about half do; every example defines the
# network and runs it on the reference interpreter.
BUILD = st.booleans()

REDUCE_OPS = ("sum", "mean", "max", "min", "prod", "nansum", "nanprod", "sum_axis", "max_axis", "min_axis")
ARG_OPS = ("argmax", "argmin")


def shapes(min_rank: int = 1, max_rank: int = 4, max_dim: int = 5) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(1, max_dim), min_size=min_rank, max_size=max_rank).map(tuple)


def exact_in(precision: str, x: np.ndarray) -> np.ndarray:
    """`x` rounded to fp16 (kept float32) for an fp16 engine, so its input cast is exact."""
    return x if precision == "fp32" else x.astype(np.float16).astype(np.float32)


@st.composite
def axes(draw, rank: int) -> Any:
    """MXNet's axis attribute: None (absent), (), one axis, or distinct axes, each possibly negative."""
    kind = draw(st.sampled_from(["none", "empty", "one", "several"]))
    if kind == "none":
        return None
    if kind == "empty":
        return ()
    picked = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=1 if kind == "one" else rank, unique=True))
    signed = tuple(a - rank if draw(st.booleans()) else a for a in picked)
    return signed[0] if kind == "one" and draw(st.booleans()) else signed  # an int or a tuple


# ---- sum/mean/max/min/prod/nansum/nanprod ----------------------------------------------------------------------------


def reduce_input(op: str, rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    shape = tuple(shape)
    if "prod" in op:  # magnitudes near 1 and either sign: products of up to 5**4 terms stay inside fp16's range
        x = rng.choice([-1.0, 1.0], size=shape) * np.exp(rng.normal(0.0, 0.05, size=shape))
    else:
        x = rng.standard_normal(shape) * 2.0
    if op.startswith("nan"):
        x[rng.random(shape) < 0.3] = np.nan
    return x.astype(np.float32)


# fp16 tolerances, relative to max |MXNet|: max/min are exact; sums and means round the result once (reference
# interpreter: it accumulates in fp32); products compound the rounding of their terms.
FP16_RTOL = {"sum": 1e-3, "mean": 1e-3, "nansum": 1e-3, "sum_axis": 1e-3, "prod": 2e-3, "nanprod": 2e-3}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", REDUCE_OPS)
@given(data=st.data())
def test_reduce(op, precision, data):
    shape = data.draw(shapes())
    attrs: dict[str, Any] = {}
    axis = data.draw(axes(len(shape)))
    if axis is not None:
        attrs["axis"] = axis
    for flag in ("keepdims", "exclude"):  # exclude=True keeps the listed axes and reduces the others
        v = data.draw(st.sampled_from([None, False, True]))
        if v is not None:
            attrs[flag] = v
    x = exact_in(precision, reduce_input(op, np.random.default_rng(data.draw(SEEDS)), shape))
    rtol = 1e-5 if precision == "fp32" else FP16_RTOL.get(op, 0.0)
    check_op(op, [x], attrs, precision=precision, rtol=rtol, build_engines=data.draw(BUILD))


# ---- norm ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
@given(data=st.data())
def test_norm(precision, data):
    shape = data.draw(shapes())
    ord_ = data.draw(st.sampled_from([None, 1, 2]))
    attrs: dict[str, Any] = {} if ord_ is None else {"ord": ord_}
    axis = data.draw(axes(len(shape)))
    if axis is not None:
        attrs["axis"] = axis
    if data.draw(st.booleans()):
        attrs["keepdims"] = True
    if data.draw(st.booleans()):
        attrs["out_dtype"] = "float32"  # the input's dtype; any other MXNet 1.9.1 itself fails on
    # Large values too: an fp16 engine must not square 1000 into inf (ord 1 sums |x| in fp16, so it stays moderate).
    scale = data.draw(st.sampled_from([1.0, 1000.0] if ord_ != 1 or precision == "fp32" else [1.0, 10.0]))
    rng = np.random.default_rng(data.draw(SEEDS))
    x = exact_in(precision, (rng.standard_normal(shape) * scale).astype(np.float32))
    check_op("norm", [x], attrs, precision=precision, rtol=1e-5 if precision == "fp32" else 2e-3,
             build_engines=data.draw(BUILD))


# ---- argmax/argmin/argmax_channel ------------------------------------------------------------------------------------


def distinct(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Distinct values (no ties, whose winner TensorRT does not specify), exact in fp16: a permutation of halves."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n // 2) * 0.5).reshape(tuple(shape)).astype(np.float32)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", ARG_OPS)
@given(shape=shapes(max_rank=5), seed=SEEDS, data=st.data())
def test_argmax(op, precision, shape, seed, data):
    # MXNet returns float indices; axis None flattens. Rank 5 too: TopK itself takes only the last four axes.
    attrs: dict[str, Any] = {}
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    if axis is not None:
        attrs["axis"] = axis
    if data.draw(st.booleans()):
        attrs["keepdims"] = data.draw(st.booleans())
    x = distinct(np.random.default_rng(seed), shape)
    check_op(op, [x], attrs, precision=precision, build_engines=data.draw(BUILD))


@pytest.mark.parametrize("precision", PRECISIONS)
@given(shape=shapes(min_rank=2, max_rank=5), seed=SEEDS, build=BUILD)
def test_argmax_channel(precision, shape, seed, build):
    # MXNet's argmax_channel is argmax over axis 1 (not the last axis), for rank >= 2
    check_op("argmax_channel", [distinct(np.random.default_rng(seed), shape)], precision=precision,
             build_engines=build)


# ---- aliases and registry coverage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(registered_ops(MODULE)))
def test_alias_entries_share_the_canonical_converter(op):
    """sum_axis/max_axis/min_axis reach the partitioner as sum/max/min: their own entries must be the same converter."""
    check_alias_entry(op, 1)


PROPERTY_TESTS = {
    **{op: test_reduce for op in REDUCE_OPS},
    "norm": test_norm,
    "argmax": test_argmax, "argmin": test_argmax,
    "argmax_channel": test_argmax_channel,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)


# ---- regression tests and limits -------------------------------------------------------------------------------------


def test_reduce_everything_gives_shape_1():
    """Reducing every axis without keepdims gives MXNet's (1,), not TensorRT's 0-d; exclude of every axis is a copy."""
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for attrs in ({}, {"axis": ()}, {"axis": (0, 1, 2)}, {"axis": (), "exclude": True}):
        c = check_op("sum", [x], attrs)
        assert c.engines[0].out_shapes == [(1,)], attrs
    c = check_op("sum", [x], {"axis": (0, 1, 2), "exclude": True})
    assert c.engines[0].out_shapes == [(2, 3, 4)]


def test_norm_fp16_does_not_overflow():
    """An fp16 engine squares x / max|x|, not x: 300 squared would be inf in fp16."""
    x = np.array([[300.0, -400.0], [1e-3, 0.0]], np.float32)
    check_op("norm", [x], {"axis": 1}, precision="fp16", rtol=2e-3)
    check_op("norm", [np.zeros((2, 3), np.float32)], {}, precision="fp16")  # max|x| = 0 must not divide by zero


def test_nan_reductions_of_all_nan_rows():
    x = np.array([[np.nan, np.nan], [1.0, np.nan]], np.float32)
    check_op("nansum", [x], {"axis": 1})
    check_op("nanprod", [x], {"axis": 1})


def _reason(sym: Any, shapes: dict[str, tuple[int, ...]], name: str = "node") -> str:
    report = mx2trt.explain(sym, shapes, min_subgraph_size=1)
    (row,) = [r for r in report.rows if r[0] == name]
    assert row[2] == "mxnet", row
    return row[3]


@pytest.mark.parametrize("attrs, why", [({"ord": 3}, "ord=3"), ({"out_dtype": "float16"}, "out_dtype float16")])
def test_norm_refusals(attrs, why):
    """MXNet 1.9.1 itself fails on these at run time (only ord 1 and 2; out_dtype must match the input's), so only
    the placement is checked."""
    sym = mx.sym.norm(mx.sym.var("x"), name="node", **attrs)
    assert why in _reason(sym, {"x": (2, 3)})


def test_argmax_fp16_with_more_positions_than_fp16_integers_runs_in_float32():
    """fp16 holds integers exactly only up to 2048, so an fp16 engine cannot return index 2049: the argmax runs in
    float32 inside the engine (the report says so), as in an fp32 engine."""
    x = np.random.default_rng(0).permutation(3000).astype(np.float32).reshape(1, 3000)
    sym = mx.sym.argmax(mx.sym.var("x0"), axis=1, name="node")
    c = check_graph(sym, {"x0": x}, {}, on_trt=["node"], precision="fp16", min_subgraph_size=1, rtol=0.0)
    assert "runs in float32" in {r[0]: r[3] for r in c.report.rows}["node"]
    check_op("argmax", [x], {"axis": 1})


def test_validator_refuses_axes_out_of_range_or_repeated():
    """MXNet's shape inference rejects these before mx2trt sees them; the validator refuses them too."""
    from mx2trt.registry import OpNode, TensorInfo

    spec = REGISTRY.get("sum")
    x = TensorInfo((2, 3), np.dtype(np.float32))
    for axis, why in (((2,), "out of range"), ((1, -1), "repeats")):
        node = OpNode("n", "sum", spec.attrs(axis=axis), (x,), (TensorInfo((2,), np.dtype(np.float32)),))
        assert why in spec.validator(node)
