"""Interleaved self-attention matmuls, SequenceMask and arange_like (GluonNLP transformer ops), MultiBoxPrior and
box_decode (detection): hypothesis draws shapes and attributes that fit together; selected nodes must match MXNet CPU,
in fp32 and fp16."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mx2trt
from harness import check_graph, check_op, check_property_tests, exact_in, mxnet_only, sym_fn
from mx2trt._mx import mx
from mx2trt.converters.contrib import MultiBoxPriorAttrs, multibox_prior

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


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
@pytest.mark.parametrize("op", ["qk", "valatt"])
def test_selfatt_after_a_projection_that_is_also_an_output(op, precision, rtol):
    """FullyConnected -> interleaved q/k/v slices with the projection also an engine output (as when it sits at a
    subgraph boundary) builds: TensorRT-RTX 1.7's Myelin failed CHECK(def_tactic_desc) on the matmul -> unit-axis
    slice -> reshape + transpose chain this lowering used to take."""
    x, w = mx.sym.var("x"), mx.sym.var("w")
    proj = mx.sym.FullyConnected(x, w, num_hidden=3 * 8, no_bias=True, flatten=False, name="proj")
    if op == "qk":
        out = mx.sym.contrib.interleaved_matmul_selfatt_qk(proj, heads=2, name="node")
    else:
        out = mx.sym.contrib.interleaved_matmul_selfatt_valatt(proj, mx.sym.var("att"), heads=2, name="node")
    data = {"x": normal(0, (4, 2, 8))}
    if op == "valatt":
        data["att"] = normal(2, (2 * 2, 4, 4))
    check_graph(mx.sym.Group([proj, out]), data, {"w": normal(1, (24, 8), 0.3)}, on_trt=["proj", "node"], engines=1,
                precision=precision, rtol=rtol)


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


@st.composite
def multibox_priors(draw):
    """(data shape, attributes): maps up to 8 x 8, 1-3 sizes and ratios of odd decimals, steps and offsets absent
    (MXNet's -1: 1 / the map's size, and 0.5) or drawn, clip either way."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    decimals = st.integers(1, 5)
    values = lambda lo, hi: st.lists(  # noqa: E731
        st.tuples(st.floats(lo, hi), decimals).map(lambda v: round(*v)).filter(lambda v: v > 0), min_size=1, max_size=3)
    attrs = {"sizes": tuple(draw(values(0.05, 1.2))), "ratios": tuple(draw(values(0.2, 4.0)))}
    if draw(st.booleans()):
        attrs["clip"] = draw(st.booleans())
    if draw(st.booleans()):
        attrs["steps"] = draw(st.sampled_from([(-1.0, -1.0), (0.0, 0.0)]) | st.tuples(
            st.floats(0.01, 0.4).map(lambda v: round(v, 4)), st.floats(0.01, 0.4).map(lambda v: round(v, 4))))
    if draw(st.booleans()):
        attrs["offsets"] = draw(st.tuples(st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1),
                                          st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1)))
    return shape, attrs, draw(SEEDS)


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
@given(case=multibox_priors())
def test_multibox_prior(precision, rtol, case):
    shape, attrs, seed = case
    # The NumPy kernel is MXNet's CPU kernel bit for bit (float32, operation for operation).
    want = mx.nd.contrib.MultiBoxPrior(mx.nd.zeros(shape), **attrs).asnumpy()
    assert np.array_equal(multibox_prior(shape[2], shape[3], MultiBoxPriorAttrs(**attrs)), want)
    # In a graph: anchors (1, N, 4) plus the per-image mean of relu(x), so that the constant joins an engine.
    x = mx.sym.var("x")
    prior = sym_fn("_contrib_MultiBoxPrior")(x, name="node", **attrs)
    level = mx.sym.reshape(mx.sym.mean(mx.sym.relu(x, name="r"), axis=(1, 2, 3)), shape=(-1, 1, 1), name="level")
    sym = mx.sym.broadcast_add(prior, level, name="add")
    c = check_graph(sym, {"x": normal(seed, shape)}, {}, on_trt=["r", "node", "add"], engines=1,
                    precision=precision, rtol=rtol)
    assert len(c.engines[0].in_shapes) == 1, "MultiBoxPrior reads only its input's shape: no extra engine input"


def test_multibox_prior_alone_stays_in_mxnet():
    """A constant is no work for an engine: MultiBoxPrior with nothing to compute around it stays in MXNet."""
    check_op("_contrib_MultiBoxPrior", [normal(0, (1, 2, 3, 4))], {"sizes": (0.5, 0.25), "ratios": (1, 2)},
             expect_trt=False)


@st.composite
def box_decodes(draw):
    """(data, anchors, attrs, anchors as a parameter?): B <= 3, N <= 8 boxes, anchors (1, N, 4) or (1, 1, N, 4) in the
    drawn format, stds and clip absent or drawn, about one example in four with NaN offsets."""
    b, n = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    fmt = draw(st.sampled_from([None, "center", "corner"]))  # None: MXNet's default, center
    rng = np.random.default_rng(draw(SEEDS))
    data = rng.standard_normal((b, n, 4)).astype(np.float32)
    if draw(st.integers(0, 3)) == 0:
        data[rng.random(data.shape) < 0.2] = np.nan  # MXNet: NaN widths and heights clip to `clip`
    start, size = rng.uniform(0, 1, (n, 2)), rng.uniform(0.05, 1, (n, 2))
    anchors = np.concatenate([start, start + size] if fmt == "corner" else [start, size], -1).astype(np.float32)
    anchors = anchors.reshape(draw(st.sampled_from([(1, n, 4), (1, 1, n, 4)])))
    attrs = {"format": fmt} if fmt else {}
    for k in range(4):
        if draw(st.booleans()):
            attrs[f"std{k}"] = draw(st.sampled_from([0.1, 0.2, 0.5, 1.0]))
    if draw(st.booleans()):
        attrs["clip"] = draw(st.sampled_from([-1.0, 0.5, 1.0, 4.135]))
    return data, anchors, attrs, draw(st.booleans())


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
@given(case=box_decodes())
def test_box_decode(precision, rtol, case):
    data, anchors, attrs, param = case
    # fp16: inputs exact in fp16, so that the tolerance measures the engine (exp amplifies its input's rounding);
    # measured <= 1.6e-3 over 150 draws on the reference interpreter.
    data, anchors = exact_in(precision, data, anchors)
    check_op("_contrib_box_decode", [data, anchors], attrs, params=(1,) if param else (), precision=precision,
             rtol=rtol)


def test_box_decode_refuses_anchors_of_another_count():
    """MXNet reads the anchors as (1, N, 4) and fails at run time on any other size (shape inference lets (B, N, 4)
    through): the node stays in MXNet."""
    sym = sym_fn("_contrib_box_decode")(mx.sym.var("x"), mx.sym.var("a"), name="node")
    rows = {row[0]: row for row in mx2trt.explain(sym, {"x": (2, 3, 4), "a": (2, 3, 4)}).rows}
    assert rows["node"][2] == "mxnet" and "do not hold the (1, 3, 4) boxes" in rows["node"][3], rows["node"]


PROPERTY_TESTS = {
    "_contrib_interleaved_matmul_selfatt_qk": test_selfatt_qk,
    "_contrib_interleaved_matmul_selfatt_valatt": test_selfatt_valatt,
    "SequenceMask": test_sequence_mask,
    "_contrib_arange_like": test_arange_like,
    "_contrib_MultiBoxPrior": test_multibox_prior,
    "_contrib_box_decode": test_box_decode,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)


def test_multibox_prior_engines_of_equal_output_shape_but_other_maps_are_distinct():
    """Anchors depend on the feature map's H and W, the output only on H * W: 2x8 and 4x4 maps must not share an
    engine (the engine key covers every input shape, read or not)."""
    convs = []
    for hw in ((2, 8), (4, 4)):
        x = mx.sym.var("x")
        # the map comes from MXNet (a CustomOp), so the engine has no input whose shape would tell the maps apart
        y = mx.sym.relu(mx.sym.contrib.MultiBoxPrior(mxnet_only(x, "pre"), sizes=(0.5,), name="node"))
        data = {"x": normal(0, (1, 2) + hw)}
        convs.append(check_graph(y, data, {}, on_trt=["node"], engines=1))
    assert convs[0].engines[0].key != convs[1].engines[0].key
