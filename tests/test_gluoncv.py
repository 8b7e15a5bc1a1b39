"""gluoncv 0.11's real models, one or more per family (mx2trt.zoo.GLUONCV_MODELS): random He weights and BatchNorm
statistics, the smallest input each accepts, converted in fp32 and fp16 and compared with MXNet on CPU.

Every model must become one engine holding every node. fp32 must match MXNet within 1e-4. fp16 must be finite
wherever fp32 is, and within FP16_RTOL; for detectors, whose NMS, top-k or peak test turns a last-bit difference in two
close random scores into another box order, the fp16 tolerance applies to the tensor entering the first of those
decisions, and the whole model is checked for finiteness.

CI runs CI_MODELS (the cheapest model of each kind of head, and every family a converter was added for);
MX2TRT_GLUONCV=all runs every model (about 15 minutes on 2 cores, and 3.5 more for the 36 with a batch range;
tools/gen_model_table.py --gluoncv measures them for docs/models.md).
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

import mx2trt
from harness import assert_close, run_symbol
from mx2trt import zoo
from mx2trt._mx import mx

FP32_RTOL = 1e-4
# fp16 against MXNet fp32, random weights: measured up to 1.5e-2 (DANet's attention), 8e-3 (SE-ResNeXt), < 5e-3 for
# the rest. A detector's tensor entering NMS holds boxes exp(offset) * anchor: fp16's rounding of offsets of random
# size (up to ~30 here) is multiplied by the offset itself, measured up to 6.6e-2 (SSD MobileNet); scores entering a
# top-k are the detector's last layers' outputs.
FP16_RTOL = 3e-2
FP16_DECISION_RTOL = 1.5e-1
CI_MODELS = [
    "resnet18_v1b", "se_resnext50_32x4d", "resnest14", "shufflenet_v2", "mobilenetv3_small", "cifar_resnet20_v1",
    "ssd_512_mobilenet1.0_voc", "yolo3_mobilenet1.0_voc", "faster_rcnn_resnet50_v1b_voc", "fastscnn_citys",
    "danet_resnet50_citys", "simple_pose_resnet18_v1b", "center_net_resnet18_v1b_voc",
]
MODELS = list(zoo.GLUONCV_MODELS) if os.environ.get("MX2TRT_GLUONCV") == "all" else CI_MODELS
# Ops whose output is a decision over close values (which boxes survive, which scores rank first).
DECISION_OPS = ("_contrib_box_nms", "_contrib_box_non_maximum_suppression", "topk", "argsort", "broadcast_equal",
                "_equal")  # CenterNet's peaks: heat == max_pool(heat)


def model(name: str):
    family, shape, kwargs = zoo.GLUONCV_MODELS[name]
    sym, params, shapes = zoo.gluoncv_model(name, shape, **kwargs)
    data = {"data": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
    return sym, {k: v.asnumpy() for k, v in params.items()}, shapes, data


def zeroed_masked_rois(sym):
    """`sym` with each _contrib_ROIAlign's rows for rois of batch index < 0 set to 0, as mx2trt and MXNet's GPU kernel
    give them. MXNet 1.9.1's CPU kernel skips those rows and leaves its output memory unwritten there; gluoncv's FPN
    gives every level's ROIAlign all rois, those of other levels at -1, and adds the levels, so without this its
    reference would sum whatever the memory held (the box count varies from one bind to the next)."""
    js = json.loads(sym.tojson())
    nodes, index = [], {}  # the new node list, old node id -> new id of what its consumers read

    def add(op, name, inputs, attrs=None):
        nodes.append({"op": op, "name": name, "attrs": attrs or {}, "inputs": inputs})
        return len(nodes) - 1

    for i, n in enumerate(js["nodes"]):
        n = {**n, "inputs": [[index[e[0]], e[1], e[2]] for e in n["inputs"]]}
        nodes.append(n)
        index[i] = len(nodes) - 1
        if n["op"] == "_contrib_ROIAlign":
            name, out, rois = n["name"], [index[i], 0, 0], n["inputs"][1]
            batch = add("slice_axis", f"{name}_batch", [rois], {"axis": "1", "begin": "0", "end": "1"})
            flat = add("Reshape", f"{name}_batch_flat", [[batch, 0, 0]], {"shape": "(-1,)"})
            keep = add("_greater_equal_scalar", f"{name}_kept", [[flat, 0, 0]], {"scalar": "0"})
            zeros = add("zeros_like", f"{name}_zeros", [out])
            index[i] = add("where", f"{name}_zeroed", [[keep, 0, 0], out, [zeros, 0, 0]])
    js["nodes"] = nodes
    js["arg_nodes"] = [k for k, n in enumerate(nodes) if n["op"] == "null"]
    js["heads"] = [[index[h[0]], h[1], h[2]] for h in js["heads"]]
    js.pop("node_row_ptr", None)
    return mx.sym.load_json(json.dumps(js))


def convert(sym, params, shapes, precision):
    return mx2trt.convert(sym, {k: mx.nd.array(v) for k, v in params.items()}, shapes, precision=precision,
                          runtime="reference", cache=False, progress=False)


def outputs(c, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an fp16 overflow warning fails the test
        return run_symbol(c.symbol, {**data, **{k: v.asnumpy() for k, v in c.params.items()}})


def decision_input(sym):
    """The symbol of the tensor the first decision (NMS, top-k, argsort) reads, None without one. What follows it
    depends on its choices (a two-stage detector's second NMS reads boxes the first one kept), so it is not compared."""
    nodes = json.loads(sym.tojson())["nodes"]
    for n in nodes:
        if n["op"] in DECISION_OPS:
            src = nodes[n["inputs"][0][0]]
            return sym.get_internals()[src["name"] if src["op"] == "null" else f"{src['name']}_output"]
    return None


def check_placement(name, c):
    rep = c.report
    assert len(c.engines) == 1, rep.summary()
    left = [r.node for r in rep.rows if r.placement == "mxnet"]
    assert not left, f"left in MXNet: {left}\n{rep.op_table()}"
    assert rep.mac_coverage == 1.0


def converted(name, precision):
    """(sym, params, shapes, data, MXNet's outputs, the optimized model's), the placement checked."""
    sym, params, shapes, data = model(name)
    want = run_symbol(zeroed_masked_rois(sym), {**data, **params})
    c = convert(sym, params, shapes, precision)
    check_placement(name, c)
    return sym, params, shapes, data, want, outputs(c, data)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_fp32_one_engine_matches_mxnet(name):
    _, _, _, _, want, got = converted(name, "fp32")
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, (k, g.shape, w.shape, g.dtype, w.dtype)
        assert_close(g, w, FP32_RTOL, f"{name} output {k}")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_fp16_finite_and_within_tolerance(name):
    sym, params, shapes, data, want, got = converted(name, "fp16")
    for k, (g, w) in enumerate(zip(got, want)):
        assert np.isfinite(g[np.isfinite(w)]).all(), f"{name} output {k}: inf/NaN in fp16 where fp32 is finite"
    before = decision_input(sym)
    if before is None:
        for k, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, FP16_RTOL, f"{name} output {k}")
        return
    want = run_symbol(zeroed_masked_rois(before), {**data, **params})
    got = outputs(convert(before, params, shapes, "fp16"), data)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, FP16_DECISION_RTOL, f"{name} input {k} of the first decision")


# gluoncv's R-CNNs fix their batch at 1 in their own graph (MXNet's shape inference fails at batch 2): no range.
FIXED_BATCH = ("faster_rcnn_resnet50_v1b_voc", "faster_rcnn_fpn_resnet50_v1b_coco", "mask_rcnn_resnet18_v1b_coco")
DYNAMIC_CI = ["resnet18_v1b", "shufflenet_v2", "ssd_512_mobilenet1.0_voc", "yolo3_mobilenet1.0_voc",
              "center_net_resnet18_v1b_voc", "fastscnn_citys", "simple_pose_resnet18_v1b"]
DYNAMIC = [m for m in MODELS if m not in FIXED_BATCH] if os.environ.get("MX2TRT_GLUONCV") == "all" else DYNAMIC_CI


@pytest.mark.slow
@pytest.mark.parametrize("name", DYNAMIC)
def test_model_with_a_dynamic_batch_is_one_engine_matching_mxnet_at_min_opt_max(name):
    """Batch 1..3 (opt 2), fp32: NMS, box decoding, CenterNet's decoder and the heads all inside the one engine."""
    from harness import check_profiles

    sym, params, _, _ = model(name)
    one = zoo.GLUONCV_MODELS[name][1][1:]
    shapes = {"data": [(1,) + one, (2,) + one, (3,) + one]}
    check_profiles(sym, params, shapes, lambda p: {"data": np.random.default_rng(p["data"][0]).standard_normal(
        p["data"]).astype(np.float32)}, rtol=FP32_RTOL)
