"""Activation, relu/sigmoid/tanh/softsign, clip, softmax/log_softmax/softmin (softmax with use_length too),
SoftmaxOutput, SoftmaxActivation, LeakyReLU (every act_type) and hard_sigmoid: hypothesis draws shapes and attributes
that fit together; a node the converters select must convert and match MXNet CPU, a node they refuse must stay in
MXNet (with the graph still giving MXNet's output). Every property test runs as an fp32 and as an fp16 engine, the
latter with inputs drawn exactly representable in fp16 so that the tolerance measures the engine's arithmetic.

Bugs these tests found have regression tests at the end.
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mx2trt
from harness import check_graph, check_op, check_property_tests, run_symbol
from mx2trt import REGISTRY
from mx2trt._mx import mx, op_arguments

MODULE = "mx2trt.converters.activation"
SEEDS = st.integers(0, 2**32 - 1)
SCALES = st.sampled_from([0.5, 1.0, 3.0])  # input spread: exercises saturating ranges of sigmoid/tanh/softrelu

# Every act_type MXNet itself accepts (read from MXNet's own op declaration, so a new MXNet act_type is drawn too).
MXNET_ACT_TYPES = tuple(sorted(re.findall(r"'(\w+)'", op_arguments("Activation")["act_type"])))
# The act_types mx2trt converts; any other MXNet act_type must stay in MXNet.
CONVERTED_ACT_TYPES = frozenset({"relu", "sigmoid", "tanh", "softrelu", "softsign"})
NAMED_ACTIVATIONS = ("relu", "sigmoid", "tanh", "softsign")
SOFTMAX_OPS = ("softmax", "log_softmax", "softmin")
PRECISIONS = ("fp32", "fp16")
# Whether an example also builds the TensorRT plan (about 90% of its time): about half do; every example defines the
# network and runs it on the reference interpreter.
BUILD = st.booleans()


def shapes(min_rank: int = 1, max_rank: int = 4, max_dim: int = 6) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(1, max_dim), min_size=min_rank, max_size=max_rank).map(tuple)


def normal(seed: int, shape: Sequence[int], scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(tuple(shape)) * scale).astype(np.float32)


def exact_in(precision: str, x: np.ndarray) -> np.ndarray:
    """`x` rounded to fp16 (kept float32) for an fp16 engine, so its input cast is exact."""
    return x if precision == "fp32" else x.astype(np.float16).astype(np.float32)


# ---- Activation and the named activations -------------------------------------------------------------------------


# fp16 engines: one activation layer rounds its result once (4.9e-4 at most); 1e-3 leaves room for one more rounding.
FP16_RTOL = 1e-3


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("act_type", MXNET_ACT_TYPES)
@given(shape=shapes(), scale=SCALES, seed=SEEDS, build=BUILD)
def test_activation(act_type, precision, shape, scale, seed, build):
    check_op("Activation", [exact_in(precision, normal(seed, shape, scale))], {"act_type": act_type},
             expect_trt=act_type in CONVERTED_ACT_TYPES, precision=precision,
             rtol=1e-5 if precision == "fp32" else FP16_RTOL, build_engines=build)


def test_mxnet_act_types_are_known():
    """The act_types MXNet 1.9.1 declares: all five are converted (test_activation expects any act_type MXNet adds to stay in MXNet)."""
    assert set(MXNET_ACT_TYPES) == {"relu", "sigmoid", "softrelu", "softsign", "tanh"}
    assert CONVERTED_ACT_TYPES <= set(MXNET_ACT_TYPES)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", NAMED_ACTIVATIONS)
@given(shape=shapes(), scale=SCALES, seed=SEEDS, build=BUILD)
def test_named_activation(op, precision, shape, scale, seed, build):
    check_op(op, [exact_in(precision, normal(seed, shape, scale))], precision=precision,
             rtol=1e-5 if precision == "fp32" else FP16_RTOL, build_engines=build)


# ---- clip ------------------------------------------------------------------------------------------------------------

BOUNDS = st.floats(-3, 3, allow_nan=False, width=32).map(lambda v: round(v, 3))


@pytest.mark.parametrize("precision", PRECISIONS)
@given(shape=shapes(), a_min=BOUNDS, a_max=BOUNDS, seed=SEEDS, build=BUILD)
def test_clip(precision, shape, a_min, a_max, seed, build):
    # a_min > a_max is refused: MXNet then gives a_max above a_max and a_min elsewhere, TensorRT's CLIP a_min.
    # (An fp16 engine rounds the bounds to fp16: 4.9e-4 of them at most.)
    check_op("clip", [exact_in(precision, normal(seed, shape, 2.0))], {"a_min": a_min, "a_max": a_max},
             expect_trt=a_min <= a_max, precision=precision, rtol=1e-5 if precision == "fp32" else FP16_RTOL,
             build_engines=build)


# ---- softmax / log_softmax -----------------------------------------------------------------------------------------

TEMPERATURES = st.one_of(
    st.none(),
    st.just(1.0),
    st.tuples(st.sampled_from([-1.0, 1.0]), st.floats(0.2, 5.0)).map(lambda t: round(t[0] * t[1], 3)),
)


@st.composite
def softmax_cases(draw):
    shape = draw(shapes(1, 4))
    rank = len(shape)
    attrs: dict[str, Any] = {}
    axis = draw(st.one_of(st.none(), st.integers(-rank, rank - 1)))  # None: MXNet's default -1
    if axis is not None:
        attrs["axis"] = axis
    temperature = draw(TEMPERATURES)
    if temperature is not None:
        attrs["temperature"] = temperature
    dtype = draw(st.sampled_from([None, None, "float32", "float16", "float64"]))
    if dtype is not None:
        attrs["dtype"] = dtype
    if draw(st.booleans()):
        attrs["use_length"] = False
    return shape, attrs, draw(SCALES), draw(SEEDS)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", SOFTMAX_OPS)
@given(case=softmax_cases(), build=BUILD)
def test_softmax(op, precision, case, build):
    shape, attrs, scale, seed = case
    x = exact_in(precision, normal(seed, shape, scale))
    dtype = attrs.get("dtype")
    if dtype == "float64":  # a float64 output is not a TensorRT dtype: refused, stays in MXNet
        check_op(op, [x], attrs, expect_trt=False, precision=precision)
    else:  # float16 output: both sides round an fp32 softmax to fp16, which may differ by one fp16 ulp
        rtol = 2e-3 if precision == "fp16" else 1e-3 if dtype == "float16" else 1e-5
        check_op(op, [x], attrs, rtol=rtol, precision=precision, build_engines=build)


@st.composite
def softmax_with_length(draw):
    shape = draw(shapes(1, 4))
    axis = draw(st.one_of(st.just(-1), st.integers(0, len(shape) - 1)))  # MXNet 1.9.1 crashes on other negatives
    return shape, axis, draw(st.sampled_from([np.int32, np.int64])), draw(TEMPERATURES), draw(SEEDS)


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=softmax_with_length(), as_param=st.booleans(), build=BUILD)
def test_softmax_use_length(precision, case, as_param, build):
    # Only positions before length[...] take part (0 is allowed: all zeros); the rest give 0, as in MXNet.
    shape, axis, dtype, temperature, seed = case
    sym = mx.sym.softmax(mx.sym.var("x0"), mx.sym.var("x1"), axis=axis, use_length=True)
    length_shape = sym.infer_shape(x0=shape)[0][1]
    length = np.random.default_rng(seed).integers(0, shape[axis] + 1, size=length_shape).astype(dtype)
    attrs: dict[str, Any] = {"axis": axis, "use_length": True}
    if temperature is not None:
        attrs["temperature"] = temperature
    check_op("softmax", [exact_in(precision, normal(seed, shape, 2.0)), length], attrs, params=(1,) if as_param else (),
             precision=precision, rtol=1e-5 if precision == "fp32" else 2e-3, build_engines=build)


@pytest.mark.parametrize("op", ["log_softmax", "softmin"])
def test_use_length_without_a_length_input_is_refused(op):
    """MXNet 1.9.1's log_softmax and softmin take no length input (their use_length=True does not run in MXNet
    itself), so only the validator is checked."""
    from mx2trt.registry import OpNode, TensorInfo

    spec = REGISTRY.get(op)
    x = TensorInfo((2, 3), np.dtype(np.float32))
    node = OpNode("n", op, spec.attrs(use_length=True), (x,), (x,))
    reason = spec.validator(node)
    assert reason and "use_length" in reason, reason


# ---- SoftmaxOutput -------------------------------------------------------------------------------------------------


@st.composite
def softmax_output_cases(draw):
    shape = draw(shapes(1, 4))
    attrs: dict[str, Any] = {}
    for flag in ("multi_output", "preserve_shape"):
        v = draw(st.sampled_from([None, False, True]))
        if v is not None:
            attrs[flag] = v
    if len(shape) == 1:
        attrs.pop("multi_output", None)  # MXNet itself fails on a 1-D multi_output input (it needs axis 1)
    # Training-only attributes: they must not change the inference output.
    ignored = {
        "grad_scale": st.floats(0.1, 4.0).map(lambda v: round(v, 3)),
        "ignore_label": st.integers(-1, 3).map(float),
        "use_ignore": st.booleans(),
        "normalization": st.sampled_from(["batch", "null", "valid"]),
        "out_grad": st.booleans(),
        "smooth_alpha": st.floats(0.0, 0.5).map(lambda v: round(v, 3)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(ignored)), unique=True, max_size=3)):
        attrs[key] = draw(ignored[key])
    return shape, attrs, draw(SCALES), draw(SEEDS)


def _label_for(shape: Sequence[int], attrs: dict[str, Any], seed: int) -> np.ndarray:
    """A valid label (class indices) of the shape MXNet infers for SoftmaxOutput's label argument."""
    sym = mx.sym.SoftmaxOutput(mx.sym.var("x0"), mx.sym.var("x1"), **attrs)
    label_shape = sym.infer_shape(x0=tuple(shape))[0][1]
    if len(shape) > 1 and attrs.get("multi_output"):  # MXNet: multi_output wins over preserve_shape
        classes = shape[1]
    elif len(shape) == 1 or attrs.get("preserve_shape"):
        classes = shape[-1]
    else:
        classes = math.prod(shape[1:])
    return np.random.default_rng(seed + 1).integers(0, classes, size=label_shape).astype(np.float32)


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=softmax_output_cases(), build=BUILD)
def test_softmax_output(precision, case, build):
    shape, attrs, scale, seed = case
    # The label is an MXNet argument ('x1') the converter never reads; it stays a graph input with a valid value.
    x = exact_in(precision, normal(seed, shape, scale))
    c = check_op("SoftmaxOutput", [x, _label_for(shape, attrs, seed)], attrs, precision=precision,
                 rtol=1e-5 if precision == "fp32" else 2e-3, build_engines=build)
    assert len(c.engines) == 1 and not c.engines[0].in_shapes[1:], "the label must not enter the engine"


# ---- LeakyReLU, SoftmaxActivation, hard_sigmoid -------------------------------------------------------------------

LEAKY_ACT_TYPES = tuple(sorted(re.findall(r"'(\w+)'", op_arguments("LeakyReLU")["act_type"])))
SLOPES = st.floats(-0.5, 2.0).map(lambda v: round(v, 3))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("act_type", LEAKY_ACT_TYPES)
@given(scale=SCALES, seed=SEEDS, build=BUILD, data=st.data())
def test_leaky_relu(act_type, precision, scale, seed, build, data):
    shape = data.draw(shapes(2 if act_type == "prelu" else 1, 4))  # prelu's gamma runs along axis 1
    attrs: dict[str, Any] = {} if act_type == "leaky" and data.draw(st.booleans()) else {"act_type": act_type}
    if data.draw(st.booleans()):
        attrs["slope"] = data.draw(SLOPES)  # leaky's slope, elu's alpha; the other types ignore it
    if act_type == "rrelu" and data.draw(st.booleans()):  # inference slope (lower_bound + upper_bound) / 2
        lo, hi = sorted(data.draw(st.lists(st.floats(0.0, 1.0).map(lambda v: round(v, 3)), min_size=2, max_size=2)))
        attrs.update(lower_bound=lo, upper_bound=hi)
    x = exact_in(precision, normal(seed, shape, scale))
    rtol = 1e-5 if precision == "fp32" else 1e-3
    if act_type == "prelu":  # gamma: (C,), or (1,) for all channels (a data input: mx2trt wants params at (C,))
        per_channel = data.draw(st.booleans())
        gamma = exact_in(precision, normal(seed + 1, (shape[1],) if per_channel else (1,), 0.5))
        as_param = per_channel and data.draw(st.booleans())
        check_op("LeakyReLU", [x, gamma], attrs, params=(1,) if as_param else (), precision=precision, rtol=rtol,
                 build_engines=build)
    elif act_type == "rrelu":  # output 1 (the mask) is not written by MXNet at inference: compare output 0 only
        sym = mx.sym.LeakyReLU(mx.sym.var("x0"), name="node", **attrs)[0]
        check_graph(sym, {"x0": x}, {}, on_trt=["node"], precision=precision, rtol=rtol, min_subgraph_size=1,
                    build_engines=build)
    else:
        check_op("LeakyReLU", [x], attrs, precision=precision, rtol=rtol, build_engines=build)


def test_mxnet_leaky_relu_act_types_are_known():
    """test_leaky_relu expects every act_type to convert: one MXNet adds must be looked at first."""
    assert set(LEAKY_ACT_TYPES) == {"elu", "gelu", "leaky", "prelu", "rrelu", "selu"}


@pytest.mark.parametrize("precision", PRECISIONS)
@given(seed=SEEDS, scale=SCALES, build=BUILD, data=st.data())
def test_softmax_activation(precision, seed, scale, build, data):
    # 'instance' (the default) is a softmax over the last axis in MXNet 1.9.1; 'channel' over axis 1, rank >= 3 only
    # (MXNet itself fails below that).
    mode = data.draw(st.sampled_from([None, "instance", "channel"]))
    shape = data.draw(shapes(3 if mode == "channel" else 1, 4))
    attrs = {} if mode is None else {"mode": mode}
    check_op("SoftmaxActivation", [exact_in(precision, normal(seed, shape, scale))], attrs, precision=precision,
             rtol=1e-5 if precision == "fp32" else 2e-3, build_engines=build)


@pytest.mark.parametrize("precision", PRECISIONS)
@given(shape=shapes(), seed=SEEDS, build=BUILD, data=st.data())
def test_hard_sigmoid(precision, shape, seed, build, data):
    attrs: dict[str, Any] = {}
    for key, lo, hi in (("alpha", -1.0, 2.0), ("beta", -1.0, 1.5)):
        if data.draw(st.booleans()):
            attrs[key] = data.draw(st.floats(lo, hi).map(lambda v: round(v, 3)))
    check_op("hard_sigmoid", [exact_in(precision, normal(seed, shape, 3.0))], attrs, precision=precision,
             rtol=1e-5 if precision == "fp32" else 1e-3, build_engines=build)


# ---- registry coverage -----------------------------------------------------------------------------------------------

# Explicit op -> property test; test_every_registered_op_has_a_property_test fails when an op is added to
# converters/activation.py without a line here (and a test drawing it).
PROPERTY_TESTS = {
    "Activation": test_activation,
    "relu": test_named_activation,
    "sigmoid": test_named_activation,
    "tanh": test_named_activation,
    "softsign": test_named_activation,
    "clip": test_clip,
    "softmax": test_softmax,
    "log_softmax": test_softmax,
    "softmin": test_softmax,
    "SoftmaxOutput": test_softmax_output,
    "SoftmaxActivation": test_softmax_activation,
    "LeakyReLU": test_leaky_relu,
    "hard_sigmoid": test_hard_sigmoid,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)


# ---- regression tests for known converter bugs -------------------------------------------------------------------


def _x(shape: Sequence[int], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return normal(seed, shape, scale)


@pytest.mark.parametrize("attrs, scale", [({}, 100.0), ({"temperature": 0.01}, 2.0)])
def test_log_softmax_large_range(attrs, scale):
    check_op("log_softmax", [_x((2, 6), scale=scale)], attrs)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "SoftmaxOutput"])
def test_softmax_family_rank1(op):
    x = mx.sym.var("x")
    args = [mx.sym.relu(x, name="r")] + ([mx.sym.var("label")] if op == "SoftmaxOutput" else [])
    sym = getattr(mx.sym, op)(*args, name="node")
    data = {"x": _x((5,))} | ({"label": np.zeros((), np.float32)} if op == "SoftmaxOutput" else {})
    c = check_graph(sym, data, {})
    row = {r.node: r for r in c.report.rows}["node"]
    # Either fix is fine: converted (reshape to 2-D), or refused by the validator; the relu must keep its engine.
    assert not row.reason.startswith("fell back"), row.reason
    assert {r.node: r for r in c.report.rows}["r"].placement != "mxnet"


def test_clip_a_min_above_a_max():
    c = check_op("clip", [_x((2, 5))], {"a_min": 0.5, "a_max": -0.5}, expect_trt=False)
    assert "a_min 0.5 > a_max -0.5" in {r.node: r.reason for r in c.report.rows}["node"]


def test_softmax_output_multi_output_and_preserve_shape():
    attrs = {"multi_output": True, "preserve_shape": True}
    check_op("SoftmaxOutput", [_x((2, 3, 4)), np.zeros((2, 4), np.float32)], attrs)


PARAM_INPUT_CASES = [
    ("Activation", {"act_type": "tanh"}), ("relu", {}), ("sigmoid", {}), ("tanh", {}), ("softsign", {}),
    ("clip", {"a_min": -0.5, "a_max": 0.5}), ("softmax", {}), ("log_softmax", {"axis": 0}), ("SoftmaxOutput", {}),
    ("softmin", {}), ("SoftmaxActivation", {}), ("hard_sigmoid", {}), ("LeakyReLU", {"act_type": "elu"}),
]


@pytest.mark.parametrize("op, attrs", PARAM_INPUT_CASES, ids=[c[0] for c in PARAM_INPUT_CASES])
def test_param_input_does_not_crash(op, attrs):
    x, w = mx.sym.var("x"), mx.sym.var("w")
    label = [mx.sym.var("label")] if op == "SoftmaxOutput" else []  # a data input the converter does not read
    sym = mx.sym.elemwise_add(x, getattr(mx.sym, op)(w, *label, name="node", **attrs), name="add")
    data = {"x": _x((2, 3))} | ({"label": np.zeros((2,), np.float32)} if label else {})
    check_graph(sym, data, {"w": _x((2, 3), seed=1)}, on_trt=["add"])


def test_rrelu_mask_output_is_zeros():
    """MXNet leaves rrelu's mask output unwritten at inference (whatever memory it got); the engine gives zeros."""
    x = _x((2, 3))
    sym = mx.sym.LeakyReLU(mx.sym.var("x"), act_type="rrelu", name="node")
    c = mx2trt.convert(sym, {}, {"x": x.shape}, runtime="reference", min_subgraph_size=1)
    out, mask = run_symbol(c.symbol, {"x": x})
    assert c.engines and np.array_equal(mask, np.zeros_like(x))
    np.testing.assert_allclose(out, np.where(x > 0, x, np.float32(0.2295) * x), rtol=1e-6)


def test_softmax_activation_channel_below_rank_3_is_refused():
    """MXNet fails on mode='channel' below rank 3, so only the placement is checked."""
    sym = mx.sym.SoftmaxActivation(mx.sym.var("x"), mode="channel", name="node")
    (row,) = [r for r in mx2trt.explain(sym, {"x": (2, 5)}, min_subgraph_size=1).rows if r.node == "node"]
    assert row.placement == "mxnet" and "rank >= 3" in row.reason, row


def test_prelu_gamma_that_does_not_fit_is_refused():
    from mx2trt.registry import OpNode, TensorInfo

    spec = REGISTRY.get("LeakyReLU")
    x = TensorInfo((2, 3, 4), np.dtype(np.float32))
    gamma = TensorInfo((4,), np.dtype(np.float32))
    node = OpNode("n", "LeakyReLU", spec.attrs(act_type="prelu"), (x, gamma), (x,))
    assert "gamma" in spec.validator(node)
