"""Elementwise converters: arithmetic, comparison and logic (elemwise_*, broadcast_*, _*_scalar), where, add_n and
unary math."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from mx2trt import layers
from mx2trt._trt import np_dtype, trt
from mx2trt.attrs import NoAttrs, attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import DATA_DTYPES, INT_DTYPES, OpNode, converter

EW = trt.ElementWiseOperation

# MXNet binary op -> TensorRT elementwise operation. elemwise_* need equal shapes, broadcast_* broadcast like numpy;
# both are one IElementWiseLayer once ranks are equalised.
_BINARY = {
    "elemwise_add": EW.SUM, "elemwise_sub": EW.SUB, "elemwise_mul": EW.PROD, "elemwise_div": EW.DIV,
    "_plus": EW.SUM, "_minus": EW.SUB, "_mul": EW.PROD, "_div": EW.DIV,
    "broadcast_add": EW.SUM, "broadcast_sub": EW.SUB, "broadcast_mul": EW.PROD, "broadcast_div": EW.DIV,
    "broadcast_plus": EW.SUM, "broadcast_minus": EW.SUB,
    "broadcast_maximum": EW.MAX, "broadcast_minimum": EW.MIN, "broadcast_power": EW.POW,
    "_maximum": EW.MAX, "_minimum": EW.MIN, "_power": EW.POW,
}


def _int_arith_ok(node: OpNode) -> str | None:
    """Integer operands for everything but power (MXNet's integer power is exact; TensorRT's integer POW is not
    checked against it)."""
    if node.inputs[0].dtype in INT_DTYPES:
        op = _BINARY[node.op] if node.op in _BINARY else _SCALAR[node.op][0]
        if op == EW.POW:
            return f"{node.where()}: {node.inputs[0].dtype.name} power is not supported"
    return None


def _divisor(ctx: ConversionContext, b: Any) -> Any:
    """An integer divisor with 0 read as 1: MXNet's own integer division by zero dies of SIGFPE, and a GPU's is
    undefined."""
    return layers.select(ctx, layers.elementwise(ctx, b, 0, EW.EQUAL), 1, b)


def int_divide(ctx: ConversionContext, a: Any, b: Any) -> Any:
    """a / b on int32/int64 truncated toward zero, as C++ (MXNet's kernel) divides: FLOOR_DIV (documented to floor;
    TensorRT's integer DIV rounding is not), plus 1 where the remainder is nonzero and a, b differ in sign."""
    b = _divisor(ctx, b)
    q = layers.elementwise(ctx, a, b, EW.FLOOR_DIV)
    r = layers.elementwise(ctx, a, layers.elementwise(ctx, q, b, EW.PROD), EW.SUB)
    signs = layers.elementwise(ctx, layers.elementwise(ctx, a, 0, EW.LESS), layers.elementwise(ctx, b, 0, EW.LESS),
                               EW.XOR)
    up = layers.elementwise(ctx, layers.nonzero(ctx, r), signs, EW.AND)
    return layers.select(ctx, up, layers.elementwise(ctx, q, 1, EW.SUM), q)


def int_mod(ctx: ConversionContext, a: Any, b: Any) -> Any:
    """MXNet's a mod b on int32/int64 (the divisor's sign, 0 for a zero divisor): a - b * FLOOR_DIV(a, b), exact
    (MXNet goes through double, so int64 beyond 2**53 may differ there)."""
    safe = _divisor(ctx, b)
    q = layers.elementwise(ctx, a, safe, EW.FLOOR_DIV)
    r = layers.elementwise(ctx, a, layers.elementwise(ctx, q, safe, EW.PROD), EW.SUB)
    return layers.select(ctx, layers.elementwise(ctx, b, 0, EW.EQUAL), 0, r)


def _int_tensors(ctx: ConversionContext, node: OpNode, a: Any, b: Any) -> tuple[Any, Any]:
    """Both operands as tensors of the node's integer dtype (a parameter becomes a constant once)."""
    return ctx.tensor(a, dtype=node.inputs[0].dtype), ctx.tensor(b, dtype=node.inputs[0].dtype)


@converter(*_BINARY, attrs=NoAttrs, validator=_int_arith_ok, dtypes=DATA_DTYPES)
def convert_binary(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """elemwise_* / broadcast_* / _plus etc. -> IElementWiseLayer (ranks equalised with leading 1s); integer
    division truncates toward zero (int_divide)."""
    op = _BINARY[node.op]
    if op == EW.DIV and node.inputs[0].dtype in INT_DTYPES:
        return [int_divide(ctx, *_int_tensors(ctx, node, inputs[0], inputs[1]))]
    return [layers.elementwise(ctx, inputs[0], inputs[1], op)]


@schema
class ScalarAttrs:
    scalar: float = 1.0
    is_int: bool = True


def _scalar(node: OpNode) -> float:
    """The scalar as MXNet's kernel uses it: cast to the input's dtype (rounded to float16, truncated for int32)."""
    return float(node.inputs[0].dtype.type(node.attrs.scalar))


# op -> (TensorRT operation, scalar on the left?)
_SCALAR = {
    "_plus_scalar": (EW.SUM, False), "_minus_scalar": (EW.SUB, False), "_rminus_scalar": (EW.SUB, True),
    "_mul_scalar": (EW.PROD, False), "_div_scalar": (EW.DIV, False), "_rdiv_scalar": (EW.DIV, True),
    "_maximum_scalar": (EW.MAX, False), "_minimum_scalar": (EW.MIN, False),
    "_power_scalar": (EW.POW, False), "_rpower_scalar": (EW.POW, True),
}


@converter(*_SCALAR, attrs=ScalarAttrs, validator=_int_arith_ok, dtypes=DATA_DTYPES)
def convert_scalar(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """x <op> scalar (or scalar <op> x for _r*_scalar) -> IElementWiseLayer with a broadcast constant in x's dtype
    (for integers, the scalar truncated toward zero, as MXNet casts it, and division as int_divide)."""
    op, reverse = _SCALAR[node.op]
    x = ctx.tensor(inputs[0])
    c = ctx.constant(_scalar(node), shape=(1,) * len(x.shape), dtype=np_dtype(x.dtype))
    a, b = (c, x) if reverse else (x, c)
    if op == EW.DIV and node.inputs[0].dtype in INT_DTYPES:
        if reverse:  # MXNet's rdiv goes through float32 (mshadow's math::id) and truncates back
            f32 = np.dtype(np.float32)
            q = layers.elementwise(ctx, ctx.cast(a, f32), ctx.cast(b, f32), EW.DIV)
            return [ctx.cast(layers.trunc(ctx, q), np_dtype(x.dtype))]
        return [int_divide(ctx, a, b)]
    return [ctx.net.add_elementwise(a, b, op).get_output(0)]


# ---- mod ------------------------------------------------------------------------------------------------------------
# MXNet 1.9.1's mod (mshadow_op::mod) is floor mod, as Python's %: the result takes the divisor's sign (-5.5 mod 2 =
# 0.5, 5.5 mod -2 = -0.5); it is computed exactly in double (fmod) and rounded once. A zero divisor gives 0, whatever
# the dividend (NaN and inf included); an infinite dividend or a NaN operand gives NaN; an infinite divisor gives the
# dividend when their signs agree, else the divisor (-2 mod inf = inf). There is no elemwise_mod in MXNet 1.9.1.


def floor_mod(ctx: ConversionContext, a: Any, b: Any) -> Any:
    """MXNet's a mod b in float32 (numpy broadcasting; an fp16 engine casts in and out). r = a - b * q with
    q = FLOOR(a / b) (r = a where q == 0, so that an infinite b gives a, not inf * 0), then moved into b's range,
    since a quotient rounded across an integer leaves r one b off: r + b where r and b differ in sign; where |r| >= |b|,
    a - b * (q + 1) unless that differs in sign from b (then r already is MXNet's result rounded up to b itself, as in
    -1e-8 mod 3 = 3); 0 where b == 0."""
    f32 = np.dtype(np.float32)
    U = trt.UnaryOperation
    a, b = (ctx.cast(ctx.tensor(v, dtype=f32), f32) for v in (a, b))
    sign, size = layers.unary(ctx, b, U.SIGN), layers.unary(ctx, b, U.ABS)

    def rest(quotient: Any) -> tuple[Any, Any]:  # a - b * quotient, and that value measured in b's direction
        r = layers.elementwise(ctx, a, layers.elementwise(ctx, b, quotient, EW.PROD), EW.SUB)
        return r, layers.elementwise(ctx, r, sign, EW.PROD)

    q = layers.unary(ctx, layers.elementwise(ctx, a, b, EW.DIV), U.FLOOR)
    r, along = rest(q)
    whole = layers.elementwise(ctx, q, 0.0, EW.EQUAL)
    r = layers.select(ctx, whole, a, r)
    along = layers.select(ctx, whole, layers.elementwise(ctx, a, sign, EW.PROD), along)
    up, up_along = rest(layers.elementwise(ctx, q, 1.0, EW.SUM))
    over = layers.select(ctx, layers.elementwise(ctx, up_along, 0.0, EW.LESS), r, up)  # NaN stays NaN
    r = layers.select(
        ctx, layers.elementwise(ctx, along, 0.0, EW.LESS), layers.elementwise(ctx, r, b, EW.SUM),
        layers.select(ctx, layers.elementwise(ctx, along, size, EW.LESS), r, over))
    r = layers.select(ctx, layers.elementwise(ctx, b, 0.0, EW.EQUAL), 0.0, r)
    return ctx.cast(r, ctx.dtype)


@converter("_mod", "broadcast_mod", attrs=NoAttrs, dtypes=DATA_DTYPES)
def convert_mod(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_mod / broadcast_mod (floor mod: the divisor's sign; 0 for a zero divisor) -> in float32, FLOOR(a / b) and
    a - b * quotient (IUnaryLayer, IElementWiseLayer), fixed up by ISelectLayers (result into b's range, 0 where
    b == 0). Matches MXNet while |a / b| < 2**24: MXNet works in double, and float32 cannot hold b * quotient
    exactly beyond that (e.g. 123456792 mod 7). Integers: int_mod."""
    if node.inputs[0].dtype in INT_DTYPES:
        return [int_mod(ctx, *_int_tensors(ctx, node, inputs[0], inputs[1]))]
    return [floor_mod(ctx, inputs[0], inputs[1])]


@converter("_mod_scalar", "_rmod_scalar", attrs=ScalarAttrs, dtypes=DATA_DTYPES)
def convert_mod_scalar(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_mod_scalar (x mod scalar) / _rmod_scalar (scalar mod x) -> as _mod, with the scalar cast to x's dtype as MXNet
    does, then held as a float32 constant (so an fp16 engine keeps a float32 graph's scalar exactly); integers in
    their own dtype (int_mod)."""
    x = ctx.tensor(inputs[0])
    dtype = node.inputs[0].dtype
    c = np.full((1,) * len(x.shape), _scalar(node), dtype if dtype in INT_DTYPES else np.float32)
    a, b = (c, x) if node.op == "_rmod_scalar" else (x, c)
    return [int_mod(ctx, *_int_tensors(ctx, node, a, b)) if dtype in INT_DTYPES else floor_mod(ctx, a, b)]


# ---- comparisons and logic: MXNet gives 0/1 in the input dtype -------------------------------------------------------
# IElementWiseLayer EQUAL/GREATER/LESS give BOOL; >= and <= are OR(GREATER|LESS, EQUAL) so that NaN compares false as
# in MXNet; the logical ops read a number as true when it is nonzero (NaN included). The BOOL result is cast back.


def _logical(op: Any) -> Any:
    return lambda ctx, a, b: layers.elementwise(ctx, layers.nonzero(ctx, a), layers.nonzero(ctx, b), op)


_PREDICATES = {
    "equal": lambda ctx, a, b: layers.elementwise(ctx, a, b, EW.EQUAL),
    "not_equal": lambda ctx, a, b: layers.unary(ctx, layers.elementwise(ctx, a, b, EW.EQUAL), trt.UnaryOperation.NOT),
    "greater": lambda ctx, a, b: layers.elementwise(ctx, a, b, EW.GREATER),
    "greater_equal": lambda ctx, a, b: layers.elementwise(
        ctx, layers.elementwise(ctx, a, b, EW.GREATER), layers.elementwise(ctx, a, b, EW.EQUAL), EW.OR),
    "lesser": lambda ctx, a, b: layers.elementwise(ctx, a, b, EW.LESS),
    "lesser_equal": lambda ctx, a, b: layers.elementwise(
        ctx, layers.elementwise(ctx, a, b, EW.LESS), layers.elementwise(ctx, a, b, EW.EQUAL), EW.OR),
    "logical_and": _logical(EW.AND),
    "logical_or": _logical(EW.OR),
    "logical_xor": _logical(EW.XOR),
}
_COMPARISONS = ("equal", "not_equal", "greater", "greater_equal", "lesser", "lesser_equal")
_LOGICAL = ("logical_and", "logical_or", "logical_xor")
# op -> predicate: broadcast_<p> broadcast like numpy, _<p> need equal shapes, _<p>_scalar compare with `scalar`.
_BINARY_PREDICATES = {
    **{f"broadcast_{p}": p for p in _COMPARISONS + _LOGICAL},
    **{f"_{p}": p for p in _COMPARISONS + _LOGICAL},
}
_SCALAR_PREDICATES = {f"_{p}_scalar": p for p in _COMPARISONS + _LOGICAL}


@converter(*_BINARY_PREDICATES, attrs=NoAttrs, dtypes=DATA_DTYPES)
def convert_binary_predicate(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """broadcast_equal/_greater_equal/broadcast_logical_and etc. -> IElementWiseLayer EQUAL/GREATER/LESS (>=, <= as
    OR with EQUAL; logical ops AND/OR/XOR of x != 0) -> BOOL, cast to the input's dtype (0/1)."""
    b = _PREDICATES[_BINARY_PREDICATES[node.op]](ctx, inputs[0], inputs[1])
    return [ctx.cast(b, ctx.out_dtype(node))]


@converter(*_SCALAR_PREDICATES, attrs=ScalarAttrs, dtypes=DATA_DTYPES)
def convert_scalar_predicate(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_equal_scalar/_greater_scalar/_logical_and_scalar etc. -> the predicate against a broadcast constant -> BOOL,
    cast to the input's dtype (0/1)."""
    p, scalar = _SCALAR_PREDICATES[node.op], _scalar(node)
    if p in _LOGICAL:  # only the scalar's truth matters; decided here, since fp16 could round a tiny scalar to 0
        scalar = 1.0 if scalar != 0 else 0.0
    return [ctx.cast(_PREDICATES[p](ctx, ctx.tensor(inputs[0]), scalar), ctx.out_dtype(node))]


@converter("logical_not", attrs=NoAttrs, dtypes=DATA_DTYPES)
def convert_logical_not(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """logical_not -> IElementWiseLayer EQUAL with 0 -> BOOL, cast to the input's dtype (NaN gives 0, as in MXNet)."""
    return [ctx.cast(layers.elementwise(ctx, inputs[0], 0.0, EW.EQUAL), ctx.out_dtype(node))]


# ---- where, add_n ----------------------------------------------------------------------------------------------------


@converter("where", attrs=NoAttrs, dtypes=DATA_DTYPES)
def convert_where(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """where -> ISelectLayer on condition != 0 (NaN is true); a 1-D condition over axis 0 is reshaped to broadcast."""
    cond, x, y = (ctx.tensor(t) for t in inputs)
    rank = len(x.shape)
    if len(cond.shape) < rank:  # MXNet: a condition of shape (x.shape[0],) picks whole rows
        cond = ctx.reshape(cond, tuple(cond.shape) + (1,) * (rank - len(cond.shape)))
    return [layers.select(ctx, layers.nonzero(ctx, cond), x, y)]


@schema
class AddNAttrs:
    num_args: int = attr(1, ignored=True)  # always the number of inputs (MXNet does not declare it as a parameter)


@converter("add_n", "ElementWiseSum", attrs=AddNAttrs, dtypes=DATA_DTYPES)
def convert_add_n(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """add_n / ElementWiseSum -> a chain of IElementWiseLayer SUM (one input: an IIdentityLayer)."""
    out = ctx.identity(inputs[0]) if len(inputs) == 1 else inputs[0]
    for x in inputs[1:]:
        out = layers.elementwise(ctx, out, x, EW.SUM)
    return [out]


# ---- unary math ----------------------------------------------------------------------------------------------------

U = trt.UnaryOperation

# MXNet op -> IUnaryLayer operation with the same definition.
_UNARY = {
    "abs": U.ABS, "negative": U.NEG, "exp": U.EXP, "log": U.LOG, "sqrt": U.SQRT, "reciprocal": U.RECIP,
    "floor": U.FLOOR, "ceil": U.CEIL, "sin": U.SIN, "cos": U.COS, "tan": U.TAN, "arcsin": U.ASIN, "arccos": U.ACOS,
    "arctan": U.ATAN, "sinh": U.SINH, "cosh": U.COSH, "arcsinh": U.ASINH, "arccosh": U.ACOSH, "arctanh": U.ATANH,
    "erf": U.ERF,
}


@converter(*_UNARY, attrs=NoAttrs)
def convert_unary(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """abs/negative/exp/log/sqrt/reciprocal/floor/ceil/trig/hyperbolic/erf -> IUnaryLayer."""
    return [layers.unary(ctx, inputs[0], _UNARY[node.op])]


# MXNet op -> (IUnaryLayer operation or None, then a constant factor).
_SCALED = {
    "log2": (U.LOG, 1.0 / math.log(2.0)), "log10": (U.LOG, 1.0 / math.log(10.0)),
    "degrees": (None, 180.0 / math.pi), "radians": (None, math.pi / 180.0),
}


@converter(*_SCALED, attrs=NoAttrs)
def convert_scaled(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """log2/log10 -> IUnaryLayer LOG times 1/ln(base); degrees/radians -> IElementWiseLayer PROD by 180/pi or pi/180."""
    op, factor = _SCALED[node.op]
    x = inputs[0] if op is None else layers.unary(ctx, inputs[0], op)
    return [layers.elementwise(ctx, x, factor, EW.PROD)]


@converter("square", attrs=NoAttrs)
def convert_square(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """square -> IElementWiseLayer PROD of x with itself."""
    x = ctx.tensor(inputs[0])
    return [layers.elementwise(ctx, x, x, EW.PROD)]


@converter("rsqrt", "rcbrt", "cbrt", attrs=NoAttrs)
def convert_root(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """rsqrt -> IUnaryLayer SQRT + RECIP; cbrt -> |x| POW 1/3 times SIGN(x) (elementwise); rcbrt -> RECIP of that."""
    x = ctx.tensor(inputs[0])
    if node.op == "rsqrt":
        return [layers.unary(ctx, layers.unary(ctx, x, U.SQRT), U.RECIP)]
    root = layers.elementwise(ctx, layers.unary(ctx, x, U.ABS), 1.0 / 3.0, EW.POW)
    root = layers.elementwise(ctx, root, layers.unary(ctx, x, U.SIGN), EW.PROD)
    return [layers.unary(ctx, root, U.RECIP) if node.op == "rcbrt" else root]


@converter("expm1", attrs=NoAttrs)
def convert_expm1(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """expm1 -> for |x| < 0.5 the exact identity 2t / (1 - t) with t = TANH(x / 2) (no cancellation near 0), else
    EXP(x) - 1; chosen by an ISelectLayer."""
    x = ctx.tensor(inputs[0])
    t = layers.activation(ctx, layers.elementwise(ctx, x, 0.5, EW.PROD), trt.ActivationType.TANH)
    small = layers.elementwise(ctx, layers.elementwise(ctx, t, 2.0, EW.PROD),
                               layers.elementwise(ctx, 1.0, t, EW.SUB), EW.DIV)
    large = layers.elementwise(ctx, layers.unary(ctx, x, U.EXP), 1.0, EW.SUB)
    return [layers.select(ctx, layers.elementwise(ctx, layers.unary(ctx, x, U.ABS), 0.5, EW.LESS), small, large)]


@converter("log1p", attrs=NoAttrs)
def convert_log1p(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """log1p -> for |x| < 0.5 the exact identity 2 ATANH(x / (2 + x)) (no cancellation near 0), else LOG(1 + x);
    chosen by an ISelectLayer."""
    x = ctx.tensor(inputs[0])
    z = layers.elementwise(ctx, x, layers.elementwise(ctx, x, 2.0, EW.SUM), EW.DIV)
    small = layers.elementwise(ctx, layers.unary(ctx, z, U.ATANH), 2.0, EW.PROD)
    large = layers.unary(ctx, layers.elementwise(ctx, x, 1.0, EW.SUM), U.LOG)
    return [layers.select(ctx, layers.elementwise(ctx, layers.unary(ctx, x, U.ABS), 0.5, EW.LESS), small, large)]


@converter("sign", attrs=NoAttrs)
def convert_sign(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """sign -> (x > 0) - (x < 0): two IElementWiseLayer comparisons cast to the engine dtype and subtracted (NaN gives
    0 as in MXNet, where IUnaryLayer SIGN would give NaN)."""
    x = ctx.tensor(inputs[0])
    pos = ctx.cast(layers.elementwise(ctx, x, 0.0, EW.GREATER), ctx.dtype)
    neg = ctx.cast(layers.elementwise(ctx, x, 0.0, EW.LESS), ctx.dtype)
    return [layers.elementwise(ctx, pos, neg, EW.SUB)]


@converter("trunc", "fix", attrs=NoAttrs)
def convert_trunc(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """trunc/fix (round toward zero) -> ISelectLayer of IUnaryLayer CEIL where x < 0, else FLOOR."""
    return [layers.trunc(ctx, inputs[0])]


@converter("round", attrs=NoAttrs)
def convert_round(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """round (halves away from zero; TensorRT's ROUND goes to even) -> f = FLOOR(|x|), then f + 1 where |x| - f >= 0.5
    (ISelectLayer; the difference is exact), times SIGN(x)."""
    x = ctx.tensor(inputs[0])
    a = layers.unary(ctx, x, U.ABS)
    f = layers.unary(ctx, a, U.FLOOR)
    below = layers.elementwise(ctx, layers.elementwise(ctx, a, f, EW.SUB), 0.5, EW.LESS)
    r = layers.select(ctx, below, f, layers.elementwise(ctx, f, 1.0, EW.SUM))
    return [layers.elementwise(ctx, r, layers.unary(ctx, x, U.SIGN), EW.PROD)]


@converter("rint", attrs=NoAttrs)
def convert_rint(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """rint (MXNet 1.9.1 rounds halves DOWN: rint(2.5) = 2, rint(-2.5) = -3) -> f = FLOOR(x), then CEIL(x) where
    x - f > 0.5 (ISelectLayer; the difference is exact)."""
    x = ctx.tensor(inputs[0])
    f = layers.unary(ctx, x, U.FLOOR)
    above = layers.elementwise(ctx, layers.elementwise(ctx, x, f, EW.SUB), 0.5, EW.GREATER)
    return [layers.select(ctx, above, layers.unary(ctx, x, U.CEIL), f)]
