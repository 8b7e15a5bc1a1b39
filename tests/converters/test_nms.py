"""box_nms: hypothesis draws box sets on a coarse grid (so IoUs land exactly on thresholds and scores tie) with
column layouts and attributes that fit together; the engine must equal MXNet CPU exactly, in fp32 and in fp16 engines
(where the node runs in float32). Also: refusals, and an SSD-like head that ends as one engine."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import mx2trt
from harness import check_alias_entry, check_graph, check_op, check_property_tests, exact_in
from mx2trt._mx import mx

MODULE = "mx2trt.converters.nms"
SEEDS = st.integers(0, 2**32 - 1)
PRECISIONS = ["fp32", "fp16"]


@st.composite
def nms_cases(draw):
    """(data, attrs): shape (N, K), (B, N, K) or (B1, B2, N, K) with B <= 3, N <= 64, K 5..7; four coordinate columns
    at coord_start, score and (optionally) class id in two other columns. Coordinates are multiples of 1/4 in
    [-1, 4] (about one box in ten inverted), so equal boxes, touching boxes and IoUs exactly at a threshold occur;
    scores come from a few values (ties) or are uniform; class ids are small integers, -1, or fractions (MXNet
    truncates them)."""
    k, n = draw(st.integers(5, 7)), draw(st.integers(1, 64))
    lead = draw(st.sampled_from([(), (1,), (2,), (3,), (1, 2), (3, 1)]))
    with_id = k >= 6 and draw(st.booleans())
    cs = draw(st.integers(0, k - 4))
    others = [c for c in range(k) if not cs <= c < cs + 4]
    score_index = draw(st.sampled_from(others))
    id_index = draw(st.sampled_from([c for c in others if c != score_index])) if with_id else -1
    rng = np.random.default_rng(draw(SEEDS))
    shape = lead + (n, k)
    data = rng.integers(-4, 17, shape).astype(np.float32) / 4  # the free columns too
    fmt = draw(st.sampled_from(["corner", "center"]))
    start = rng.integers(-4, 13, shape[:-1] + (2,)) / 4
    size = rng.integers(0, 9, shape[:-1] + (2,)) / 4
    size[rng.random(size.shape) < 0.05] *= -1  # MXNet: a box of negative width or height has area 0
    data[..., cs:cs + 2] = start if fmt == "corner" else start + size / 2
    data[..., cs + 2:cs + 4] = start + size if fmt == "corner" else size
    tied = draw(st.booleans())
    data[..., score_index] = rng.choice([0.0, 0.1, 0.3, 0.5, 0.9], shape[:-1]) if tied else rng.random(shape[:-1])
    if with_id:
        ids = rng.integers(-1, 3, shape[:-1]).astype(np.float32)
        if draw(st.booleans()):
            ids += rng.choice([0.0, 0.25, 0.75], shape[:-1])
        data[..., id_index] = ids
    attrs = {"coord_start": cs, "score_index": score_index, "in_format": fmt}
    if with_id:
        attrs["id_index"] = id_index
    optional = {
        "overlap_thresh": st.sampled_from([0.0, 0.2, 0.25, 0.5, 0.7, 1.0]),
        "valid_thresh": st.sampled_from([-1.0, 0.0, 0.1, 0.3, 0.5]),
        "topk": st.sampled_from([-1, 0, 1, 3]) | st.integers(1, n + 3),
        "force_suppress": st.booleans(),
        "background_id": st.sampled_from([-1, 0, 2]),
        "out_format": st.sampled_from(["corner", "center"]),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            attrs[key] = draw(values)
    return data.astype(np.float32), attrs


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=nms_cases())
def test_box_nms_equals_mxnet(precision, case):
    data, attrs = case
    event(f"rank {data.ndim}, id_index {'set' if 'id_index' in attrs else 'unset'}, topk {attrs.get('topk', -1)}")
    c = check_op("_contrib_box_nms", [data], attrs, precision=precision, rtol=0.0)
    if precision != "fp32":
        assert "runs in float32" in _reason(c)


def test_box_non_maximum_suppression_is_box_nms():
    check_alias_entry("_contrib_box_non_maximum_suppression", 1)


def test_box_nms_ties_keep_mxnet_order():
    """Equal scores keep their input order (MXNet's stable sort; TensorRT's TopK takes the lower index first), and
    a box whose IoU with a better one equals the threshold exactly is kept (suppression needs iou > threshold)."""
    rows = [[0, 0.5, 0, 0, 2, 2], [1, 0.5, 4, 4, 5, 5], [2, 0.5, 0, 0, 2, 1], [3, 0.9, 7, 7, 8, 8],
            [4, 0.5, 0, 0, 2, 3]]
    data = np.array([rows], np.float32)  # box 2 has IoU 0.5 with box 0; box 4 has IoU 2/3 with box 0
    for thresh, ids in ((0.5, [3, 0, 1, 2, -1]), (0.49, [3, 0, 1, -1, -1])):
        assert mx.nd.contrib.box_nms(mx.nd.array(data), overlap_thresh=thresh).asnumpy()[0, :, 0].tolist() == ids
        check_op("_contrib_box_nms", [data], {"overlap_thresh": thresh}, rtol=0.0)


def test_box_nms_class_ids_compare_truncated():
    """MXNet compares static_cast<int> of the class ids: 1.2 and 1.7 are one class (and -0.5 is class 0), so
    per-class NMS suppresses across them."""
    data = np.array([[[1.2, 0.9, 0, 0, 1, 1], [1.7, 0.8, 0, 0, 1, 1.1], [-0.5, 0.7, 0, 0, 1.1, 1],
                      [0.0, 0.6, 0, 0, 1, 1], [2.0, 0.5, 0, 0, 1, 1]]], np.float32)
    kept_scores = mx.nd.contrib.box_nms(mx.nd.array(data), id_index=0).asnumpy()[0, :, 1]
    np.testing.assert_array_equal(kept_scores, np.float32([0.9, 0.7, 0.5, -1, -1]))
    check_op("_contrib_box_nms", [data], {"id_index": 0}, rtol=0.0)


def test_box_nms_refuses_more_than_3840_candidates():
    """TensorRT-RTX's TopK takes k <= 3840: 4000 boxes stay in MXNet unless topk selects at most 3840 of them."""
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.random((1, 4000, 2)), rng.random((1, 4000, 2)) + 0.2], -1)
    data = np.concatenate([np.zeros((1, 4000, 1)), rng.random((1, 4000, 1)), data], -1).astype(np.float32)
    c = check_op("_contrib_box_nms", [data], {}, expect_trt=False)
    assert "TopK limit of 3840" in _reason(c)
    check_op("_contrib_box_nms", [data], {"topk": 200, "overlap_thresh": 0.3}, rtol=0.0)


def test_box_nms_refuses_float16_data():
    """MXNet computes a float16 box_nms in float16; the engine's float32 IoUs could decide otherwise."""
    data = np.tile(np.array([[0, 0.5, 0, 0, 1, 1]], np.float16), (8, 1))[None]
    assert "dtype float16 is not supported" in _reason(check_op("_contrib_box_nms", [data], {}, expect_trt=False))


def _reason(c: mx2trt.Conversion) -> str:
    return {r.node: r.reason for r in c.report.rows}["node"]


def _ssd_head(classes: int = 3, anchors_per_cell: int = 2, name: str = "nms"):
    """Convolutional class and box predictors on a feature map, MultiBoxPrior anchors, softmax, box_decode, then
    (class id, score, box) rows -> box_nms, as a GluonCV SSD ends."""
    x = mx.sym.var("x")
    feat = mx.sym.relu(mx.sym.Convolution(x, num_filter=8, kernel=(3, 3), pad=(1, 1), name="conv"), name="feat")
    cls = mx.sym.Convolution(feat, num_filter=anchors_per_cell * (classes + 1), kernel=(3, 3), pad=(1, 1), name="cls")
    loc = mx.sym.Convolution(feat, num_filter=anchors_per_cell * 4, kernel=(3, 3), pad=(1, 1), name="loc")
    cls = mx.sym.reshape(mx.sym.transpose(cls, axes=(0, 2, 3, 1)), shape=(0, -1, classes + 1))
    loc = mx.sym.reshape(mx.sym.transpose(loc, axes=(0, 2, 3, 1)), shape=(0, -1, 4))
    anchors = mx.sym.contrib.MultiBoxPrior(feat, sizes=(0.3, 0.5), ratios=(1.0,), name="anchors")
    prob = mx.sym.slice_axis(mx.sym.softmax(cls, axis=-1), axis=-1, begin=1, end=classes + 1)
    score = mx.sym.max(prob, axis=-1, keepdims=True)
    cid = mx.sym.argmax(prob, axis=-1, keepdims=True)
    boxes = mx.sym.contrib.box_decode(loc, anchors, std0=0.1, std1=0.1, std2=0.2, std3=0.2, format="center")
    det = mx.sym.concat(cid, score, boxes, dim=-1)
    return mx.sym.contrib.box_nms(det, overlap_thresh=0.45, valid_thresh=0.01, topk=20, id_index=0, name=name)


def test_ssd_head_ends_as_one_engine():
    rng = np.random.default_rng(7)
    params = {"conv_weight": rng.standard_normal((8, 3, 3, 3)) * 0.3, "conv_bias": rng.standard_normal(8) * 0.1,
              "cls_weight": rng.standard_normal((8, 8, 3, 3)) * 0.3, "cls_bias": np.zeros(8),
              "loc_weight": rng.standard_normal((8, 8, 3, 3)) * 0.1, "loc_bias": np.zeros(8)}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    data = {"x": rng.standard_normal((2, 3, 6, 6)).astype(np.float32)}
    c = check_graph(_ssd_head(), data, params, on_trt=["nms", "anchors"], engines=1, rtol=1e-5)
    assert len(c.report.rows) and all(r.placement != "mxnet" for r in c.report.rows if r.op != "null"), \
        c.report.summary()


def test_fp16_engine_runs_box_nms_in_float32_beside_fp16_nodes():
    """concat of relu'd ids, scores and boxes -> box_nms in an fp16 engine: one engine, box_nms in float32; the
    inputs are exact in fp16, so the kept rows equal MXNet's exactly."""
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 3, (2, 30, 1)).astype(np.float32)
    scores = rng.random((2, 30, 1)).astype(np.float32)
    start = rng.integers(0, 12, (2, 30, 2)) / 4
    boxes = np.concatenate([start, start + rng.integers(1, 9, (2, 30, 2)) / 4], -1).astype(np.float32)
    ids, scores, boxes = exact_in("fp16", ids, scores, boxes)
    v = [mx.sym.var(n) for n in ("ids", "scores", "boxes")]
    det = mx.sym.concat(mx.sym.relu(v[0], name="r0"), mx.sym.relu(v[1], name="r1"), v[2], dim=-1, name="det")
    sym = mx.sym.contrib.box_nms(det, overlap_thresh=0.3, id_index=0, name="nms")
    c = check_graph(sym, {"ids": ids, "scores": scores, "boxes": boxes}, {}, on_trt=["r0", "r1", "det", "nms"],
                    engines=1, precision="fp16", rtol=0.0)
    assert "runs in float32" in {r.node: r.reason for r in c.report.rows}["nms"]


PROPERTY_TESTS = {
    "_contrib_box_nms": test_box_nms_equals_mxnet,
    "_contrib_box_non_maximum_suppression": test_box_nms_equals_mxnet,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)
