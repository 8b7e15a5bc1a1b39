"""elemwise_*, broadcast_*, _plus/_maximum/... and the _*_scalar family: hypothesis draws shapes (broadcast-compatible,
ranks included, for broadcast_*), attributes and inputs inside each op's domain (nonzero divisors, positive bases); the
node must convert and match MXNet CPU.

Bugs these tests found have regression tests at the end.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import check_alias_entry, check_graph, check_op, check_property_tests, registered_ops
from mx2trt._mx import mx

MODULE = "mx2trt.converters.elementwise"
SEEDS = st.integers(0, 2**32 - 1)

# Same-shape binary ops. _plus/_minus/_mul/_div are MXNet aliases of elemwise_*; _maximum/_minimum/_power are ops of
# their own (mx.sym._internal).
ELEMWISE_OPS = (
    "elemwise_add", "elemwise_sub", "elemwise_mul", "elemwise_div",
    "_plus", "_minus", "_mul", "_div", "_maximum", "_minimum", "_power",
)
# numpy-style broadcasting ops (broadcast_plus/broadcast_minus are aliases of broadcast_add/broadcast_sub).
BROADCAST_OPS = (
    "broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_div", "broadcast_plus", "broadcast_minus",
    "broadcast_maximum", "broadcast_minimum", "broadcast_power",
)
SCALAR_OPS = (
    "_plus_scalar", "_minus_scalar", "_rminus_scalar", "_mul_scalar", "_div_scalar", "_rdiv_scalar",
    "_maximum_scalar", "_minimum_scalar", "_power_scalar", "_rpower_scalar",
)
DIVISIONS = {"elemwise_div", "_div", "broadcast_div"}
POWERS = {"_power", "broadcast_power"}


def sym_fn(op: str) -> Any:
    """The MXNet symbol function of `op` (as check_op looks it up)."""
    return getattr(mx.sym, op, None) or getattr(mx.sym._internal, op)


def shapes(min_rank: int = 1, max_rank: int = 4, max_dim: int = 6) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(1, max_dim), min_size=min_rank, max_size=max_rank).map(tuple)


def normal(rng: np.random.Generator, shape: Sequence[int], scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(tuple(shape)) * scale).astype(np.float32)


def away_from_zero(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Values of either sign with |v| in [0.5, 2]: safe divisors."""
    return (rng.choice([-1.0, 1.0], size=tuple(shape)) * rng.uniform(0.5, 2.0, size=tuple(shape))).astype(np.float32)


def positive(rng: np.random.Generator, shape: Sequence[int], lo: float = 0.2, hi: float = 3.0) -> np.ndarray:
    return rng.uniform(lo, hi, size=tuple(shape)).astype(np.float32)


def binary_operands(op: str, shape_a: Sequence[int], shape_b: Sequence[int], seed: int) -> list[np.ndarray]:
    """Two operands inside `op`'s domain: nonzero divisors, positive bases with moderate exponents."""
    rng = np.random.default_rng(seed)
    if op in DIVISIONS:
        return [normal(rng, shape_a, 2.0), away_from_zero(rng, shape_b)]
    if op in POWERS:
        return [positive(rng, shape_a), rng.uniform(-2.0, 2.0, size=tuple(shape_b)).astype(np.float32)]
    return [normal(rng, shape_a, 2.0), normal(rng, shape_b, 2.0)]


# ---- same-shape binary ops -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ELEMWISE_OPS)
@given(shape=shapes(), seed=SEEDS, params=st.sampled_from([(), (), (0,), (1,)]))
def test_elemwise_binary(op, shape, seed, params):
    # A parameter operand (folded into a TensorRT constant) is drawn too: MXNet infers its shape from the other one.
    check_op(op, binary_operands(op, shape, shape, seed), params=params)


# ---- broadcast ops ---------------------------------------------------------------------------------------------------


@st.composite
def broadcast_operand_shapes(draw):
    """Two shapes numpy-broadcastable to a drawn output shape: each keeps a suffix of it (rank differences) and
    replaces some dims by 1."""
    out = draw(shapes(1, 4))

    def operand() -> tuple[int, ...]:
        rank = draw(st.integers(1, len(out)))
        return tuple(d if draw(st.booleans()) else 1 for d in out[len(out) - rank:])

    return operand(), operand()


@pytest.mark.parametrize("op", BROADCAST_OPS)
@given(shapes_ab=broadcast_operand_shapes(), seed=SEEDS, param=st.sampled_from([None, None, None, 0, 1]))
def test_broadcast_binary(op, shapes_ab, seed, param):
    # One operand may be a parameter (a TensorRT constant, possibly of lower rank).
    a, b = shapes_ab
    inputs = binary_operands(op, a, b, seed)
    c = check_op(op, inputs, params=() if param is None else (param,))
    assert c.engines[0].out_shapes[0] == np.broadcast_shapes(a, b)


# ---- _*_scalar ---------------------------------------------------------------------------------------------------


@st.composite
def scalar_cases(draw, op: str):
    shape = draw(shapes())
    is_int = draw(st.sampled_from([None, True, False]))  # None: attribute absent (MXNet's default True)
    if is_int:
        scalar = float(draw(st.integers(-4, 4)))
    else:
        scalar = draw(st.one_of(st.integers(-4, 4).map(float), st.floats(-4, 4).map(lambda v: round(v, 4))))
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    if op == "_div_scalar":
        scalar = scalar if abs(scalar) >= 0.25 else draw(st.sampled_from([-2.0, 0.5, 3.0]))  # nonzero divisor
        x = normal(rng, shape, 2.0)
    elif op == "_rdiv_scalar":
        x = away_from_zero(rng, shape)  # scalar / x
    elif op == "_power_scalar":
        scalar = max(-3.0, min(3.0, scalar))
        x = positive(rng, shape)  # x ** scalar with a positive base
    elif op == "_rpower_scalar":
        scalar = abs(scalar) if abs(scalar) >= 0.2 else 2.0  # scalar ** x with a positive base
        scalar = min(scalar, 4.0)
        x = normal(rng, shape, 1.5)
    else:
        x = normal(rng, shape, 2.0)
    attrs: dict[str, Any] = {"scalar": scalar}
    if is_int is not None:
        attrs["is_int"] = is_int
    return x, attrs, draw(st.sampled_from([False, False, False, True]))


@pytest.mark.parametrize("op", SCALAR_OPS)
@given(data=st.data())
def test_scalar(op, data):
    x, attrs, as_param = data.draw(scalar_cases(op))
    check_op(op, [x], attrs)


# ---- aliases -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(registered_ops(MODULE)))
def test_alias_entries_share_the_canonical_converter(op):
    """Graphs built through an alias (_plus, broadcast_plus...) reach the partitioner under the canonical name, so the
    property test of an alias exercises the canonical entry; the alias's own entry must be the same converter."""
    check_alias_entry(op, 1 if op in SCALAR_OPS else 2)


# ---- registry coverage -----------------------------------------------------------------------------------------------

# Explicit op -> property test; test_every_registered_op_has_a_property_test fails when an op is added to
# converters/elementwise.py without a line here (and a test drawing it).
PROPERTY_TESTS = {
    "elemwise_add": test_elemwise_binary, "elemwise_sub": test_elemwise_binary,
    "elemwise_mul": test_elemwise_binary, "elemwise_div": test_elemwise_binary,
    "_plus": test_elemwise_binary, "_minus": test_elemwise_binary,
    "_mul": test_elemwise_binary, "_div": test_elemwise_binary,
    "_maximum": test_elemwise_binary, "_minimum": test_elemwise_binary, "_power": test_elemwise_binary,
    "broadcast_add": test_broadcast_binary, "broadcast_sub": test_broadcast_binary,
    "broadcast_mul": test_broadcast_binary, "broadcast_div": test_broadcast_binary,
    "broadcast_plus": test_broadcast_binary, "broadcast_minus": test_broadcast_binary,
    "broadcast_maximum": test_broadcast_binary, "broadcast_minimum": test_broadcast_binary,
    "broadcast_power": test_broadcast_binary,
    "_plus_scalar": test_scalar, "_minus_scalar": test_scalar, "_rminus_scalar": test_scalar,
    "_mul_scalar": test_scalar, "_div_scalar": test_scalar, "_rdiv_scalar": test_scalar,
    "_maximum_scalar": test_scalar, "_minimum_scalar": test_scalar,
    "_power_scalar": test_scalar, "_rpower_scalar": test_scalar,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)


# ---- regression tests for known bugs -----------------------------------------------------------------------------


@pytest.mark.parametrize("op", SCALAR_OPS)
def test_scalar_op_on_param_does_not_crash(op):
    rng = np.random.default_rng(0)
    x, w = mx.sym.var("x"), mx.sym.var("w")
    sym = mx.sym.elemwise_mul(x, sym_fn(op)(w, scalar=2.0, name="node"), name="mul")
    check_graph(sym, {"x": normal(rng, (2, 3))}, {"w": positive(rng, (2, 3))}, on_trt=["mul"])


@pytest.mark.parametrize("b_shape", [(3,), (1, 3), (2, 1), (2, 3)])
def test_broadcast_with_param_operand(b_shape):
    """Regression: a parameter operand of a broadcast op used to make convert() raise InputError (graph.py inferred
    shapes from the data shapes alone)."""
    rng = np.random.default_rng(0)
    sym = mx.sym.broadcast_add(mx.sym.var("x"), mx.sym.var("b"), name="node")
    check_graph(sym, {"x": normal(rng, (2, 3))}, {"b": normal(rng, b_shape)}, on_trt=["node"])
