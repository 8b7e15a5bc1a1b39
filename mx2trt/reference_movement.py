"""The reference interpreter's data-movement layers: concatenation, shuffle, slice (every sample mode), padding,
select, gather (default, element and ND) and top-k. Registered into reference.py's makers."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._trt import trt
from .errors import Mx2TrtError
from .reference import LT, UnsupportedLayerError, _axes, _dims, _f32, _maker


@_maker(LT.CONCATENATION)
def _concatenation(layer: Any, ins: list, outs: list) -> Callable:
    axis = int(layer.axis) % len(ins[0].shape)
    return lambda args: [np.concatenate(args, axis=axis)]


def _perm(p: Any, rank: int) -> tuple[int, ...]:
    return tuple(int(v) for v in tuple(p)[:rank])  # read back as 8-tuples padded with zeros


@_maker(LT.SHUFFLE)
def _shuffle(layer: Any, ins: list, outs: list) -> Callable:
    in_rank = len(ins[0].shape)
    first = _perm(layer.first_transpose, in_rank)
    dynamic = len(ins) > 1 and ins[1] is not None  # reshape dims as a shape tensor, known at run time only
    static_dims = None if dynamic or layer.reshape_dims is None else _dims(layer.reshape_dims)
    out_rank = len(outs[0].shape)
    second = _perm(layer.second_transpose, out_rank)
    placeholder = bool(layer.zero_is_placeholder)

    def run(args: list) -> list:
        y = np.transpose(args[0], first)
        dims = tuple(int(d) for d in args[1]) if dynamic else static_dims
        if dims is not None:
            if placeholder:
                dims = tuple(y.shape[i] if d == 0 else d for i, d in enumerate(dims))
            y = y.reshape(dims)
        return [np.transpose(y, second)]

    return run


def _sample_indices(idx: np.ndarray, size: int, mode: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Map slice coordinates into [0, size) under a SampleMode; FILL also returns the in-bounds mask."""
    S = trt.SampleMode
    if mode == S.WRAP:
        return np.mod(idx, size), None
    if mode == S.CLAMP:
        return np.clip(idx, 0, size - 1), None
    if mode == S.REFLECT:
        if size == 1:
            return np.zeros_like(idx), None
        period = 2 * (size - 1)
        m = np.mod(idx, period)
        return np.where(m < size, m, period - m), None
    inside = (idx >= 0) & (idx < size)
    if mode == S.FILL:
        return np.clip(idx, 0, size - 1), inside
    if not inside.all():
        raise Mx2TrtError(f"slice out of bounds in STRICT_BOUNDS mode (indices {idx.min()}..{idx.max()}, size {size})")
    return idx, None


@_maker(LT.SLICE)
def _slice(layer: Any, ins: list, outs: list) -> Callable:
    rank = len(ins[0].shape)
    dyn = [j < len(ins) and ins[j] is not None for j in range(6)]
    start, stride, mode = None if dyn[1] else _dims(layer.start), None if dyn[3] else _dims(layer.stride), layer.mode
    shape = None if dyn[2] else _dims(layer.shape)  # a size tensor: sizes known at run time only
    if dyn[5]:
        raise UnsupportedLayerError("slice axes input")

    def run(args: list) -> list:
        x = args[0]
        st = tuple(int(v) for v in args[1]) if dyn[1] else start
        sh = tuple(int(v) for v in args[2]) if dyn[2] else shape
        sd = tuple(int(v) for v in args[3]) if dyn[3] else stride
        fill = args[4] if dyn[4] else 0
        y, mask = x, np.ones((1,) * rank, bool)
        for ax in range(rank):
            idx = st[ax] + sd[ax] * np.arange(sh[ax])
            idx, inside = _sample_indices(idx, x.shape[ax], mode)
            y = np.take(y, idx, axis=ax)
            if inside is not None:
                mask = mask & inside.reshape((1,) * ax + (-1,) + (1,) * (rank - ax - 1))
        return [np.where(mask, y, np.asarray(fill, dtype=x.dtype))]

    return run


@_maker(LT.PADDING)
def _padding(layer: Any, ins: list, outs: list) -> Callable:
    pre, post = _dims(layer.pre_padding_nd), _dims(layer.post_padding_nd)
    n = len(pre)

    def run(args: list) -> list:
        x = args[0]
        lead = x.ndim - n
        y = np.pad(x, [(0, 0)] * lead + [(max(a, 0), max(b, 0)) for a, b in zip(pre, post)])
        crop = tuple([slice(None)] * lead + [slice(-min(a, 0), y.shape[lead + i] + min(b, 0))
                                             for i, (a, b) in enumerate(zip(pre, post))])
        return [y[crop]]  # negative padding crops

    return run


@_maker(LT.SELECT)
def _select(layer: Any, ins: list, outs: list) -> Callable:
    return lambda args: [np.where(args[0], args[1], args[2])]


@_maker(LT.GATHER)
def _gather(layer: Any, ins: list, outs: list) -> Callable:
    G = trt.GatherMode
    mode, axis = layer.mode, int(layer.axis)
    if mode == G.DEFAULT and int(layer.num_elementwise_dims) == 0:
        return lambda args: [np.take(args[0], args[1].astype(np.int64), axis=axis % args[0].ndim)]
    if mode == G.ELEMENT:
        return lambda args: [np.take_along_axis(args[0], args[1].astype(np.int64), axis=axis % args[0].ndim)]
    if mode == G.ND:
        return lambda args: [_gather_nd(args[0], args[1].astype(np.int64), int(layer.num_elementwise_dims))]
    raise UnsupportedLayerError(f"gather mode {mode.name} with {layer.num_elementwise_dims} elementwise dims")


def _gather_nd(data: np.ndarray, idx: np.ndarray, batch: int) -> np.ndarray:
    """GatherMode.ND: the first `batch` axes of data and indices pair up; the last indices axis holds k coordinates
    into the next k data axes; output shape indices.shape[:-1] + data.shape[batch + k:]."""
    k = idx.shape[-1]
    if idx.shape[:batch] != data.shape[:batch] or batch + k > data.ndim:
        raise UnsupportedLayerError(f"gather ND: indices {idx.shape} do not fit data {data.shape} with {batch} "
                                    "elementwise dims")
    lead = idx.shape[:-1]
    grids = np.indices(lead, sparse=True)[:batch]
    coords = tuple(np.broadcast_to(g, lead) for g in grids) + tuple(idx[..., j] for j in range(k))
    return data[coords]


@_maker(LT.TOPK)
def _topk(layer: Any, ins: list, outs: list) -> Callable:
    if len(ins) > 1 and ins[1] is not None:
        raise UnsupportedLayerError("k given as a tensor")
    axes = _axes(int(layer.axes), len(ins[0].shape))
    if len(axes) != 1:
        raise UnsupportedLayerError(f"top-k over {len(axes)} axes")
    axis, k, largest = axes[0], int(layer.k), layer.op == trt.TopKOperation.MAX

    def run(args: list) -> list:
        x = _f32(args[0])
        order = np.argsort(-x if largest else x, axis=axis, kind="stable")  # ties: lower index first
        idx = np.take(order, np.arange(k), axis=axis)
        return [np.take_along_axis(x, idx, axis=axis), idx]

    return run
