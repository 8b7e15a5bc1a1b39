"""Shared TensorRT layer builders that thin converters dispatch to."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._trt import trt
from .context import ConversionContext

EW = trt.ElementWiseOperation
Act = trt.ActivationType


def rank(t: Any) -> int:
    return len(t.shape)


def elementwise(ctx: ConversionContext, a: Any, b: Any, op: Any) -> Any:
    """a <op> b with numpy broadcasting: constants become tensors, ranks are equalised with leading 1s."""
    r = max(np.ndim(x) if not isinstance(x, trt.ITensor) else rank(x) for x in (a, b))
    ta, tb = ctx.tensor(a, r), ctx.tensor(b, r)
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
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""
    shape = tuple(x.shape)
    return ctx.reshape(x, (shape[0], int(np.prod(shape[1:], dtype=np.int64))))


def concat(ctx: ConversionContext, xs: Sequence[Any], axis: int) -> Any:
    """Concatenation along `axis` (always set: TensorRT's default axis is rank-3)."""
    layer = ctx.net.add_concatenation([ctx.tensor(x) for x in xs])
    layer.axis = axis
    return layer.get_output(0)
