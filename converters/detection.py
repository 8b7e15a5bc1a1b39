"""Detection converters: _contrib_ROIAlign."""
from __future__ import annotations

from typing import Any

import numpy as np

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, converter

EW = trt.ElementWiseOperation
U = trt.UnaryOperation
F32 = np.float32


@schema
class ROIAlignAttrs:
    pooled_size: tuple[int, ...] = attr()  # (PH, PW)
    spatial_scale: float = attr()
    sample_ratio: int = -1
    position_sensitive: bool = False
    aligned: bool = False


def _roi_align_ok(node: OpNode) -> str | None:
    """data (N, C, H, W), rois (R, 5); a fixed sampling grid (sample_ratio > 0); fewer than 2^31 data elements."""
    a, data, rois = node.attrs, node.inputs[0].shape, node.inputs[1].shape
    if len(data) != 4 or len(rois) != 2 or rois[1] != 5:
        return f"{node.where()}: data {data} and rois {rois} are not (N, C, H, W) and (R, 5)"
    if len(a.pooled_size) != 2 or min(a.pooled_size) < 1:
        return f"{node.where()}: pooled_size {a.pooled_size} is not two positive sizes"
    if a.sample_ratio <= 0:
        return (f"{node.where()}: sample_ratio {a.sample_ratio} asks for MXNet's adaptive grid (ceil(roi size / "
                "pooled size) samples per bin), which depends on the rois' values; only sample_ratio > 0 converts")
    if int(np.prod(data, dtype=np.int64)) >= 2**31:
        return f"{node.where()}: data {data} has 2^31 elements or more (int32 gather indices)"
    return None


def _samples(ctx: ConversionContext, lo: Any, bin_size: Any, pooled: int, grid: int, extent: int) -> tuple[Any, ...]:
    """One axis of MXNet's sampling grid (roi_align.cc, float32 operation for operation) for lo, bin_size (R, 1):
    positions lo + p * bin + (i + .5) * bin / grid for the pooled * grid samples -> (R, pooled * grid) float32
    (index of the low neighbour, of the high one, weight of the low one, of the high one, BOOL inside): outside is
    position < -1 or > extent; positions clamp to [0, extent - 1]."""
    k = np.arange(pooled * grid)
    pos = layers.elementwise(ctx, lo, layers.elementwise(ctx, bin_size, (k // grid).astype(F32)[None], EW.PROD),
                             EW.SUM)
    frac = layers.elementwise(ctx, layers.elementwise(ctx, bin_size, (k % grid + 0.5).astype(F32)[None], EW.PROD),
                              F32(grid), EW.DIV)
    pos = layers.elementwise(ctx, pos, frac, EW.SUM)
    outside = layers.elementwise(ctx, layers.elementwise(ctx, pos, F32(-1), EW.LESS),
                                 layers.elementwise(ctx, pos, F32(extent), EW.GREATER), EW.OR)
    inside = layers.unary(ctx, outside, U.NOT)
    pos = layers.elementwise(ctx, layers.elementwise(ctx, pos, F32(0), EW.MAX), F32(extent - 1), EW.MIN)
    low = layers.unary(ctx, pos, U.FLOOR)
    high = layers.elementwise(ctx, layers.elementwise(ctx, low, F32(1), EW.SUM), F32(extent - 1), EW.MIN)
    w_high = layers.elementwise(ctx, pos, low, EW.SUB)
    w_low = layers.elementwise(ctx, F32(1), w_high, EW.SUB)
    return low, high, w_low, w_high, inside


def _pairs(ctx: ConversionContext, a: Any, b: Any, shape: tuple[int, ...]) -> Any:
    """(R, K) tensors a, b -> (R, K, 2) reshaped to `shape` (a 1 inserted where the other axis broadcasts)."""
    return ctx.reshape(layers.concat(ctx, [ctx.reshape(t, tuple(t.shape) + (1,)) for t in (a, b)], 2), shape)


def _batch(ctx: ConversionContext, rois: Any, n: int) -> tuple[Any, Any]:
    """Batch index of each roi as int32 (R, 1, 1, 1, 1) and whether it counts (BOOL): MXNet's int cast truncates
    toward zero and a negative index gives zeros (as MXNet documents; its kernel leaves them unwritten); one >= N (MXNet
    reads out of bounds) is clamped, so the gather stays in range."""
    r = int(rois.shape[0])
    b = layers.slice_nd(ctx, rois, (0, 0), (r, 1))
    counts = ctx.reshape(layers.elementwise(ctx, b, F32(-1), EW.GREATER), (r, 1, 1, 1, 1))
    b = layers.elementwise(ctx, layers.unary(ctx, layers.elementwise(ctx, b, F32(0), EW.MAX), U.FLOOR), F32(n - 1),
                           EW.MIN)
    return ctx.cast(ctx.reshape(b, (r, 1, 1, 1, 1)), np.int32), counts


def _grid(ctx: ConversionContext, node: OpNode, rois: Any) -> tuple[Any, Any]:
    """Gather indices (R, PH*S, PW*S, 4) int32 into the feature as (N*H*W*P, C/P) rows, P = PH*PW when
    position-sensitive (else 1), and the bilinear weights (R, PH*S, PW*S, 4, 1) float32 of every sample's neighbours
    (y_low, x_low), (y_low, x_high), (y_high, x_low), (y_high, x_high), from float32 (R, 5) rois."""
    a = node.attrs
    n, _, h, w = node.inputs[0].shape
    r = node.inputs[1].shape[0]
    (ph, pw), s = a.pooled_size, a.sample_ratio
    ks, kx = ph * s, pw * s
    # Roi corners in feature coordinates, (x, y) pairs: roi_start/end = corner * spatial_scale - (0.5 if aligned).
    start = layers.elementwise(ctx, layers.slice_nd(ctx, rois, (0, 1), (r, 2)), F32(a.spatial_scale), EW.PROD)
    end = layers.elementwise(ctx, layers.slice_nd(ctx, rois, (0, 3), (r, 2)), F32(a.spatial_scale), EW.PROD)
    if a.aligned:
        start, end = (layers.elementwise(ctx, t, F32(0.5), EW.SUB) for t in (start, end))
    size = layers.elementwise(ctx, end, start, EW.SUB)
    if not a.aligned:  # MXNet forces malformed rois to 1 x 1
        size = layers.elementwise(ctx, size, F32(1), EW.MAX)
    bins = layers.elementwise(ctx, size, np.array([[pw, ph]], F32), EW.DIV)
    x = _samples(ctx, layers.slice_nd(ctx, start, (0, 0), (r, 1)), layers.slice_nd(ctx, bins, (0, 0), (r, 1)), pw, s, w)
    y = _samples(ctx, layers.slice_nd(ctx, start, (0, 1), (r, 1)), layers.slice_nd(ctx, bins, (0, 1), (r, 1)), ph, s, h)
    b, counts = _batch(ctx, rois, n)
    # Flat pixel (b*H + y)*W + x of the neighbours: y pairs on axis 3, x pairs on axis 4 -> (R, ks, kx, 2, 2).
    rows = layers.elementwise(ctx, layers.elementwise(ctx, b, h, EW.PROD),
                              ctx.cast(_pairs(ctx, y[0], y[1], (r, ks, 1, 2, 1)), np.int32), EW.SUM)
    cols = ctx.cast(_pairs(ctx, x[0], x[1], (r, 1, kx, 1, 2)), np.int32)
    index = layers.elementwise(ctx, layers.elementwise(ctx, rows, w, EW.PROD), cols, EW.SUM)
    # Samples outside the map (or of a negative batch index) weigh 0 and read MXNet's pos 0: pixel (b, 0, 0).
    inside = layers.elementwise(ctx, ctx.reshape(y[4], (r, ks, 1, 1, 1)), ctx.reshape(x[4], (r, 1, kx, 1, 1)), EW.AND)
    inside = layers.elementwise(ctx, inside, counts, EW.AND)
    index = layers.select(ctx, inside, index, layers.elementwise(ctx, b, h * w, EW.PROD))
    if a.position_sensitive:  # bin (ph, pw) reads input channel c * PH*PW + ph * PW + pw: row pixel * P + bin
        k = np.arange(ks)[:, None] // s * pw + np.arange(kx)[None, :] // s
        index = layers.elementwise(ctx, layers.elementwise(ctx, index, ph * pw, EW.PROD),
                                   k.reshape(1, ks, kx, 1, 1).astype(np.int32), EW.SUM)
    weights = layers.elementwise(ctx, _pairs(ctx, y[2], y[3], (r, ks, 1, 2, 1)),
                                 _pairs(ctx, x[2], x[3], (r, 1, kx, 1, 2)), EW.PROD)
    weights = layers.select(ctx, inside, weights, F32(0))
    return ctx.reshape(index, (r, ks, kx, 4)), ctx.reshape(weights, (r, ks, kx, 4, 1))


@converter("_contrib_ROIAlign", attrs=ROIAlignAttrs, validator=_roi_align_ok)
def convert_roi_align(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_ROIAlign -> sample positions, bilinear neighbours and weights from the rois in float32
    (IElementWise/IUnary/ISelect), the 4 neighbours of every sample by one IGatherLayer from the feature as NHWC rows
    (N*H*W, C) at int32 (b*H + y)*W + x (position-sensitive: rows of C/(PH*PW) channels, one per bin), weighted sum
    and average over each bin's grid (IReduceLayer), transposed to (R, C, PH, PW)."""
    a = node.attrs
    if node.inputs[0].dynamic or node.inputs[1].dynamic:  # N, H, W enter the row indices and the clamps as numbers
        data, rois = (t.dims or t.shape for t in node.inputs[:2])
        ctx.fail(f"data {data} or rois {rois} vary within the profiles: ROIAlign needs them static")
    n, c, h, w = node.inputs[0].shape
    r = node.inputs[1].shape[0]
    (ph, pw), s = a.pooled_size, a.sample_ratio
    # Rois that an fp16/bf16 engine computed are rounded (the sample points move with them, continuously, as in any
    # reduced-precision deployment); rois read from a float32 input keep every bit. Running their producers in
    # float32 instead would put a detector's whole RPN and backbone there.
    rois, _ = layers.exact_source(ctx, ctx.tensor(inputs[1], dtype=F32))
    index, weights = _grid(ctx, node, ctx.cast(rois, F32))
    p = ph * pw if a.position_sensitive else 1
    feature = ctx.net.add_shuffle(ctx.tensor(inputs[0]))  # (N, C/P, P, H*W) -> (N, H*W, P, C/P)
    feature.reshape_dims = (n, c // p, p, h * w)
    feature.second_transpose = (0, 3, 2, 1)
    rows = ctx.reshape(feature.get_output(0), (n * h * w * p, c // p))
    gathered = ctx.net.add_gather(rows, index, 0).get_output(0)  # (R, ks, kx, 4, C/P)
    terms = layers.elementwise(ctx, gathered, ctx.cast(weights, ctx.dtype), EW.PROD)
    terms = ctx.reshape(terms, (r, ph, s, pw, s * 4, c // p))
    pooled = layers.reduce(ctx, terms, trt.ReduceOperation.SUM, (2, 4), keep_dims=False)  # (R, PH, PW, C/P)
    pooled = layers.elementwise(ctx, pooled, float(s * s), EW.DIV)
    return [layers.transpose(ctx, pooled, (0, 3, 1, 2))]
