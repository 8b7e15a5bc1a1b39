"""Reduction converters: sum/mean/max/min/prod/nansum/nanprod (and the *_axis aliases), norm, argmax/argmin."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional

import numpy as np

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import NoAttrs, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, converter

EW = trt.ElementWiseOperation
R = trt.ReduceOperation


def _reduced_axes(rank: int, axis: tuple[int, ...] | None, exclude: bool) -> tuple[int, ...]:
    """The axes MXNet reduces: all for axis None or (), with or without exclude; else `axis` (negative counted from
    the end), or with exclude=True every other axis (possibly none)."""
    if not axis:
        return tuple(range(rank))
    picked = {a % rank for a in axis}
    return tuple(a for a in range(rank) if (a in picked) != exclude)


def _axes_ok(node: OpNode) -> str | None:
    """Refuses axes out of range or repeated (MXNet's own shape inference fails on them)."""
    rank, axis = node.inputs[0].ndim, node.attrs.axis
    if axis is None:
        return None
    if any(not -rank <= a < rank for a in axis):
        return f"{node.where()}: axis {axis} is out of range for rank {rank}"
    if len({a % rank for a in axis}) != len(axis):
        return f"{node.where()}: axis {axis} repeats an axis"
    return None


def _reduce_to(ctx: ConversionContext, node: OpNode, x: Any, op: Any, axes: tuple[int, ...]) -> Any:
    """IReduceLayer over `axes` keeping them, then reshaped to MXNet's output shape (which is (1,), not 0-d, when
    everything is reduced without keepdims); no axes: the input itself."""
    y = layers.reduce(ctx, x, op, axes, keep_dims=True) if axes else ctx.identity(x)
    out = node.outputs[0]
    return y if tuple(y.shape) == (out.dims or out.shape) else layers.reshape_as(
        ctx, y, layers.kept(node.inputs[0], axes), out)


@schema
class ReduceAttrs:
    axis: Optional[tuple[int, ...]] = None
    keepdims: bool = False
    exclude: bool = False


_REDUCE = {"sum": R.SUM, "mean": R.AVG, "max": R.MAX, "min": R.MIN, "prod": R.PROD, "nansum": R.SUM, "nanprod": R.PROD}
_ALIASES = {"sum_axis": "sum", "max_axis": "max", "min_axis": "min"}


@converter(*_REDUCE, *_ALIASES, attrs=ReduceAttrs, validator=_axes_ok)
def convert_reduce(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """sum/mean/max/min/prod (sum_axis, max_axis, min_axis) -> IReduceLayer SUM/AVG/MAX/MIN/PROD (+ a reshape to
    MXNet's shape); nansum/nanprod first replace NaN by 0/1 (IUnaryLayer ISNAN + ISelectLayer)."""
    a, op = node.attrs, _ALIASES.get(node.op, node.op)
    x = ctx.tensor(inputs[0])
    if op in ("nansum", "nanprod"):
        x = layers.select(ctx, layers.unary(ctx, x, trt.UnaryOperation.ISNAN), 0.0 if op == "nansum" else 1.0, x)
    return [_reduce_to(ctx, node, x, _REDUCE[op], _reduced_axes(len(x.shape), a.axis, a.exclude))]


@schema
class NormAttrs:
    ord: int = 2
    axis: Optional[tuple[int, ...]] = None
    out_dtype: Optional[Literal["float16", "float32", "float64", "int32", "int64", "int8"]] = None
    keepdims: bool = False


def _norm_ok(node: OpNode) -> str | None:
    """Refuses ord other than 1 and 2 and an out_dtype other than the input's (MXNet 1.9.1 itself fails on those)."""
    a = node.attrs
    if a.ord not in (1, 2):
        return f"{node.where()}: ord={a.ord} is not supported (MXNet supports ord 1 and 2)"
    if a.out_dtype is not None and np.dtype(a.out_dtype) != node.inputs[0].dtype:
        return f"{node.where()}: out_dtype {a.out_dtype} differs from the input dtype {node.inputs[0].dtype}"
    return _axes_ok(node)


@converter("norm", attrs=NormAttrs, validator=_norm_ok)
def convert_norm(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """norm -> ord 1: IUnaryLayer ABS + IReduceLayer SUM; ord 2: SQRT of IReduceLayer SUM of squares (in fp16 x is
    first divided by max|x| clipped to [fp16 tiny, fp16 max], so squares do not overflow above 256, then multiplied
    back)."""
    a = node.attrs
    x = ctx.tensor(inputs[0])
    axes = _reduced_axes(len(x.shape), a.axis, False)
    ax = layers.unary(ctx, x, trt.UnaryOperation.ABS)
    if a.ord == 1:
        return [_reduce_to(ctx, node, ax, R.SUM, axes)]
    scale = None
    if ctx.dtype == np.float16:
        fp16 = np.finfo(np.float16)
        scale = layers.activation(ctx, layers.reduce(ctx, ax, R.MAX, axes), trt.ActivationType.CLIP,
                                  float(fp16.tiny), float(fp16.max))
        x = layers.elementwise(ctx, x, scale, EW.DIV)
    sq = layers.elementwise(ctx, x, x, EW.PROD)
    y = layers.unary(ctx, layers.reduce(ctx, sq, R.SUM, axes, keep_dims=True), trt.UnaryOperation.SQRT)
    if scale is not None:
        y = layers.elementwise(ctx, y, scale, EW.PROD)
    out = node.outputs[0]
    return [y if tuple(y.shape) == (out.dims or out.shape) else layers.reshape_as(
        ctx, y, layers.kept(node.inputs[0], axes), out)]


@schema
class ArgAttrs:
    axis: Optional[int] = None
    keepdims: bool = False


def _arg_ok(node: OpNode) -> str | None:
    """Refuses an axis out of range."""
    rank, axis = node.inputs[0].ndim, node.attrs.axis
    if axis is not None and not -rank <= axis < rank:
        return f"{node.where()}: axis {axis} is out of range for rank {rank}"
    return None


def _arg_index(ctx: ConversionContext, node: OpNode, x: Any, largest: bool, axis: int) -> Any:
    """Index of the max (min) along `axis` from ITopKLayer k=1, cast to the engine dtype, in MXNet's output shape."""
    n = int(x.shape[axis]) if x.shape[axis] >= 0 else max(math.prod(p) for p in node.inputs[0].points) \
        if node.attrs.axis is None else layers.largest(node.inputs[0], axis)  # varying: its largest size
    if ctx.exact_int is not None and n > ctx.exact_int:  # fp16: 2048, bf16: 256
        ctx.fail(f"{n} positions along axis {axis}: {ctx.precision} holds indices above {ctx.exact_int} inexactly",
                 needs_fp32=True)
    _, idx = layers.topk(ctx, x, largest, 1, axis)
    src = layers.kept(node.inputs[0], [axis]) if len(x.shape) == node.inputs[0].ndim else node.inputs[0]
    return layers.reshape_as(ctx, ctx.cast(idx, ctx.dtype), src, node.outputs[0])


@converter("argmax", "argmin", attrs=ArgAttrs, validator=_arg_ok)
def convert_argmax(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """argmax/argmin -> ITopKLayer MAX/MIN with k=1 (axis None: over the flattened input), its int32 index output
    cast to the engine dtype (MXNet returns float indices) and reshaped to MXNet's shape."""
    axis, x = node.attrs.axis, ctx.tensor(inputs[0])
    if axis is None:
        axis, x = 0, ctx.reshape(x, (-1,))
    return [_arg_index(ctx, node, x, node.op == "argmax", axis)]


@converter("argmax_channel", attrs=NoAttrs)
def convert_argmax_channel(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """argmax_channel (MXNet: argmax over axis 1) -> ITopKLayer MAX with k=1, int32 indices cast to the engine dtype."""
    return [_arg_index(ctx, node, ctx.tensor(inputs[0]), True, 1)]
