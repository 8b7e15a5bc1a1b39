"""Neural-network converters: Convolution, Deconvolution, FullyConnected, Pooling, dot, batch_dot, Embedding, take,
one_hot and topk."""
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
        x = ctx.reshape(x, tuple(x.shape[:2]) + (1, x.shape[2]))
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
        y = ctx.reshape(y, node.outputs[0].shape)
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


# ---- Embedding, take, one_hot: float indices -----------------------------------------------------------------------

DType = Literal["bfloat16", "float16", "float32", "float64", "int32", "int64", "int8", "uint8"]


def _indices(ctx: ConversionContext, x: Any, size: int, mode: str, input: int) -> Any:
    """Float indices as int32, truncated like MXNet's static_cast, then clipped to [0, size) ('clip') or wrapped
    Python-style ('wrap'); mode 'none' only truncates. Where fp16/bf16 indices could round to another answer it
    fails asking for float32: the node and those computing its input `input` then run in float32 in the engine."""
    if not isinstance(x, trt.ITensor):  # a parameter: exact in NumPy
        i = np.trunc(np.asarray(x, np.float64)).astype(np.int64)
        i = np.clip(i, 0, size - 1) if mode == "clip" else np.mod(i, size) if mode == "wrap" else i
        return ctx.constant(i.astype(np.int32), dtype=np.int32)
    src, exact = layers.exact_source(ctx, x)
    if exact is not None:
        # Integers above `exact` round to even neighbours, all >= exact: harmless when they clip to size - 1 <= exact
        # or fall outside one_hot's depth <= exact; wrap needs every index exact.
        if mode == "wrap" or (mode == "clip" and size - 1 > exact) or (mode == "none" and size > exact):
            ctx.fail(f"{ctx.precision} indices are exact only up to {exact}; size {size} in mode '{mode}' needs more",
                     exact_inputs=(input,))
    i = ctx.cast(src, np.int32)
    EW = trt.ElementWiseOperation
    if mode == "clip":
        i = layers.elementwise(ctx, i, _int_constant(ctx, 0, len(i.shape)), EW.MAX)
        i = layers.elementwise(ctx, i, _int_constant(ctx, size - 1, len(i.shape)), EW.MIN)
    elif mode == "wrap":
        k = _int_constant(ctx, size, len(i.shape))
        q = layers.elementwise(ctx, i, k, EW.FLOOR_DIV)
        i = layers.elementwise(ctx, i, layers.elementwise(ctx, q, k, EW.PROD), EW.SUB)
    return i


def _int_constant(ctx: ConversionContext, value: Any, rank: int) -> Any:
    """An int32 constant of `rank` (leading size-1 dims added), to broadcast against int32 indices."""
    a = np.asarray(value, np.int32)
    return ctx.constant(a.reshape((1,) * (rank - a.ndim) + a.shape), dtype=np.int32)


@schema
class EmbeddingAttrs:
    input_dim: int = attr()
    output_dim: int = attr()
    dtype: DType = "float32"
    sparse_grad: bool = attr(False, ignored=True)


@converter("Embedding", attrs=EmbeddingAttrs)
def convert_embedding(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Embedding -> indices cast to int32 and clipped to the table + IGatherLayer on the weight (axis 0)."""
    rows = node.inputs[1].shape[0]
    idx = _indices(ctx, inputs[0], rows, "clip", 0)
    return [ctx.net.add_gather(ctx.tensor(inputs[1]), idx, 0).get_output(0)]


@schema
class TakeAttrs:
    axis: int = 0
    mode: Literal["clip", "raise", "wrap"] = "clip"


def _take_ok(node: OpNode) -> str | None:
    """axis within the data's rank."""
    rank = node.inputs[0].ndim
    if not -rank <= node.attrs.axis < rank:
        return f"{node.where()}: axis {node.attrs.axis} is out of range for rank {rank}"
    return None


@converter("take", attrs=TakeAttrs, validator=_take_ok)
def convert_take(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """take -> indices cast to int32, clipped ('clip'; 'raise' too: MXNet raises where they differ) or wrapped
    ('wrap') + IGatherLayer on the axis."""
    a = node.attrs
    axis = a.axis % node.inputs[0].ndim
    size = node.inputs[0].shape[axis]
    idx = _indices(ctx, inputs[1], size, "wrap" if a.mode == "wrap" else "clip", 1)
    return [ctx.net.add_gather(ctx.tensor(inputs[0]), idx, axis).get_output(0)]


@schema
class OneHotAttrs:
    depth: int = attr()
    on_value: float = 1.0
    off_value: float = 0.0
    dtype: DType = "float32"


@converter("one_hot", attrs=OneHotAttrs)
def convert_one_hot(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """one_hot -> int32 indices (truncated) compared with arange(depth) + ISelectLayer of on_value/off_value."""
    a = node.attrs
    idx = _indices(ctx, inputs[0], a.depth, "none", 0)
    rank = len(idx.shape)
    idx = ctx.reshape(idx, tuple(idx.shape) + (1,))
    hit = layers.elementwise(ctx, idx, _int_constant(ctx, np.arange(a.depth), rank + 1), trt.ElementWiseOperation.EQUAL)
    on, off = (ctx.constant(v, shape=(1,) * (rank + 1)) for v in (a.on_value, a.off_value))
    return [ctx.net.add_select(hit, on, off).get_output(0)]


# ---- topk ----------------------------------------------------------------------------------------------------------

_TOPK_MAX_K = 3840  # TensorRT's largest k


@schema
class TopKAttrs:
    axis: Optional[int] = -1
    k: int = 1
    ret_typ: Literal["both", "indices", "mask", "value"] = "indices"
    is_ascend: bool = False
    dtype: Literal["float16", "float32", "float64", "int32", "int64", "uint8"] = "float32"


def _topk_geometry(node: OpNode) -> tuple[int, int, int]:
    """(axis MXNet sorts along, 0 for axis=None which flattens the input; that axis's length; k, where k < 1 means
    all of them)."""
    a, shape = node.attrs, node.inputs[0].shape
    axis = 0 if a.axis is None else a.axis % len(shape)
    size = math.prod(shape) if a.axis is None else shape[axis]
    return axis, size, a.k if a.k >= 1 else size


def _topk_ok(node: OpNode) -> str | None:
    """axis within the rank (or None); k up to 3840 (TensorRT's limit)."""
    a, rank = node.attrs, node.inputs[0].ndim
    if a.axis is not None and not -rank <= a.axis < rank:
        return f"{node.where()}: axis {a.axis} is out of range for rank {rank}"
    _, size, k = _topk_geometry(node)
    if k > min(size, _TOPK_MAX_K):
        return f"{node.where()}: k={k} over {size} elements (TensorRT selects at most {_TOPK_MAX_K})"
    return None


@converter("topk", attrs=TopKAttrs, validator=_topk_ok)
def convert_topk(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """topk -> ITopKLayer (MAX, or MIN if is_ascend); indices cast to float; mask: indices == arange + IReduceLayer."""
    a = node.attrs
    axis, size, k = _topk_geometry(node)
    x = ctx.tensor(inputs[0])
    if a.axis is None or len(x.shape) == 1:  # TensorRT sorts along an axis of a tensor of rank >= 2
        x, axis = ctx.reshape(x, (1, size)), 1
    op = trt.TopKOperation.MIN if a.is_ascend else trt.TopKOperation.MAX
    layer = ctx.net.add_topk(x, op, k, 1 << axis)
    values, idx = layer.get_output(0), layer.get_output(1)
    if a.ret_typ == "mask":  # one_hot of the k indices, folded over k: 1 where an element was selected
        shape = tuple(idx.shape)
        rank = len(shape)
        arange = np.arange(size).reshape((size,) + (1,) * (rank - axis - 1))
        hit = layers.elementwise(ctx, ctx.reshape(idx, shape[:axis + 1] + (1,) + shape[axis + 1:]),
                                 _int_constant(ctx, arange, rank + 1), trt.ElementWiseOperation.EQUAL)
        mask = layers.reduce(ctx, ctx.cast(hit, ctx.dtype), trt.ReduceOperation.MAX, [axis], keep_dims=False)
        return [_as_shape(ctx, mask, node.outputs[0].shape)]
    if a.ret_typ == "value":
        outs = [values]
    else:
        if ctx.exact_int is not None and size - 1 > ctx.exact_int:
            ctx.fail(f"indices up to {size - 1} do not fit {ctx.precision} exactly (at most {ctx.exact_int})",
                     needs_fp32=True)
        indices = ctx.cast(idx, ctx.dtype)
        outs = [values, indices] if a.ret_typ == "both" else [indices]
    return [_as_shape(ctx, t, o.shape) for t, o in zip(outs, node.outputs)]
