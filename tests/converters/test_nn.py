"""Convolution, FullyConnected and Pooling: a node the registry selects converts and matches MXNet CPU; a node it
refuses stays in MXNet with a reason, and the graph still gives MXNet's output."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import assume, currently_in_test_context, event, given
from hypothesis import strategies as st

from harness import check_op, check_property_tests, run_symbol
from mx2trt import REGISTRY
from mx2trt._mx import mx
from mx2trt.attrs import parse_attrs
from mx2trt.graph import Graph
from mx2trt.registry import OpNode, TensorInfo

SEEDS = st.integers(0, 2**32 - 1)
F32 = np.dtype(np.float32)


def _normal(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.standard_normal(tuple(shape)).astype(np.float32)


def verdict(op: str, inputs: Sequence[np.ndarray], attrs: dict[str, Any], params: Sequence[int] = ()) -> str | None:
    """The registry's verdict on the one-node graph check_op builds: None when selected, else the reason."""
    names = [f"x{i}" for i in range(len(inputs))]
    sym = getattr(mx.sym, op)(*[mx.sym.var(n) for n in names], name="node", **attrs)
    prm = {n: mx.nd.array(a) for i, (n, a) in enumerate(zip(names, inputs)) if i in params}
    shapes = {n: a.shape for i, (n, a) in enumerate(zip(names, inputs)) if i not in params}
    graph = Graph.from_symbol(sym, prm, shapes)
    return REGISTRY.check(graph, graph.by_name["node"])[1]


def check_either_way(
    op: str, inputs: Sequence[np.ndarray], attrs: dict[str, Any], params: Sequence[int] = ()
) -> str | None:
    """Selected -> converts and matches MXNet; refused -> stays in MXNet with that reason and still runs."""
    reason = verdict(op, inputs, attrs, params)
    if currently_in_test_context():  # statistics for --hypothesis-show-statistics
        event("selected" if reason is None else "refused")
    c = check_op(op, inputs, attrs, params=params, expect_trt=reason is None)
    if reason is not None:
        row = {r[0]: r for r in c.report.rows}["node"]
        assert row[3] == reason, f"report gives {row[3]!r}, the registry {reason!r}"
        assert reason.startswith(f"{op} 'node': ")
    return reason


# ---- Convolution ---------------------------------------------------------------------------------------------------


@st.composite
def convolutions(draw):
    n = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 1, 2, 4]))
    c_in = groups * draw(st.integers(1, 8 // groups))
    num_filter = groups * draw(st.integers(1, 8 // groups))
    max_dim = 12 if n < 3 else 6
    kernel, stride, dilate, pad, dims = [], [], [], [], []
    use = {k: draw(st.booleans()) for k in ("stride", "dilate", "pad")}  # absent -> MXNet's default (1, 1, 0)
    for _ in range(n):
        k = draw(st.integers(1, 3))
        s = draw(st.integers(1, 3)) if use["stride"] else 1
        dl = draw(st.integers(1, 2)) if use["dilate"] else 1
        p = draw(st.integers(0, k)) if use["pad"] else 0
        span = dl * (k - 1) + 1
        dims.append(draw(st.integers(max(1, span - 2 * p), max(max_dim, span))))
        kernel.append(k), stride.append(s), dilate.append(dl), pad.append(p)
    attrs: dict[str, Any] = {"kernel": tuple(kernel), "num_filter": num_filter}
    if groups > 1 or draw(st.booleans()):
        attrs["num_group"] = groups
    for key, v in (("stride", stride), ("dilate", dilate), ("pad", pad)):
        if use[key]:
            attrs[key] = tuple(v)
    no_bias = draw(st.sampled_from([None, True, False]))
    if no_bias is not None:
        attrs["no_bias"] = no_bias
    batch = draw(st.integers(1, 3))
    return (batch, c_in) + tuple(dims), attrs, draw(SEEDS)


@given(convolutions())
def test_convolution_matches_mxnet(case):
    shape, attrs, seed = case
    rng = np.random.default_rng(seed)
    k = attrs["kernel"]
    groups = attrs.get("num_group", 1)
    w = _normal(rng, (attrs["num_filter"], shape[1] // groups) + k)
    inputs = [_normal(rng, shape), w]
    if not attrs.get("no_bias", False):
        inputs.append(_normal(rng, (attrs["num_filter"],)))
    event(f"{len(k)}-D")
    check_op("Convolution", inputs, attrs, params=tuple(range(1, len(inputs))))


def test_convolution_depthwise_dilated_1d():
    rng = np.random.default_rng(0)
    x, w, b = _normal(rng, (2, 4, 11)), _normal(rng, (4, 1, 3)), _normal(rng, (4,))
    check_op("Convolution", [x, w, b], dict(kernel=(3,), num_filter=4, num_group=4, dilate=(2,), pad=(2,), stride=(2,)),
             params=(1, 2))


def test_convolution_with_computed_weight_stays_in_mxnet():
    rng = np.random.default_rng(0)
    x, w = _normal(rng, (1, 2, 5, 5)), _normal(rng, (3, 2, 3, 3))
    reason = verdict("Convolution", [x, w], dict(kernel=(3, 3), num_filter=3, no_bias=True))
    assert reason and "weight" in reason and "parameter" in reason
    check_op("Convolution", [x, w], dict(kernel=(3, 3), num_filter=3, no_bias=True), expect_trt=False)


# ---- FullyConnected ------------------------------------------------------------------------------------------------


@st.composite
def fully_connected(draw):
    rank = draw(st.integers(2, 4))
    shape = (draw(st.integers(1, 3)),) + tuple(draw(st.integers(1, 6)) for _ in range(rank - 1))
    attrs: dict[str, Any] = {"num_hidden": draw(st.integers(1, 8))}
    for key in ("flatten", "no_bias"):
        v = draw(st.sampled_from([None, True, False]))  # None: attribute absent (flatten=True, no_bias=False)
        if v is not None:
            attrs[key] = v
    return shape, attrs, draw(SEEDS)


@given(fully_connected())
def test_fully_connected_matches_mxnet(case):
    shape, attrs, seed = case
    rng = np.random.default_rng(seed)
    h = attrs["num_hidden"]
    flatten = attrs.get("flatten", True)
    inputs = [_normal(rng, shape), _normal(rng, (h, math.prod(shape[1:]) if flatten else shape[-1]))]
    if not attrs.get("no_bias", False):
        inputs.append(_normal(rng, (h,)))
    event(f"rank {len(shape)}, flatten={flatten}")
    check_op("FullyConnected", inputs, attrs, params=tuple(range(1, len(inputs))))


# ---- Pooling -------------------------------------------------------------------------------------------------------


@st.composite
def poolings(draw):
    # 1-D (rank-3 input) is valid MXNet that the registry refuses, so the refusal branch is drawn too.
    n = draw(st.sampled_from([1, 2, 2, 2, 3, 3]))
    pool_type = draw(st.sampled_from(["max", "avg"]))
    attrs: dict[str, Any] = {"pool_type": pool_type} if pool_type != "max" or draw(st.booleans()) else {}
    global_pool = draw(st.sampled_from([False, False, False, True]))
    max_dim = 12 if n < 3 else 6
    use_stride, use_pad = draw(st.booleans()), draw(st.booleans())
    # Mostly pad < kernel; now and then up to kernel + 1, which MXNet accepts too (windows of padding alone).
    big_pad = use_pad and draw(st.sampled_from([False, False, False, False, True]))
    kernel, stride, pad, dims = [], [], [], []
    for _ in range(n):
        k = draw(st.integers(1, 4 if n < 3 else 3))
        p = draw(st.integers(0, k + 1 if big_pad else k - 1)) if use_pad else 0
        kernel.append(k), pad.append(p)
        stride.append(draw(st.integers(1, 3)) if use_stride else 1)
        dims.append(draw(st.integers(max(1, k - 2 * p), max_dim)))
    if not global_pool or draw(st.booleans()):
        attrs["kernel"] = tuple(kernel)
        if use_stride:
            attrs["stride"] = tuple(stride)
        if use_pad:
            attrs["pad"] = tuple(pad)
    if global_pool:
        attrs["global_pool"] = True
    convention = draw(st.sampled_from([None, "valid", "full", "full"]))
    if convention is not None:
        attrs["pooling_convention"] = convention
    include_pad = draw(st.sampled_from([None, True, False]))
    if include_pad is not None:
        attrs["count_include_pad"] = include_pad
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4))) + tuple(dims)
    return shape, attrs, draw(SEEDS)


@given(poolings())
def test_pooling_selected_matches_refused_stays(case):
    shape, attrs, seed = case
    x = _normal(np.random.default_rng(seed), shape)
    # MXNet's own 3-D average over a window of padding alone is 0/0 = NaN (even when the node stays in MXNet the
    # harness cannot compare NaN with NaN): nothing to match.
    assume(np.isfinite(run_symbol(mx.sym.Pooling(mx.sym.var("x0"), **attrs), {"x0": x})[0]).all())
    reason = check_either_way("Pooling", [x], attrs)
    if reason is None:
        event(f"selected {len(shape) - 2}-D {attrs.get('pool_type', 'max')} {attrs.get('pooling_convention', 'valid')}")


@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((2, 3, 7, 7), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full")),
        ((2, 3, 7, 7), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full",
                            count_include_pad=False)),
        ((1, 2, 13, 13), dict(kernel=(3, 3), stride=(2, 2), pooling_convention="full")),  # squeezenet
        ((1, 2, 5, 6, 7), dict(kernel=(2, 3, 2), stride=(2, 1, 2), pad=(1, 1, 0), pool_type="avg")),
        ((1, 2, 5, 6, 7), dict(kernel=(2, 3, 3), stride=(2, 2, 2), pool_type="max", pooling_convention="full")),
        ((2, 3, 4, 5), dict(global_pool=True, pool_type="avg")),
        ((2, 3, 4, 5, 3), dict(kernel=(1, 1, 1), global_pool=True, pool_type="max")),
    ],
)
def test_pooling_cases_convert(shape, attrs):
    check_op("Pooling", [_normal(np.random.default_rng(1), shape)], attrs)


@pytest.mark.parametrize(
    "shape, attrs, why",
    [
        ((1, 2, 6, 6), dict(kernel=(2, 2), pool_type="sum"), "pool_type 'sum'"),
        ((1, 2, 6, 6), dict(kernel=(2, 2), pool_type="lp", p_value=2), "pool_type 'lp'"),
        ((1, 6, 6, 2), dict(kernel=(2, 2), layout="NHWC"), "layout NHWC"),
        ((1, 2, 6), dict(kernel=(2,), stride=(2,)), "input rank 3"),
        # 3-D average, 'full', partial last window (7 - 2 = 5 is not a multiple of 2).
        ((1, 2, 7, 4, 4), dict(kernel=(2, 2, 2), stride=(2, 2, 2), pool_type="avg", pooling_convention="full"),
         "partial last window"),
        # 'full' with pad: the last window (start (4-1)*2-1 = 5 >= 5) lies in the right padding.
        ((1, 2, 5, 5), dict(kernel=(2, 2), stride=(2, 2), pad=(1, 1), pooling_convention="full"), "only padding"),
    ],
)
def test_pooling_refusals(shape, attrs, why):
    x = _normal(np.random.default_rng(2), shape)
    reason = verdict("Pooling", [x], attrs)
    assert reason is not None and why in reason, reason
    c = check_op("Pooling", [x], attrs, expect_trt=False)
    assert not c.engines


def test_pooling_convention_same_is_refused():
    # MXNet accepts 'same' only on 1-D input (which the registry refuses by rank) and its CPU kernel then crashes, so
    # no graph can carry it through check_op: ask the validator about a 2-D node directly.
    spec = REGISTRY.get("Pooling")
    raw = {"kernel": "(2, 2)", "stride": "(2, 2)", "pooling_convention": "same"}
    node = OpNode("p", "Pooling", parse_attrs(spec.attrs, raw, op="Pooling", node="p"),
                  (TensorInfo((1, 2, 5, 5), F32),), (TensorInfo((1, 2, 3, 3), F32),))
    reason = spec.validator(node)
    assert reason is not None and "pooling_convention 'same'" in reason, reason


# ---- pad >= kernel: valid MXNet (shape inference and the CPU kernel accept it) that the validator half-handles ----


def test_pooling_pad_ge_kernel_avg_including_pad_converts():
    # Windows wholly in the padding average to 0 on both sides when padding is counted.
    x = _normal(np.random.default_rng(3), (1, 2, 5, 5))
    check_either_way("Pooling", [x], dict(kernel=(2, 2), pad=(2, 2), stride=(3, 3), pool_type="avg"))


def test_pooling_max_window_of_only_left_padding():
    x = _normal(np.random.default_rng(3), (1, 2, 5, 5))
    check_either_way("Pooling", [x], dict(kernel=(2, 2), pad=(2, 2), stride=(3, 3), pool_type="max"))


def test_pooling_avg_excluding_pad_ge_kernel():
    x = _normal(np.random.default_rng(3), (1, 2, 5, 5))
    check_either_way("Pooling", [x], dict(kernel=(2, 2), pad=(2, 2), stride=(3, 3), pool_type="avg",
                                          count_include_pad=False))


PROPERTY_TESTS = {
    "Convolution": test_convolution_matches_mxnet,
    "FullyConnected": test_fully_connected_matches_mxnet,
    "Pooling": test_pooling_selected_matches_refused_stays,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests("mx2trt.converters.nn", PROPERTY_TESTS)
