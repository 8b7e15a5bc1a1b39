"""Interleaved self-attention matmuls, SequenceMask and arange_like (GluonNLP transformer ops): hypothesis draws
shapes and attributes that fit together; selected nodes must match MXNet CPU, in fp32 and fp16."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import check_graph, check_op, check_property_tests, sym_fn
from mx2trt._mx import mx

MODULE = "mx2trt.converters.contrib"
SEEDS = st.integers(0, 2**32 - 1)
PRECISIONS = [("fp32", 1e-5), ("fp16", 3e-3)]
IDS = [p for p, _ in PRECISIONS]


def normal(seed: int, shape, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@st.composite
def attention(draw):
    """(T, B, heads, head_dim, seed)."""
    return draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(SEEDS)


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
@given(case=attention())
def test_selfatt_qk(precision, rtol, case):
    t, b, heads, d, seed = case
    check_op("_contrib_interleaved_matmul_selfatt_qk", [normal(seed, (t, b, heads * 3 * d))], {"heads": heads},
             precision=precision, rtol=rtol)


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
@given(case=attention())
def test_selfatt_valatt(precision, rtol, case):
    t, b, heads, d, seed = case
    qkv, att = normal(seed, (t, b, heads * 3 * d)), normal(seed + 1, (b * heads, t, t))
    check_op("_contrib_interleaved_matmul_selfatt_valatt", [qkv, att], {"heads": heads}, precision=precision,
             rtol=rtol)


def test_selfatt_refuses_a_width_not_divisible_by_3_heads():
    check_op("_contrib_interleaved_matmul_selfatt_qk", [normal(0, (4, 2, 3 * 2 * 5))], {"heads": 4},
             expect_trt=False)


@st.composite
def sequence_masks(draw):
    axis = draw(st.sampled_from([0, 1]))
    t, b = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    rest = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    shape = ((t, b) if axis == 0 else (b, t)) + rest
    lengths = np.asarray(draw(st.lists(st.integers(0, t), min_size=b, max_size=b)), np.float32)
    attrs = {"use_sequence_length": draw(st.booleans()), "axis": axis}
    if draw(st.booleans()):
        attrs["value"] = draw(st.sampled_from([-1e4, -1.5, 0.0, 2.0]))
    return shape, lengths, attrs, draw(SEEDS)


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
@given(case=sequence_masks())
def test_sequence_mask(precision, rtol, case):
    shape, lengths, attrs, seed = case
    x = mx.sym.relu(mx.sym.var("x"), name="r")  # a compute node, so that identity masks still make an engine
    inputs = [x, mx.sym.var("len")] if attrs["use_sequence_length"] else [x]
    sym = mx.sym.SequenceMask(*inputs, name="node", **attrs)
    data = {"x": normal(seed, shape)}
    if attrs["use_sequence_length"]:
        data["len"] = lengths
    check_graph(sym, data, {}, on_trt=["r", "node"], precision=precision, rtol=rtol)


@st.composite
def aranges(draw):
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    attrs = {}
    if draw(st.booleans()):
        attrs["axis"] = draw(st.integers(-len(shape), len(shape) - 1))
    for key, values in (("start", [0.0, 1.5, -3.0]), ("step", [1.0, 0.5, -2.0]), ("repeat", [1, 2, 3])):
        if draw(st.booleans()):
            attrs[key] = draw(st.sampled_from(values))
    return shape, attrs, draw(SEEDS)


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
@given(case=aranges())
def test_arange_like(precision, rtol, case):
    shape, attrs, seed = case
    x = mx.sym.var("x")
    ramp = sym_fn("_contrib_arange_like")(x, name="node", **attrs)
    sym = mx.sym.broadcast_add(mx.sym.relu(x, name="r"), ramp, name="add")
    c = check_graph(sym, {"x": normal(seed, shape)}, {}, on_trt=["r", "node", "add"], precision=precision, rtol=rtol)
    assert len(c.engines[0].in_shapes) == 1, "arange_like reads only its input's shape: no extra engine input"


PROPERTY_TESTS = {
    "_contrib_interleaved_matmul_selfatt_qk": test_selfatt_qk,
    "_contrib_interleaved_matmul_selfatt_valatt": test_selfatt_valatt,
    "SequenceMask": test_sequence_mask,
    "_contrib_arange_like": test_arange_like,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)
