"""Indexing converters: Embedding, take, one_hot, gather_nd, topk and argsort (float or int32 indices as int32 tensors for
IGatherLayer, ITopKLayer)."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional

import numpy as np

from mx2trt import layers
from mx2trt._trt import np_dtype, trt
from mx2trt.attrs import NoAttrs, attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import DATA_DTYPES, OpNode, converter

from .nn import _as_shape


# ---- Embedding, take, one_hot: float indices -------------------------------------------------------------------------

DType = Literal["bfloat16", "float16", "float32", "float64", "int32", "int64", "int8", "uint8"]


def _indices(ctx: ConversionContext, x: Any, size: Any, mode: str, input: int, shift: bool = False) -> Any:
    """Float (or int32) indices as int32, truncated like MXNet's static_cast, then clipped to [0, size) ('clip') or
    wrapped Python-style ('wrap'); mode 'none' only truncates. `size` may be an array broadcasting against the
    indices (a size per row); `shift` adds it before truncating, in the indices' dtype (gather_nd's
    static_cast<int>(i + size) % size); for 'wrap' it may be an int64 tensor
    (sizes known at run time only). Where fp16/bf16 indices could round to another answer it fails asking for
    float32: the node and those computing its input `input` then run in float32 in the engine."""
    if not isinstance(x, trt.ITensor):  # a parameter: exact in NumPy
        v = np.asarray(x)
        v = v + np.asarray(size).astype(v.dtype) if shift else v
        i = np.trunc(v.astype(np.float64)).astype(np.int64)
        i = np.clip(i, 0, size - 1) if mode == "clip" else np.mod(i, size) if mode == "wrap" else i
        return ctx.constant(i.astype(np.int32), dtype=np.int32)
    src, exact = layers.exact_source(ctx, x)
    if exact is not None:
        # Integers above `exact` round to even neighbours, all >= exact: harmless when they clip to size - 1 <= exact
        # or fall outside one_hot's depth <= exact; wrap needs every index exact.
        if mode == "wrap":
            ctx.fail(f"{ctx.precision} indices are exact only up to {exact}; wrapping them needs every index exact",
                     exact_inputs=(input,))
        if (mode == "clip" and size - 1 > exact) or (mode == "none" and size > exact):
            ctx.fail(f"{ctx.precision} indices are exact only up to {exact}; size {size} in mode '{mode}' needs more",
                     exact_inputs=(input,))
    EW = trt.ElementWiseOperation
    tensor_size = isinstance(size, trt.ITensor)
    if shift:
        src = layers.elementwise(ctx, src, ctx.cast(size, np_dtype(src.dtype)) if tensor_size else np.asarray(size),
                                 EW.SUM)
    i = ctx.cast(src, np.int32)
    if mode == "clip":
        i = layers.elementwise(ctx, i, _int_constant(ctx, 0, len(i.shape)), EW.MAX)
        i = layers.elementwise(ctx, i, _int_constant(ctx, size - 1, len(i.shape)), EW.MIN)
    elif mode == "wrap":
        k = ctx.cast(size, np.int32) if tensor_size else _int_constant(ctx, size, len(i.shape))
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
    if 0 in node.inputs[1].dynamic:
        ctx.fail(f"the table's rows vary within the profiles ({node.inputs[1].dims}): clipping needs their number")
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
    if axis in node.inputs[0].dynamic:
        ctx.fail(f"axis {axis} varies within the profiles ({node.inputs[0].dims}): clipping or wrapping needs its size")
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


# ---- gather_nd -----------------------------------------------------------------------------------------------------


def _gather_nd_ok(node: OpNode) -> str | None:
    """At least one coordinate per index (indices' first axis, M, >= 1)."""
    if node.inputs[1].shape[0] < 1:
        return f"{node.where()}: indices of shape {node.inputs[1].shape} hold no coordinates"
    return None


@converter("gather_nd", attrs=NoAttrs, validator=_gather_nd_ok, dtypes=DATA_DTYPES)
def convert_gather_nd(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """gather_nd -> int32 indices wrapped like MXNet's (trunc(i + dim) mod dim per coordinate) and transposed so
    that the M coordinates are the last axis + IGatherLayer in ND mode (MXNet raises where an index lies outside
    [-dim, dim - 1]; wrapped, it stays inside the data for TensorRT)."""
    m, rank = node.inputs[1].shape[0], node.inputs[1].ndim
    dims: Any = np.asarray(node.inputs[0].shape[:m], np.int64).reshape((m,) + (1,) * (rank - 1))
    if set(node.inputs[0].dynamic) & set(range(m)):  # sizes varying within the profiles: the data's at run time
        size = ctx.net.add_slice(layers.shape_of(ctx, inputs[0]), (0,), (m,), (1,)).get_output(0)
        dims = ctx.reshape(size, dims.shape)
    idx = _indices(ctx, inputs[1], dims, "wrap", 1, shift=True)
    idx = layers.transpose(ctx, idx, tuple(range(1, rank)) + (0,))
    layer = ctx.net.add_gather_v2(ctx.tensor(inputs[0]), idx, trt.GatherMode.ND)
    layer.num_elementwise_dims = 0
    return [layer.get_output(0)]


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
    if set(node.inputs[0].dynamic) & ({axis} if a.axis is not None else set(range(node.inputs[0].ndim))):
        ctx.fail(f"sorting along an axis that varies within the profiles ({node.inputs[0].dims}) is not supported")
    values, idx, axis = _sort(ctx, inputs[0], a.axis is None, axis, size, k, a.is_ascend)
    if a.ret_typ == "mask":  # one_hot of the k indices, folded over k: 1 where an element was selected
        shape = tuple(idx.shape)
        rank = len(shape)
        arange = np.arange(size).reshape((size,) + (1,) * (rank - axis - 1))
        hit = layers.elementwise(ctx, ctx.reshape(idx, shape[:axis + 1] + (1,) + shape[axis + 1:]),
                                 _int_constant(ctx, arange, rank + 1), trt.ElementWiseOperation.EQUAL)
        mask = layers.reduce(ctx, ctx.cast(hit, ctx.dtype), trt.ReduceOperation.MAX, [axis], keep_dims=False)
        return [_as_shape(ctx, mask, node.outputs[0].dims or node.outputs[0].shape)]
    if a.ret_typ == "value":
        outs = [values]
    else:
        indices = _float_indices(ctx, idx, size)
        outs = [values, indices] if a.ret_typ == "both" else [indices]
    return [_as_shape(ctx, t, o.dims or o.shape) for t, o in zip(outs, node.outputs)]


def _sort(ctx: ConversionContext, x: Any, flat: bool, axis: int, size: int, k: int,
          ascend: bool) -> tuple[Any, Any, int]:
    """(values, int32 indices, the axis sorted along in them) of the k smallest (ascend) or largest along `axis`
    (`flat`: of the flattened input, as (1, size)), by one ITopKLayer."""
    x = ctx.tensor(x)
    if flat or len(x.shape) == 1:  # TensorRT sorts along an axis of a tensor of rank >= 2
        x, axis = ctx.reshape(x, (1, size)), 1
    layer = ctx.net.add_topk(x, trt.TopKOperation.MIN if ascend else trt.TopKOperation.MAX, k, 1 << axis)
    return layer.get_output(0), layer.get_output(1), axis


def _float_indices(ctx: ConversionContext, idx: Any, size: int) -> Any:
    """TopK's int32 indices as the engine's float (MXNet's default index dtype); fp16/bf16 engines compute the node in
    float32 when they would round an index."""
    if ctx.exact_int is not None and size - 1 > ctx.exact_int:
        ctx.fail(f"indices up to {size - 1} do not fit {ctx.precision} exactly (at most {ctx.exact_int})",
                 needs_fp32=True)
    return ctx.cast(idx, ctx.dtype)


@schema
class ArgsortAttrs:
    axis: Optional[int] = -1
    is_ascend: bool = True
    dtype: Literal["float16", "float32", "float64", "int32", "int64", "uint8"] = "float32"


def _argsort_geometry(node: OpNode) -> tuple[int, int]:
    """(axis MXNet sorts along, 0 for axis=None which flattens the input; that axis's length)."""
    a, shape = node.attrs, node.inputs[0].shape
    return (0, math.prod(shape)) if a.axis is None else (a.axis % len(shape), shape[a.axis % len(shape)])


def _argsort_ok(node: OpNode) -> str | None:
    """axis within the rank (or None); at most 3840 elements along it (TensorRT's TopK limit)."""
    a, rank = node.attrs, node.inputs[0].ndim
    if a.axis is not None and not -rank <= a.axis < rank:
        return f"{node.where()}: axis {a.axis} is out of range for rank {rank}"
    size = _argsort_geometry(node)[1]
    if size > _TOPK_MAX_K:
        return f"{node.where()}: sorting {size} elements (TensorRT's TopK sorts at most {_TOPK_MAX_K})"
    return None


@converter("argsort", attrs=ArgsortAttrs, validator=_argsort_ok)
def convert_argsort(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """argsort -> ITopKLayer over the whole axis (MIN if is_ascend, else MAX); its indices cast to float."""
    axis, size = _argsort_geometry(node)
    if set(node.inputs[0].dynamic) & ({axis} if node.attrs.axis is not None else set(range(node.inputs[0].ndim))):
        ctx.fail(f"sorting along an axis that varies within the profiles ({node.inputs[0].dims}) is not supported")
    _, idx, _ = _sort(ctx, inputs[0], node.attrs.axis is None, axis, size, size, node.attrs.is_ascend)
    return [_as_shape(ctx, _float_indices(ctx, idx, size), node.outputs[0].dims or node.outputs[0].shape)]
