"""Whole models end to end: every Gluon vision-zoo model and LeNet convert completely into one engine and match MXNet."""
from __future__ import annotations

import os

import numpy as np
import pytest

from mx2trt import _trt, zoo

from harness import check_graph, check_profiles

MODELS = ["lenet", *zoo.VISION_MODELS]


# fp16 engines (fp16 weights and activations, casts at the boundary) against MXNet fp32: the zoo measures <= 1.4e-3.
# bf16 engines (8-bit significand, 8x fp16's rounding): the zoo measures 2.9e-3 (mobilenetv2_0.25) to 1.2e-2
# (resnet152_v2), a median 8x fp16 model by model; 5e-2 leaves a 4x margin, as 5e-3 does for fp16.
PRECISIONS = [("fp32", 1e-5), ("fp16", 5e-3), ("bf16", 5e-2)]


@pytest.mark.slow
@pytest.mark.parametrize("precision, rtol", PRECISIONS, ids=[p for p, _ in PRECISIONS])
@pytest.mark.parametrize("name", MODELS)
def test_model_converts_completely_and_matches_mxnet(name, precision, rtol):
    sym, params, shapes = zoo.get(name, batch=1)
    rng = np.random.default_rng(1)
    data = {"data": rng.standard_normal(shapes["data"]).astype(np.float32)}
    if name == "lenet":
        data["softmax_label"] = np.zeros(shapes["data"][0], np.float32)  # MXNet wants it; inference ignores it
    c = check_graph(sym, data, {k: v.asnumpy() for k, v in params.items()}, engines=1, rtol=rtol, precision=precision)
    rep = c.report
    assert rep.nodes_trt == rep.nodes_total, rep.op_table()
    assert rep.mac_coverage == 1.0
    engine = c.engines[0]
    assert engine.precision == precision
    assert engine.plan, "the ahead-of-time engine build produced no plan"
    if _trt.FLAVOR == "tensorrt_rtx":
        assert engine.plan[:4] == b"vtrt"
    assert not c.params, f"weights left outside the engine: {sorted(c.params)[:5]}"
    assert c.symbol.list_arguments() == list(data)  # LeNet's unread label stays an argument, for Module.bind


# With a dynamic batch 1..4: MX2TRT_DYNAMIC=all runs every model (70 s on 2 workers); CI runs one per family.
DYNAMIC_CI = ["lenet", "resnet18_v1", "resnet18_v2", "vgg11", "alexnet", "densenet121", "squeezenet1.1", "inceptionv3",
              "mobilenet0.25", "mobilenetv2_0.25"]
DYNAMIC = MODELS if os.environ.get("MX2TRT_DYNAMIC") == "all" else DYNAMIC_CI


@pytest.mark.slow
@pytest.mark.parametrize("name", DYNAMIC)
def test_model_with_a_dynamic_batch_is_one_engine_matching_mxnet_at_min_opt_max(name):
    sym, params, shapes = zoo.get(name, batch=1)
    one = tuple(shapes["data"][1:])
    ranges = {"data": [(1,) + one, (2,) + one, (4,) + one]}

    def values(point):
        data = {"data": np.random.default_rng(point["data"][0]).standard_normal(point["data"]).astype(np.float32)}
        if name == "lenet":
            data["softmax_label"] = np.zeros(point["data"][0], np.float32)
        return data

    check_profiles(sym, {k: v.asnumpy() for k, v in params.items()}, ranges, values, also=[{"data": (3,) + one}])
