"""Detection, segmentation and pose networks as whole models (mx2trt.zoo: SSD, YOLOv3, DeepLabV3, SimplePose, written
after gluoncv): everything TensorRT can express converts, only the nodes it cannot express stay in MXNet, in as few
engines as those nodes allow, and the result matches MXNet in fp32 and fp16.

fp16 and discrete decisions: an fp16 engine moves the continuous outputs by ~1e-3 relative, enough to swap two
near-equal scores (topk, NMS order), to cross a score threshold, or to change an argmax where the top two logits
nearly tie. So in fp16 the continuous outputs are compared with a tolerance (5e-3: the zoo's fp16 tolerance, measured
<= 3.6e-3 here, the largest after exp() in YOLO's box decoding), each differing argmax must sit on a near tie in
MXNet's own values, and detections after NMS must match MXNet's one to one for most rows rather than row by row.
"""
from __future__ import annotations

import numpy as np
import pytest

import mx2trt
from mx2trt import zoo
from mx2trt._mx import mx

from harness import assert_close, check_graph, run_symbol

FP16_RTOL = 5e-3


def _inputs(shapes: dict, params: dict) -> tuple[dict, dict]:
    rng = np.random.default_rng(1)
    data = {"data": rng.standard_normal(shapes["data"]).astype(np.float32)}
    return data, {k: v.asnumpy() for k, v in params.items()}


def _in_mxnet(c: mx2trt.Conversion) -> dict[str, str]:
    return {node: reason for node, _, where, reason in c.report.rows if where == "mxnet"}


def _check_placement(c: mx2trt.Conversion, expected: dict[str, str], engines: int, precision: str) -> None:
    """Exactly the `expected` nodes stay in MXNet, each for its reason; `engines` engines; all MACs in TensorRT."""
    got = _in_mxnet(c)
    assert set(got) == set(expected), c.report.op_table()
    for node, why in expected.items():
        assert why in got[node], (node, got[node])
    assert len(c.engines) == engines, c.report.summary()
    assert all(e.precision == precision for e in c.engines)
    assert c.report.mac_coverage == 1.0, c.report.summary()


def _convert_fp16(sym, data: dict, params: dict, precision: str = "fp16") -> tuple[mx2trt.Conversion, list, list]:
    want = run_symbol(sym, {**data, **params})
    nd = {k: mx.nd.array(v) for k, v in params.items()}
    c = mx2trt.convert(sym, nd, {k: v.shape for k, v in data.items()}, precision=precision, runtime="reference")
    got = run_symbol(c.symbol, {**data, **{k: v.asnumpy() for k, v in c.params.items()}})
    return c, got, want


def _check_argmax(got: np.ndarray, want: np.ndarray, values: np.ndarray, axis: int, tol: float) -> float:
    """Indices `got` vs MXNet's `want` (argmax of `values` along `axis`): where they differ, MXNet's values at the two
    indices must tie within `tol` of the values' scale. Returns the share that differ."""
    diff = got != want
    if diff.any():
        v = np.moveaxis(values, axis, -1)
        at = lambda i: np.take_along_axis(v, i[..., None].astype(np.int64), -1)[..., 0]  # noqa: E731
        gap = np.abs(at(want) - at(got))[diff]
        assert gap.max() <= tol * np.abs(values).max(), f"argmax differs by {gap.max():.3g} where no tie"
    return float(diff.mean())


def _match_detections(got: list, want: list, tol: float) -> float:
    """Share of MXNet's valid detections (class id >= 0) that the converted model also returns: same class, score
    within `tol`, box within `tol` of the largest coordinate."""
    ids_g, sc_g, box_g = got
    ids_w, sc_w, box_w = want
    scale = np.abs(box_w).max()
    found = total = 0
    for b in range(ids_w.shape[0]):
        for r in np.flatnonzero(ids_w[b, :, 0] >= 0):
            total += 1
            same = ((ids_g[b, :, 0] == ids_w[b, r, 0]) & (np.abs(sc_g[b, :, 0] - sc_w[b, r, 0]) <= tol)
                    & (np.abs(box_g[b] - box_w[b, r]).max(axis=1) <= tol * scale))
            found += bool(same.any())
    assert total, "MXNet returned no detections: the test checks nothing"
    return found / total


# ---- SSD ------------------------------------------------------------------------------------------------------------

SSD_MXNET: dict[str, str] = {}  # box_nms and the slices of its output convert too (converters/nms.py)


def test_ssd_fp32_one_engine_with_nms():
    """Backbone, class/box predictors, transpose/flatten/concat, softmax, box decoding against sliced constant
    anchors, the where-threshold, the pre-NMS topk + batch gather, box_nms and the slices of its output: one
    engine."""
    sym, params, shapes = zoo.ssd(batch=2)
    data, prm = _inputs(shapes, params)
    c = check_graph(sym, data, prm, rtol=1e-5, on_trt=["ssd_softmax", "ssd_ids_thresh", "ssd_topk", "ssd_gather"])
    _check_placement(c, SSD_MXNET, engines=1, precision="fp32")
    assert c.report.nodes_total == 114
    assert not c.params, "every weight and anchor is inside the engine"


def test_ssd_with_multibox_prior_one_engine_with_nms():
    """MXNet's example SSD computes anchors with `_contrib_MultiBoxPrior` on each feature map. They depend on the map's
    shape alone, so each becomes a constant inside the one engine (it reads nothing from the backbone): the backbone,
    predictors, anchors, decoding and box_nms stay together."""
    sym, params, shapes = zoo.ssd(batch=2, anchors="prior")
    data, prm = _inputs(shapes, params)
    c = check_graph(sym, data, prm, rtol=1e-5, on_trt=[f"ssd_prior{i}" for i in range(3)] + ["ssd_prior_center"])
    _check_placement(c, SSD_MXNET, engines=1, precision="fp32")
    assert not c.params, "every weight is inside the engine"


def test_ssd_fp16_with_more_rows_than_fp16_indices_runs_them_in_float32():
    """At 128x128, 1344 anchors x 3 classes = 4032 candidate rows: fp16 cannot hold the topk indices or the gather's
    row numbers exactly, so topk, the arithmetic computing the row numbers and the gather run in float32 inside the
    fp16 engine (each found by a converter asking for float32, the engine redefined); detections still match."""
    sym, params, shapes = zoo.ssd(batch=1, size=128)
    data, prm = _inputs(shapes, params)
    c, got, want = _convert_fp16(sym, data, prm)
    _check_placement(c, SSD_MXNET, engines=1, precision="fp16")
    reasons = {r.node: r.reason for r in c.report.rows}
    assert all("runs in float32" in reasons[n] for n in ("ssd_topk", "ssd_gather", "ssd_flat_idx")), reasons
    assert _match_detections(got, want, FP16_RTOL) >= 0.9


# ---- YOLOv3 ---------------------------------------------------------------------------------------------------------

YOLO_MXNET: dict[str, str] = {}


def test_yolo3_fp32_one_engine_with_nms():
    """LeakyReLU conv blocks, nearest UpSampling + Concat routes, 5-D reshape/transpose/tile decoding with sigmoid and
    exp on slices and broadcast grid offsets, box_nms: one engine. The per-class id ramps (arange + reshape) are
    folded."""
    sym, params, shapes = zoo.yolo3(batch=2)
    data, prm = _inputs(shapes, params)
    c = check_graph(sym, data, prm, rtol=1e-5,
                    on_trt=["yolo_upsample1", "yolo_upsample2", "yolo_output0_centers", "yolo_output2_bboxes",
                            "yolo_detections"])
    _check_placement(c, YOLO_MXNET, engines=1, precision="fp32")
    assert len(c.report.folded) == 6 and c.report.nodes_total == 210
    assert not c.params


# YOLOv3's fp16 box sizes pass through exp(), which turns the absolute rounding of its input into relative error: the
# measured error depends on the CPU's float32 BLAS (2.6e-3 and 3.6e-3 on two Intel machines, 5.7e-3 on an AMD EPYC).
DETECTOR_FP16_RTOL = {"ssd": FP16_RTOL, "yolo3": 1.2e-2}


@pytest.mark.parametrize("model, in_mxnet", [("ssd", SSD_MXNET), ("yolo3", YOLO_MXNET)])
def test_detector_fp16(model, in_mxnet):
    """The dense outputs (probabilities and boxes, before NMS) match within DETECTOR_FP16_RTOL (measured: SSD 1.4e-3,
    YOLOv3 up to 5.7e-3); after NMS, most of MXNet's detections are found one to one."""
    rtol = DETECTOR_FP16_RTOL[model]
    build = getattr(zoo, model)
    sym, params, shapes = build(batch=2, postprocess=False)
    data, prm = _inputs(shapes, params)
    c = check_graph(sym, data, prm, rtol=rtol, precision="fp16", engines=1)
    assert c.report.nodes_trt == c.report.nodes_total
    sym, params, shapes = build(batch=2)
    data, prm = _inputs(shapes, params)
    c, got, want = _convert_fp16(sym, data, prm)
    _check_placement(c, in_mxnet, engines=1, precision="fp16")
    assert _match_detections(got, want, rtol) >= 0.9


# ---- DeepLabV3 ------------------------------------------------------------------------------------------------------

def test_deeplab_fp32_converts_completely():
    """Dilated convs, ASPP with image pooling + BilinearResize2D from 1x1, Dropout, the classifier, BilinearResize2D to
    the input size and argmax over channels: one engine, nothing in MXNet."""
    sym, params, shapes = zoo.deeplab(batch=2)
    data, prm = _inputs(shapes, params)
    c = check_graph(sym, data, prm, rtol=1e-5, engines=1, on_trt=["seg_aspp_pool_up", "seg_upsample", "seg_pred"])
    _check_placement(c, {}, engines=1, precision="fp32")
    assert c.report.nodes_total == 52


def test_deeplab_fp16():
    sym, params, shapes = zoo.deeplab(batch=2)
    data, prm = _inputs(shapes, params)
    c, (logits, pred), (want_logits, want_pred) = _convert_fp16(sym, data, prm)
    _check_placement(c, {}, engines=1, precision="fp16")
    assert_close(logits, want_logits, FP16_RTOL)  # measured 1.2e-3
    assert _check_argmax(pred, want_pred, want_logits, 1, 2 * FP16_RTOL) <= 0.01


# ---- SimplePose -----------------------------------------------------------------------------------------------------

def test_simple_pose_fp32_converts_completely():
    """Three Deconvolution(stride 2) + BN + ReLU (kernel 4 pad 1, kernel 3 pad 1 adj 1, kernel 2 pad 0), 1x1 heatmaps,
    and the argmax/max decode with idx % W (_mod_scalar) and floor division: one engine, nothing in MXNet."""
    sym, params, shapes = zoo.simple_pose(batch=2)
    data, prm = _inputs(shapes, params)
    c = check_graph(sym, data, prm, rtol=1e-5, engines=1,
                    on_trt=["pose_deconv0", "pose_deconv1", "pose_deconv2", "pose_argmax", "pose_x", "pose_coords"])
    _check_placement(c, {}, engines=1, precision="fp32")
    assert c.report.nodes_total == 63


def test_simple_pose_fp16():
    sym, params, shapes = zoo.simple_pose(batch=2)
    data, prm = _inputs(shapes, params)
    c, (heat, coords, maxvals), (want_heat, want_coords, want_max) = _convert_fp16(sym, data, prm)
    _check_placement(c, {}, engines=1, precision="fp16")
    assert_close(heat, want_heat, FP16_RTOL)  # measured 1.8e-3
    assert_close(maxvals, want_max, FP16_RTOL)
    w = want_heat.shape[-1]
    flat = want_heat.reshape(*want_heat.shape[:2], -1)
    as_index = lambda xy: xy[..., 1] * w + xy[..., 0]  # noqa: E731  (coords are zeroed only where max <= 0)
    assert (want_max > 0).all(), "pick another seed: a zeroed joint hides its index"
    assert _check_argmax(as_index(coords), as_index(want_coords), flat, 2, 2 * FP16_RTOL) <= 0.05


# ---- bf16 -----------------------------------------------------------------------------------------------------------

BF16_RTOL = 5e-2  # the zoo's bf16 tolerance (bf16's 8-bit significand: about 8x fp16's error)


@pytest.mark.parametrize("model", ["ssd", "yolo3", "deeplab", "simple_pose"])
def test_bf16_continuous_outputs(model):
    """In bf16 each model is one engine with every MAC inside, and its continuous outputs (detector scores and boxes
    before NMS, segmentation logits, pose heatmaps) stay within the zoo's bf16 tolerance. Index outputs (argmax over
    more than 256 positions) run in float32 inside the engine."""
    kwargs = {"postprocess": False} if model in ("ssd", "yolo3") else {}
    sym, params, shapes = getattr(zoo, model)(batch=2, **kwargs)
    data, prm = _inputs(shapes, params)
    c, got, want = _convert_fp16(sym, data, prm, precision="bf16")
    _check_placement(c, {}, engines=1, precision="bf16")
    dense = got if model in ("ssd", "yolo3") else got[:1]
    for k, (g, w) in enumerate(zip(dense, want)):
        assert_close(g, w, BF16_RTOL, f"output {k}")

