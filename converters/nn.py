"""Neural-network converters: Convolution, Deconvolution, FullyConnected, Pooling, _contrib_AdaptiveAvgPooling2D, dot
and batch_dot."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional

import numpy as np

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, all_of, const_inputs, converter, unless_quirk

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
    quantize=(0,),
)
def convert_convolution(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Convolution -> IConvolutionLayer (1-D runs as 2-D with a unit height; quantized: Q/DQ on the input and on
    the kernel, per output channel)."""
    a = node.attrs
    x, w = ctx.tensor(inputs[0]), inputs[1]
    n = len(a.kernel)
    kernel, stride = a.kernel, _spatial(a.stride, n, 1)
    dilate, pad = _spatial(a.dilate, n, 1), _spatial(a.pad, n, 0)
    if n == 1:  # TensorRT convolves 2-D and 3-D only
        x = layers.reshape(ctx, x, tuple(x.shape[:2]) + (1, x.shape[2]), {0: 0, 3: 2})  # varying N, W: x's
        w = np.asarray(w).reshape(w.shape[:2] + (1, w.shape[2]))
        kernel, stride, dilate, pad = (1,) + kernel, (1,) + stride, (1,) + dilate, (0,) + pad
    x = layers.quantized_operand(ctx, x, 0)  # right before the layer, so that TensorRT fuses it
    bias = ctx.weights(inputs[2]) if not a.no_bias else ctx.no_weights()
    if ctx.quant is not None:
        conv = ctx.net.add_convolution_nd(x, a.num_filter, kernel, ctx.no_weights(), bias)
        conv.set_input(1, layers.quantized_weights(ctx, w, ctx.quant.dtype, axis=0))
    else:
        conv = ctx.net.add_convolution_nd(x, a.num_filter, kernel, ctx.weights(w), bias)
    conv.stride_nd, conv.dilation_nd, conv.padding_nd = stride, dilate, pad
    conv.num_groups = a.num_group
    y = conv.get_output(0)
    if n == 1:
        y = layers.reshape(ctx, y, tuple(y.shape[:2]) + (y.shape[3],), {0: 0, 2: 3})
    return [y]


# ---- FullyConnected ------------------------------------------------------------------------------------------------


@schema
class FullyConnectedAttrs:
    num_hidden: int = attr()
    no_bias: bool = False
    flatten: bool = True


@converter("FullyConnected", attrs=FullyConnectedAttrs, validator=const_inputs(1, 2, what="weight/bias"),
           quantize=(0,))
def convert_fully_connected(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """FullyConnected -> (shuffle to 2-D) + IMatrixMultiplyLayer against W^T + elementwise bias (quantized: Q/DQ on
    the input and on W, per output row)."""
    a = node.attrs
    x = ctx.tensor(inputs[0])
    if a.flatten and len(x.shape) != 2:
        x = layers.flatten2d(ctx, x)
    x = layers.quantized_operand(ctx, x, 0)
    w = np.asarray(inputs[1]).reshape(a.num_hidden, -1)
    if ctx.quant is not None:  # W of x's rank, so that its DQ feeds the matrix multiply directly (fused)
        r = len(x.shape)
        w = layers.quantized_weights(ctx, w.reshape((1,) * (r - 2) + w.shape), ctx.quant.dtype, axis=r - 2)
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
    if set(node.inputs[0].dynamic) & set(range(2, rank)) and (a.pooling_convention == "full" or any(
            p >= k for p, k in zip(pad, kernel))):
        ctx.fail(f"spatial axes that vary within the profiles ({node.inputs[0].dims}) with pooling_convention "
                 f"'{a.pooling_convention}' and pad {a.pad}: window counts would be those of one size")
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


# ---- _contrib_AdaptiveAvgPooling2D ---------------------------------------------------------------------------------


@schema
class AdaptiveAvgPoolingAttrs:
    output_size: tuple[int, ...] = ()  # (): 1; one int: square; MXNet's output shape says which


def _adaptive_ok(node: OpNode) -> str | None:
    """NCHW input (rank 4). (An output_size of 0 makes a 0-sized dim, which MXNet 1.x's shape inference reads as
    unknown: no graph gets that far.)"""
    if node.inputs[0].ndim != 4:
        return f"{node.where()}: input rank {node.inputs[0].ndim} is not supported (NCHW only)"
    return None


def _bin_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) averaging matrix of MXNet's bins [floor(i*In/Out), ceil((i+1)*In/Out)), computed in float32 like
    its START_IND/END_IND."""
    i = np.arange(n_out)
    start = np.floor((i * n_in).astype(np.float32) / np.float32(n_out)).astype(np.int64)
    end = np.ceil(((i + 1) * n_in).astype(np.float32) / np.float32(n_out)).astype(np.int64)
    j = np.arange(n_in)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return inside / (end - start)[:, None]


@converter("_contrib_AdaptiveAvgPooling2D", attrs=AdaptiveAvgPoolingAttrs, validator=_adaptive_ok)
def convert_adaptive_avg_pooling(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_AdaptiveAvgPooling2D -> IReduceLayer (1 x 1), IPoolingLayer (the output divides the input: kernel =
    stride = In/Out), else IMatrixMultiplyLayer by a constant (Out, In) averaging matrix on H and on W."""
    x = ctx.tensor(inputs[0])
    (h, w), (oh, ow) = node.inputs[0].shape[2:], node.outputs[0].shape[2:]
    if {2, 3} & set(node.inputs[0].dynamic) and not oh == ow == 1:
        ctx.fail(f"spatial axes that vary within the profiles ({node.inputs[0].dims}): bins depend on the size")
    if oh == ow == 1:
        return [ctx.net.add_reduce(x, trt.ReduceOperation.AVG, 0b1100, True).get_output(0)]
    if h % oh == 0 and w % ow == 0:
        pool = ctx.net.add_pooling_nd(x, trt.PoolingType.AVERAGE, (h // oh, w // ow))
        pool.stride_nd = (h // oh, w // ow)
        return [pool.get_output(0)]
    # Overlapping or unequal bins. In float32, so that a 16-bit engine does not round the rows' averages before
    # averaging them over the columns.
    f = ctx.cast(x, np.float32)
    y = layers.matmul(ctx, ctx.constant(_bin_matrix(h, oh), dtype=np.float32), f)
    y = layers.matmul(ctx, y, ctx.constant(_bin_matrix(w, ow), dtype=np.float32), transpose_b=True)
    return [ctx.cast(y, ctx.dtype)]


# ---- Deconvolution -------------------------------------------------------------------------------------------------


@schema
class DeconvolutionAttrs:
    kernel: tuple[int, ...] = attr()
    num_filter: int = attr()
    stride: tuple[int, ...] = ()
    dilate: tuple[int, ...] = ()
    pad: tuple[int, ...] = ()
    adj: tuple[int, ...] = ()
    target_shape: tuple[int, ...] = ()
    num_group: int = 1
    no_bias: bool = True
    layout: Layout = None
    workspace: int = attr(512, ignored=True)
    cudnn_tune: CudnnTune = attr(None, ignored=True)
    cudnn_off: bool = attr(False, ignored=True)


def _deconv_crops(node: OpNode) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """How much of the full transposed convolution MXNet drops before and after, per spatial axis (its InferPad):
    `pad` before and `pad - adj` after, or, when any target_shape entry is nonzero, what reaches target_shape with
    the odd element dropped at the start."""
    a, n = node.attrs, len(node.attrs.kernel)
    dims = node.inputs[0].shape[2:]
    stride, dilate = _spatial(a.stride, n, 1), _spatial(a.dilate, n, 1)
    if any(a.target_shape):
        full = [s * (d - 1) + dl * (k - 1) + 1 for d, k, s, dl in zip(dims, a.kernel, stride, dilate)]
        total = [f - t for f, t in zip(full, a.target_shape)]
        return tuple((t + 1) // 2 for t in total), tuple(t // 2 for t in total)
    pad, adj = _spatial(a.pad, n, 0), _spatial(a.adj, n, 0)
    return pad, tuple(p - j for p, j in zip(pad, adj))


def _deconv_ok(node: OpNode) -> str | None:
    """1-D, 2-D or 3-D kernels with matching stride/dilate/pad/adj/target_shape."""
    a, k = node.attrs, len(node.attrs.kernel)
    if k not in (1, 2, 3):
        return f"{node.where()}: kernel {a.kernel} must have 1, 2 or 3 dims"
    if node.inputs[0].ndim != k + 2:
        return f"{node.where()}: input rank {node.inputs[0].ndim} does not match kernel {a.kernel}"
    for name in ("stride", "dilate", "pad", "adj", "target_shape"):
        v = getattr(a, name)
        if v and len(v) != k:
            return f"{node.where()}: {name}={v} does not match kernel {a.kernel}"
    return None


def _strided_dilated(node: OpNode) -> str | None:
    """'stride .. with dilate ..' when some stride is > 1 and some dilation > 1 (on any axes), else None."""
    a = node.attrs
    if any(s > 1 for s in a.stride) and any(d > 1 for d in a.dilate):
        return f"stride {a.stride} with dilate {a.dilate}"
    return None


@converter(
    "Deconvolution",
    attrs=DeconvolutionAttrs,
    validator=all_of(
        _layout_ok,
        _deconv_ok,
        unless_quirk("strided_dilated_deconv", "not stride > 1 with dilate > 1", _strided_dilated),
        const_inputs(1, 2, what="weight/bias"),
    ),
)
def convert_deconvolution(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Deconvolution -> IDeconvolutionLayer (pad/adj/target_shape as pre/post padding; adj > pad: a zero-fill slice)."""
    a, n = node.attrs, len(node.attrs.kernel)
    pre, post = _deconv_crops(node)
    bias = None if a.no_bias else inputs[2]
    y = layers.deconvolution(ctx, inputs[0], inputs[1], bias, a.num_filter, a.kernel, _spatial(a.stride, n, 1),
                             _spatial(a.dilate, n, 1), a.num_group, pre, post)
    return [y]


# ---- dot, batch_dot ------------------------------------------------------------------------------------------------


@schema
class DotAttrs:
    transpose_a: bool = False
    transpose_b: bool = False
    forward_stype: Optional[Literal["csr", "default", "row_sparse"]] = None


def _dense_ok(node: OpNode) -> str | None:
    """Dense output only (forward_stype None or 'default')."""
    if node.attrs.forward_stype not in (None, "default"):
        return f"{node.where()}: forward_stype '{node.attrs.forward_stype}' is not supported (dense only)"
    return None


def _as_shape(ctx: ConversionContext, x: Any, shape: tuple[int, ...]) -> Any:
    """`x` (tensor or parameter) reshaped to `shape`; no layer when it already has that shape."""
    if not isinstance(x, trt.ITensor):
        return ctx.tensor(np.asarray(x).reshape(shape))
    return x if tuple(x.shape) == shape else ctx.reshape(x, shape)


def _dot_operand(ctx: ConversionContext, x: Any, shape: tuple[int, ...], k: int) -> Any:
    """Operand `k` of dot as its 2-D view, Q/DQ'd when the node is quantized (a parameter is reshaped first, so its
    weight scale is that of the view)."""
    if not isinstance(x, trt.ITensor):
        return layers.quantized_operand(ctx, np.asarray(x).reshape(shape), k)
    return layers.quantized_operand(ctx, _as_shape(ctx, x, shape), k)


def _dot_matrix(shape: tuple[int, ...], contract_first: bool) -> tuple[int, int]:
    """MXNet's 2-D view of a dot operand: (contracted, rest) when it contracts its first axis, else (rest, last)."""
    if contract_first:
        return shape[0], math.prod(shape[1:])
    return math.prod(shape[:-1]), shape[-1]


@converter("dot", attrs=DotAttrs, validator=_dense_ok, quantize=(0, 1))
def convert_dot(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """dot -> IMatrixMultiplyLayer on 2-D views (a: its last axis contracted, or its first with transpose_a; b: its
    first, or its last with transpose_b), reshaped to MXNet's output (quantized: per-tensor Q/DQ on both)."""
    a = node.attrs
    sa, sb = node.inputs[0].shape, node.inputs[1].shape
    ma = _dot_operand(ctx, inputs[0], _dot_matrix(sa, a.transpose_a), 0)
    mb = _dot_operand(ctx, inputs[1], _dot_matrix(sb, not a.transpose_b), 1)
    y = layers.matmul(ctx, ma, mb, transpose_a=a.transpose_a, transpose_b=a.transpose_b)
    return [_as_shape(ctx, y, node.outputs[0].shape)]


@converter("batch_dot", attrs=DotAttrs, validator=_dense_ok, quantize=(0, 1))
def convert_batch_dot(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """batch_dot -> IMatrixMultiplyLayer over the leading batch axes (transpose_a/b swap the last two; quantized:
    per-tensor Q/DQ on both)."""
    a = node.attrs
    x, y = (layers.quantized_operand(ctx, inputs[k], k) for k in (0, 1))
    return [layers.matmul(ctx, x, y, transpose_a=a.transpose_a, transpose_b=a.transpose_b)]
