"""Non-maximum suppression: _contrib_box_nms.

TensorRT-RTX cannot build INMSLayer ("has no runners"), and its output size depends on the data; MXNet's box_nms has
a static output anyway (kept boxes first, then rows of -1), so it is built from static layers: a score sort (TopK),
the candidates' IoU matrix, a greedy pass over it in an ILoop, and a second TopK that moves the kept rows to the
front. Every comparison mirrors MXNet 1.9.1's CPU kernel (contrib/bounding_box-inl.h, bounding_box-common.h) operation
for operation in float32, so its decisions are MXNet's, ties included: scores sort as MXNet's stable sort does (equal
scores keep their order: TopK takes the lower index first), IoUs are computed in MXNet's order of operations.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, converter

EW = trt.ElementWiseOperation
F32 = np.float32
TOPK_MAX = 3840  # TensorRT-RTX's largest TopK k


@schema
class BoxNMSAttrs:
    overlap_thresh: float = 0.5
    valid_thresh: float = 0.0
    topk: int = -1  # candidates: the topk best valid boxes; -1 all, 0 none (MXNet then copies its input)
    coord_start: int = 2
    score_index: int = 1
    id_index: int = -1
    background_id: int = -1
    force_suppress: bool = False
    in_format: Literal["corner", "center"] = "corner"
    out_format: Literal["corner", "center"] = "corner"


def _candidates(node: OpNode) -> int:
    n, topk = node.inputs[0].shape[-2], node.attrs.topk
    return n if topk < 0 else min(n, topk)


def _box_nms_ok(node: OpNode) -> str | None:
    """Rank >= 2; score, id and the 4 coordinates in distinct columns (else MXNet fails); at most 3840 candidates
    (TensorRT-RTX's TopK limit): N boxes, or topk of them."""
    a, shape = node.attrs, node.inputs[0].shape
    if len(shape) < 2:
        return f"{node.where()}: input {shape} is not (..., N, K)"
    k, coords = shape[-1], set(range(a.coord_start, a.coord_start + 4))
    columns = [a.score_index] + ([a.id_index] if a.id_index >= 0 else [])
    if min(coords) < 0 or max(coords | set(columns)) >= k or len(coords | set(columns)) != 4 + len(columns):
        return (f"{node.where()}: coord_start {a.coord_start}, score_index {a.score_index} and id_index "
                f"{a.id_index} are not distinct columns of width {k} (MXNet fails)")
    m = _candidates(node)
    if m > TOPK_MAX:
        return (f"{node.where()}: {m} candidate boxes (N={shape[-2]}, topk={a.topk}) exceed TensorRT-RTX's TopK "
                f"limit of {TOPK_MAX}; a topk of at most {TOPK_MAX} converts")
    return None


def _column(ctx: ConversionContext, x: Any, c: int) -> Any:
    """Column c of (B, R, K) as (B, R, 1)."""
    b, r, _ = (int(v) for v in x.shape)
    return layers.slice_nd(ctx, x, (0, 0, c), (b, r, 1))


def _gather_rows(ctx: ConversionContext, x: Any, order: Any) -> Any:
    """Rows order[b, j] of each batch b of x (B, N, K): (B, M, K) (IGatherLayer ND, batch as elementwise dim)."""
    b, m = (int(v) for v in order.shape)
    layer = ctx.net.add_gather_v2(x, ctx.reshape(order, (b, m, 1)), trt.GatherMode.ND)
    layer.num_elementwise_dims = 1
    return layer.get_output(0)


def _intersect(ctx: ConversionContext, a1: Any, a2: Any, b1: Any, b2: Any, center: bool) -> Any:
    """MXNet's Intersect(a, b) along one axis: a = the reference box, (a1, a2) its start and end (corner) or center
    and size (center)."""
    E = layers.elementwise
    if center:
        aw, bw = E(ctx, a2, 2.0, EW.DIV), E(ctx, b2, 2.0, EW.DIV)
        al, ar = E(ctx, a1, aw, EW.SUB), E(ctx, a1, aw, EW.SUM)
        bl, br = E(ctx, b1, bw, EW.SUB), E(ctx, b1, bw, EW.SUM)
        left = layers.select(ctx, E(ctx, bl, al, EW.GREATER), bl, al)
        right = layers.select(ctx, E(ctx, br, ar, EW.LESS), br, ar)
    else:
        left = layers.select(ctx, E(ctx, a1, b1, EW.GREATER), a1, b1)
        right = layers.select(ctx, E(ctx, a2, b2, EW.LESS), a2, b2)
    w = E(ctx, right, left, EW.SUB)
    return layers.select(ctx, E(ctx, w, 0.0, EW.GREATER), w, 0.0)


def _area(ctx: ConversionContext, c: list[Any], center: bool) -> Any:
    """MXNet's BoxArea: width * height, 0 where either is negative."""
    E = layers.elementwise
    w, h = (c[2], c[3]) if center else (E(ctx, c[2], c[0], EW.SUB), E(ctx, c[3], c[1], EW.SUB))
    negative = E(ctx, E(ctx, w, 0.0, EW.LESS), E(ctx, h, 0.0, EW.LESS), EW.OR)
    return layers.select(ctx, negative, 0.0, E(ctx, w, h, EW.PROD))


def _suppresses(ctx: ConversionContext, node: OpNode, rows: Any) -> Any:
    """(B, M, M) float 0/1: [b, i, j] = 1 where candidate j would suppress candidate i if it came earlier in score
    order: iou(j, i) > overlap_thresh, in MXNet's order of operations, and (per-class NMS) the same class id."""
    a, E = node.attrs, layers.elementwise
    b, m, _ = (int(v) for v in rows.shape)
    center = a.in_format == "center"
    pos = [_column(ctx, rows, a.coord_start + q) for q in range(4)]  # candidate i: (B, M, 1)
    ref = [ctx.reshape(t, (b, 1, m)) for t in pos]  # candidate j: (B, 1, M)
    inter = E(ctx, _intersect(ctx, ref[0], ref[2], pos[0], pos[2], center),
              _intersect(ctx, ref[1], ref[3], pos[1], pos[3], center), EW.PROD)
    area = _area(ctx, pos, center)
    union = E(ctx, E(ctx, ctx.reshape(area, (b, 1, m)), area, EW.SUM), inter, EW.SUB)
    sup = E(ctx, E(ctx, inter, union, EW.DIV), a.overlap_thresh, EW.GREATER)
    if a.id_index >= 0 and not a.force_suppress:  # MXNet compares static_cast<int> of the ids
        cls = layers.trunc(ctx, _column(ctx, rows, a.id_index))
        sup = E(ctx, sup, E(ctx, ctx.reshape(cls, (b, 1, m)), cls, EW.EQUAL), EW.AND)
    return ctx.cast(sup, F32)


def _boundary(ctx: ConversionContext, layer: Any) -> Any:
    """A loop boundary layer (made by ILoop, not the network) named like the node's other layers."""
    if layer is None:
        ctx.fail(f"TensorRT refused a loop layer: {'; '.join(ctx.recorder.take()) or 'no reason given'}")
    ctx.name_layer(layer)
    return layer


def _greedy(ctx: ConversionContext, sup: Any, alive: Any) -> Any:
    """MXNet's greedy pass in score order as an ILoop of M iterations: candidate i stays unless a kept earlier
    candidate suppresses it. Iterators give row i of `sup` and i; keep (B, M) 0/1 is the recurrence. (Which
    candidates are earlier is compared per iteration: an (M, M) mask of constants would be folded into the plan.)"""
    b, m = (int(v) for v in alive.shape)
    loop = ctx.network.add_loop()
    loop.name = f"{ctx.node.name if ctx.node else 'mx2trt'}/loop"  # the reference interpreter's step for the loop
    trips = ctx.net.add_constant((), ctx.weights(np.array([m], np.int32), np.int32)).get_output(0)
    _boundary(ctx, loop.add_trip_limit(trips, trt.TripLimit.COUNT))
    row = _boundary(ctx, loop.add_iterator(sup, 1, False)).get_output(0)  # (B, M)
    i = _boundary(ctx, loop.add_iterator(ctx.constant(np.arange(m), dtype=F32), 0, False)).get_output(0)  # ()
    keep = _boundary(ctx, loop.add_recurrence(alive))
    kept = keep.get_output(0)
    positions, i = ctx.constant(np.arange(m), (1, m), F32), ctx.reshape(i, (1, 1))
    earlier = ctx.cast(layers.elementwise(ctx, positions, i, EW.LESS), F32)  # (1, M)
    at_i = ctx.cast(layers.elementwise(ctx, positions, i, EW.EQUAL), F32)
    hit = layers.elementwise(ctx, layers.elementwise(ctx, row, kept, EW.PROD), earlier, EW.PROD)
    hit = layers.reduce(ctx, hit, trt.ReduceOperation.MAX, [1])  # (B, 1)
    drop = layers.elementwise(ctx, at_i, hit, EW.PROD)
    keep.set_input(1, layers.elementwise(ctx, kept, layers.elementwise(ctx, 1.0, drop, EW.SUB), EW.PROD))
    return _boundary(ctx, loop.add_loop_output(kept, trt.LoopOutput.LAST_VALUE, 0)).get_output(0)


def _convert_format(ctx: ConversionContext, node: OpNode, out: Any) -> Any:
    """MXNet's corner_to_center / center_to_corner on the output's coordinates, skipping rows whose first coordinate
    is negative (the -1 rows, and any kept box left of 0)."""
    a, E = node.attrs, layers.elementwise
    b, n, k = (int(v) for v in out.shape)
    cs = a.coord_start
    c = [_column(ctx, out, cs + q) for q in range(4)]
    if a.out_format == "center":
        new = [E(ctx, E(ctx, c[0], c[2], EW.SUM), 2.0, EW.DIV), E(ctx, E(ctx, c[1], c[3], EW.SUM), 2.0, EW.DIV),
               E(ctx, c[2], c[0], EW.SUB), E(ctx, c[3], c[1], EW.SUB)]
    else:
        w, h = E(ctx, c[2], 2.0, EW.DIV), E(ctx, c[3], 2.0, EW.DIV)
        new = [E(ctx, c[0], w, EW.SUB), E(ctx, c[1], h, EW.SUB), E(ctx, c[0], w, EW.SUM), E(ctx, c[1], h, EW.SUM)]
    coords = layers.select(ctx, E(ctx, c[0], 0.0, EW.LESS), layers.slice_nd(ctx, out, (0, 0, cs), (b, n, 4)),
                   layers.concat(ctx, new, axis=2))
    parts = [layers.slice_nd(ctx, out, (0, 0, 0), (b, n, cs))] if cs else []
    parts.append(coords)
    if cs + 4 < k:
        parts.append(layers.slice_nd(ctx, out, (0, 0, cs + 4), (b, n, k - cs - 4)))
    return layers.concat(ctx, parts, axis=2) if len(parts) > 1 else coords


@converter("_contrib_box_nms", "_contrib_box_non_maximum_suppression", attrs=BoxNMSAttrs, validator=_box_nms_ok,
           dtypes=frozenset({np.dtype(np.float32)}))
def convert_box_nms(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_box_nms -> ITopKLayer by score, IGatherLayer rows, IoU matrix (IElementWise/ISelect layers), greedy
    ILoop over its rows, ITopKLayer moving kept rows first, ISelectLayer -1 rows (float32 in fp16/bf16 engines)."""
    a, E = node.attrs, layers.elementwise
    if ctx.precision != "fp32":
        ctx.fail(f"box coordinates, IoUs and scores rounded to {ctx.precision} would change which boxes are kept",
                 needs_fp32=True)
    shape = node.inputs[0].shape
    n, k = shape[-2:]
    if {len(shape) - 2, len(shape) - 1} & set(node.inputs[0].dynamic):
        ctx.fail(f"the boxes or their fields vary within the profiles ({node.inputs[0].dims}); only the batch may")
    b = -1 if node.inputs[0].dynamic else int(np.prod(shape[:-2], dtype=np.int64))  # -1: TensorRT infers the batch
    x = x_in = ctx.tensor(inputs[0])
    if a.topk == 0:  # MXNet copies its input
        return [ctx.identity(x)]
    m = _candidates(node)
    x = ctx.reshape(x, (b, n, k))
    score = ctx.reshape(_column(ctx, x, a.score_index), (b, n))
    valid = E(ctx, score, a.valid_thresh, EW.GREATER)
    if a.id_index >= 0:  # MXNet drops the background class (-1 by default) before sorting
        cls = ctx.reshape(_column(ctx, x, a.id_index), (b, n))
        valid = E(ctx, valid, layers.unary(ctx, E(ctx, cls, float(a.background_id), EW.EQUAL), trt.UnaryOperation.NOT),
                  EW.AND)
    best, order = layers.topk(ctx, layers.select(ctx, valid, score, -np.inf), True, m, 1)  # (B, M)
    rows = _gather_rows(ctx, x, order)  # candidates in score order (B, M, K)
    alive = ctx.cast(E(ctx, best, -np.inf, EW.GREATER), F32)
    kept = _greedy(ctx, _suppresses(ctx, node, rows), alive)  # (B, M) 0/1
    # kept candidates first in score order: key m - j for kept candidate j, -1 for the others
    key = E(ctx, E(ctx, kept, ctx.constant(m - np.arange(m), (1, m), F32), EW.PROD), E(ctx, kept, 1.0, EW.SUB), EW.SUM)
    first, order2 = layers.topk(ctx, key, True, m, 1)
    out = layers.select(ctx, ctx.reshape(E(ctx, first, 0.0, EW.GREATER), (b, m, 1)), _gather_rows(ctx, rows, order2),
                        -1.0)
    if m < n:
        out = layers.slice_nd(ctx, out, (0, 0, 0), (b, n, k), mode=trt.SampleMode.FILL, fill=-1.0)
    if a.in_format != a.out_format:
        out = _convert_format(ctx, node, out)
    dims = node.outputs[0].dims or node.outputs[0].shape  # the input's shape: varying leading axes copied from it
    return [layers.reshape(ctx, out, dims, layers.same_axes(x_in, dims), x_in)]
