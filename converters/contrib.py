"""Sequence and attention ops that transformer models exported from GluonNLP use (interleaved self-attention matmuls,
SequenceMask, arange_like) and detection ops (MultiBoxPrior anchors, box_decode)."""
from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, converter

EW = trt.ElementWiseOperation


@schema
class HeadsAttrs:
    heads: int = attr()


def _heads_ok(node: OpNode) -> str | None:
    """Input (T, B, heads * 3 * head_dim) with that last dim divisible as such."""
    shape = node.inputs[0].shape
    if len(shape) != 3 or shape[2] % (3 * node.attrs.heads):
        return f"{node.where()}: input {shape} is not (T, B, heads * 3 * head_dim) for heads={node.attrs.heads}"
    return None


def _projection(ctx: ConversionContext, qkv: Any, heads: int, which: int) -> Any:
    """Query (0), key (1) or value (2) projection of an interleaved (T, B, heads*3*d) tensor as (B*heads, T, d)."""
    t, b, width = (int(v) for v in qkv.shape)
    d = width // (3 * heads)
    # Slice the last axis of (T, B, heads, 3*d), not a unit axis of (T, B, heads, 3, d): TensorRT-RTX 1.7's Myelin
    # fails CHECK(def_tactic_desc) on matmul -> reshape -> unit-axis slice -> reshape + transpose when the matmul's
    # output is also an engine output (a FullyConnected projection at a subgraph boundary).
    split = layers.reshape(ctx, qkv, (t, b, heads, 3 * d), _TB)
    part = layers.slice_nd(ctx, split, (0, 0, 0, which * d), (t, b, heads, d))
    s = ctx.net.add_shuffle(part)  # one shuffle: transpose then reshape
    s.first_transpose = (1, 2, 0, 3)  # (B, heads, T, d)
    layers.set_reshape(ctx, s, (b * heads if b >= 0 else -1, t, d), {1: 0}, part)
    return s.get_output(0)


_TB = {0: 0, 1: 1}  # T and B, where they vary within the profiles, copied from the interleaved input


@converter("_contrib_interleaved_matmul_selfatt_qk", attrs=HeadsAttrs, validator=_heads_ok)
def convert_selfatt_qk(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_interleaved_matmul_selfatt_qk -> slices of the interleaved input, scale 1/sqrt(d), IMatrixMultiply
    q x k^T."""
    qkv, heads = ctx.tensor(inputs[0]), node.attrs.heads
    q = _projection(ctx, qkv, heads, 0)
    q = layers.elementwise(ctx, q, 1.0 / np.sqrt(int(q.shape[2])), EW.PROD)
    k = _projection(ctx, qkv, heads, 1)
    return [layers.matmul(ctx, q, k, transpose_b=True)]


def _valatt_ok(node: OpNode) -> str | None:
    """As _heads_ok, with attention (B*heads, T, T) matching the input."""
    reason = _heads_ok(node)
    if reason:
        return reason
    t, b, _ = node.inputs[0].shape
    if node.inputs[1].shape != (b * node.attrs.heads, t, t):
        return f"{node.where()}: attention {node.inputs[1].shape} is not (B*heads, T, T) = {(b * node.attrs.heads, t, t)}"
    return None


@converter("_contrib_interleaved_matmul_selfatt_valatt", attrs=HeadsAttrs, validator=_valatt_ok)
def convert_selfatt_valatt(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_interleaved_matmul_selfatt_valatt -> value slice, IMatrixMultiply attention x v, shuffle back to
    (T, B, heads*d)."""
    qkv, att, heads = ctx.tensor(inputs[0]), ctx.tensor(inputs[1]), node.attrs.heads
    t, b, width = (int(v) for v in qkv.shape)
    d = width // (3 * heads)
    out = layers.matmul(ctx, att, _projection(ctx, qkv, heads, 2))  # (B*heads, T, d)
    s = ctx.net.add_shuffle(out)
    layers.set_reshape(ctx, s, (b, heads, t, d), {0: 1, 2: 0}, qkv)
    s.second_transpose = (2, 0, 1, 3)  # (T, B, heads, d)
    return [layers.reshape(ctx, s.get_output(0), (t, b, heads * d), _TB, qkv)]


@schema
class SequenceMaskAttrs:
    use_sequence_length: bool = False
    value: float = 0.0
    axis: int = 0


def _sequence_mask_ok(node: OpNode) -> str | None:
    """axis 0 (T, B, ...) or 1 (B, T, ...) on rank >= 2, sequence_length of shape (B,)."""
    a, shape = node.attrs, node.inputs[0].shape
    if a.axis not in (0, 1) or len(shape) < 2:
        return f"{node.where()}: axis {a.axis} on input {shape} is not supported (axis 0 or 1, rank >= 2)"
    if a.use_sequence_length and node.inputs[1].shape != (shape[1 - a.axis],):
        return f"{node.where()}: sequence_length {node.inputs[1].shape} does not match the batch of {shape}"
    return None


@converter("SequenceMask", attrs=SequenceMaskAttrs, validator=_sequence_mask_ok)
def convert_sequence_mask(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """SequenceMask -> ISelectLayer(position < length, data, value) with a constant position ramp."""
    a, x = node.attrs, ctx.tensor(inputs[0])
    if not a.use_sequence_length:
        return [ctx.identity(x)]
    shape = tuple(int(v) for v in x.shape)
    rank, steps = len(shape), layers.largest(node.inputs[0], a.axis)
    ramp_shape = [1] * rank
    ramp_shape[a.axis] = steps
    len_shape = [1] * rank
    len_shape[1 - a.axis] = shape[1 - a.axis]
    ramp = layers.constant_upto(ctx, np.arange(steps, dtype=np.float32).reshape(ramp_shape),
                                {a.axis: a.axis} if shape[a.axis] < 0 else {}, x, np.float32)
    lengths = ctx.reshape(ctx.cast(inputs[1], np.float32), len_shape)
    keep = layers.elementwise(ctx, ramp, lengths, EW.LESS)
    return [layers.select(ctx, keep, x, a.value)]


@schema
class ArangeLikeAttrs:
    start: float = 0.0
    step: float = 1.0
    repeat: int = 1
    ctx: str = attr("", ignored=True)
    axis: Optional[int] = None


def _arange_ok(node: OpNode) -> str | None:
    """axis within the input's rank."""
    a, rank = node.attrs, len(node.inputs[0].shape)
    if a.axis is not None and not -rank <= a.axis < rank:
        return f"{node.where()}: axis {a.axis} is out of range for rank {rank}"
    return None


# The input is wired in only under optimization profiles, where it gives the ramp's length at run time.
@converter("_contrib_arange_like", attrs=ArangeLikeAttrs, validator=_arange_ok, compute=False, data_inputs=0,
           shape_inputs=(0,))
def convert_arange_like(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_arange_like -> IConstantLayer (the ramp is known when converting); under profiles, with an axis,
    the ramp for the axis's largest size cut to its size at run time (ISliceLayer)."""
    a, out = node.attrs, node.outputs[0]
    copy = {}
    if out.dynamic:
        if a.axis is None:
            ctx.fail(f"a ramp over the whole input whose shape varies within the profiles ({node.inputs[0].dims}) "
                     "is not supported (give an axis)")
        copy = {0: a.axis % node.inputs[0].ndim}
    shape = (layers.largest(node.inputs[0], copy[0]),) if copy else out.shape
    count = int(np.prod(shape, dtype=np.int64))
    values = a.start + a.step * (np.arange(count) // a.repeat)
    return [layers.constant_upto(ctx, values.reshape(shape), copy, inputs[0], ctx.out_dtype(node))]


# ---- detection ---------------------------------------------------------------------------------------------------


@schema
class MultiBoxPriorAttrs:
    sizes: tuple[float, ...] = (1.0,)
    ratios: tuple[float, ...] = (1.0,)
    clip: bool = False
    steps: tuple[float, ...] = (-1.0, -1.0)  # (y, x); -1: 1 / the map's height, width
    offsets: tuple[float, ...] = (0.5, 0.5)  # (y, x)


def _multibox_prior_ok(node: OpNode) -> str | None:
    """Input rank >= 4; sizes, ratios not empty, steps not of opposite signs, offsets in [0, 1] (else MXNet fails)."""
    a = node.attrs
    if node.inputs[0].ndim < 4:
        return f"{node.where()}: input of rank {node.inputs[0].ndim} is not (B, C, H, W)"
    if not a.sizes or not a.ratios:
        return f"{node.where()}: sizes {a.sizes} and ratios {a.ratios} must not be empty (MXNet fails)"
    if len(a.steps) != 2 or a.steps[0] * a.steps[1] < 0:
        return f"{node.where()}: steps {a.steps} are not two of one sign (MXNet fails)"
    if len(a.offsets) != 2 or not all(0.0 <= o <= 1.0 for o in a.offsets):
        return f"{node.where()}: offsets {a.offsets} are not two values in [0, 1] (MXNet fails)"
    return None


def multibox_prior(height: int, width: int, attrs: MultiBoxPriorAttrs) -> np.ndarray:
    """MXNet 1.9.1's MultiBoxPrior CPU kernel (contrib/multibox_prior.cc) in float32, operation for operation:
    (1, H*W*(len(sizes) + len(ratios) - 1), 4) corners [xmin, ymin, xmax, ymax] per cell (row-major), each cell's
    boxes being every size at ratios[0], then sizes[0] at ratios[1:]; clip=True clips to [0, 1]."""
    f = np.float32
    sizes, ratios = np.asarray(attrs.sizes, f), np.asarray(attrs.ratios, f)
    step_y, step_x = f(attrs.steps[0]), f(attrs.steps[1])
    if step_y <= 0 or step_x <= 0:  # "estimate using layer shape"
        step_y, step_x = f(1) / f(height), f(1) / f(width)
    center_y = (np.arange(height, dtype=f) + f(attrs.offsets[0])) * step_y
    center_x = (np.arange(width, dtype=f) + f(attrs.offsets[1])) * step_x
    root = np.sqrt(ratios)
    box_sizes = np.concatenate([sizes, np.full(len(ratios) - 1, sizes[0], f)])
    box_roots = np.concatenate([np.full(len(sizes), root[0], f), root[1:]])
    half_w = box_sizes * f(height) / f(width) * box_roots / f(2)  # size * in_height / in_width * ratio / 2
    half_h = box_sizes / box_roots / f(2)
    cx, cy = center_x[None, :, None], center_y[:, None, None]  # (H, W, anchors)
    boxes = np.stack(np.broadcast_arrays(cx - half_w, cy - half_h, cx + half_w, cy + half_h), axis=-1)
    if attrs.clip:
        boxes = np.clip(boxes, f(0), f(1))
    return boxes.reshape(1, -1, 4).astype(f)


@converter("_contrib_MultiBoxPrior", attrs=MultiBoxPriorAttrs, validator=_multibox_prior_ok, compute=False,
           data_inputs=0)
def convert_multibox_prior(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_MultiBoxPrior -> IConstantLayer: the anchors depend only on the input's (static) height and width,
    so MXNet's CPU kernel is run in NumPy when converting."""
    shape = node.inputs[0].shape
    return [ctx.constant(multibox_prior(shape[2], shape[3], node.attrs), dtype=ctx.out_dtype(node))]


@schema
class BoxDecodeAttrs:
    std0: float = 1.0
    std1: float = 1.0
    std2: float = 1.0
    std3: float = 1.0
    clip: float = -1.0  # > 0: the log-scale offsets are clipped above to it before exp
    format: Literal["center", "corner"] = "center"  # of the anchors


def _box_decode_ok(node: OpNode) -> str | None:
    """data (B, N, 4); anchors of rank >= 3 with last dim 4 holding N boxes (MXNet reads them as (1, N, 4))."""
    data, anchors = node.inputs[0].shape, node.inputs[1].shape
    if len(data) != 3 or data[2] != 4:
        return f"{node.where()}: data {data} is not (B, N, 4)"
    if len(anchors) < 3 or anchors[-1] != 4 or int(np.prod(anchors)) != data[1] * 4:
        return f"{node.where()}: anchors {anchors} do not hold the (1, {data[1]}, 4) boxes data {data} needs"
    return None


@converter("_contrib_box_decode", attrs=BoxDecodeAttrs, validator=_box_decode_ok)
def convert_box_decode(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_box_decode -> IElementWiseLayers on (x, y) and (w, h) slices (ISliceLayer): centers x * std * anchor
    size + anchor center, half sizes EXP(min(offset * std, clip)) * anchor size / 2 (clip by an ISelectLayer, so NaN
    gives clip as in MXNet), corners by IConcatenationLayer; corner anchors are turned into centers first."""
    a = node.attrs
    x = ctx.tensor(inputs[0])
    b, n = (int(v) for v in x.shape[:2])
    anchors = ctx.reshape(ctx.tensor(inputs[1]), (1, n, 4))
    x = layers.elementwise(ctx, x, np.array([a.std0, a.std1, a.std2, a.std3]).reshape(1, 1, 4), EW.PROD)
    lo = layers.slice_nd(ctx, anchors, (0, 0, 0), (1, n, 2))
    hi = layers.slice_nd(ctx, anchors, (0, 0, 2), (1, n, 2))
    if a.format == "corner":  # (xmin, ymin), (xmax, ymax) -> centers, sizes
        size = layers.elementwise(ctx, hi, lo, EW.SUB)
        center = layers.elementwise(ctx, lo, layers.elementwise(ctx, size, 0.5, EW.PROD), EW.SUM)
    else:
        center, size = lo, hi
    offset = layers.slice_nd(ctx, x, (0, 0, 0), (b, n, 2))
    scale = layers.slice_nd(ctx, x, (0, 0, 2), (b, n, 2))
    if a.clip > 0:
        scale = layers.select(ctx, layers.elementwise(ctx, scale, a.clip, EW.LESS), scale, a.clip)
    center = layers.elementwise(ctx, layers.elementwise(ctx, offset, size, EW.PROD), center, EW.SUM)
    half = layers.elementwise(ctx, layers.unary(ctx, scale, trt.UnaryOperation.EXP), size, EW.PROD)
    half = layers.elementwise(ctx, half, 0.5, EW.PROD)
    return [layers.concat(ctx, [layers.elementwise(ctx, center, half, EW.SUB),
                                 layers.elementwise(ctx, center, half, EW.SUM)], axis=2)]
