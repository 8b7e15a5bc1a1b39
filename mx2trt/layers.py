"""Shared TensorRT layer builders that thin converters dispatch to."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from ._trt import BF16, layer_type, np_dtype, quirk, trt, trt_dtype
from .context import ConversionContext
from .quant import QUANT_DTYPES, channel_amax, scale_of
from .registry import TensorInfo

EW = trt.ElementWiseOperation
Act = trt.ActivationType


def rank(t: Any) -> int:
    return len(t.shape)


def _partner_dtype(a: Any, b: Any) -> np.dtype | None:
    """The dtype a constant operand takes: that of the tensor beside it (int32 too); None (the engine dtype) when
    both are constants."""
    like = next((x for x in (a, b) if isinstance(x, trt.ITensor)), None)
    return np_dtype(like.dtype) if like is not None else None


def elementwise(ctx: ConversionContext, a: Any, b: Any, op: Any) -> Any:
    """a <op> b with numpy broadcasting: constants become tensors, ranks are equalised with leading 1s."""
    r = max(np.ndim(x) if not isinstance(x, trt.ITensor) else rank(x) for x in (a, b))
    dtype = _partner_dtype(a, b)
    ta, tb = ctx.tensor(a, r, dtype), ctx.tensor(b, r, dtype)
    return ctx.net.add_elementwise(ta, tb, op).get_output(0)


def activation(ctx: ConversionContext, x: Any, kind: Any, alpha: float | None = None, beta: float | None = None) -> Any:
    """One IActivationLayer of `kind` with optional alpha/beta."""
    layer = ctx.net.add_activation(ctx.tensor(x), kind)
    if alpha is not None:
        layer.alpha = float(alpha)
    if beta is not None:
        layer.beta = float(beta)
    return layer.get_output(0)


def channel_affine(ctx: ConversionContext, x: Any, scale: np.ndarray, shift: np.ndarray, axis: int) -> Any:
    """x * scale[c] + shift[c] along `axis` (an IScaleLayer in CHANNEL mode)."""
    layer = ctx.net.add_scale_nd(
        ctx.tensor(x), trt.ScaleMode.CHANNEL, ctx.weights(shift), ctx.weights(scale), ctx.no_weights(), axis
    )
    return layer.get_output(0)


def matmul(ctx: ConversionContext, a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False) -> Any:
    """Batched a @ b (ranks equalised with leading 1s)."""
    r = max(rank(a) if isinstance(a, trt.ITensor) else np.ndim(a), rank(b) if isinstance(b, trt.ITensor) else np.ndim(b))
    ta, tb = ctx.tensor(a, r), ctx.tensor(b, r)
    op = trt.MatrixOperation
    return ctx.net.add_matrix_multiply(
        ta, op.TRANSPOSE if transpose_a else op.NONE, tb, op.TRANSPOSE if transpose_b else op.NONE
    ).get_output(0)


def reduce(ctx: ConversionContext, x: Any, op: Any, axes: Sequence[int], keep_dims: bool = True) -> Any:
    """IReduceLayer over `axes` (negative allowed)."""
    x = ctx.tensor(x)
    mask = sum(1 << (a % rank(x)) for a in set(axes))
    return ctx.net.add_reduce(x, op, mask, keep_dims).get_output(0)


def unary(ctx: ConversionContext, x: Any, op: Any) -> Any:
    return ctx.net.add_unary(ctx.tensor(x), op).get_output(0)


def flatten2d(ctx: ConversionContext, x: Any) -> Any:
    """(N, d1, d2, ...) -> (N, d1*d2*...); a dimension varying within the profiles (-1) is inferred or copied."""
    shape = tuple(x.shape)
    rest = -1 if any(d < 0 for d in shape[1:]) else int(np.prod(shape[1:], dtype=np.int64))
    return reshape(ctx, x, (shape[0], rest), {0: 0})


def shape_of(ctx: ConversionContext, x: Any) -> Any:
    """x's shape as a 1-D int64 shape tensor (IShapeLayer): what a dimension varying within the profiles is at run
    time."""
    return ctx.net.add_shape(ctx.tensor(x)).get_output(0)


def shape_tensor(ctx: ConversionContext, dims: Sequence[int], copy: dict[int, Any], like: Any) -> Any:
    """A 1-D int64 shape tensor of `dims` whose entry j in `copy` is, at run time, axis copy[j] of `like`, or axis i of
    tensor t for copy[j] = (t, i) (IShapeLayer -> ISliceLayer per copied axis, constants for the rest ->
    IConcatenationLayer)."""
    shapes: dict[int, Any] = {}

    def size(src: Any) -> Any:
        t, i = (like, src) if isinstance(src, int) else src
        if id(t) not in shapes:
            shapes[id(t)] = shape_of(ctx, t)
        return ctx.net.add_slice(shapes[id(t)], (int(i),), (1,), (1,)).get_output(0)

    parts = [size(copy[j]) if j in copy else ctx.constant(np.array([d], np.int64)) for j, d in enumerate(dims)]
    return concat(ctx, parts, 0)


def largest(info: TensorInfo, axis: int) -> int:
    """The largest size of `info`'s axis within the profiles (its size under static shapes)."""
    return max(p[axis] for p in info.points) if info.points else info.shape[axis]


def smallest(info: TensorInfo, axis: int) -> int:
    """The smallest size of `info`'s axis within the profiles (its size under static shapes)."""
    return min(p[axis] for p in info.points) if info.points else info.shape[axis]


def constant_upto(ctx: ConversionContext, values: np.ndarray, copy: dict[int, int], like: Any, dtype: Any = None) -> Any:
    """The constant `values` (e.g. positions 0..n-1 for the largest n within the profiles), cut at run time so that
    axis j in `copy` has the size of like's axis copy[j] (an ISliceLayer with a size tensor); uncut without `copy`."""
    c = ctx.constant(values, dtype=dtype)
    if not copy:
        return c
    return slice_nd(ctx, c, (0,) * values.ndim, values.shape, size=shape_tensor(ctx, values.shape, copy, like))


def same_axes(x: Any, dims: Sequence[int]) -> dict[int, int]:
    """Each axis that `dims` leaves varying (-1), copied from x's same axis (ranks aligned on the right)."""
    off = len(x.shape) - len(dims)
    return {j: j + off for j, d in enumerate(dims) if d < 0}


def varying(ctx: ConversionContext, src: TensorInfo, dst: TensorInfo) -> tuple[int, ...]:
    """dst's shape for a layer that copies every varying axis from its input: its static shape, or under profiles -1
    on each axis that varies, which must equal src's axis at the same place (from the right) at every profile point;
    fails naming the axis otherwise."""
    if not dst.dynamic:
        return tuple(dst.shape)
    off = src.ndim - dst.ndim
    for j in dst.dynamic:
        i = j + off
        if i < 0 or src.points is None or any(p[i] != q[j] for p, q in zip(src.points, dst.points)):
            ctx.fail(f"output axis {j} varies within the profiles ({dst.dims}) other than the input's axis "
                     f"({src.dims}); this converter copies such sizes only from the input")
    return tuple(dst.dims)


def reshape(ctx: ConversionContext, x: Any, dims: Sequence[int], copy: dict[int, int] | None = None,
            like: Any = None) -> Any:
    """x reshaped to `dims` (an IShuffleLayer, see `set_reshape`)."""
    layer = ctx.net.add_shuffle(ctx.tensor(x))
    set_reshape(ctx, layer, dims, copy, x if like is None else like)
    return layer.get_output(0)


def set_reshape(ctx: ConversionContext, layer: Any, dims: Sequence[int], copy: dict[int, int] | None, like: Any) -> None:
    """Make IShuffleLayer `layer` reshape to `dims`. With one -1 or none, static reshape dims (-1 inferred); with more
    (sizes varying within the profiles), output axis j in `copy` takes axis copy[j] of `like` at run time, through a
    shape tensor into the layer's second input, and one -1 left is inferred. Never a -1 copied into a static
    parameter: TensorRT refuses those in dynamic networks."""
    dims = tuple(int(d) for d in dims)
    free = [j for j, d in enumerate(dims) if d < 0]
    layer.zero_is_placeholder = False
    if len(free) <= 1:
        layer.reshape_dims = dims
        return
    copy = {j: copy[j] for j in free if copy and j in copy}
    if len(free) - len(copy) > 1:
        ctx.fail(f"reshaping to {dims}: the sizes of axes {[j for j in free if j not in copy]} vary within the "
                 f"profiles and cannot be derived")
    layer.set_input(1, shape_tensor(ctx, dims, copy, like))


def kept(info: TensorInfo, axes: Sequence[int], size: int = 1) -> TensorInfo:
    """`info` with (static) `axes` of `size`: what a keep-dims reduction (size 1) or a split of that tensor is."""
    one = {a % info.ndim for a in axes}
    cut = lambda s: tuple(size if i in one else d for i, d in enumerate(s))  # noqa: E731
    return dataclasses.replace(info, shape=cut(info.shape), dims=cut(info.dims) if info.dims else None,
                               points=tuple(cut(p) for p in info.points) if info.points else None)


def reshape_as(ctx: ConversionContext, x: Any, src: TensorInfo, dst: TensorInfo) -> Any:
    """x (described by `src`) reshaped to `dst`, MXNet's inferred output. Under profiles, one varying dimension is
    inferred (-1) and each other one is copied at run time from the input axis it is in memory: equal in size, and
    in the product of the sizes before it, at every profile point (so two axes whose ranges coincide, a square image's
    H and W, are never taken for each other); a converter fails, naming the dimensions, when more than one can be
    derived from neither."""
    if not dst.dynamic:
        return ctx.reshape(x, dst.shape)
    copy: dict[int, int] = {}
    for j in dst.dynamic:
        want = [(p[j], math.prod(p[:j])) for p in dst.points]
        i = next((i for i in src.dynamic if [(p[i], math.prod(p[:i])) for p in src.points] == want), None)
        if i is not None:
            copy[j] = i
    free = [j for j in dst.dynamic if j not in copy]
    if len(free) > 1:
        ctx.fail(f"output axes {free} vary within the profiles ({dst.dims}) and none equals an input axis at every "
                 f"profile point ({src.dims}): TensorRT can infer only one")
    return reshape(ctx, x, dst.dims, copy)


def concat(ctx: ConversionContext, xs: Sequence[Any], axis: int) -> Any:
    """Concatenation along `axis` (always set: TensorRT's default axis is rank-3)."""
    layer = ctx.net.add_concatenation([ctx.tensor(x) for x in xs])
    layer.axis = axis
    return layer.get_output(0)


def transpose(ctx: ConversionContext, x: Any, perm: Sequence[int]) -> Any:
    """x with its axes permuted: output axis i is input axis perm[i] (an IShuffleLayer's first transpose)."""
    layer = ctx.net.add_shuffle(ctx.tensor(x))
    layer.first_transpose = tuple(int(p) for p in perm)
    return layer.get_output(0)


def slice_nd(
    ctx: ConversionContext,
    x: Any,
    start: Sequence[int],
    shape: Sequence[int],
    stride: Sequence[int] | None = None,
    mode: Any = None,
    fill: float | None = None,
    like: Any = None,
    size: Any = None,
) -> Any:
    """ISliceLayer: output[i] = x[start + i * stride] on every axis (stride defaults to 1; negative reverses); a -1 in
    `shape` is the size of that axis of `like` (default x) at run time (a size varying within the profiles, see
    `varying`); or all sizes from the shape tensor `size`.

    `mode` is a trt.SampleMode for coordinates outside x: STRICT_BOUNDS (the default, none allowed), WRAP (tiles),
    CLAMP (repeats the edge), REFLECT (mirrors without repeating the edge) or FILL (the scalar `fill`, default 0).
    """
    x = ctx.tensor(x)
    stride = (1,) * len(shape) if stride is None else stride
    layer = ctx.net.add_slice(x, tuple(map(int, start)), tuple(abs(int(d)) for d in shape), tuple(map(int, stride)))
    like = x if like is None else like
    copy = same_axes(like, shape)
    if size is not None or copy:
        layer.set_input(2, size if size is not None else shape_tensor(ctx, shape, copy, like))
    if mode is not None:
        layer.mode = mode
    if fill is not None:
        layer.set_input(4, ctx.constant(fill, shape=(), dtype=np_dtype(x.dtype)))
    return layer.get_output(0)


def deconvolution(
    ctx: ConversionContext,
    x: Any,
    weight: np.ndarray,
    bias: np.ndarray | None,
    num_filter: int,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    crop_pre: Sequence[int],
    crop_post: Sequence[int],
) -> Any:
    """Transposed convolution (weight [C_in, K/G, *kernel]) over 1, 2 or 3 spatial dims, its full output cropped by
    `crop_pre`/`crop_post` per spatial axis; a negative `crop_post` extends it with zeros that still get the bias.
    A bf16 engine deconvolves in float32 (casts around it) where the TensorRT in use cannot build bf16 deconvolution."""
    x = ctx.tensor(x)
    dtype = np.dtype(np.float32) if ctx.dtype == BF16 and quirk("bf16_deconv") else ctx.dtype
    x = ctx.cast(x, dtype)
    n = len(kernel)
    w = np.asarray(weight)
    kernel, stride, dilation = tuple(kernel), tuple(stride), tuple(dilation)
    pre, post = tuple(crop_pre), tuple(crop_post)
    if n == 1:  # TensorRT deconvolves 2-D and 3-D windows only: a unit height makes 1-D a 2-D case
        shape = tuple(x.shape)
        x = reshape(ctx, x, shape[:2] + (1, shape[2]), {0: 0, 3: 2})  # varying N, W: x's
        w = w.reshape(w.shape[:2] + (1, w.shape[2]))
        kernel, stride, dilation, pre, post = (1,) + kernel, (1,) + stride, (1,) + dilation, (0,) + pre, (0,) + post
    extend = tuple(max(-p, 0) for p in post)
    in_layer_bias = bias is not None and not any(extend)
    b = ctx.weights(bias, dtype) if in_layer_bias else ctx.no_weights(dtype)
    layer = ctx.net.add_deconvolution_nd(x, num_filter, kernel, ctx.weights(w, dtype), b)
    layer.stride_nd, layer.dilation_nd, layer.num_groups = stride, dilation, groups
    layer.pre_padding, layer.post_padding = pre, tuple(max(p, 0) for p in post)
    y = layer.get_output(0)
    if any(extend):  # TensorRT refuses negative padding: zero-fill the tail with a slice, then add the bias
        shape = tuple(y.shape)
        rank = len(shape)
        out = shape[:2] + tuple(d + e for d, e in zip(shape[2:], extend))
        y = slice_nd(ctx, y, (0,) * rank, out, mode=trt.SampleMode.FILL)
        if bias is not None:
            y = elementwise(ctx, y, np.asarray(bias).reshape((1, -1) + (1,) * (rank - 2)), EW.SUM)
    if n == 1:
        shape = tuple(y.shape)
        y = reshape(ctx, y, shape[:2] + (shape[3],), {0: 0, 2: 3})
    return ctx.cast(y, ctx.dtype)


def select(ctx: ConversionContext, cond: Any, a: Any, b: Any) -> Any:
    """cond ? a : b elementwise (ISelectLayer, BOOL condition) with numpy broadcasting; ranks equalised with leading
    1s, a constant branch takes the other branch's dtype (the engine dtype when both are constants)."""
    r = max(rank(x) if isinstance(x, trt.ITensor) else np.ndim(x) for x in (cond, a, b))
    dtype = _partner_dtype(a, b)
    return ctx.net.add_select(ctx.tensor(cond, r), ctx.tensor(a, r, dtype), ctx.tensor(b, r, dtype)).get_output(0)


def nonzero(ctx: ConversionContext, x: Any) -> Any:
    """BOOL tensor x != 0, the truth value MXNet gives a number (NaN counts as true): NOT(EQUAL(x, 0))."""
    return unary(ctx, elementwise(ctx, x, 0.0, EW.EQUAL), trt.UnaryOperation.NOT)


def topk(ctx: ConversionContext, x: Any, largest: bool, k: int, axis: int) -> tuple[Any, Any]:
    """(values, int32 indices) of the k largest (or smallest) entries along `axis`, k kept as the size of that axis.
    Any axis of any rank: x is viewed as (outer, n, inner) so the ITopKLayer always works on a last-four axis; under
    profiles a varying outer size is inferred and the output's varying axes are copied from x at run time."""
    x = ctx.tensor(x)
    shape = tuple(x.shape)
    axis %= len(shape)
    op = trt.TopKOperation.MAX if largest else trt.TopKOperation.MIN
    out = shape[:axis] + (int(k),) + shape[axis + 1:]
    if any(d < 0 for d in shape[axis:]):
        if len(shape) > 4:
            ctx.fail(f"top-k along axis {axis} of {shape}: a varying axis at or after it needs rank <= 4")
        layer = ctx.net.add_topk(x, op, int(k), 1 << axis)
        return layer.get_output(0), layer.get_output(1)
    outer = int(np.prod(shape[:axis], dtype=np.int64)) if all(d >= 0 for d in shape[:axis]) else -1
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    layer = ctx.net.add_topk(ctx.reshape(x, (outer, shape[axis], inner)), op, int(k), 1 << 1)
    copy = {j: j for j, d in enumerate(out) if d < 0}
    return reshape(ctx, layer.get_output(0), out, copy, x), reshape(ctx, layer.get_output(1), out, copy, x)


def trunc(ctx: ConversionContext, x: Any) -> Any:
    """Round toward zero: IUnaryLayer CEIL where x < 0, else FLOOR (ISelectLayer)."""
    x = ctx.tensor(x)
    neg = elementwise(ctx, x, 0.0, EW.LESS)
    U = trt.UnaryOperation
    return select(ctx, neg, unary(ctx, x, U.CEIL), unary(ctx, x, U.FLOOR))


def exact_source(ctx: ConversionContext, x: Any) -> tuple[Any, int | None]:
    """The tensor to read integer-valued floats (indices, lengths) from, and the largest integer it holds exactly
    (None: as many as MXNet's float32; fp16 2048, bf16 256). An fp16 or bf16 engine casts its float32 inputs, and
    integers made float (top-k's indices), into its dtype; such a value is read from the float32 tensor before that
    cast. A float32 tensor computed inside the engine is not exact: its computation may have read rounded values. A
    constant (e.g. arange_like's positions) that holds MXNet's values exactly is exact too."""
    if ctx.exact_int is None or x.dtype != trt_dtype(ctx.dtype):
        return x, None
    net = ctx.network
    for i in range(net.num_layers):
        layer = net.get_layer(i)
        if layer.num_outputs and layer.get_output(0) is x:
            kind = layer_type(layer)
            if kind == trt.LayerType.CONSTANT and layer.name in ctx.exact_constants:
                return x, None
            src = layer.get_input(0) if kind == trt.LayerType.CAST else None
            if src is not None and src.dtype in (trt.int32, trt.int64):
                return ctx.cast(src, np.float32), None
            if src is not None and src.dtype == trt.float32 and (src.is_network_input or _cast_from_int(net, src)):
                return src, None
            break
    return x, ctx.exact_int


def _cast_from_int(net: Any, x: Any) -> bool:
    """Whether `x` is the output of an ICastLayer from an int32/int64 tensor (exact integers as float32)."""
    for i in range(net.num_layers):
        layer = net.get_layer(i)
        if layer.num_outputs and layer.get_output(0) is x:
            return layer_type(layer) == trt.LayerType.CAST and layer.get_input(0).dtype in (trt.int32, trt.int64)
    return False


def qdq(ctx: ConversionContext, x: Any, scale: float, dtype: str) -> Any:
    """x -> IQuantizeLayer to int8/fp8 with one float32 scale -> IDequantizeLayer back to x's dtype."""
    x = ctx.tensor(x)
    s = scale_constant(ctx, scale)
    q = ctx.net.add_quantize(x, s, trt_dtype(QUANT_DTYPES[dtype][0]))
    return ctx.net.add_dequantize(q.get_output(0), s, x.dtype).get_output(0)


def scale_constant(ctx: ConversionContext, scale: Any) -> Any:
    """A float32 scale constant: 0-d for one scale (TensorRT's per-tensor form), 1-d for one per channel."""
    s = np.asarray(scale, dtype=np.float32)
    if s.ndim:
        return ctx.constant(s, dtype=np.float32)
    return ctx.net.add_constant((), ctx.weights(s.reshape(1), np.float32)).get_output(0)


def quantized_weights(ctx: ConversionContext, w: Any, dtype: str, axis: int | None = 0) -> Any:
    """Weights as a float32 constant -> Q/DQ to the engine dtype, with one scale per slice along `axis` (the output
    channels) or, with axis None, one for the whole tensor; TensorRT folds the Q into int8/fp8 weights."""
    w = np.asarray(w, dtype=np.float32)
    amax = channel_amax(w, axis) if axis is not None else np.abs(w).max()
    s = scale_constant(ctx, scale_of(amax, dtype))
    q = ctx.net.add_quantize(ctx.constant(w, dtype=np.float32), s, trt_dtype(QUANT_DTYPES[dtype][0]))
    dq = ctx.net.add_dequantize(q.get_output(0), s, trt_dtype(ctx.dtype))
    if axis is not None:
        q.axis = dq.axis = axis % w.ndim
    return dq.get_output(0)


def quantized_operand(ctx: ConversionContext, x: Any, k: int) -> Any:
    """Input `k` of the node being quantized: a tensor gets per-tensor Q/DQ from its calibrated range, a parameter
    per-tensor Q/DQ from its values; unchanged when the node is not quantized."""
    quant = ctx.quant
    if quant is None:
        return x
    if isinstance(x, trt.ITensor):
        return qdq(ctx, x, quant.scale(k), quant.dtype)
    return quantized_weights(ctx, x, quant.dtype, axis=None)
