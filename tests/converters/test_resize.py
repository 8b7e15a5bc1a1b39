"""UpSampling and _contrib_BilinearResize2D: selected nodes convert and match MXNet CPU in fp32 and fp16 engines; what
TensorRT cannot express stays in MXNet with a reason, and the graph still gives MXNet's output."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import assume, currently_in_test_context, event, given
from hypothesis import strategies as st

from harness import check_graph, check_property_tests
from mx2trt import REGISTRY
from mx2trt._mx import mx
from mx2trt.graph import Graph

MODULE = "mx2trt.converters.resize"
SEEDS = st.integers(0, 2**32 - 1)

# MXNet is always the fp32 reference, fed the same values: in fp16 those are fp16 numbers, so the boundary cast loses
# nothing and what remains is the engine's rounding of its output (2^-11 = 4.9e-4 relative; interpolation weights are
# applied in float32). Nearest upsampling only copies: exact (but for multi_input_mode 'sum').
precisions = pytest.mark.parametrize("precision", ["fp32", "fp16"])
EXACT = 1e-6


def rtol_for(precision: str) -> float:
    return 1e-3 if precision == "fp16" else 1e-5


def normal(seed: int, shape: Sequence[int], precision: str, k: int = 0) -> np.ndarray:
    """Normal float32 data; fp16 values for an fp16 engine."""
    x = np.random.default_rng([seed, k]).standard_normal(tuple(shape)).astype(np.float32)
    return x.astype(np.float16).astype(np.float32) if precision == "fp16" else x


def check(sym: Any, data: dict[str, np.ndarray], params: dict[str, np.ndarray], **options: Any) -> str | None:
    """The node 'node' of `sym`: the registry's verdict, then converted and matching MXNet, or left in MXNet with that
    reason and still running."""
    prm = {k: mx.nd.array(v) for k, v in params.items()}
    graph = Graph.from_symbol(sym, prm, {k: v.shape for k, v in data.items()})
    reason = REGISTRY.check(graph, graph.by_name["node"])[1]
    if currently_in_test_context():
        event("selected" if reason is None else "refused")
    where = {"on_trt": ["node"]} if reason is None else {"in_mxnet": ["node"]}
    c = check_graph(sym, data, params, min_subgraph_size=1, **where, **options)
    if reason is not None:
        assert {r[0]: r[3] for r in c.report.rows}["node"] == reason
    return reason


# ---- UpSampling ----------------------------------------------------------------------------------------------------


@st.composite
def nearest_upsamplings(draw):
    n, scale = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    mode = draw(st.sampled_from([None, "concat", "sum"])) if n > 1 else None
    c0 = draw(st.integers(1, 3))
    shapes = [(batch, c0, h, w)]
    out_h, out_w = h * scale, w * scale
    for _ in range(n - 1):  # every further input scales by an integer to the first one's output
        f = draw(st.sampled_from([d for d in range(1, out_h + 1) if out_h % d == 0 and out_w % d == 0]))
        shapes.append((batch, c0 if mode == "sum" else draw(st.integers(1, 3)), out_h // f, out_w // f))
    attrs: dict[str, Any] = {"scale": scale, "sample_type": "nearest", "num_args": n}
    if mode is not None:
        attrs["multi_input_mode"] = mode
    return shapes, attrs, draw(SEEDS)


@st.composite
def bilinear_upsamplings(draw):
    c, scale = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    shape = (draw(st.integers(1, 2)), c, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return [shape], {"scale": scale, "sample_type": "bilinear", "num_args": 2, "num_filter": c}, draw(SEEDS)


@precisions
@given(st.one_of(nearest_upsamplings(), bilinear_upsamplings()))
def test_upsampling_matches_mxnet(precision, case):
    shapes, attrs, seed = case
    names = [f"x{i}" for i in range(len(shapes))]
    data = {v: normal(seed, s, precision, i) for i, (v, s) in enumerate(zip(names, shapes))}
    params = {}
    if attrs["sample_type"] == "bilinear":  # a (C, 1, k, k) weight: MXNet runs a depthwise Deconvolution with it
        k = 2 * attrs["scale"] - attrs["scale"] % 2
        params["weight"] = normal(seed, (attrs["num_filter"], 1, k, k), precision, 9)
        names.append("weight")
    sym = mx.sym.UpSampling(*[mx.sym.var(v) for v in names], name="node", **attrs)
    event(f"{attrs['sample_type']}, {len(shapes)} input(s)")
    exact = attrs["sample_type"] == "nearest" and attrs.get("multi_input_mode") != "sum"  # a sum rounds in fp16
    assert check(sym, data, params, precision=precision, rtol=EXACT if exact else rtol_for(precision)) is None


def test_upsampling_bilinear_with_computed_weight_stays_in_mxnet():
    x, w = normal(0, (1, 2, 3, 3), "fp32"), normal(1, (2, 1, 4, 4), "fp32")
    sym = mx.sym.UpSampling(mx.sym.var("x"), mx.sym.var("w"), scale=2, sample_type="bilinear", num_args=2,
                            num_filter=2, name="node")
    reason = check(sym, {"x": x, "w": w}, {})
    assert reason is not None and "parameter" in reason


def test_upsampling_bilinear_fcn_weights():
    # The weight Gluon/gluoncv initialise for bilinear upsampling (mx.init.Bilinear): the classic 2x and 4x kernels.
    for scale in (2, 4):
        k = 2 * scale - scale % 2
        w = mx.nd.zeros((3, 1, k, k))
        mx.init.Bilinear()(mx.init.InitDesc("upsampling_weight"), w)
        sym = mx.sym.UpSampling(mx.sym.var("x"), mx.sym.var("w"), scale=scale, sample_type="bilinear", num_args=2,
                                num_filter=3, name="node")
        assert check(sym, {"x": normal(2, (2, 3, 4, 5), "fp32")}, {"w": w.asnumpy()}) is None


# ---- _contrib_BilinearResize2D -------------------------------------------------------------------------------------


@st.composite
def bilinear_resizes(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    how = draw(st.sampled_from(["size", "size", "scale", "odd_scale", "to_even_down", "to_even_up", "to_odd_down",
                                "to_odd_up"]))
    attrs: dict[str, Any] = {}
    if how == "size":  # output sizes of 1 too: MXNet then takes the first row/column
        attrs.update(height=draw(st.integers(1, 9)), width=draw(st.integers(1, 9)))
    elif how in ("scale", "odd_scale"):
        attrs.update(scale_height=draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.7])),
                     scale_width=draw(st.sampled_from([0.4, 1.0, 1.3, 2.0, 3.0])))
        if how == "odd_scale":
            attrs["mode"] = how
    else:
        attrs["mode"] = how
    align = draw(st.sampled_from([None, True, False]))  # None: absent, MXNet's default align_corners=True
    if align is not None:
        attrs["align_corners"] = align
    return shape, attrs, draw(SEEDS)


@precisions
@given(bilinear_resizes())
def test_bilinear_resize_matches_mxnet(precision, case):
    shape, attrs, seed = case
    sym = mx.sym.contrib.BilinearResize2D(mx.sym.var("x"), name="node", **attrs)
    assume(min(sym.infer_shape(x=shape)[1][0]) > 0)  # scaling or rounding down 1 pixel leaves none (MXNet fails)
    event(f"align_corners={attrs.get('align_corners', True)}")
    assert check(sym, {"x": normal(seed, shape, precision)}, {}, precision=precision, rtol=rtol_for(precision)) is None


def test_bilinear_resize_coordinates_follow_mxnet():
    # 2 -> 4: align_corners samples 0, 1/3, 2/3, 1; otherwise half-pixel centres clamped at 0: 0, .25, .75, 1.
    x = np.array([[[[0.0, 12.0]]]], np.float32)
    for align, want in ((True, [0, 4, 8, 12]), (False, [0, 3, 9, 12])):
        sym = mx.sym.contrib.BilinearResize2D(mx.sym.var("x"), height=1, width=4, align_corners=align, name="node")
        c = check(sym, {"x": x}, {})
        assert c is None
        got = mx.nd.contrib.BilinearResize2D(mx.nd.array(x), height=1, width=4, align_corners=align)
        np.testing.assert_allclose(got.asnumpy().ravel(), want, atol=1e-5)


@pytest.mark.parametrize("like_from", ["input", "engine", "mxnet"])
def test_bilinear_resize_like(like_from):
    # mode 'like' reads only the second input's shape: it is not an engine input, whatever produces it.
    x, y = normal(3, (1, 2, 3, 4), "fp32"), normal(4, (1, 2, 5, 7), "fp32")
    like = mx.sym.var("y")
    if like_from == "engine":
        like = mx.sym.relu(like, name="pre")
    elif like_from == "mxnet":  # sort has no converter: the resize's engine starts after it
        like = mx.sym.sort(like, name="pre")
    sym = mx.sym.contrib.BilinearResize2D(mx.sym.var("x"), like, mode="like", name="node")
    assert check(sym, {"x": x, "y": y}, {}) is None


PROPERTY_TESTS = {
    "UpSampling": test_upsampling_matches_mxnet,
    "_contrib_BilinearResize2D": test_bilinear_resize_matches_mxnet,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)
