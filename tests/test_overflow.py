"""Float32 islands that keep fp16 engines finite (mx2trt/overflow.py): attention energies before a softmax and exp in
box decoding run in float32 by default (norms compute their sums of squares in float32 themselves); fp32_ops/fp32_nodes add the user's own. Each pattern is
driven past fp16's 65504 where MXNet's float32 stays finite: with the guard the engine matches MXNet, without it the
output is inf/NaN and the reference runtime warns, naming the layer and node that overflowed first."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import mx2trt
from harness import assert_close, run_symbol
from mx2trt._mx import mx
from mx2trt.errors import InputError
from mx2trt.graph import Graph
from mx2trt.overflow import overflow_islands

FP16 = 65504.0


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def attention() -> tuple:
    """batch_dot -> scale -> masked (broadcast_add) softmax, energies around 1e5."""
    q, k, m = mx.sym.var("q"), mx.sym.var("k"), mx.sym.var("m")
    e = mx.sym.batch_dot(q, k, transpose_b=True, name="energy")
    s = mx.sym.broadcast_add(mx.sym._internal._div_scalar(e, scalar=2.0, name="scale"), m, name="mask")
    out = mx.sym.relu(mx.sym.softmax(s, axis=-1, name="att"), name="post")
    data = {"q": rng(1).standard_normal((2, 4, 8)) * 150, "k": rng(2).standard_normal((2, 5, 8)) * 150,
            "m": np.where(rng(3).random((2, 1, 5)) < 0.3, -1e4, 0.0)}
    return out, {k: v.astype(np.float32) for k, v in data.items()}, ["energy", "scale", "mask", "att"], "energy"


def channel_attention() -> tuple:
    """DANet's channel attention: softmax(broadcast_like(max(e), e) - e) of energies e = x x^T around 1e5."""
    x = mx.sym.var("x")
    e = mx.sym.batch_dot(x, x, transpose_b=True, name="energy")
    top = mx.sym.broadcast_like(mx.sym.max(e, axis=-1, keepdims=True, name="top"), e, name="wide")
    out = mx.sym.relu(mx.sym.softmax(mx.sym.elemwise_sub(top, e, name="gap"), axis=-1, name="att"), name="post")
    return out, {"x": (rng(8).standard_normal((1, 6, 16)) * 120).astype(np.float32)}, \
        ["energy", "top", "wide", "gap", "att"], "energy"


def box_decoding() -> tuple:
    """exp of log-size offsets times anchor sizes: exp(12) is 1.6e5, the decoded sizes a few thousand."""
    x, a = mx.sym.var("x"), mx.sym.var("a")
    wh = mx.sym.broadcast_mul(mx.sym.exp(mx.sym.relu(x, name="pre"), name="grow"), a, name="size")
    out = mx.sym._internal._plus_scalar(wh, scalar=1.0, name="post")
    data = {"x": 10 + rng(4).random((1, 6, 2)) * 2.5, "a": 0.01 + rng(5).random((1, 6, 2)) * 0.02}
    return out, {k: v.astype(np.float32) for k, v in data.items()}, ["grow", "size", "post"], "grow"


PATTERNS = {"attention": attention, "channel_attention": channel_attention, "box_decoding": box_decoding}
# fp16 tolerances: exp(x) inherits x's fp16 rounding, x * 2^-11 relative (1.2e-2 near x = 12; measured 2.6e-3)
RTOL = {"attention": 2e-3, "channel_attention": 2e-3, "box_decoding": 1.2e-2}


def convert(sym, data, **options):
    return mx2trt.convert(sym, {}, {k: v.shape for k, v in data.items()}, precision="fp16", runtime="reference",
                          cache=False, **options)


def run(c, data):
    return run_symbol(c.symbol, {**data, **{k: v.asnumpy() for k, v in c.params.items()}})[0]


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_guarded_fp16_engine_matches_mxnet(pattern):
    sym, data, island, _ = PATTERNS[pattern]()
    want = run_symbol(sym, data)[0]
    assert np.isfinite(want).all()
    c = convert(sym, data)
    assert len(c.engines) == 1, c.report.summary()
    reasons = {r.node: r.reason for r in c.report.rows}
    for name in island:
        assert "runs in float32 inside the fp16 engine" in reasons[name], (name, reasons[name])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warning either
        got = run(c, data)
    assert_close(got, want, RTOL[pattern], pattern)


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_unguarded_fp16_engine_overflows_and_the_reference_says_where(pattern):
    sym, data, _, first = PATTERNS[pattern]()
    c = convert(sym, data, overflow_guard=False)
    assert not any("float32" in r.reason for r in c.report.rows)
    with pytest.warns(RuntimeWarning, match=rf"MXNet node '{first}' overflows float16"):
        got = run(c, data)
    assert not np.isfinite(got).all()


def test_user_named_nodes_and_ops_run_in_float32():
    x = mx.sym.var("x")
    big = mx.sym._internal._mul_scalar(mx.sym.relu(x, name="pre"), scalar=1000.0, name="big")
    sym = mx.sym.relu(mx.sym._internal._mul_scalar(big, scalar=1e-4, name="small"), name="post")
    data = {"x": (100 + rng(7).random((4, 5)) * 50).astype(np.float32)}
    want = run_symbol(sym, data)[0]
    for options, why in (({"fp32_nodes": ["big", "small"]}, "named in fp32_nodes"),
                         ({"fp32_ops": ["_mul_scalar"]}, "_mul_scalar is in fp32_ops")):
        c = convert(sym, data, **options)
        reasons = {r.node: r.reason for r in c.report.rows}
        assert why in reasons["big"], reasons
        assert_close(run(c, data), want, 2e-3, str(options))
    with pytest.warns(RuntimeWarning, match="MXNet node 'big' overflows"):
        assert not np.isfinite(run(convert(sym, data), data)).all()  # no default rule covers this


@pytest.mark.parametrize("op", ["norm", "L2Normalization", "LayerNorm"])
def test_norms_stay_finite_without_islands(op):
    """Their sums of squares (7e5 here) are computed in float32 (or scaled) by their converters."""
    x, g, b = mx.sym.var("x"), mx.sym.var("g"), mx.sym.var("b")
    pre = mx.sym.relu(x, name="pre")
    y = {"norm": lambda: mx.sym.norm(pre, axis=1, name="node"),
         "L2Normalization": lambda: mx.sym.L2Normalization(pre, name="node"),
         "LayerNorm": lambda: mx.sym.LayerNorm(pre, g, b, name="node")}[op]()
    sym = mx.sym._internal._div_scalar(y, scalar=1000.0, name="post")
    data = {"x": (250 + rng(6).random((3, 8)) * 100).astype(np.float32)}
    if op == "LayerNorm":
        data.update(g=np.ones(8, np.float32), b=np.zeros(8, np.float32))
    c = convert(sym, data, overflow_guard=False)
    assert len(c.engines) == 1 and not any("float32" in r.reason for r in c.report.rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert_close(run(c, data), run_symbol(sym, data)[0], 5e-3, op)  # fp16 outputs: LayerNorm measures 1.9e-3


def test_bf16_engines_are_not_guarded_but_take_user_islands():
    sym, data, island, _ = attention()
    rows = {r.node: r.reason for r in mx2trt.convert(sym, {}, {k: v.shape for k, v in data.items()}, precision="bf16",
                                                      runtime="reference", cache=False).report.rows}
    assert not any("float32" in rows[n] for n in island)  # bf16 has float32's range
    c = mx2trt.convert(sym, {}, {k: v.shape for k, v in data.items()}, precision="bf16", runtime="reference",
                       cache=False, fp32_ops=["batch_dot"])
    assert "batch_dot is in fp32_ops" in {r.node: r.reason for r in c.report.rows}["energy"]


def test_islands_change_the_engine_key():
    sym, data, _, _ = attention()
    keys = {guard: convert(sym, data, overflow_guard=guard).engines[0].key for guard in (True, False)}
    assert keys[True] != keys[False]


def patterns_of(sym, shapes):
    graph = Graph.from_symbol(sym, {}, shapes, {k: np.dtype(np.float32) for k in shapes})
    return {graph.nodes[nid].name for nid in overflow_islands(graph)}


def test_a_classifier_softmax_is_not_an_attention_pattern():
    x, w = mx.sym.var("x"), mx.sym.var("w")
    sym = mx.sym.softmax(mx.sym.FullyConnected(x, w, num_hidden=10, no_bias=True, name="fc"), name="prob")
    assert patterns_of(sym, {"x": (2, 8), "w": (10, 8)}) == set()


def test_attention_is_followed_through_reshape_and_transpose_only_to_the_matmul():
    q, k = mx.sym.var("q"), mx.sym.var("k")
    e = mx.sym.batch_dot(mx.sym.relu(q, name="pre"), k, transpose_b=True, name="energy")
    t = mx.sym.transpose(mx.sym.Reshape(e, shape=(2, 4, 5), name="rs"), axes=(0, 2, 1), name="tr")
    sym = mx.sym.softmax(t, axis=-1, name="att")
    assert patterns_of(sym, {"q": (2, 4, 8), "k": (2, 5, 8)}) == {"energy", "rs", "tr", "att"}


@pytest.mark.parametrize("options, message", [
    ({"fp32_nodes": ["nope"]}, r"fp32_nodes: no op node is named \['nope'\]"),
    ({"fp32_ops": ["not_an_op"]}, r"fp32_ops: \['not_an_op'\] is not an MXNet op"),
    ({"fp32_ops": ["exp"], "precision": "fp32"}, "fp32_ops is for fp16/bf16 engines"),
    ({"overflow_guard": "yes"}, "overflow_guard"),
])
def test_bad_island_options(options, message):
    sym, data, _, _ = box_decoding()
    options = {"precision": "fp16", **options}
    with pytest.raises(InputError, match=message):
        mx2trt.convert(sym, {}, {k: v.shape for k, v in data.items()}, runtime="reference", cache=False, **options)
