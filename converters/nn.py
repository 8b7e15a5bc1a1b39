"""Convolution, FullyConnected and Pooling converters."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional

import numpy as np

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, all_of, const_inputs, converter

CudnnTune = Optional[Literal["fastest", "limited_workspace", "off"]]
Layout = Optional[Literal["NCW", "NCHW", "NCDHW", "NWC", "NHWC", "NDHWC"]]
CHANNEL_FIRST = (None, "NCW", "NCHW", "NCDHW")


def _spatial(value: tuple[int, ...], n: int, default: int) -> tuple[int, ...]:
    """MXNet's empty tuple means `default` on every spatial axis."""
    return tuple(value) if value else (default,) * n


def _layout_ok(node: OpNode) -> str | None:
    """Channel-first layouts only (NCW, NCHW, NCDHW)."""
    if node.attrs.layout not in CHANNEL_FIRST:
        return f"{node.where()}: layout {node.attrs.layout} is not supported (channel-first layouts only)"
    return None


# ---- Convolution ---------------------------------------------------------------------------------------------------


@schema
class ConvolutionAttrs:
    kernel: tuple[int, ...] = attr()
    num_filter: int = attr()
    stride: tuple[int, ...] = ()
    dilate: tuple[int, ...] = ()
    pad: tuple[int, ...] = ()
    num_group: int = 1
    no_bias: bool = False
    layout: Layout = None
    workspace: int = attr(1024, ignored=True)
    cudnn_tune: CudnnTune = attr(None, ignored=True)
    cudnn_off: bool = attr(False, ignored=True)


def _conv_ok(node: OpNode) -> str | None:
    """1-D, 2-D or 3-D kernels whose stride/dilate/pad match the kernel's rank."""
    a, k = node.attrs, len(node.attrs.kernel)
    if k not in (1, 2, 3):
        return f"{node.where()}: kernel {a.kernel} must have 1, 2 or 3 dims"
    if node.inputs[0].ndim != k + 2:
        return f"{node.where()}: input rank {node.inputs[0].ndim} does not match kernel {a.kernel}"
    for name in ("stride", "dilate", "pad"):
        v = getattr(a, name)
        if v and len(v) != k:
            return f"{node.where()}: {name}={v} does not match kernel {a.kernel}"
    return None


@converter(
    "Convolution",
    attrs=ConvolutionAttrs,
    validator=all_of(_layout_ok, _conv_ok, const_inputs(1, 2, what="weight/bias")),
)
def convert_convolution(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Convolution -> IConvolutionLayer (1-D runs as 2-D with a unit height)."""
    a = node.attrs
    x, w = ctx.tensor(inputs[0]), inputs[1]
    n = len(a.kernel)
    kernel, stride = a.kernel, _spatial(a.stride, n, 1)
    dilate, pad = _spatial(a.dilate, n, 1), _spatial(a.pad, n, 0)
    if n == 1:  # TensorRT convolves 2-D and 3-D only
        x = ctx.reshape(x, tuple(x.shape[:2]) + (1, x.shape[2]))
        w = np.asarray(w).reshape(w.shape[:2] + (1, w.shape[2]))
        kernel, stride, dilate, pad = (1,) + kernel, (1,) + stride, (1,) + dilate, (0,) + pad
    bias = ctx.weights(inputs[2]) if not a.no_bias else ctx.no_weights()
    conv = ctx.net.add_convolution_nd(x, a.num_filter, kernel, ctx.weights(w), bias)
    conv.stride_nd, conv.dilation_nd, conv.padding_nd = stride, dilate, pad
    conv.num_groups = a.num_group
    y = conv.get_output(0)
    if n == 1:
        y = ctx.reshape(y, node.outputs[0].shape)
    return [y]


# ---- FullyConnected ------------------------------------------------------------------------------------------------


@schema
class FullyConnectedAttrs:
    num_hidden: int = attr()
    no_bias: bool = False
    flatten: bool = True


@converter("FullyConnected", attrs=FullyConnectedAttrs, validator=const_inputs(1, 2, what="weight/bias"))
def convert_fully_connected(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """FullyConnected -> (shuffle to 2-D) + IMatrixMultiplyLayer against W^T + elementwise bias."""
    a = node.attrs
    x = ctx.tensor(inputs[0])
    if a.flatten and len(x.shape) != 2:
        x = layers.flatten2d(ctx, x)
    w = np.asarray(inputs[1]).reshape(a.num_hidden, -1)
    y = layers.matmul(ctx, x, w, transpose_b=True)
    if not a.no_bias:
        y = layers.elementwise(ctx, y, np.asarray(inputs[2]).reshape(a.num_hidden), trt.ElementWiseOperation.SUM)
    return [y]


# ---- Pooling -------------------------------------------------------------------------------------------------------


@schema
class PoolingAttrs:
    kernel: tuple[int, ...] = ()
    pool_type: Literal["avg", "lp", "max", "sum"] = "max"
    global_pool: bool = False
    pooling_convention: Literal["full", "same", "valid"] = "valid"
    stride: tuple[int, ...] = ()
    pad: tuple[int, ...] = ()
    p_value: Optional[int] = None
    count_include_pad: Optional[bool] = None  # None means True
    layout: Layout = None
    cudnn_off: bool = attr(False, ignored=True)


def _pool_geometry(node: OpNode) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(spatial input dims, kernel, stride, pad) with MXNet's defaults (stride 1, pad 0)."""
    a = node.attrs
    dims = node.inputs[0].shape[2:]
    n = len(dims)
    return tuple(dims), tuple(a.kernel), _spatial(a.stride, n, 1), _spatial(a.pad, n, 0)


def _pool_ok(node: OpNode) -> str | None:
    """max/avg (not sum/lp), 2-D/3-D, not convention 'same'; no all-padding windows (pad < kernel); no 3-D full avg with a partial window."""
    a = node.attrs
    if a.pool_type not in ("max", "avg"):
        return f"{node.where()}: pool_type '{a.pool_type}' is not supported (max and avg are)"
    rank = node.inputs[0].ndim
    if rank not in (4, 5):
        return f"{node.where()}: input rank {rank} is not supported (2-D and 3-D pooling only)"
    if a.global_pool:
        return None
    dims, kernel, stride, pad = _pool_geometry(node)
    if len(kernel) != len(dims):
        return f"{node.where()}: kernel {a.kernel} does not match the input's {len(dims)} spatial dims"
    if a.pooling_convention == "same":
        return f"{node.where()}: pooling_convention 'same' is not supported"
    out = node.outputs[0].shape[2:]
    for d, k, s, p, o in zip(dims, kernel, stride, pad, out):
        if p >= k or (o - 1) * s - p >= d:  # MXNet gives -FLT_MAX (max) or 0/0 there; TensorRT refuses or gives -inf
            return f"{node.where()}: pad {a.pad} with kernel {a.kernel} makes windows that hold only padding"
    if a.pool_type == "avg" and a.pooling_convention == "full" and len(dims) == 3:
        if any((d + 2 * p - k) % s for d, k, s, p in zip(dims, kernel, stride, pad)):
            return f"{node.where()}: 3-D average pooling with pooling_convention 'full' and a partial last window"
    return None


def _window_counts(d: int, k: int, s: int, p: int, out: int, include_pad: bool) -> np.ndarray:
    """Per output position, how many elements MXNet divides by along one axis."""
    lo, hi = (-p, d + p) if include_pad else (0, d)
    starts = np.arange(out) * s - p
    return np.minimum(starts + k, hi) - np.maximum(starts, lo)


@converter("Pooling", attrs=PoolingAttrs, validator=all_of(_layout_ok, _pool_ok))
def convert_pooling(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Pooling -> IPoolingLayer (global: IReduceLayer; 'full' average: explicit padding + a count correction)."""
    a = node.attrs
    x = ctx.tensor(inputs[0])
    rank = len(x.shape)
    is_max = a.pool_type == "max"
    if a.global_pool:
        op = trt.ReduceOperation.MAX if is_max else trt.ReduceOperation.AVG
        axes = sum(1 << i for i in range(2, rank))
        return [ctx.net.add_reduce(x, op, axes, True).get_output(0)]
    dims, kernel, stride, pad = _pool_geometry(node)
    out = node.outputs[0].shape[2:]
    include_pad = a.count_include_pad is not False
    # MXNet's 'full' convention is TensorRT's EXPLICIT_ROUND_UP; the last window may overhang the padded input.
    overhang = [(o - 1) * s + k - (d + 2 * p) for d, k, s, p, o in zip(dims, kernel, stride, pad, out)]
    if is_max or not any(h > 0 for h in overhang):
        ptype = trt.PoolingType.MAX if is_max else trt.PoolingType.AVERAGE
        pool = ctx.net.add_pooling_nd(x, ptype, kernel)
        pool.stride_nd, pool.padding_nd = stride, pad
        if a.pooling_convention == "full":
            pool.padding_mode = trt.PaddingMode.EXPLICIT_ROUND_UP
        if not is_max:
            pool.average_count_excludes_padding = not include_pad
        return [pool.get_output(0)]
    # Average with an overhanging last window: MXNet never counts the overhang, but counts real padding when
    # count_include_pad. Zero-pad explicitly (padding + overhang), average whole windows, rescale by the true count.
    padded = ctx.net.add_padding_nd(x, pad, tuple(p + h for p, h in zip(pad, overhang))).get_output(0)
    pool = ctx.net.add_pooling_nd(padded, trt.PoolingType.AVERAGE, kernel)
    pool.stride_nd = stride
    counts = np.ones((), np.float64)
    for d, k, s, p, o in zip(dims, kernel, stride, pad, out):
        counts = np.multiply.outer(counts, _window_counts(d, k, s, p, o, include_pad))
    factor = (math.prod(kernel) / counts).reshape((1, 1) + tuple(out))
    return [layers.elementwise(ctx, pool.get_output(0), factor, trt.ElementWiseOperation.PROD)]
