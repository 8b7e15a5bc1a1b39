"""Every converter family under optimization profiles: a graph of the family's ops is converted once with [min, opt,
max] ranges (dynamic batch; dynamic sequence length and batch for the transformer ops; batch, height and width of equal
ranges for the spatial ones) into one engine holding every node, checked against MXNet at min, opt and max, and then
at shapes hypothesis draws within the ranges (each axis on its own, so a square range binds non-square), each a new
bind of the same engine."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mx2trt
from harness import assert_close, run_symbol
from mx2trt._mx import mx

S = mx.sym
RTOL = 1e-5  # fp32 engines against MXNet: these graphs measure <= 1e-6
VOCAB = 11


def _activation(x: Any) -> list[Any]:
    return [S.relu(x), S.sigmoid(x), S.LeakyReLU(x, slope=0.2), S.softmax(x, axis=-1), S.log_softmax(x, axis=1),
            S.Activation(x, act_type="tanh"), S.LeakyReLU(x, act_type="elu")]


def _elementwise(x: Any) -> list[Any]:
    w = S.var("w", shape=(1, 4, 1))
    return [S.broadcast_add(x, w), S.elemwise_mul(x, x), S.broadcast_maximum(x, S.sin(x)), S.clip(x, -0.5, 0.5),
            S.sqrt(S.abs(x)) + 1, S.broadcast_div(x, S.exp(w))]


def _nn(x: Any) -> list[Any]:
    img = S.reshape(x, shape=(0, 4, 2, 3))
    conv = S.Convolution(img, num_filter=5, kernel=(2, 2), pad=(1, 1), name="conv")
    bn = S.BatchNorm(conv, fix_gamma=False, name="bn")
    pool = S.Pooling(S.relu(bn), kernel=(2, 2), pool_type="avg", name="pool")
    deconv = S.Deconvolution(img, num_filter=3, kernel=(2, 2), stride=(2, 2), name="deconv")
    return [S.FullyConnected(pool, num_hidden=3, name="fc"), S.FullyConnected(x, num_hidden=2, flatten=False, name="fc2"),
            deconv, S.Pooling(conv, global_pool=True, kernel=(1, 1), pool_type="max")]


def _norm(x: Any) -> list[Any]:
    return [S.LayerNorm(x, S.var("g", shape=(6,)), S.var("b", shape=(6,)), axis=-1),
            S.InstanceNorm(x, S.var("g2", shape=(4,)), S.var("b2", shape=(4,))), S.L2Normalization(x, mode="instance")]


def _reduce(x: Any) -> list[Any]:
    return [S.sum(x, axis=1), S.mean(x, axis=(1, 2), keepdims=True), S.max(x, axis=2), S.norm(x, axis=1),
            S.argmax(x, axis=1), S.min(x, axis=0, exclude=True)]


def _shape(x: Any) -> list[Any]:
    y = S.relu(x)
    a, b = S.split(y, num_outputs=2, axis=1)
    return [S.Flatten(y), S.reshape(y, shape=(0, -1)), S.reshape(y, shape=(-1, 2, 3)), S.expand_dims(y, axis=1),
            S.transpose(y, axes=(1, 0, 2)), S.slice_axis(y, axis=2, begin=1, end=5), S.tile(y, reps=(1, 2, 1)),
            a * 2, S.squeeze(S.slice_axis(b, axis=1, begin=0, end=1), axis=1), S.stack(y, S.sigmoid(x), axis=1),
            S.concat(y, x, dim=2), S.reverse(y, axis=2), S.swapaxes(y, dim1=1, dim2=2),
            S.broadcast_axis(S.sum(y, axis=1, keepdims=True), axis=1, size=3), S.zeros_like(y) + y,
            S.ones_like(y) * 2, S.slice(y, begin=(None, 1), end=(None, 3))]


def _spatial(x: Any) -> list[Any]:
    """x is (N, 2, H, W) with H and W of equal ranges (a square image's), drawn unequal: nothing may take one for the
    other."""
    merged = S.softmax(S.reshape(x, shape=(0, -3, 0)), axis=-1)  # (N, 2H, W)
    swapped = S.reshape(S.transpose(x, axes=(0, 1, 3, 2)), shape=(0, -3, 0))  # (N, 2W, H)
    conv = S.Convolution(x, num_filter=3, kernel=(3, 3), pad=(1, 1), name="sconv")
    return [S.reshape(merged, shape=(0, -4, 2, -1, 0)), swapped, S.Pooling(conv, kernel=(2, 2), stride=(2, 2),
            pool_type="max"), S.mean(x, axis=2), S.argmax(x, axis=3), S.slice_axis(x, axis=3, begin=0, end=2),
            S.Flatten(x), S.sum(x, axis=(2, 3))]


def _resize(x: Any) -> list[Any]:
    img = S.relu(S.reshape(x, shape=(0, 4, 2, 3)))
    return [S.UpSampling(img, scale=2, sample_type="nearest"),
            S.contrib.BilinearResize2D(img, height=5, width=4)]


def _indexing(x: Any) -> list[Any]:
    tokens = S.var("tokens")
    emb = S.Embedding(tokens, S.var("table", shape=(VOCAB, 6)), input_dim=VOCAB, output_dim=6)
    per_batch = S.reshape(S.mean(x, axis=(1, 2)), shape=(-1, 1, 1))  # joins the token branch to x's engine
    return [S.topk(x, axis=-1, k=2, ret_typ="both")[0], S.topk(x, axis=1, k=2), S.broadcast_add(emb, per_batch),
            S.broadcast_add(S.take(S.var("rows", shape=(VOCAB, 3)), tokens), per_batch), S.argsort(x, axis=-1)]


def _transformer(x: Any) -> list[Any]:
    """x is (T, B, 3 * heads * d): interleaved self-attention, masked by each sequence's valid length."""
    length = S.var("length")
    att = S.contrib.interleaved_matmul_selfatt_qk(x, heads=2)  # (B * heads, T, T)
    per_row = S.broadcast_like(S.reshape(S.repeat(S.cast(length, "int32"), repeats=2), shape=(-1, 1)), att,
                               lhs_axes=(1,), rhs_axes=(1,))
    att = S.softmax(att, length=per_row, use_length=True, axis=-1)
    ctx = S.contrib.interleaved_matmul_selfatt_valatt(x, att, heads=2)
    pos = S.contrib.arange_like(x, axis=0)
    return [ctx, S.SequenceMask(x, length, use_sequence_length=True, value=-1.0),
            S.broadcast_add(S.sum(x, axis=2), S.reshape(pos, shape=(-1, 1)))]


# family -> (graph builder, the data input's ranges, the axes that vary); every other input is a parameter except
# `tokens` (indices, batch varying) and `length` (valid lengths per sequence).
BATCH = [(1, 4, 6), (3, 4, 6), (6, 4, 6)]
FAMILIES: dict[str, tuple[Callable[[Any], list[Any]], list[tuple[int, ...]]]] = {
    "activation": (_activation, BATCH),
    "elementwise": (_elementwise, BATCH),
    "nn": (_nn, BATCH),
    "norm": (_norm, BATCH),
    "reduce": (_reduce, BATCH),
    "shape": (_shape, BATCH),
    "spatial": (_spatial, [(1, 2, 2, 2), (2, 2, 4, 4), (3, 2, 6, 6)]),
    "resize": (_resize, BATCH),
    "indexing": (_indexing, BATCH),
    "transformer": (_transformer, [(2, 1, 12), (8, 2, 12), (16, 4, 12)]),  # (T, B, 3 * heads * d): T and B vary
}


def _inputs(family: str, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    if family == "indexing":
        return {"data": shape, "tokens": (shape[0], 5)}
    if family == "transformer":
        return {"data": shape, "length": (shape[1],)}
    return {"data": shape}


def _values(family: str, shape: tuple[int, ...], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {"data": rng.standard_normal(shape).astype(np.float32)}
    if family == "indexing":
        out["tokens"] = rng.integers(0, VOCAB, (shape[0], 5)).astype(np.float32)
    if family == "transformer":
        out["length"] = rng.integers(1, shape[0] + 1, shape[1]).astype(np.float32)
    return out


_CONVERTED: dict[str, tuple[Any, Any, dict[str, np.ndarray], mx2trt.Conversion]] = {}


def _converted(family: str) -> tuple[Any, dict[str, np.ndarray], mx2trt.Conversion]:
    """The family's graph converted once with its ranges (one engine, every node in it), checked at min/opt/max."""
    if family not in _CONVERTED:
        build, ranges = FAMILIES[family]
        sym = S.Group(build(S.var("data") * 1.0))  # one node every output depends on: one connected engine
        names = _inputs(family, ranges[1])
        arg_shapes, _, aux_shapes = sym.infer_shape(**names)
        rng = np.random.default_rng(0)
        params = {n: rng.uniform(0.5, 1.5, s).astype(np.float32)
                  for n, s in zip(sym.list_arguments() + sym.list_auxiliary_states(), arg_shapes + aux_shapes)
                  if n not in names}
        per_input = [_inputs(family, r) for r in ranges]
        shapes = {k: [p[k] for p in per_input] for k in names}
        c = mx2trt.convert(sym, {k: mx.nd.array(v) for k, v in params.items()}, shapes, runtime="reference",
                           cache=False)
        assert len(c.engines) == 1 and c.report.nodes_trt == c.report.nodes_total, c.report.op_table()
        assert c.engines[0].profiles, "no dimension varies: the test does not test profiles"
        _CONVERTED[family] = (sym, params, c)
        for shape in ranges:
            _check(family, shape, 0)
    return _CONVERTED[family]


def _check(family: str, shape: tuple[int, ...], seed: int) -> None:
    sym, params, c = _CONVERTED[family]
    values = _values(family, shape, seed)
    want = run_symbol(sym, {**values, **params})
    got = run_symbol(c.symbol, {**values, **{k: v.asnumpy() for k, v in c.params.items()}})
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{family} output {k} at {shape}: shape {g.shape} vs MXNet {w.shape}"
        assert_close(g, w, RTOL, f"{family} output {k} at {shape}")


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data())
def test_family_matches_mxnet_at_any_shape_within_the_profile(family, data):
    _converted(family)
    lo, _, hi = FAMILIES[family][1]
    shape = tuple(data.draw(st.integers(a, b), label=f"dim {i}") for i, (a, b) in enumerate(zip(lo, hi)))
    _check(family, shape, data.draw(st.integers(0, 2**16), label="seed"))
