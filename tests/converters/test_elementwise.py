"""elemwise_*, broadcast_*, _plus/_maximum/... and the _*_scalar family, comparisons and logic (0/1 results), where,
add_n and unary math: hypothesis draws shapes (broadcast-compatible, ranks included, for broadcast_*), attributes and
inputs inside each op's domain (nonzero divisors, positive bases, [-1, 1] for arcsin...); the node must convert and
match MXNet CPU, as an fp32 engine and as an fp16 engine (inputs then drawn exactly representable in fp16, so the
tolerance measures the engine's arithmetic, not the rounding of its inputs).

Bugs these tests found have regression tests at the end.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import check_alias_entry, check_graph, check_op, check_property_tests, registered_ops, run_symbol
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


# ---- engine precision ------------------------------------------------------------------------------------------------

PRECISIONS = ("fp32", "fp16")
# Whether an example also builds the TensorRT plan (about 90% of its time): about half do; every example defines the
# network and runs it on the reference interpreter.
BUILD = st.booleans()


def exact_in(precision: str, *arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays, rounded to fp16 (kept float32) for an fp16 engine: its input cast is then exact, so the tolerance
    measures the engine's arithmetic, not the rounding of its inputs (which fp16 makes inherent)."""
    if precision == "fp32":
        return list(arrays)
    return [a.astype(np.float16).astype(np.float32) for a in arrays]


# ---- same-shape binary ops -------------------------------------------------------------------------------------------

# fp16 engines: each of these ops rounds its exact result once (4.9e-4 at most); 1e-3 leaves room for one more rounding.
FP16_ARITHMETIC_RTOL = 1e-3


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", ELEMWISE_OPS)
@given(shape=shapes(), seed=SEEDS, params=st.sampled_from([(), (), (0,), (1,)]), build=BUILD)
def test_elemwise_binary(op, precision, shape, seed, params, build):
    # A parameter operand (folded into a TensorRT constant) is drawn too: MXNet infers its shape from the other one.
    inputs = exact_in(precision, *binary_operands(op, shape, shape, seed))
    check_op(op, inputs, params=params, precision=precision,
             rtol=1e-5 if precision == "fp32" else FP16_ARITHMETIC_RTOL, build_engines=build)


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


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", BROADCAST_OPS)
@given(shapes_ab=broadcast_operand_shapes(), seed=SEEDS, param=st.sampled_from([None, None, None, 0, 1]), build=BUILD)
def test_broadcast_binary(op, precision, shapes_ab, seed, param, build):
    # One operand may be a parameter (a TensorRT constant, possibly of lower rank).
    a, b = shapes_ab
    inputs = exact_in(precision, *binary_operands(op, a, b, seed))
    c = check_op(op, inputs, params=() if param is None else (param,), precision=precision,
                 rtol=1e-5 if precision == "fp32" else FP16_ARITHMETIC_RTOL, build_engines=build)
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


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", SCALAR_OPS)
@given(data=st.data(), build=BUILD)
def test_scalar(op, precision, data, build):
    x, attrs, as_param = data.draw(scalar_cases(op))
    if precision == "fp16":  # an fp16 engine holds the scalar in fp16: draw one it holds exactly
        attrs["scalar"] = float(np.float16(attrs["scalar"]))
    (x,) = exact_in(precision, x)
    check_op(op, [x], attrs, precision=precision, rtol=1e-5 if precision == "fp32" else FP16_ARITHMETIC_RTOL,
             build_engines=build)


# ---- mod -------------------------------------------------------------------------------------------------------------

MOD_OPS = ("_mod", "broadcast_mod")  # same shapes / numpy broadcasting (MXNet 1.9.1 has no elemwise_mod)
MOD_SCALAR_OPS = ("_mod_scalar", "_rmod_scalar")  # x mod scalar / scalar mod x
# MXNet's floor mod is discontinuous at the multiples of the divisor, where a quotient rounded across an integer swaps 0
# and b; the operands are therefore drawn so that the exact remainder is computable: fp16-exact values whose float32
# quotient, product and remainder are all exact. The fp32 engine then matches exactly; an fp16 engine (which computes
# mod in float32) rounds the remainder once to fp16, 2.4e-4 of it at most.
MOD_RTOL = {"fp32": 1e-6, "fp16": 1e-3}


def mod_values(rng: np.random.Generator, shape: Sequence[int], divisor: bool, special: bool) -> np.ndarray:
    """Operands of mod, exact in fp16, of either sign: +-m * 2^e with m < 2048 and e in [-10, -6] for dividends, in
    [-9, -5] for divisors (so |quotient| < 2^11 and every float32 intermediate is exact); about 30% small integers
    (dividends in [-6, 6], divisors in [-3, 3]: exact multiples and zero divisors are frequent); with `special`, about
    8% NaN or +-inf."""
    shape = tuple(shape)
    exp = rng.integers(-9, -4, size=shape) if divisor else rng.integers(-10, -5, size=shape)
    v = rng.integers(1, 2048, size=shape) * np.exp2(exp) * rng.choice([-1.0, 1.0], size=shape)
    small = rng.integers(-3, 4, size=shape) if divisor else rng.integers(-6, 7, size=shape)
    v = np.where(rng.random(shape) < 0.3, small, v)
    if special:
        s = rng.random(shape) < 0.08
        v[s] = rng.choice([np.nan, np.inf, -np.inf], size=int(s.sum()))
    return v.astype(np.float32)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", MOD_OPS)
@given(data=st.data(), seed=SEEDS, special=st.booleans(), build=BUILD)
def test_mod(op, precision, data, seed, special, build):
    # Negative operands, zero divisors (MXNet gives 0), NaN and +-inf (an infinite divisor gives the dividend or
    # the divisor), one operand possibly a parameter.
    if op == "broadcast_mod":
        shape_a, shape_b = data.draw(broadcast_operand_shapes())
    else:
        shape_a = shape_b = data.draw(shapes())
    rng = np.random.default_rng(seed)
    a, b = mod_values(rng, shape_a, False, special), mod_values(rng, shape_b, True, special)
    param = data.draw(st.sampled_from([None, None, None, 0, 1]))
    check_op(op, [a, b], params=() if param is None else (param,), precision=precision, rtol=MOD_RTOL[precision],
             build_engines=build)


def exact_scalars(lo: int, hi: int, small: Sequence[float]) -> st.SearchStrategy[float]:
    """Scalars as mod_values draws them: small values (zero included) or +-m * 2^e with e in [lo, hi]."""
    wide = st.builds(lambda m, e, s: s * m * 2.0 ** e, st.integers(1, 2047), st.integers(lo, hi),
                     st.sampled_from([-1.0, 1.0]))
    return st.one_of(st.sampled_from(list(small)), wide)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", MOD_SCALAR_OPS)
@given(shape=shapes(), seed=SEEDS, special=st.booleans(), data=st.data(), build=BUILD)
def test_mod_scalar(op, precision, shape, seed, special, data, build):
    rng = np.random.default_rng(seed)
    if op == "_mod_scalar":  # x mod scalar: the scalar divides (0 included: MXNet gives 0 everywhere)
        x = mod_values(rng, shape, False, special)
        scalar = data.draw(exact_scalars(-9, -5, [0.0, 1.0, -1.0, 2.0, -3.0, 0.5, 24.0]))
    else:  # scalar mod x
        x = mod_values(rng, shape, True, special)
        scalar = data.draw(exact_scalars(-10, -6, [0.0, 5.0, -6.0, 1.5, -0.25]))
    attrs: dict[str, Any] = {"scalar": scalar}
    is_int = data.draw(st.sampled_from([None, True, False]))
    if is_int is not None:
        attrs["is_int"] = is_int
    check_op(op, [x], attrs, precision=precision, rtol=MOD_RTOL[precision], build_engines=build)


# ---- comparisons and logic -------------------------------------------------------------------------------------------

PREDICATES = (
    "equal", "not_equal", "greater", "greater_equal", "lesser", "lesser_equal",
    "logical_and", "logical_or", "logical_xor",
)
ELEMWISE_PREDICATE_OPS = tuple(f"_{p}" for p in PREDICATES)  # same shapes
BROADCAST_PREDICATE_OPS = tuple(f"broadcast_{p}" for p in PREDICATES)
SCALAR_PREDICATE_OPS = tuple(f"_{p}_scalar" for p in PREDICATES)


def grid(rng: np.random.Generator, shape: Sequence[int], nan: bool = False) -> np.ndarray:
    """Values in {-1.5, -1, ..., 1.5} (equal pairs and zeros are frequent, and all are exact in fp16), with about one
    in six NaN when `nan`."""
    x = (rng.integers(-3, 4, size=tuple(shape)) * 0.5).astype(np.float32)
    if nan:
        x[rng.random(tuple(shape)) < 0.15] = np.nan
    return x


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", ELEMWISE_PREDICATE_OPS + BROADCAST_PREDICATE_OPS)
@given(data=st.data())
def test_predicate(op, precision, data):
    # NaN compares false (so >= is not "not <") and is true as a logical operand, as in MXNet.
    if op.startswith("broadcast_"):
        shape_a, shape_b = data.draw(broadcast_operand_shapes())
    else:
        shape_a = shape_b = data.draw(shapes())
    rng = np.random.default_rng(data.draw(SEEDS))
    nan = data.draw(st.booleans())
    param = data.draw(st.sampled_from([None, None, None, 0, 1]))
    check_op(op, [grid(rng, shape_a, nan), grid(rng, shape_b, nan)], params=() if param is None else (param,),
             precision=precision, build_engines=data.draw(BUILD))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", SCALAR_PREDICATE_OPS)
@given(shape=shapes(), seed=SEEDS, nan=st.booleans(), data=st.data())
def test_scalar_predicate(op, precision, shape, seed, nan, data):
    scalars = [-1.0, -0.5, 0.0, 0.5, 1.0, 0.25, 2.0]
    if "logical" in op:  # only the scalar's truth counts: a tiny one is true even where fp16 would round it to 0
        scalars += [1e-30, -1e-30]
    attrs: dict[str, Any] = {"scalar": data.draw(st.sampled_from(scalars))}
    is_int = data.draw(st.sampled_from([None, True, False]))  # is_int changes nothing for float data
    if is_int is not None:
        attrs["is_int"] = is_int
    check_op(op, [grid(np.random.default_rng(seed), shape, nan)], attrs, precision=precision,
             build_engines=data.draw(BUILD))


# ---- where, add_n ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
@given(shape=shapes(), seed=SEEDS, per_row=st.booleans(), nan=st.booleans(),
       params=st.sampled_from([(), (), (), (0,), (1,), (2,)]), build=BUILD)
def test_where(precision, shape, seed, per_row, nan, params, build):
    # The condition has x's shape, or is 1-D over x's first axis (whole rows); nonzero (NaN included) is true.
    rng = np.random.default_rng(seed)
    cond = grid(rng, shape[:1] if per_row else shape, nan)
    x, y = exact_in(precision, normal(rng, shape, 2.0), normal(rng, shape, 2.0))
    check_op("where", [cond, x, y], params=params, precision=precision, build_engines=build)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", ["add_n", "ElementWiseSum"])
@given(shape=shapes(), n=st.integers(1, 4), seed=SEEDS, data=st.data())
def test_add_n(op, precision, shape, n, seed, data):
    rng = np.random.default_rng(seed)
    # fp16 rounds each partial sum (5e-4 of it): positive terms, so that no cancellation magnifies that relative to
    # the result
    draw = (lambda: normal(rng, shape, 2.0)) if precision == "fp32" else (lambda: positive(rng, shape))
    inputs = exact_in(precision, *(draw() for _ in range(n)))
    params = data.draw(st.sets(st.integers(0, n - 1), max_size=n - 1)) if n > 1 else set()
    check_op(op, inputs, params=tuple(params), precision=precision, rtol=1e-5 if precision == "fp32" else 2e-3,
             build_engines=data.draw(BUILD))


# ---- integer operands ------------------------------------------------------------------------------------------------

INT_REFUSED = POWERS | {"_power_scalar", "_rpower_scalar"}
INT_DIVISIONS = DIVISIONS | {"_div_scalar", "_rdiv_scalar"}
INT_OPS = (ELEMWISE_OPS + BROADCAST_OPS + SCALAR_OPS + MOD_OPS + MOD_SCALAR_OPS + ELEMWISE_PREDICATE_OPS
           + BROADCAST_PREDICATE_OPS + SCALAR_PREDICATE_OPS + ("logical_not", "where", "add_n"))
INT_DTYPES = st.sampled_from(["int32", "int64"])


def ints(rng: np.random.Generator, shape: Sequence[int], big: bool, dtype: str) -> np.ndarray:
    """Integers: small ones (equal pairs and zeros frequent) or, with `big`, up to 2**30 for int32 (sums and products
    wrap around in MXNet's int32 arithmetic) and 2**50 for int64 (MXNet's mod goes through double, exact to 2**53)."""
    hi = (2**30 if dtype == "int32" else 2**50) if big else 4
    return rng.integers(-hi, hi + 1, size=tuple(shape)).astype(dtype)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", INT_OPS)
@given(data=st.data())
def test_int_operands(op, precision, data):
    """On int32/int64 tensors (lengths, indices, shapes) +, -, *, max, min, division (truncating), mod (the
    divisor's sign), comparisons, logic, where and add_n convert and match MXNet bit for bit (wrap-around and the
    scalar truncated toward zero included) in either engine precision; power stays in MXNet."""
    rng = np.random.default_rng(data.draw(SEEDS))
    big, dtype = data.draw(st.booleans()), data.draw(INT_DTYPES)
    if op.startswith("broadcast_"):
        shape_a, shape_b = data.draw(broadcast_operand_shapes())
    else:
        shape_a = shape_b = data.draw(shapes())
    attrs: dict[str, Any] = {}
    if op in SCALAR_OPS or op in SCALAR_PREDICATE_OPS or op in MOD_SCALAR_OPS:
        inputs = [ints(rng, shape_a, big, dtype)]
        scalars = [-2.5, -1.0, 0.0, 0.5, 1.7, 3.0, 1e-30, 1e9]
        if op in INT_REFUSED | INT_DIVISIONS:  # MXNet's integer division by zero (a scalar truncated to 0 too) kills
            scalars = [-2.5, 1.7, 3.0, 1e9]  # the process
            inputs[0][inputs[0] == 0] = 1
        attrs["scalar"] = data.draw(st.sampled_from(scalars))
    elif op == "logical_not":
        inputs = [ints(rng, shape_a, big, dtype)]
    elif op == "where":
        inputs = [ints(rng, shape_a, False, dtype), ints(rng, shape_a, big, dtype), ints(rng, shape_a, big, dtype)]
    elif op == "add_n":
        inputs = [ints(rng, shape_a, big, dtype) for _ in range(data.draw(st.integers(1, 3)))]
    else:
        inputs = [ints(rng, shape_a, big, dtype), ints(rng, shape_b, big and op not in INT_DIVISIONS, dtype)]
        if op in INT_REFUSED | INT_DIVISIONS:
            inputs[1][inputs[1] == 0] = 1  # MXNet's own integer division by zero kills the process
    check_op(op, inputs, attrs, precision=precision, rtol=0.0, expect_trt=op not in INT_REFUSED,
             build_engines=data.draw(BUILD))


# ---- unary math ------------------------------------------------------------------------------------------------------

# op -> (low, high) of the uniform draw, inside the op's domain; None: values on a grid of quarters (exact halves, for
# the rounding rules) mixed with arbitrary ones and the odd NaN, +-inf and -0.
UNARY_DOMAINS: dict[str, tuple[float, float] | None] = {
    "abs": (-4, 4), "negative": (-4, 4), "square": (0.1, 4), "degrees": (-4, 4), "radians": (-200, 200),
    "exp": (-5, 5), "expm1": (-5, 5), "log": (0.01, 10), "log1p": (-0.99, 10), "log2": (0.01, 10),
    "log10": (0.01, 10), "sqrt": (0.01, 10), "rsqrt": (0.01, 10), "cbrt": (-10, 10), "rcbrt": (0.01, 10),
    "reciprocal": (0.1, 10), "sin": (-4, 4), "cos": (-4, 4), "tan": (-1.4, 1.4), "arcsin": (-1, 1),
    "arccos": (-1, 1), "arctan": (-5, 5), "sinh": (-5, 5), "cosh": (-5, 5), "arcsinh": (-5, 5), "arccosh": (1, 10),
    "arctanh": (-0.95, 0.95), "erf": (-3, 3),
    "sign": None, "floor": None, "ceil": None, "trunc": None, "fix": None, "round": None, "rint": None,
    "logical_not": None,
}
UNARY_OPS = tuple(UNARY_DOMAINS)
# Domains around 0 whose precision there matters (expm1, log1p...): also drawn with 2e-4 <= |x| <= 1e-3 (not radians,
# whose results would be fp16 subnormals).
ZOOMABLE = {op for op, d in UNARY_DOMAINS.items() if d is not None and d[0] < 0 < d[1]} - {"radians"}
SIGNED = {"reciprocal", "rcbrt", "square"}  # the domain's magnitudes, either sign (square: no fp16 subnormal results)
# fp16 engine tolerances (relative to max |MXNet|): rounding the output alone costs up to 4.9e-4 (1e-3 allows one more
# rounding); composites round in between (measured over 60 draws each on the reference interpreter: log2 9.1e-4,
# cbrt 9.2e-4, rcbrt 8.2e-4, log10 7.3e-4, rsqrt 5.9e-4, log1p 5.8e-4, every single-layer op <= 4.9e-4).
FP16_RTOL = {"log2": 2e-3, "log10": 2e-3, "cbrt": 2e-3, "rcbrt": 2e-3, "expm1": 2e-3}  # expm1: 6.9e-4 measured


def unary_input(op: str, rng: np.random.Generator, shape: Sequence[int], zoom: bool) -> np.ndarray:
    shape = tuple(shape)
    domain = UNARY_DOMAINS[op]
    if domain is None:
        x = np.where(rng.random(shape) < 0.5, rng.integers(-16, 17, size=shape) * 0.25, rng.uniform(-5, 5, shape))
        specials = rng.random(shape) < 0.1
        x[specials] = rng.choice([np.nan, np.inf, -np.inf, -0.0], size=int(specials.sum()))
        return x.astype(np.float32)
    if zoom and op in ZOOMABLE:
        x = rng.choice([-1e-3, 1e-3], size=shape) * rng.uniform(0.2, 1.0, size=shape)
    else:
        x = rng.uniform(*domain, size=shape)
    if op in SIGNED:
        x *= rng.choice([-1.0, 1.0], size=shape)
    return x.astype(np.float32)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("op", UNARY_OPS)
@given(shape=shapes(), seed=SEEDS, zoom=st.booleans(), build=BUILD)
def test_unary(op, precision, shape, seed, zoom, build):
    (x,) = exact_in(precision, unary_input(op, np.random.default_rng(seed), shape, zoom))
    rtol = 1e-5 if precision == "fp32" else FP16_RTOL.get(op, 1e-3)
    check_op(op, [x], precision=precision, rtol=rtol, build_engines=build)


# ---- aliases -----------------------------------------------------------------------------------------------------


def arity(op: str) -> int:
    """Number of inputs `op` takes in these tests."""
    if op in SCALAR_OPS or op in MOD_SCALAR_OPS or op in SCALAR_PREDICATE_OPS or op in UNARY_DOMAINS:
        return 1
    return {"where": 3, "add_n": 3, "ElementWiseSum": 3}.get(op, 2)


@pytest.mark.parametrize("op", sorted(registered_ops(MODULE)))
def test_alias_entries_share_the_canonical_converter(op):
    """Graphs built through an alias (_plus, broadcast_plus...) reach the partitioner under the canonical name, so the
    property test of an alias exercises the canonical entry; the alias's own entry must be the same converter."""
    check_alias_entry(op, arity(op))


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
    **{op: test_mod for op in MOD_OPS}, **{op: test_mod_scalar for op in MOD_SCALAR_OPS},
    **{op: test_predicate for op in ELEMWISE_PREDICATE_OPS + BROADCAST_PREDICATE_OPS},
    **{op: test_scalar_predicate for op in SCALAR_PREDICATE_OPS},
    "where": test_where, "add_n": test_add_n, "ElementWiseSum": test_add_n,
    **{op: test_unary for op in UNARY_OPS},
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


@pytest.mark.parametrize("op, want", [
    ("round", [-3, -2, -1, 1, 2, 3, 0, 8388609, 2]),  # halves away from zero (TensorRT's ROUND goes to even)
    ("rint", [-3, -2, -1, 0, 1, 2, 0, 8388609, 2]),  # MXNet 1.9.1's rint rounds halves down, not to even
    ("fix", [-2, -1, 0, 0, 1, 2, 0, 8388609, 1]),
    ("trunc", [-2, -1, 0, 0, 1, 2, 0, 8388609, 1]),
])
def test_rounding_ties(op, want):
    """Halves, the float32 just below 0.5 (x + 0.5 rounds up to 1.0 there) and an odd integer above 2**23."""
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, 8388609, 1.9], np.float32)
    want = np.array(want, np.float32)
    assert np.array_equal(getattr(mx.nd, op)(mx.nd.array(x)).asnumpy(), want)  # MXNet's rule, pinned
    c = check_op(op, [x])
    (got,) = run_symbol(c.symbol, {"x0": x})
    assert np.array_equal(got, want), got  # exactly: check_op's tolerance is relative to the largest value


@pytest.mark.parametrize("op", ["expm1", "log1p"])
def test_expm1_log1p_keep_precision_near_zero(op):
    """exp(x) - 1 and log(1 + x) lose every digit below 1e-7; the converters use cancellation-free identities there."""
    x = np.array([1e-7, -3e-8, 2e-6, -1e-5, 4e-4], np.float32)
    check_op(op, [x], rtol=1e-6)


def test_sign_of_nan_is_zero():
    """MXNet's sign(NaN) is 0 (IUnaryLayer SIGN would give NaN)."""
    check_op("sign", [np.array([np.nan, -0.0, 2.0, -3.0, np.inf], np.float32)])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_mod_pins_mxnet_semantics(precision):
    """MXNet 1.9.1's mod is floor mod (the divisor's sign), 0 for a zero divisor whatever the dividend, NaN for an
    infinite dividend, the dividend or the divisor for an infinite divisor, and it rounds once after an exact fmod, so
    -2^-26 mod 3 is 3 itself (the rounded 3 - 2^-26), not 0."""
    a = np.array([5.5, -5.5, 5.5, -5.5, 6, -6, 0, 3, np.nan, np.inf, -np.inf, np.inf, 7, -2, 2, -7, -2**-26, 2**-26],
                 np.float32)
    b = np.array([2, 2, -2, -2, 3, 3, 2, 0, 0, 0, 2, -2, np.inf, np.inf, -np.inf, -np.inf, 3, -3], np.float32)
    want = np.array([1.5, 0.5, -0.5, -1.5, 0, 0, 0, 0, 0, 0, np.nan, np.nan, 7, np.inf, -np.inf, -7, 3, -3],
                    np.float32)
    got_mx = mx.nd.broadcast_mod(mx.nd.array(a), mx.nd.array(b)).asnumpy()
    assert np.array_equal(got_mx, want, equal_nan=True), got_mx  # MXNet's rule, pinned
    if precision == "fp16":  # +-2^-26 underflow in fp16: their rows are for the fp32 engine
        a, b, want = a[:-2], b[:-2], want[:-2]
    c = check_op("_mod", [a, b], precision=precision, rtol=0.0)
    (got,) = run_symbol(c.symbol, {"x0": a, "x1": b})
    assert np.array_equal(got, want, equal_nan=True), got


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_mod_scalar_of_indices_is_exact(precision):
    """idx mod W for argmax indices (pose decoding): exact integers, in an fp16 engine too (every index < 2048)."""
    x = np.arange(0, 2048, 7, dtype=np.float32).reshape(1, -1)
    c = check_op("_mod_scalar", [x], {"scalar": 24}, precision=precision, rtol=0.0)
    (got,) = run_symbol(c.symbol, {"x0": x})
    assert np.array_equal(got, x % 24)


def test_mod_scalar_keeps_a_float32_scalar_in_fp16():
    """An fp16 engine holds the scalar in float32, as MXNet's float32 kernel does: 100.25 mod 0.1 is 0.05, while the
    fp16-rounded 0.0999756 would give 0.0745."""
    x = np.array([100.25, -3.125, 0.375], np.float32)  # quotients 1002.5, -31.25, 3.75: far from integers
    check_op("_mod_scalar", [x], {"scalar": 0.1}, precision="fp16", rtol=1e-3)


@pytest.mark.parametrize("op, scalar", [("_mod_scalar", 0.1), ("_plus_scalar", 0.1), ("_greater_scalar", 0.1)])
def test_scalar_takes_the_float16_inputs_dtype(op, scalar):
    """On a float16 MXNet tensor the scalar is first rounded to float16 (0.1 -> 0.0999755859375), as MXNet's kernel
    casts it to the tensor's dtype; an fp32 engine must do the same."""
    x = np.array([1.0, 2.0, 0.5, 3.0, 0.7, 0.0999755859375], np.float16)
    check_op(op, [x], {"scalar": scalar}, rtol=1e-3)
