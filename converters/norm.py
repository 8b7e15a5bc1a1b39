"""Normalisation converters: BatchNorm (inference form), InstanceNorm, LayerNorm, GroupNorm, L2Normalization, LRN."""
from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, all_of, const_inputs, converter


@schema
class BatchNormAttrs:
    eps: float = 0.0010000000474974513
    fix_gamma: bool = True
    axis: int = 1
    output_mean_var: bool = False
    use_global_stats: bool = attr(False, ignored=True)  # inference always uses the moving statistics
    momentum: float = attr(0.9, ignored=True)
    cudnn_off: bool = attr(False, ignored=True)
    min_calib_range: Optional[float] = attr(None, ignored=True)
    max_calib_range: Optional[float] = attr(None, ignored=True)


def _bn_ok(node: OpNode) -> str | None:
    """Refuses output_mean_var=True (batch statistics) and an axis out of range."""
    a, rank = node.attrs, node.inputs[0].ndim
    if a.output_mean_var:
        return f"{node.where()}: output_mean_var=True is not supported (its extra outputs are batch statistics)"
    if rank < 2:
        return f"{node.where()}: input rank {rank} is not supported"
    if not -rank <= a.axis < rank:
        return f"{node.where()}: axis {a.axis} is out of range for rank {rank}"
    return None


@converter("BatchNorm", attrs=BatchNormAttrs, validator=all_of(_bn_ok, const_inputs(1, 2, 3, 4, what="gamma/beta/moving stats")))
def convert_batch_norm(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """BatchNorm -> one IScaleLayer (CHANNEL) with gamma/sqrt(var+eps) and beta-mean*scale folded in float64."""
    a = node.attrs
    x, gamma, beta, mean, var = ctx.tensor(inputs[0]), *(np.asarray(v, np.float64) for v in inputs[1:5])
    if a.fix_gamma:  # MXNet ignores gamma (uses 1) when fix_gamma, at inference too
        gamma = np.ones_like(gamma)
    scale = gamma / np.sqrt(var + a.eps)
    shift = beta - mean * scale
    return [layers.channel_affine(ctx, x, scale, shift, a.axis % len(x.shape))]


# ---- statistics over axes: computed in float32 (in an fp16 engine, casts around the layers) ------------------------


def _normalize(ctx: ConversionContext, x: Any, scale: Any, bias: Any, axes: int, eps: float) -> Any:
    """INormalizationLayer over the `axes` bitmask with scale/bias tensors of x's rank, computed in float32: fp16
    sums of squares overflow past 65504."""
    x32 = ctx.cast(x, np.float32)
    s32, b32 = (ctx.cast(v, np.float32) if isinstance(v, trt.ITensor) else ctx.constant(v, dtype=np.float32)
                for v in (scale, bias))
    add = getattr(ctx.net, "add_normalization_v2", None) or ctx.net.add_normalization
    layer = add(x32, s32, b32, axes)
    layer.epsilon = float(eps)
    return ctx.cast(layer.get_output(0), ctx.dtype)


def _along(ctx: ConversionContext, v: Any, rank: int, axis: int) -> Any:
    """A 1-D parameter or tensor reshaped to broadcast along `axis` of a rank-`rank` tensor."""
    shape = tuple(-1 if i == axis else 1 for i in range(rank))
    if isinstance(v, trt.ITensor):
        return ctx.reshape(v, tuple(v.shape[0] if d == -1 else d for d in shape))
    return np.asarray(v).reshape(shape)


def _no_mean_var(node: OpNode) -> str | None:
    """Refuses output_mean_var=True (its extra outputs are the statistics)."""
    if node.attrs.output_mean_var:
        return f"{node.where()}: output_mean_var=True is not supported (its extra outputs are the statistics)"
    return None


@schema
class InstanceNormAttrs:
    eps: float = 0.0010000000474974513


def _spatial_ok(node: OpNode) -> str | None:
    """Rank >= 3 (MXNet's InstanceNorm needs spatial axes)."""
    if node.inputs[0].ndim < 3:
        return f"{node.where()}: input rank {node.inputs[0].ndim} is not supported (InstanceNorm needs rank >= 3)"
    return None


@converter("InstanceNorm", attrs=InstanceNormAttrs, validator=_spatial_ok)
def convert_instance_norm(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """InstanceNorm -> INormalizationLayer over the spatial axes, gamma/beta of shape (1, C, 1, ...)."""
    rank = node.inputs[0].ndim
    x = ctx.tensor(inputs[0])
    gamma, beta = (_along(ctx, v, rank, 1) for v in inputs[1:3])
    return [_normalize(ctx, x, gamma, beta, sum(1 << i for i in range(2, rank)), node.attrs.eps)]


@schema
class LayerNormAttrs:
    axis: int = -1
    eps: float = 9.999999747378752e-06
    output_mean_var: bool = False


def _axis_ok(node: OpNode) -> str | None:
    """axis within the input's rank."""
    rank = node.inputs[0].ndim
    if not -rank <= node.attrs.axis < rank:
        return f"{node.where()}: axis {node.attrs.axis} is out of range for rank {rank}"
    return None


@converter("LayerNorm", attrs=LayerNormAttrs, validator=all_of(_no_mean_var, _axis_ok))
def convert_layer_norm(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """LayerNorm -> INormalizationLayer over `axis`, gamma/beta broadcast along it."""
    rank = node.inputs[0].ndim
    axis = node.attrs.axis % rank
    gamma, beta = (_along(ctx, v, rank, axis) for v in inputs[1:3])
    return [_normalize(ctx, ctx.tensor(inputs[0]), gamma, beta, 1 << axis, node.attrs.eps)]


@schema
class GroupNormAttrs:
    num_groups: int = 1
    eps: float = 9.999999747378752e-06
    output_mean_var: bool = False


def _groups_ok(node: OpNode) -> str | None:
    """Rank >= 3 with num_groups dividing the channels."""
    g, shape = node.attrs.num_groups, node.inputs[0].shape
    if len(shape) < 3:
        return f"{node.where()}: input rank {len(shape)} is not supported (GroupNorm needs rank >= 3)"
    if g < 1 or shape[1] % g:
        return f"{node.where()}: num_groups {g} does not divide {shape[1]} channels"
    return None


@converter("GroupNorm", attrs=GroupNormAttrs, validator=all_of(_no_mean_var, _groups_ok))
def convert_group_norm(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """GroupNorm -> shuffle to (N, G, rest) + INormalizationLayer over rest with MXNet's per-group gamma/beta."""
    shape, g = node.inputs[0].shape, node.attrs.num_groups
    x = ctx.reshape(inputs[0], (shape[0], g, -1))
    gamma, beta = (_along(ctx, v, 3, 1) for v in inputs[1:3])
    y = _normalize(ctx, x, gamma, beta, 1 << 2, node.attrs.eps)
    return [ctx.reshape(y, shape)]


@schema
class L2NormalizationAttrs:
    eps: float = 1.000000013351432e-10
    mode: Literal["channel", "instance", "spatial"] = "instance"


def _l2_ok(node: OpNode) -> str | None:
    """instance: rank >= 2; channel and spatial: rank >= 3."""
    rank, mode = node.inputs[0].ndim, node.attrs.mode
    if rank < (2 if mode == "instance" else 3):
        return f"{node.where()}: input rank {rank} is not supported with mode '{mode}'"
    return None


@converter("L2Normalization", attrs=L2NormalizationAttrs, validator=_l2_ok)
def convert_l2_normalization(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """L2Normalization -> x / sqrt(sum(x^2) + eps) over axes 1.. (instance), 1 (channel) or 2.. (spatial): IReduceLayer
    and IElementWiseLayers in float32."""
    rank, mode = node.inputs[0].ndim, node.attrs.mode
    axes = {"instance": range(1, rank), "channel": [1], "spatial": range(2, rank)}[mode]
    EW = trt.ElementWiseOperation
    x = ctx.cast(ctx.tensor(inputs[0]), np.float32)
    sq = layers.reduce(ctx, layers.elementwise(ctx, x, x, EW.PROD), trt.ReduceOperation.SUM, list(axes))
    eps = ctx.constant(node.attrs.eps, shape=(1,) * rank, dtype=np.float32)
    norm = layers.unary(ctx, layers.elementwise(ctx, sq, eps, EW.SUM), trt.UnaryOperation.SQRT)
    return [ctx.cast(layers.elementwise(ctx, x, norm, EW.DIV), ctx.dtype)]


@schema
class LRNAttrs:
    nsize: int = attr()
    alpha: float = 9.999999747378752e-05
    beta: float = 0.75
    knorm: float = 2.0


def _lrn_ok(node: OpNode) -> str | None:
    """4-D; TensorRT's ranges: odd nsize <= 15, beta in [0.01, 1e5], knorm in [1e-5, 1e10], |alpha| <= 1e20."""
    a, rank = node.attrs, node.inputs[0].ndim
    if rank != 4:
        return f"{node.where()}: input rank {rank} is not supported (4-D only)"
    if a.nsize % 2 == 0 or not 1 <= a.nsize <= 15:
        return f"{node.where()}: nsize {a.nsize} is not supported (TensorRT takes odd windows of 1 to 15)"
    for name, v, lo, hi in (("alpha", a.alpha, -1e20, 1e20), ("beta", a.beta, 0.01, 1e5),
                            ("knorm", a.knorm, 1e-5, 1e10)):
        if not lo <= v <= hi:
            return f"{node.where()}: {name}={v:g} is outside TensorRT's range [{lo:g}, {hi:g}]"
    return None


@converter("LRN", attrs=LRNAttrs, validator=_lrn_ok)
def convert_lrn(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """LRN -> ILRNLayer across channels, x / (knorm + alpha/nsize * window sum of x^2)^beta, in float32."""
    a = node.attrs
    x = ctx.cast(ctx.tensor(inputs[0]), np.float32)
    y = ctx.net.add_lrn(x, a.nsize, a.alpha, a.beta, a.knorm).get_output(0)
    return [ctx.cast(y, ctx.dtype)]
