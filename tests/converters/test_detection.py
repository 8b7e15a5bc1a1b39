"""ROIAlign: hypothesis draws feature maps, rois (partly outside the map, degenerate, on sample-grid edges) and
attributes (aligned, position-sensitive) that fit together; the node must match MXNet CPU in fp32 and fp16."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mx2trt
from harness import assert_close, check_graph, check_op, check_property_tests, exact_in, run_symbol, sym_fn
from mx2trt._mx import mx

MODULE = "mx2trt.converters.detection"
SEEDS = st.integers(0, 2**32 - 1)
# fp16: the features and the bilinear weights are fp16 (sample positions, neighbours and weights are computed in
# float32, then the weights rounded); the products, the grid sum and the division round once more each: measured
# <= 1.6e-3 of the output's largest magnitude over 2 x 300 draws on the reference interpreter (fp32: <= 3.6e-7).
PRECISIONS = [("fp32", 1e-5), ("fp16", 3e-3)]
IDS = [p for p, _ in PRECISIONS]


def _rois(rng: np.random.Generator, count: int, batch: int, image_h: float, image_w: float,
          aligned: bool) -> np.ndarray:
    """(count, 5) rois [b, x1, y1, x2, y2] in image coordinates: corners from a quarter outside to a quarter beyond
    the image, half of them on whole or half pixels (sample points then fall on the grid and its edges); without
    `aligned` some are degenerate (x2 <= x1 or y2 <= y1: MXNet makes them 1 x 1), with it every side is positive
    (MXNet checks that). Batch indices may carry a fraction (MXNet truncates)."""
    rows = []
    for _ in range(count):
        corners = []
        for extent in (image_w, image_h):
            lo = rng.uniform(-0.25 * extent, 1.25 * extent)
            if aligned or rng.random() < 0.8:
                hi = lo + rng.uniform(0.1, 1.2 * extent)
            else:
                hi = lo - rng.uniform(0, 3)
            corners.append((lo, hi))
        if rng.random() < 0.5:
            corners = [(np.round(2 * lo) / 2, np.round(2 * hi) / 2) for lo, hi in corners]
            if aligned:
                corners = [(lo, max(hi, lo + 0.5)) for lo, hi in corners]
        b = rng.integers(0, batch) + (rng.uniform(0, 0.99) if rng.random() < 0.2 else 0.0)
        (x1, x2), (y1, y2) = corners
        rows.append([b, x1, y1, x2, y2])
    return np.asarray(rows, np.float32)


@st.composite
def roi_aligns(draw):
    """(data, rois, attrs): N <= 3, H, W <= 8, R <= 8, pooled sizes <= 4, sample_ratio 1-3, spatial_scale 1, 1/2 or
    1/4, aligned and position_sensitive either way (absent: MXNet's default False); C <= 4 output channels (times
    PH * PW input channels when position-sensitive)."""
    n, c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    pooled = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    sensitive = draw(st.sampled_from([None, False, True]))
    if sensitive:
        c *= pooled[0] * pooled[1]
    scale = draw(st.sampled_from([1.0, 0.5, 0.25]))
    aligned = draw(st.sampled_from([None, False, True]))
    rng = np.random.default_rng(draw(SEEDS))
    data = rng.standard_normal((n, c, h, w)).astype(np.float32)
    rois = _rois(rng, draw(st.integers(1, 8)), n, h / scale, w / scale, bool(aligned))
    attrs = {"pooled_size": pooled, "spatial_scale": scale, "sample_ratio": draw(st.integers(1, 3))}
    if aligned is not None:
        attrs["aligned"] = aligned
    if sensitive is not None:
        attrs["position_sensitive"] = sensitive
    return data, rois, attrs


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
@given(case=roi_aligns())
def test_roi_align(precision, rtol, case):
    data, rois, attrs = case
    (data,) = exact_in(precision, data)  # the rois stay float32: they are read in float32
    check_op("_contrib_ROIAlign", [data, rois], attrs, precision=precision, rtol=rtol)


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
def test_roi_align_of_computed_rois(precision, rtol):
    """Rois computed inside the engine (scaled by 8 from a feature-sized box) stay in the engine's precision: an
    fp16 engine's rois are its rounded values (here exact: whole image pixels, so eighths of feature pixels), and
    neither ROIAlign nor the nodes computing them are moved to float32."""
    x, boxes = mx.sym.var("x"), mx.sym.var("boxes")
    rois = mx.sym.broadcast_mul(boxes, mx.sym.var("scale"), name="scale_rois")
    feat = mx.sym.relu(x, name="r")
    sym = sym_fn("_contrib_ROIAlign")(feat, rois, pooled_size=(3, 3), spatial_scale=0.125, sample_ratio=2,
                                      name="node")
    rng = np.random.default_rng(0)
    (data,) = exact_in(precision, rng.standard_normal((2, 4, 40, 40)).astype(np.float32))
    image_rois = _rois(rng, 6, 2, 320, 320, False)
    image_rois[:, 1:] = np.round(image_rois[:, 1:])
    boxes = image_rois / np.float32(8)  # exact: the engine's product gives MXNet's rois again
    boxes[:, 0] = image_rois[:, 0]
    scale = np.array([[1, 8, 8, 8, 8]], np.float32)
    c = check_graph(sym, {"x": data, "boxes": boxes}, {"scale": scale}, on_trt=["r", "scale_rois", "node"],
                    engines=1, precision=precision, rtol=rtol)
    reasons = {row.node: row.reason for row in c.report.rows}
    assert not any("runs in float32" in why for why in reasons.values()), reasons


def test_roi_align_negative_batch_index_gives_zeros():
    """MXNet documents zeros for a roi of negative batch index; its kernel instead writes 0 to element n of the whole
    flat output (n the roi's row) and leaves that roi's own outputs unwritten. Here those rois come out 0; the other
    rois match MXNet except at those stray flat elements; a batch index in (-1, 0) truncates to 0 and counts."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    rois = _rois(rng, 6, 2, 6, 6, False)
    negative = [1, 4]
    rois[negative, 0] = [-1, -3.5]
    rois[2, 0] = -0.5
    attrs = {"pooled_size": (2, 2), "spatial_scale": 1.0, "sample_ratio": 2}
    sym = sym_fn("_contrib_ROIAlign")(mx.sym.var("x"), mx.sym.var("rois"), name="node", **attrs)
    c = mx2trt.convert(sym, {}, {"x": data.shape, "rois": rois.shape}, runtime="reference", min_subgraph_size=1)
    assert {row.node: row.placement for row in c.report.rows}["node"] != "mxnet"
    (got,) = run_symbol(c.symbol, {"x": data, "rois": rois})
    (want,) = run_symbol(sym, {"x": data, "rois": rois})
    compare = np.ones(want.shape, bool)
    compare[negative] = False
    compare.reshape(-1)[negative] = False  # MXNet's stray writes
    assert_close(got[compare], want[compare], 1e-5)
    assert not got[negative].any()


@pytest.mark.parametrize("attrs, shape, why", [
    ({}, (1, 4, 8, 8), "sample_ratio -1 asks for MXNet's adaptive grid"),
    ({"sample_ratio": 0}, (1, 4, 8, 8), "sample_ratio 0 asks for MXNet's adaptive grid"),
    ({"sample_ratio": 2}, (2, 1024, 1024, 1024), "has 2^31 elements or more"),
], ids=["adaptive", "zero", "int32"])
def test_roi_align_refusals(attrs, shape, why):
    """MXNet's adaptive sampling grid depends on the rois' values; the gather's int32 indices cover 2^31 elements."""
    sym = sym_fn("_contrib_ROIAlign")(mx.sym.var("x"), mx.sym.var("rois"), pooled_size=(2, 2), spatial_scale=0.5,
                                      name="node", **attrs)
    rows = {row[0]: row for row in mx2trt.explain(sym, {"x": shape, "rois": (3, 5)}).rows}
    assert rows["node"][2] == "mxnet" and why in rows["node"][3], rows["node"]


@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=IDS)
def test_roi_align_faster_rcnn_size(precision, rtol):
    """A Faster-RCNN-like head: 256 channels, 32 rois pooled 7 x 7 with 2 x 2 samples per bin; prints the time to
    define and build the engine."""
    rng = np.random.default_rng(2)
    (data,) = exact_in(precision, rng.standard_normal((1, 256, 19, 25)).astype(np.float32))
    rois = _rois(rng, 32, 1, 19 * 16, 25 * 16, False)
    t0 = time.perf_counter()
    c = check_op("_contrib_ROIAlign", [data, rois], {"pooled_size": (7, 7), "spatial_scale": 1 / 16,
                                                     "sample_ratio": 2}, precision=precision, rtol=rtol)
    e = c.engines[0]
    print(f"ROIAlign (1,256,19,25) x 32 rois 7x7 S=2 {precision}: define {e.define_s:.2f} s, build {e.build_s:.2f} s, "
          f"convert + reference run {time.perf_counter() - t0:.2f} s")


PROPERTY_TESTS = {
    "_contrib_ROIAlign": test_roi_align,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)
