"""precision="bf16": engine-internal bfloat16, checked where it differs from fp16 rather than for every op.

bf16 has an 8-bit significand: one rounding is 2^-8 = 3.9e-3 relative (BF16_RTOL allows twice that), and it holds
every integer only up to 256 (fp16: 2048). Inputs are drawn as bf16 numbers (exact_in) so the boundary cast loses
nothing; weights are rounded to bf16 in the engine while MXNet keeps float32, so tests with weights draw them as bf16
numbers too. Every check builds the engine (TensorRT-RTX's ahead-of-time build) and runs the reference interpreter.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import mx2trt
from harness import BF16_RTOL, check_graph, check_op, exact_in
from mx2trt import layers
from mx2trt._mx import mx
from mx2trt._trt import BF16, BF16_MAX, ErrorRecorder, bf16_bits, create_builder, create_network, quirk, round_bf16
from mx2trt._trt import trt
from mx2trt.context import ConversionContext
from mx2trt.reference import ReferenceProgram, UnsupportedLayerError

BF = "bf16"


def _bf(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """Standard normal float32 values that are bf16 numbers."""
    return round_bf16(rng.standard_normal(shape).astype(np.float32) * np.float32(scale))


def _reason(c: mx2trt.Conversion, name: str = "node") -> str:
    return {r.node: r.reason for r in c.report.rows}[name]


# ---- rounding --------------------------------------------------------------------------------------------------------


def test_round_bf16_ties_to_even_and_keeps_specials():
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8 + 2**-20), 0.0, -0.0, np.inf, -np.inf, BF16_MAX,
                  3.4e38, 1e-40], np.float32)
    want = np.array([1.0, 1.0, 1 + 2**-6, -(1 + 2**-7), 0.0, -0.0, np.inf, -np.inf, BF16_MAX, np.inf, 1e-40],
                    np.float32)
    got = round_bf16(x)
    np.testing.assert_array_equal(got[:-1], want[:-1])
    assert np.signbit(got[5]) and round_bf16(np.float32(np.nan)).shape == () and np.isnan(round_bf16(np.nan))
    assert got[-1] == round_bf16(got[-1]) and abs(got[-1] - x[-1]) <= 2.0**-133  # subnormals round too
    np.testing.assert_array_equal(bf16_bits(np.array([1.0, -2.0, BF16_MAX], np.float32)), [0x3F80, 0xC000, 0x7F7F])


def test_round_bf16_is_the_nearest_bf16_number():
    x = np.random.default_rng(0).standard_normal(100_000).astype(np.float32) * np.float32(1e3)
    y = round_bf16(x)
    low = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # truncated toward zero: one neighbour
    high = ((x.view(np.uint32) & np.uint32(0xFFFF0000)) + np.uint32(0x10000)).view(np.float32)  # the other
    assert np.all((y == low) | (y == high))
    err = np.abs(y.astype(np.float64) - x)
    assert np.all(err <= np.minimum(np.abs(low.astype(np.float64) - x), np.abs(high.astype(np.float64) - x)))


# ---- the context and the reference interpreter ----------------------------------------------------------------------


def _bf16_network() -> tuple[Any, ConversionContext]:
    recorder = ErrorRecorder()
    network = create_network(create_builder(recorder))
    return network, ConversionContext(network, recorder, BF)


def test_bf16_weights_reach_the_reference_through_host_copies():
    network, ctx = _bf16_network()
    rng = np.random.default_rng(1)
    x = ctx.cast(network.add_input("x", trt.float32, (2, 3, 4)), ctx.dtype)
    c = rng.standard_normal((1, 3, 4)).astype(np.float32)
    scale, shift = rng.standard_normal(3), rng.standard_normal(3)
    y = layers.channel_affine(ctx, layers.elementwise(ctx, x, c, trt.ElementWiseOperation.SUM), scale, shift, 1)
    assert y.dtype == trt.bfloat16
    out = ctx.cast(y, np.float32)
    out.name = "y"
    network.mark_output(out)
    kinds = {attr for _, attr in ctx.host_weights}
    assert kinds == {"weights", "scale", "shift"}, ctx.host_weights.keys()
    feed = round_bf16(rng.standard_normal((2, 3, 4)).astype(np.float32))
    got = ReferenceProgram.from_network(network, ctx.host_weights).run({"x": feed})["y"]
    bf = lambda v: round_bf16(np.asarray(v, np.float32))  # noqa: E731
    want = bf(bf(feed + bf(c)) * bf(scale)[:, None] + bf(shift)[:, None])  # each layer rounds its output once
    np.testing.assert_array_equal(got, want)
    with pytest.raises(UnsupportedLayerError, match="cannot be read back"):
        ReferenceProgram.from_network(network)


def test_bf16_constants_and_casts_round_in_the_reference():
    network, ctx = _bf16_network()
    x = network.add_input("x", trt.float32, (4,))
    k = ctx.constant(np.float32(1 + 2**-8), shape=(1,))  # rounds to 1 in bf16
    assert k.dtype == trt.bfloat16
    assert np.dtype(ctx.dtype) == BF16
    y = layers.elementwise(ctx, ctx.cast(x, ctx.dtype), k, trt.ElementWiseOperation.PROD)
    out = ctx.cast(y, np.float32)
    out.name = "y"
    network.mark_output(out)
    feed = np.array([1 + 2**-8, 3.0, 1 + 3 * 2**-8, -7.0], np.float32)
    got = ReferenceProgram.from_network(network, ctx.host_weights).run({"x": feed})["y"]
    np.testing.assert_array_equal(got, [1.0, 3.0, 1 + 2**-6, -7.0])


def test_bf16_context_facts():
    _, ctx = _bf16_network()
    assert ctx.lowest == -BF16_MAX and ctx.exact_int == 256
    with pytest.raises(mx2trt.InputError, match="bf16"):
        mx2trt.convert(mx.sym.relu(mx.sym.var("x")), {}, {"x": (2,)}, precision="bfloat16")


# ---- layers with bf16 weights ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("attrs, shape", [
    (dict(kernel=(3, 3), num_filter=4, pad=(1, 1), no_bias=False), (2, 3, 6, 5)),
    (dict(kernel=(3,), num_filter=6, num_group=3, stride=(2,), no_bias=True), (1, 3, 9)),  # grouped, 1-D
    (dict(kernel=(2, 2, 2), num_filter=2, no_bias=False), (1, 2, 3, 4, 3)),
])
def test_convolution(attrs, shape):
    rng = np.random.default_rng(2)
    c_in, k = shape[1], attrs["num_filter"]
    w = _bf(rng, (k, c_in // attrs.get("num_group", 1)) + attrs["kernel"], 0.5)
    inputs = [_bf(rng, shape), w] + ([] if attrs["no_bias"] else [_bf(rng, (k,))])
    check_op("Convolution", inputs, attrs, params=tuple(range(1, len(inputs))), precision=BF, rtol=BF16_RTOL)


def test_fully_connected_and_batch_norm():
    rng = np.random.default_rng(3)
    x = mx.sym.var("x")
    y = mx.sym.FullyConnected(x, mx.sym.var("w"), mx.sym.var("b"), num_hidden=5, name="fc")
    y = mx.sym.BatchNorm(mx.sym.reshape(y, shape=(0, 5, 1, 1)), mx.sym.var("g"), mx.sym.var("beta"),
                         mx.sym.var("mean"), mx.sym.var("var"), fix_gamma=False, name="bn")
    params = {"w": _bf(rng, (5, 7)), "b": _bf(rng, (5,)), "g": _bf(rng, (5,)), "beta": _bf(rng, (5,)),
              "mean": _bf(rng, (5,)), "var": round_bf16(rng.uniform(0.5, 2, 5).astype(np.float32))}
    # BatchNorm's folded scale and shift are rounded to bf16 in the engine (MXNet applies the float32 statistics):
    # two more roundings, hence twice the tolerance.
    check_graph(y, {"x": _bf(rng, (3, 7))}, params, on_trt=["fc", "bn"], engines=1, precision=BF,
                rtol=2 * BF16_RTOL)


@pytest.mark.parametrize("shape, attrs", [
    ((1, 2, 5, 4), dict(kernel=(3, 3), num_filter=3, stride=(2, 2), pad=(1, 1), no_bias=False)),
    ((1, 2, 5), dict(kernel=(3,), num_filter=3, stride=(3,), adj=(2,), no_bias=False)),  # 1-D, extends past the output
    ((2, 4, 3, 3), dict(kernel=(4, 4), num_filter=4, stride=(2, 2), pad=(1, 1), num_group=2)),
])
def test_deconvolution_runs_in_a_float32_island_where_bf16_cannot_build(shape, attrs):
    """TensorRT-RTX cannot build bf16 deconvolutions: there the layer runs in float32 between casts, so only its input
    and output round to bf16; full TensorRT deconvolves in bf16 (tests/test_trt_quirks.py simulates both)."""
    rng = np.random.default_rng(4)
    groups = attrs.get("num_group", 1)
    inputs = [_bf(rng, shape), _bf(rng, (shape[1], attrs["num_filter"] // groups) + attrs["kernel"], 0.5)]
    if not attrs.get("no_bias", True):
        inputs.append(_bf(rng, (attrs["num_filter"],)))
    c = check_op("Deconvolution", inputs, attrs, params=tuple(range(1, len(inputs))), precision=BF, rtol=BF16_RTOL)
    kinds = [(s.kind, s.out_dtypes[0]) for s in c.engines[0].program.steps]
    assert ("DECONVOLUTION", np.dtype(np.float32) if quirk("bf16_deconv") else BF16) in kinds


# ---- statistics in float32, resize, pooling, casts -------------------------------------------------------------------


def test_normalizations_and_pooling():
    rng = np.random.default_rng(5)
    x = mx.sym.var("x")
    y = mx.sym.LayerNorm(x, mx.sym.var("g"), mx.sym.var("b"), axis=1, name="ln")
    y = mx.sym.GroupNorm(y, mx.sym.var("gg"), mx.sym.var("gb"), num_groups=2, name="gn")
    y = mx.sym.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="avg", name="pool")
    y = mx.sym.L2Normalization(y, mode="channel", name="l2")
    arg_shapes, _, _ = y.infer_shape(x=(2, 4, 4, 6))
    params = {n: _bf(rng, s) for n, s in zip(y.list_arguments(), arg_shapes) if n != "x"}
    check_graph(y, {"x": _bf(rng, (2, 4, 4, 6), 3.0)}, params, on_trt=["ln", "gn", "pool", "l2"], engines=1,
                precision=BF, rtol=2 * BF16_RTOL)


def test_resize_and_pad():
    rng = np.random.default_rng(6)
    x = mx.sym.var("x")
    y = mx.sym.UpSampling(x, scale=2, sample_type="nearest", name="up")
    y = mx.sym.contrib.BilinearResize2D(y, height=5, width=7, name="bilinear")
    y = mx.sym.Pad(y, mode="constant", pad_width=(0, 0, 0, 0, 1, 2, 2, 1), constant_value=0.5, name="pad")
    check_graph(y, {"x": _bf(rng, (1, 2, 3, 4))}, {}, on_trt=["up", "bilinear", "pad"], engines=1, precision=BF,
                rtol=BF16_RTOL)


def test_cast_to_float16_inside_a_bf16_engine():
    """Cast to float16 rounds as MXNet's does (through fp16), then the engine holds it in bf16; a float16 output
    leaves the engine as float16."""
    x = mx.sym.var("x")
    y = mx.sym.Cast(mx.sym.relu(x, name="r"), dtype="float16", name="node")
    data = {"x": exact_in(BF, np.array([[1.0, -2.0, 3.140625, 70000.0, 1e-8]], np.float32))[0]}
    c = check_graph(y, data, {}, on_trt=["node"], precision=BF, rtol=BF16_RTOL)  # 70000 -> inf, as in MXNet
    assert c.engines[0].out_dtypes == ["float16"]


# ---- masking, indices: where fp16 and bf16 differ --------------------------------------------------------------------


def test_softmax_with_length_masks_with_the_lowest_bf16():
    rng = np.random.default_rng(7)
    x = _bf(rng, (2, 3, 6), 4.0)
    x[1, 0, 0] = round_bf16(np.float32(-3e38))  # the one valid position, far below fp16's range, beats the masked
    length = np.array([[6, 2, 0], [1, 3, 5]], np.int32)
    check_op("softmax", [x, length], {"axis": -1, "use_length": True}, params=(1,), precision=BF, rtol=BF16_RTOL)


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Distinct bf16 numbers (no ties): consecutive bf16 bit patterns from 1.0 up, shuffled."""
    n = math.prod(shape)
    bits = (rng.permutation(n).astype(np.uint32) + np.uint32(0x3F80)) << np.uint32(16)
    return bits.view(np.float32).reshape(shape)


def test_argmax_up_to_256_positions_converts_and_beyond_runs_in_float32():
    rng = np.random.default_rng(8)
    check_op("argmax", [_distinct(rng, (3, 256))], {"axis": 1}, precision=BF)
    check_op("argmax_channel", [_distinct(rng, (2, 200, 3))], precision=BF)
    sym = mx.sym.argmax(mx.sym.var("x0"), axis=1, name="node")
    c = check_graph(sym, {"x0": _distinct(rng, (1, 300))}, {}, on_trt=["node"], precision=BF, min_subgraph_size=1,
                    rtol=0.0)
    assert "runs in float32 inside the bf16 engine" in _reason(c)


def test_topk_indices_beyond_256_run_in_float32_and_values_convert():
    rng = np.random.default_rng(9)
    check_op("topk", [_distinct(rng, (2, 257))], dict(k=3, ret_typ="both"), precision=BF, rtol=0.0)
    x = _distinct(rng, (2, 300))
    sym = mx.sym.topk(mx.sym.var("x0"), k=3, ret_typ="indices", name="node")
    c = check_graph(sym, {"x0": x}, {}, on_trt=["node"], precision=BF, min_subgraph_size=1, rtol=0.0)
    assert "runs in float32" in _reason(c)
    check_op("topk", [x], dict(k=3, ret_typ="value"), precision=BF, rtol=0.0)


def _index_graph(op: str, table: np.ndarray, idx: np.ndarray, attrs: dict[str, Any], computed: bool,
                 converts: bool = True) -> Any:
    """`op` on indices fed straight from an input, or computed in the engine first (relu, a no-op on them)."""
    i = mx.sym.var("idx")
    if computed:
        i = mx.sym.relu(i, name="pre")
    sym = mx.sym.Embedding(i, mx.sym.var("w"), name="node", **attrs) if op == "Embedding" else \
        mx.sym.one_hot(i, name="node", **attrs)
    params = {"w": table} if op == "Embedding" else {}
    return check_graph(sym, {"idx": idx}, params, precision=BF, rtol=0.0, min_subgraph_size=1,
                       **({"on_trt": ["node"]} if converts else {"in_mxnet": ["node"]}))


def test_embedding_reads_large_indices_from_the_float32_input():
    rng = np.random.default_rng(10)
    table = _bf(rng, (1000, 3))
    idx = rng.integers(0, 1000, (4, 6)).astype(np.float32)
    idx[0, :3] = [257, 513, 999]  # 256, 512 and 1000 in bf16
    _index_graph("Embedding", table, idx, dict(input_dim=1000, output_dim=3), computed=False)


def test_computed_indices_beyond_256_run_in_float32_and_within_convert():
    rng = np.random.default_rng(11)
    table = _bf(rng, (1000, 3))
    # 257 and 513 would round in bf16: the Embedding and the relu computing its indices run in float32
    c = _index_graph("Embedding", table, np.array([[257, 3, 513]], np.float32), dict(input_dim=1000, output_dim=3),
                     computed=True)
    assert "runs in float32 inside the bf16 engine" in _reason(c) and "runs in float32" in _reason(c, "pre")
    _index_graph("Embedding", table[:200], np.array([[199, 3, 250.7]], np.float32), dict(input_dim=200, output_dim=3),
                 computed=True)
    # one_hot's indices beyond its depth <= 256 round to values beyond it too: all zeros either way
    _index_graph("one_hot", table, np.array([[255, 3, 256, 257, 300]], np.float32), dict(depth=256), computed=True)


def test_positions_from_arange_like_index_an_embedding_larger_than_256():
    """GluonNLP's position embedding: arange_like's ramp is a constant the engine holds exactly, so a 512-row table
    is fine in bf16 even though the indices are computed inside the engine."""
    rng = np.random.default_rng(12)
    x = mx.sym.var("x")
    pos = mx.sym.contrib.arange_like(x, axis=1, name="pos")
    emb = mx.sym.Embedding(pos, mx.sym.var("w"), input_dim=512, output_dim=4, name="node")
    sym = mx.sym.broadcast_add(mx.sym.reshape(emb, shape=(1, 16, 4)), mx.sym.reshape(x, shape=(2, 16, 1)))
    check_graph(sym, {"x": _bf(rng, (2, 16))}, {"w": _bf(rng, (512, 4))}, on_trt=["node"], engines=1, precision=BF,
                rtol=BF16_RTOL)


def test_norm_needs_no_rescaling_in_bf16():
    """ord 2 squares x directly in bf16 (fp16 divides by max|x| first): 1e5 squared is far inside bf16's range."""
    x = exact_in(BF, np.array([[3e4, -1e5, 7.0], [1e-3, 2e-3, 0.0]], np.float32))[0]
    c = check_op("norm", [x], {"axis": 1}, precision=BF, rtol=BF16_RTOL)
    assert not any(s.kind == "ACTIVATION" for s in c.engines[0].program.steps)
