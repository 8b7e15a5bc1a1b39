"""Sequence and attention ops that transformer models exported from GluonNLP use: interleaved self-attention
matmuls, SequenceMask and arange_like."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from mx2trt._trt import np_dtype, trt
from mx2trt.attrs import attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, converter

MO = trt.MatrixOperation


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
    x = ctx.reshape(qkv, (t, b, heads, 3, d))
    part = ctx.net.add_slice(x, (0, 0, 0, which, 0), (t, b, heads, 1, d), (1, 1, 1, 1, 1)).get_output(0)
    s = ctx.net.add_shuffle(part)
    s.reshape_dims = (t, b, heads, d)
    s.second_transpose = (1, 2, 0, 3)  # (B, heads, T, d)
    return ctx.reshape(s.get_output(0), (b * heads, t, d))


@converter("_contrib_interleaved_matmul_selfatt_qk", attrs=HeadsAttrs, validator=_heads_ok)
def convert_selfatt_qk(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_interleaved_matmul_selfatt_qk -> slices of the interleaved input, scale 1/sqrt(d), IMatrixMultiply
    q x k^T."""
    qkv, heads = ctx.tensor(inputs[0]), node.attrs.heads
    q = _projection(ctx, qkv, heads, 0)
    d = int(q.shape[2])
    scale = ctx.constant(1.0 / np.sqrt(d), shape=(1, 1, 1))
    q = ctx.net.add_elementwise(q, scale, trt.ElementWiseOperation.PROD).get_output(0)
    k = _projection(ctx, qkv, heads, 1)
    return [ctx.net.add_matrix_multiply(q, MO.NONE, k, MO.TRANSPOSE).get_output(0)]


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
    v = _projection(ctx, qkv, heads, 2)
    out = ctx.net.add_matrix_multiply(att, MO.NONE, v, MO.NONE).get_output(0)  # (B*heads, T, d)
    s = ctx.net.add_shuffle(out)
    s.reshape_dims = (b, heads, t, d)
    s.second_transpose = (2, 0, 1, 3)  # (T, B, heads, d)
    return [ctx.reshape(s.get_output(0), (t, b, heads * d))]


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
    rank, steps = len(shape), shape[a.axis]
    ramp_shape = [1] * rank
    ramp_shape[a.axis] = steps
    len_shape = [1] * rank
    len_shape[1 - a.axis] = shape[1 - a.axis]
    ramp = ctx.constant(np.arange(steps), shape=ramp_shape, dtype=np.float32)
    lengths = ctx.reshape(ctx.cast(inputs[1], np.float32), len_shape)
    keep = ctx.net.add_elementwise(ramp, lengths, trt.ElementWiseOperation.LESS).get_output(0)
    fill = ctx.constant(a.value, shape=(1,) * rank, dtype=np_dtype(x.dtype))
    return [ctx.net.add_select(keep, x, fill).get_output(0)]


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


@converter("_contrib_arange_like", attrs=ArangeLikeAttrs, validator=_arange_ok, compute=False, data_inputs=0)
def convert_arange_like(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_arange_like -> IConstantLayer (shapes are static, so the ramp is known when converting)."""
    a, out = node.attrs, node.outputs[0]
    count = int(np.prod(out.shape, dtype=np.int64))
    values = a.start + a.step * (np.arange(count) // a.repeat)
    return [ctx.constant(values.reshape(out.shape), dtype=ctx.dtype if out.dtype.kind == "f" else out.dtype)]
