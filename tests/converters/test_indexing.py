"""Embedding, take, one_hot, gather_nd, topk and argsort: a node the registry selects converts and matches MXNet CPU in fp32
and fp16 engines (indices that an fp16 engine would round run in float32 inside it); a node it refuses stays in MXNet
with a reason, and the graph still gives MXNet's output."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from harness import check_graph, check_op, check_property_tests, exact_in, precisions
from mx2trt import REGISTRY
from mx2trt._mx import mx
from mx2trt.attrs import NoAttrs
from mx2trt.registry import OpNode, TensorInfo
from tests.converters.test_nn import check_either_way

SEEDS = st.integers(0, 2**32 - 1)
F32 = np.dtype(np.float32)
EXACT = 1e-6  # gathers and selections are exact in both precisions


def _normal(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.standard_normal(tuple(shape)).astype(np.float32)


# ---- Embedding, take, one_hot: float indices -----------------------------------------------------------------------


def _indices(rng: np.random.Generator, shape: tuple[int, ...], lo: float, hi: float, fractional: bool) -> np.ndarray:
    """Integers in [lo, hi], or (fractional) any floats there: MXNet truncates toward zero."""
    if fractional:
        return rng.uniform(lo, hi, shape).astype(np.float32)
    return rng.integers(int(lo), int(hi) + 1, shape).astype(np.float32)


@st.composite
def embeddings(draw):
    shape = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3))))
    rows, dim = draw(st.integers(1, 8)), draw(st.integers(1, 5))
    # Indices as data or as a parameter; the table as a parameter (the usual case) or data; never both parameters.
    return shape, rows, dim, draw(st.sampled_from([(1,), (1,), (0,), ()])), draw(st.booleans()), draw(SEEDS)


@precisions
@given(embeddings())
def test_embedding_matches_mxnet(precision, case):
    shape, rows, dim, params, fractional, seed = case
    rng = np.random.default_rng(seed)
    idx = _indices(rng, shape, -3, rows + 2, fractional)  # out of range on both sides: MXNet clips
    check_op("Embedding", [idx, *exact_in(precision, _normal(rng, (rows, dim)))], dict(input_dim=rows, output_dim=dim),
             params=params, precision=precision, rtol=EXACT)


@st.composite
def takes(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    axis = draw(st.integers(-rank, rank - 1))
    attrs: dict[str, Any] = {} if axis == 0 and draw(st.booleans()) else {"axis": axis}
    mode = draw(st.sampled_from([None, "clip", "wrap", "raise"]))
    if mode is not None:
        attrs["mode"] = mode
    idx_shape = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 2))))
    # The indices may be a parameter. The data may not: mx2trt's first shape inference runs without parameter shapes,
    # and MXNet's take checks its axis against the (then unknown) data rank.
    return shape, attrs, idx_shape, draw(st.sampled_from([(), (1,)])), draw(st.booleans()), draw(SEEDS)


@precisions
@given(takes())
def test_take_matches_mxnet(precision, case):
    shape, attrs, idx_shape, params, fractional, seed = case
    rng = np.random.default_rng(seed)
    size = shape[attrs.get("axis", 0)]
    if attrs.get("mode") == "raise":  # MXNet raises on any index value outside [0, size - 1]
        idx = _indices(rng, idx_shape, 0, size - 1, fractional)
    else:
        idx = _indices(rng, idx_shape, -3 * size, 3 * size, fractional)
    event(f"mode {attrs.get('mode', 'clip')}")
    check_op("take", [*exact_in(precision, _normal(rng, shape)), idx], attrs, params=params, precision=precision,
             rtol=EXACT)


@st.composite
def one_hots(draw):
    shape = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3))))
    attrs: dict[str, Any] = {"depth": draw(st.integers(1, 8))}
    for key in ("on_value", "off_value"):
        if draw(st.booleans()):
            attrs[key] = draw(st.sampled_from([0.0, 1.0, -2.5, 7.0]) | st.floats(-100, 100, width=16))
    if draw(st.booleans()):
        attrs["dtype"] = draw(st.sampled_from(["float32", "float16"]))
    return shape, attrs, draw(st.booleans()), draw(SEEDS)


@precisions
@given(one_hots())
def test_one_hot_matches_mxnet(precision, case):
    shape, attrs, fractional, seed = case
    idx = _indices(np.random.default_rng(seed), shape, -2, attrs["depth"] + 2, fractional)
    # on/off values are drawn as fp16 numbers, so an fp16 engine holds them exactly too.
    check_op("one_hot", [idx], attrs, precision=precision, rtol=EXACT)


def _index_graph_fp16(op: str, x: np.ndarray, idx: np.ndarray, attrs: dict[str, Any], computed: bool) -> Any:
    """`op` on indices fed straight from an input, or computed in the engine first (relu, a no-op on them)."""
    i = mx.sym.var("idx")
    if computed:
        i = mx.sym.relu(i, name="pre")
    if op == "Embedding":
        sym, data, params = mx.sym.Embedding(i, mx.sym.var("w"), name="node", **attrs), {"idx": idx}, {"w": x}
    else:  # take's data as a parameter breaks mx2trt's shape inference (see takes()): it is data here
        fn = mx.sym.take if op == "take" else mx.sym.gather_nd
        sym, data, params = fn(mx.sym.var("w"), i, name="node", **attrs), {"idx": idx, "w": x}, {}
    return check_graph(sym, data, params, precision="fp16", rtol=1e-3, min_subgraph_size=1, engines=1,
                       on_trt=["node", "pre"] if computed else ["node"])


def test_fp16_embedding_reads_large_indices_from_the_fp32_input():
    # fp16 holds integers exactly only up to 2048; indices straight from an input are read before the engine's cast.
    rng = np.random.default_rng(10)
    table, idx = _normal(rng, (5000, 3)), rng.integers(0, 5000, (4, 6)).astype(np.float32)
    idx[0, :3] = [2049, 4097, 4999]  # rounded to 2048, 4096 and 5000 in fp16
    _index_graph_fp16("Embedding", table, idx, dict(input_dim=5000, output_dim=3), computed=False)


@pytest.mark.parametrize("op, size, idx, attrs", [
    ("Embedding", 5000, [2049, 4097, 3, 4999], dict(input_dim=5000, output_dim=3)),
    ("take", 3, [0, 5, 4097, 7], dict(mode="wrap")),
    ("gather_nd", 3, [[0, 2, 1, 1]], {}),  # small indices too: gather_nd wraps them, which needs every one exact
])
def test_fp16_computed_large_indices_run_in_float32(op, size, idx, attrs):
    """Indices computed in an fp16 engine (relu) would round (2049 -> 2048): the index consumer and the relu computing
    its indices run in float32 inside the engine, and the report says so."""
    rng = np.random.default_rng(11)
    c = _index_graph_fp16(op, _normal(rng, (size, 3) if op == "Embedding" else (size, 4)),
                          np.array([idx] if op == "Embedding" else idx, np.float32), attrs, computed=True)
    reasons = {r.node: r.reason for r in c.report.rows}
    assert all("runs in float32 inside the fp16 engine" in reasons[n] for n in ("node", "pre")), reasons


def test_fp16_take_wrap_from_input_is_exact():
    _index_graph_fp16("take", _normal(np.random.default_rng(13), (3, 4)), np.array([0, 5, 4097, -7, 2.5], np.float32),
                      dict(mode="wrap"), computed=False)


# ---- gather_nd -----------------------------------------------------------------------------------------------------


def _nd_indices(rng: np.random.Generator, dims: Sequence[int], y: tuple[int, ...], kind: str) -> np.ndarray:
    """(M, *y) indices, row j in [-dims[j], dims[j] - 1] (MXNet raises outside): integers (float32, int32 or int64) or
    any float32 there (MXNet reads trunc(i + dim) mod dim, so -0.5 is the last element)."""
    rows = []
    for d in dims:
        if kind == "fractional":
            rows.append(rng.uniform(-d, d - 1, y).astype(np.float32))
        else:
            rows.append(rng.integers(-d, d, y))
    return np.stack(rows).astype(kind if kind in ("int32", "int64") else np.float32)


@st.composite
def gather_nds(draw):
    shape = tuple(draw(st.integers(1, 5)) for _ in range(draw(st.integers(1, 4))))
    m = draw(st.integers(1, len(shape)))
    y = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3))))
    kind = draw(st.sampled_from(["integer", "fractional", "int32", "int64"]))
    int_data = draw(st.sampled_from([None, None, None, "int32", "int64"]))
    # Indices as data or as a parameter; the data as data or (the lookup table case) a parameter, never both.
    return shape, m, y, kind, int_data, draw(st.sampled_from([(), (), (1,), (0,)])), draw(SEEDS)


@precisions
@given(gather_nds())
def test_gather_nd_matches_mxnet(precision, case):
    shape, m, y, kind, int_data, params, seed = case
    rng = np.random.default_rng(seed)
    data = rng.integers(-100, 100, shape).astype(int_data) if int_data else exact_in(precision, _normal(rng, shape))[0]
    event(f"M={m} of rank {len(shape)}, {kind} indices, {int_data or 'float'} data")
    check_op("gather_nd", [data, _nd_indices(rng, shape[:m], y, kind)], {}, params=params, precision=precision,
             rtol=EXACT)


def test_gather_nd_negative_and_fractional_indices_read_what_mxnet_reads():
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[-0.5, -2.2, 1.9, -3, 0.3, -1e-8], [0, 3, -4, 1.5, -0.1, 2]], np.float32)
    for params in [(), (1,)]:
        check_op("gather_nd", [data, idx], {}, params=params, rtol=0.0)


def test_fp16_gather_nd_reads_large_indices_from_the_fp32_input():
    rng = np.random.default_rng(16)
    idx = np.array([[4097, -4097, 2049.5, -0.5, 4999, -5000]], np.float32)  # 4097 and 2049 are not fp16 numbers
    _index_graph_fp16("gather_nd", exact_in("fp16", _normal(rng, (5000, 2)))[0], idx, {}, computed=False)


def test_gather_nd_float64_indices_stay_in_mxnet():
    data, idx = _normal(np.random.default_rng(17), (3, 4)), np.array([[0, 2, -1]], np.float64)
    c = check_op("gather_nd", [data, idx], {}, expect_trt=False)
    reason = {r.node: r.reason for r in c.report.rows}["node"]
    assert "float64" in reason and "not supported" in reason, reason


def test_gather_nd_without_coordinates_is_refused():
    # indices (0, ...): MXNet's CPU kernel divides by M = 0, so no graph can carry it: ask the validator directly.
    spec = REGISTRY.get("gather_nd")
    node = OpNode("g", "gather_nd", NoAttrs(), (TensorInfo((3, 4), F32), TensorInfo((0, 2), F32)),
                  (TensorInfo((2, 3, 4), F32),))
    reason = spec.validator(node)
    assert reason is not None and "hold no coordinates" in reason, reason


# ---- topk ----------------------------------------------------------------------------------------------------------


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Distinct integers, exact in fp16: no ties, so the selected indices are unique in both precisions."""
    n = math.prod(shape)
    return (rng.permutation(n) - n // 2).astype(np.float32).reshape(shape) * 0.5


@st.composite
def topks(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    axis = draw(st.sampled_from([None, -1] + list(range(-rank, rank))))
    size = math.prod(shape) if axis is None else shape[axis]
    attrs: dict[str, Any] = {} if axis == -1 and draw(st.booleans()) else {"axis": axis}
    k = draw(st.sampled_from([None, 0, -1]) | st.integers(1, size))  # k < 1: all of them
    if k is not None:
        attrs["k"] = k
    for key, values in (("ret_typ", ["value", "indices", "both", "mask"]), ("is_ascend", [True, False]),
                        ("dtype", ["float32", "float16"])):
        if draw(st.booleans()):
            attrs[key] = draw(st.sampled_from(values))
    return shape, attrs, draw(SEEDS)


@precisions
@given(topks())
def test_topk_matches_mxnet(precision, case):
    shape, attrs, seed = case
    event(f"ret_typ {attrs.get('ret_typ', 'indices')}")
    check_op("topk", [_distinct(np.random.default_rng(seed), shape)], attrs, precision=precision, rtol=EXACT)


@st.composite
def argsorts(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    attrs: dict[str, Any] = {}
    if draw(st.booleans()):
        attrs["axis"] = draw(st.sampled_from([None] + list(range(-rank, rank))))
    for key, values in (("is_ascend", [True, False]), ("dtype", ["float32", "float16"])):
        if draw(st.booleans()):
            attrs[key] = draw(st.sampled_from(values))
    return shape, attrs, draw(SEEDS)


@precisions
@given(argsorts())
def test_argsort_matches_mxnet(precision, case):
    shape, attrs, seed = case
    check_op("argsort", [_distinct(np.random.default_rng(seed), shape)], attrs, precision=precision, rtol=EXACT)


def test_argsort_of_more_than_tensorrt_sorts_is_refused():
    reason = check_either_way("argsort", [_distinct(np.random.default_rng(16), (1, 4000))], {})
    assert reason is not None and "3840" in reason


def test_topk_ties_pick_the_lower_index_like_mxnet():
    check_op("topk", [np.array([1, 2, 2, 1, 3, 2], np.float32)], dict(k=4, ret_typ="both"))
    check_op("topk", [np.array([1, 2, 2, 1, 3, 2], np.float32)], dict(k=3, ret_typ="mask", is_ascend=True))


def test_topk_k_above_tensorrt_limit_is_refused():
    x = _distinct(np.random.default_rng(14), (1, 4000))
    reason = check_either_way("topk", [x], dict(k=3900, ret_typ="value"))
    assert reason is not None and "3840" in reason


def test_fp16_topk_indices_beyond_2048_run_in_float32_and_values_convert():
    x = _distinct(np.random.default_rng(15), (2, 2100))
    sym = mx.sym.topk(mx.sym.var("x0"), k=3, ret_typ="indices", name="node")
    c = check_graph(sym, {"x0": x}, {}, on_trt=["node"], precision="fp16", min_subgraph_size=1, rtol=0.0)
    assert "runs in float32" in {r.node: r.reason for r in c.report.rows}["node"]
    check_op("topk", [x], dict(k=3, ret_typ="value"), precision="fp16", rtol=1e-3)


PROPERTY_TESTS = {
    "Embedding": test_embedding_matches_mxnet,
    "take": test_take_matches_mxnet,
    "one_hot": test_one_hot_matches_mxnet,
    "gather_nd": test_gather_nd_matches_mxnet,
    "topk": test_topk_matches_mxnet,
    "argsort": test_argsort_matches_mxnet,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests("mx2trt.converters.indexing", PROPERTY_TESTS)
