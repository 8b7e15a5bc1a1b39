"""Activation, relu/sigmoid/tanh/softsign, clip, softmax/log_softmax and SoftmaxOutput: hypothesis draws shapes and
attributes that fit together; a node the converters select must convert and match MXNet CPU, a node they refuse must
stay in MXNet (with the graph still giving MXNet's output).

Bugs these tests found have regression tests at the end.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import check_graph, check_op, check_property_tests
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
SOFTMAX_OPS = ("softmax", "log_softmax")


def shapes(min_rank: int = 1, max_rank: int = 4, max_dim: int = 6) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(1, max_dim), min_size=min_rank, max_size=max_rank).map(tuple)


def normal(seed: int, shape: Sequence[int], scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(tuple(shape)) * scale).astype(np.float32)


# ---- Activation and the named activations -------------------------------------------------------------------------


@pytest.mark.parametrize("act_type", MXNET_ACT_TYPES)
@given(shape=shapes(), scale=SCALES, seed=SEEDS)
def test_activation(act_type, shape, scale, seed):
    check_op("Activation", [normal(seed, shape, scale)], {"act_type": act_type},
             expect_trt=act_type in CONVERTED_ACT_TYPES)


def test_mxnet_act_types_are_known():
    """The act_types MXNet 1.9.1 declares: all five are converted (test_activation expects any act_type MXNet adds to stay in MXNet)."""
    assert set(MXNET_ACT_TYPES) == {"relu", "sigmoid", "softrelu", "softsign", "tanh"}
    assert CONVERTED_ACT_TYPES <= set(MXNET_ACT_TYPES)


@pytest.mark.parametrize("op", NAMED_ACTIVATIONS)
@given(shape=shapes(), scale=SCALES, seed=SEEDS, as_param=st.sampled_from([False, False, False, True]))
def test_named_activation(op, shape, scale, seed, as_param):
    check_op(op, [normal(seed, shape, scale)])


# ---- clip ------------------------------------------------------------------------------------------------------------

BOUNDS = st.floats(-3, 3, allow_nan=False, width=32).map(lambda v: round(v, 3))


@given(shape=shapes(), a_min=BOUNDS, a_max=BOUNDS, seed=SEEDS)
def test_clip(shape, a_min, a_max, seed):
    # a_min > a_max is refused: MXNet then gives a_max above a_max and a_min elsewhere, TensorRT's CLIP a_min.
    check_op("clip", [normal(seed, shape, 2.0)], {"a_min": a_min, "a_max": a_max}, expect_trt=a_min <= a_max)


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


@pytest.mark.parametrize("op", SOFTMAX_OPS)
@given(case=softmax_cases())
def test_softmax(op, case):
    shape, attrs, scale, seed = case
    x = normal(seed, shape, scale)
    dtype = attrs.get("dtype")
    if dtype == "float64":  # a float64 output is not a TensorRT dtype: refused, stays in MXNet
        check_op(op, [x], attrs, expect_trt=False)
    else:  # float16 output: both sides round an fp32 softmax to fp16, which may differ by one fp16 ulp
        check_op(op, [x], attrs, rtol=1e-3 if dtype == "float16" else 1e-5)


@st.composite
def softmax_with_length(draw):
    shape = draw(shapes(2, 4))
    axis = draw(st.one_of(st.just(-1), st.integers(0, len(shape) - 1)))  # MXNet 1.9.1 crashes on other negatives
    return shape, axis, draw(SEEDS)


# Only softmax: MXNet 1.9.1's log_softmax has no length input, so log_softmax(use_length=True) does not run in
# MXNet itself (its type inference wants 2 inputs).
@given(case=softmax_with_length())
def test_softmax_use_length_is_refused(case):
    shape, axis, seed = case
    sym = mx.sym.softmax(mx.sym.var("x0"), mx.sym.var("x1"), axis=axis, use_length=True)
    length_shape = sym.infer_shape(x0=shape)[0][1]
    rng = np.random.default_rng(seed)
    length = rng.integers(1, shape[axis] + 1, size=length_shape).astype(np.int32)
    c = check_op("softmax", [normal(seed, shape), length], {"axis": axis, "use_length": True}, expect_trt=False)
    assert not c.engines
    # MXNet wants an integer length, which the dtype check already refuses; the validator must refuse use_length
    # on its own as well (it is what answers once integer inputs are supported).
    (node,) = [n for n in c.partition.op_nodes.values() if n.name == "node"]
    as_float = dataclasses.replace(
        node, inputs=tuple(dataclasses.replace(t, dtype=np.dtype(np.float32)) for t in node.inputs))
    reason = REGISTRY.get("softmax").validator(as_float)
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


@given(case=softmax_output_cases())
def test_softmax_output(case):
    shape, attrs, scale, seed = case
    # The label is an MXNet argument ('x1') the converter never reads; it stays a graph input with a valid value.
    c = check_op("SoftmaxOutput", [normal(seed, shape, scale), _label_for(shape, attrs, seed)], attrs)
    assert len(c.engines) == 1 and not c.engines[0].in_shapes[1:], "the label must not enter the engine"


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
    "SoftmaxOutput": test_softmax_output,
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
    row = {r[0]: r for r in c.report.rows}["node"]
    # Either fix is fine: converted (reshape to 2-D), or refused by the validator; the relu must keep its engine.
    assert not row[3].startswith("fell back"), row[3]
    assert {r[0]: r for r in c.report.rows}["r"][2] != "mxnet"


def test_clip_a_min_above_a_max():
    c = check_op("clip", [_x((2, 5))], {"a_min": 0.5, "a_max": -0.5}, expect_trt=False)
    assert "a_min 0.5 > a_max -0.5" in {r[0]: r[3] for r in c.report.rows}["node"]


def test_softmax_output_multi_output_and_preserve_shape():
    attrs = {"multi_output": True, "preserve_shape": True}
    check_op("SoftmaxOutput", [_x((2, 3, 4)), np.zeros((2, 4), np.float32)], attrs)


PARAM_INPUT_CASES = [
    ("Activation", {"act_type": "tanh"}), ("relu", {}), ("sigmoid", {}), ("tanh", {}), ("softsign", {}),
    ("clip", {"a_min": -0.5, "a_max": 0.5}), ("softmax", {}), ("log_softmax", {"axis": 0}), ("SoftmaxOutput", {}),
]


@pytest.mark.parametrize("op, attrs", PARAM_INPUT_CASES, ids=[c[0] for c in PARAM_INPUT_CASES])
def test_param_input_does_not_crash(op, attrs):
    x, w = mx.sym.var("x"), mx.sym.var("w")
    label = [mx.sym.var("label")] if op == "SoftmaxOutput" else []  # a data input the converter does not read
    sym = mx.sym.elemwise_add(x, getattr(mx.sym, op)(w, *label, name="node", **attrs), name="add")
    data = {"x": _x((2, 3))} | ({"label": np.zeros((2,), np.float32)} if label else {})
    check_graph(sym, data, {"w": _x((2, 3), seed=1)}, on_trt=["add"])
