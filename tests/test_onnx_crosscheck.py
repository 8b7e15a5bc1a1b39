"""Independent check of the reference interpreter: TensorRT networks that NVIDIA's ONNX parser builds from MXNet's own
ONNX export (no mx2trt converter involved) must evaluate to MXNet's outputs. Test-only use of ONNX."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mx2trt import _trt, zoo
from mx2trt._mx import mx
from mx2trt._trt import create_network, trt
from mx2trt.reference import ReferenceProgram

from harness import max_rel_error, run_symbol

pytest.importorskip("onnx", reason="the cross-check needs onnx<1.19 (pip install -e '.[test]')")


def _gamma_one_where_fixed(sym, params: dict) -> dict:
    """MXNet's exporter writes the stored gamma even where BatchNorm has fix_gamma=True (MXNet then uses 1); give
    those BatchNorms gamma = 1 so that the export means what MXNet computes."""
    nodes = json.loads(sym.tojson())["nodes"]
    out = dict(params)
    for n in nodes:
        if n["op"] == "BatchNorm" and n.get("attrs", {}).get("fix_gamma", "True") == "True":
            gamma = nodes[n["inputs"][1][0]]["name"]
            out[gamma] = mx.nd.ones_like(params[gamma])
    return out


def parsed_network(sym, params: dict, shape: tuple[int, ...], path) -> tuple:
    mx.onnx.export_model(sym, params, [shape], [np.float32], str(path))
    # No error recorder here: with one, destroying an OnnxParser's network segfaults (TensorRT-RTX 1.7).
    builder = trt.Builder(_trt.LOGGER)
    net = create_network(builder)
    parser = trt.OnnxParser(net, _trt.LOGGER)
    ok = parser.parse_from_file(str(path))
    assert ok, [parser.get_error(i).desc() for i in range(parser.num_errors)]
    return builder, net, parser


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.VISION_MODELS)
def test_onnx_parsed_network_evaluates_to_mxnet(name, tmp_path):
    sym, params, shapes = zoo.get(name)
    params = _gamma_one_where_fixed(sym, params)
    builder, net, parser = parsed_network(sym, params, shapes["data"], tmp_path / "model.onnx")
    prog = ReferenceProgram.from_network(net)
    x = np.random.default_rng(2).standard_normal(shapes["data"]).astype(np.float32)
    got = prog.run({prog.input_names[0]: x})[prog.output_names[0]]
    want = run_symbol(sym, {"data": x, **{k: v.asnumpy() for k, v in params.items()}})[0]
    assert got.shape == want.shape
    assert max_rel_error(got, want) <= 1e-5
