"""Elementwise arithmetic converters: elemwise_*, broadcast_* and the _*_scalar family."""
from __future__ import annotations

from typing import Any

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import NoAttrs, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, converter

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


@converter(*_BINARY, attrs=NoAttrs)
def convert_binary(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """elemwise_* / broadcast_* / _plus etc. -> IElementWiseLayer (ranks equalised with leading 1s)."""
    return [layers.elementwise(ctx, inputs[0], inputs[1], _BINARY[node.op])]


@schema
class ScalarAttrs:
    scalar: float = 1.0
    is_int: bool = True


# op -> (TensorRT operation, scalar on the left?)
_SCALAR = {
    "_plus_scalar": (EW.SUM, False), "_minus_scalar": (EW.SUB, False), "_rminus_scalar": (EW.SUB, True),
    "_mul_scalar": (EW.PROD, False), "_div_scalar": (EW.DIV, False), "_rdiv_scalar": (EW.DIV, True),
    "_maximum_scalar": (EW.MAX, False), "_minimum_scalar": (EW.MIN, False),
    "_power_scalar": (EW.POW, False), "_rpower_scalar": (EW.POW, True),
}


@converter(*_SCALAR, attrs=ScalarAttrs)
def convert_scalar(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """x <op> scalar (or scalar <op> x for _r*_scalar) -> IElementWiseLayer with a broadcast constant."""
    op, reverse = _SCALAR[node.op]
    x = ctx.tensor(inputs[0])
    c = ctx.constant(node.attrs.scalar, shape=(1,) * len(x.shape))
    a, b = (c, x) if reverse else (x, c)
    return [ctx.net.add_elementwise(a, b, op).get_output(0)]
