"""int8/fp8 through Q/DQ (mx2trt/quant.py with api and calibration): the options and their errors, what the report
says, the cache key, saved models, a trained classifier's accuracy, and every vision-zoo model against float32."""
from __future__ import annotations

import json

import numpy as np
import pytest

import mx2trt
from harness import last_json, max_rel_error, run_python, run_symbol
from mx2trt import zoo
from mx2trt._mx import mx
from mx2trt.errors import InputError
from mx2trt.quant import quantize_host, scale_of


def small_net():
    """data -> conv -> relu -> FC: two quantizable nodes."""
    x = mx.sym.Convolution(mx.sym.var("data"), num_filter=8, kernel=(3, 3), pad=(1, 1), name="conv0")
    x = mx.sym.relu(x, name="relu0")
    sym = mx.sym.FullyConnected(x, num_hidden=5, name="fc0")
    rng = np.random.default_rng(0)
    params = {"conv0_weight": rng.normal(0, 0.3, (8, 3, 3, 3)), "conv0_bias": rng.normal(0, 0.1, 8),
              "fc0_weight": rng.normal(0, 0.05, (5, 512)), "fc0_bias": rng.normal(0, 0.1, 5)}
    params = {k: mx.nd.array(v.astype(np.float32)) for k, v in params.items()}
    data = [{"data": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    return sym, params, {"data": (2, 3, 8, 8)}, data


@pytest.fixture(scope="module")
def net():
    sym, params, shapes, data = small_net()
    return sym, params, shapes, data, mx2trt.calibrate(sym, params, shapes, data, progress=False)


def reasons(c):
    return {r.node: (r.placement, r.reason) for r in c.report.rows}


def outputs(c, x):
    return run_symbol(c.symbol, {"data": x, **{k: v.asnumpy() for k, v in c.params.items()}})[0]


def test_scale_and_host_quantization():
    assert scale_of(2.54, "int8") == np.float32(0.02)
    assert scale_of(448.0, "fp8") == np.float32(1.0)
    assert scale_of(0.0, "int8") > 0  # an all-zero tensor quantizes to zeros, not NaN
    q = quantize_host(np.array([[0.01, 0.03], [-1.0, 5.0]], np.float32), np.array([0.02, 0.04], np.float32), "int8",
                      axis=1)
    assert q.tolist() == [[0, 1], [-50, 125]]  # 0.5 and 0.75 round half to even / nearest; per column


def test_int8_quantizes_every_conv_and_fc_in_one_engine(net):
    sym, params, shapes, data, table = net
    c = mx2trt.convert(sym, params, shapes, precision="int8", calibration=table, runtime="reference")
    assert len(c.engines) == 1 and c.engines[0].precision == "int8" and c.float_precision == "fp16"
    r = reasons(c)
    assert r["conv0"][1] == r["fc0"][1] == "converted; int8 (Q/DQ on its input and weights, fp16 around it)"
    assert "; 2 node(s) quantized to int8" in c.report.summary().splitlines()[0]
    assert {c.partition.graph.nodes[n].name: q.amax for n, q in c.quant.items()} == {
        "conv0": {0: table.amax["data"]}, "fc0": {0: table.amax["relu0_output"]}}
    x = data[0]["data"]
    want = run_symbol(sym, {"data": x, **{k: v.asnumpy() for k, v in params.items()}})[0]
    err = max_rel_error(outputs(c, x), want)
    assert 1e-4 < err < 5e-2  # quantized for real (not float), and close: measured 1.3e-2


def test_precision_needs_a_table_unless_mxnet_quantized_the_graph(net):
    sym, params, shapes, _, table = net
    with pytest.raises(InputError, match="needs a calibration table"):
        mx2trt.convert(sym, params, shapes, precision="int8")
    with pytest.raises(InputError, match="calibration is for precision 'int8' or 'fp8', not 'fp16'"):
        mx2trt.convert(sym, params, shapes, precision="fp16", calibration=table)
    with pytest.raises(InputError, match="int8_fallback must be one of"):
        mx2trt.convert(sym, params, shapes, precision="int8", calibration=table, int8_fallback="int4")
    with pytest.raises(InputError, match="exclude_quant_nodes: no op node is named"):
        mx2trt.convert(sym, params, shapes, precision="int8", calibration=table, exclude_quant_nodes=["conv9"])
    with pytest.raises(InputError, match="exclude_quant_ops: .* is not an MXNet op"):
        mx2trt.convert(sym, params, shapes, precision="int8", calibration=table, exclude_quant_ops=["Conv"])


def test_a_table_of_another_model_is_refused(net, tmp_path):
    sym, params, shapes, data, table = net
    other = mx.sym.FullyConnected(mx.sym.relu(sym, name="extra"), num_hidden=2, name="fc1")
    with pytest.raises(InputError, match="another model"):
        mx2trt.convert(other, {**params, "fc1_weight": mx.nd.ones((2, 5)), "fc1_bias": mx.nd.zeros(2)}, shapes,
                       precision="int8", calibration=table)
    path = tmp_path / "table.json"
    table.save(path)  # a table file works as well as the table
    c = mx2trt.convert(sym, params, shapes, precision="fp8", calibration=str(path), runtime="reference",
                       build_engines=False)
    assert reasons(c)["conv0"][1].startswith("converted; fp8")


def test_excluded_and_uncalibrated_nodes_stay_float_with_the_reason(net):
    sym, params, shapes, _, table = net
    c = mx2trt.convert(sym, params, shapes, precision="int8", calibration=table, exclude_quant_ops=["FullyConnected"],
                       exclude_quant_nodes=["conv0"], runtime="reference", build_engines=False)
    r = reasons(c)
    assert r["fc0"][1] == "converted; kept in floating point: op FullyConnected is in exclude_quant_ops"
    assert r["conv0"][1] == "converted; kept in floating point: named in exclude_quant_nodes"
    assert not c.quant and c.engines[0].precision == "fp16"
    partial = mx2trt.CalibrationTable(table.method, table.graph_hash, {"data": table.amax["data"]}, table.batches)
    c = mx2trt.convert(sym, params, shapes, precision="int8", calibration=partial, int8_fallback="fp32",
                       runtime="reference", build_engines=False)
    r = reasons(c)
    assert r["fc0"][1] == ("converted; kept in floating point: the calibration table has no range for input 0 "
                           "('relu0_output')")
    assert r["conv0"][1].startswith("converted; int8") and r["conv0"][1].endswith("fp32 around it)")


def test_the_engine_key_holds_the_ranges(net, tmp_path):
    """Same table: a cache hit; one range changed: another engine (the ranges are in the engine's source)."""
    sym, params, shapes, _, table = net
    opts = dict(precision="int8", runtime="reference", cache_dir=tmp_path / "cache")
    first = mx2trt.convert(sym, params, shapes, calibration=table, **opts)
    again = mx2trt.convert(sym, params, shapes, calibration=table, **opts)
    changed = mx2trt.CalibrationTable(table.method, table.graph_hash,
                                      {**table.amax, "relu0_output": table.amax["relu0_output"] * 1.5}, table.batches)
    other = mx2trt.convert(sym, params, shapes, calibration=changed, **opts)
    assert again.engines[0].key == first.engines[0].key and again.engines[0].origin == "cache"
    assert other.engines[0].key != first.engines[0].key and other.engines[0].origin != "cache"
    assert changed.digest() != table.digest()


def test_a_saved_int8_model_runs_the_same_in_a_fresh_process(net, tmp_path):
    sym, params, shapes, data, table = net
    c = mx2trt.convert(sym, params, shapes, precision="int8", calibration=table, runtime="reference", cache=True,
                       cache_dir=tmp_path / "cache")
    prefix = tmp_path / "int8"
    mx2trt.save(prefix, c.symbol, c.params)
    x = data[1]["data"]
    np.save(tmp_path / "x.npy", x)
    out = run_python(f"""
import json, numpy as np, mx2trt
from mx2trt._mx import mx
from mx2trt import build
sym, params = mx2trt.load({str(prefix)!r})
ex = sym.bind(mx.cpu(), {{"data": mx.nd.array(np.load({str(tmp_path / 'x.npy')!r})), **params}})
np.save({str(tmp_path / 'y.npy')!r}, ex.forward()[0].asnumpy())
print(json.dumps({{"builds": build.BUILDS}}))
""")
    assert last_json(out.stdout)["builds"] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), outputs(c, x))


def test_debug_compare_shows_where_quantization_error_enters(net):
    sym, params, shapes, data, table = net
    rep = mx2trt.debug.compare(sym, params, data[0], precision="int8", calibration=table, runtime="reference")
    rows = {r.node: r for r in rep.rows}
    assert rows["conv0"].status == rows["fc0"].status == "int8" and rows["relu0"].status == "engine"
    assert 1e-4 < rows["conv0"].max_rel < 5e-2  # the quantized input and weights' error, at the first node
    assert rep.first_bad is None  # within int8's default tolerance (TOLERANCES)


# ---- a classifier trained on real data: accuracy, not just closeness ---------------------------------------------


def accuracy(sym, params, x, y, batch=100) -> tuple[float, np.ndarray]:
    preds = []
    for i in range(0, len(x), batch):
        vals = {"data": x[i:i + batch], **{k: v.asnumpy() for k, v in params.items()}}
        preds.append(run_symbol(sym, vals)[0].argmax(1))
    p = np.concatenate(preds)
    return float((p == y).mean()), p


def test_trained_digits_cnn_int8_within_one_point_of_float():
    sym, params, _ = zoo.digits_cnn()
    x_train, _, x_test, y_test = zoo.digits_data()
    shapes = {"data": (100, 1, 8, 8)}
    calib = [x_train[i:i + 100] for i in range(0, 800, 100)]
    table = mx2trt.calibrate(sym, params, shapes, calib, method="entropy", progress=False)
    float_acc, float_pred = accuracy(sym, params, x_test, y_test)
    assert float_acc > 0.95  # measured 0.982: a real classifier
    results = {}
    for prec in ("int8", "fp8"):
        c = mx2trt.convert(sym, params, shapes, precision=prec, calibration=table, runtime="reference")
        assert len(c.engines) == 1 and len(c.quant) == 5, c.report.summary()  # 3 conv + 2 FC, all quantized
        acc, pred = accuracy(c.symbol, c.params, x_test, y_test)
        results[prec] = (acc, float((pred == float_pred).mean()))
    print(json.dumps({"float": float_acc, **results}))
    assert results["int8"][0] >= float_acc - 0.01, results  # measured: equal accuracy, 99.8% agreement
    assert results["fp8"][0] >= float_acc - 0.02, results


# ---- the vision zoo in int8 and fp8 against float32 --------------------------------------------------------------

# Max relative error against MXNet float32 with random weights, calibrated ('max') on 4 random batches; measured
# over the whole zoo: int8 at most 4.3e-2, fp8 at most 1.15e-1 (both vgg16); other models 0.9e-2..3.8e-2 and
# 3.4e-2..1.1e-1.
ZOO_RTOL = {"int8": 8e-2, "fp8": 2.5e-1}


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.VISION_MODELS)
def test_vision_zoo_quantized_against_float32(name):
    sym, params, shapes = zoo.get(name)
    rng = np.random.default_rng(1)
    calib = [{"data": rng.standard_normal(shapes["data"]).astype(np.float32)} for _ in range(4)]
    x = rng.standard_normal(shapes["data"]).astype(np.float32)
    want = run_symbol(sym, {"data": x, **{k: v.asnumpy() for k, v in params.items()}})[0]
    table = mx2trt.calibrate(sym, params, shapes, calib, progress=False)
    for prec in ("int8", "fp8"):
        c = mx2trt.convert(sym, params, shapes, precision=prec, calibration=table, runtime="reference",
                           build_engines=False)
        assert len(c.engines) == 1, c.report.summary()
        n_quantizable = sum(1 for n in c.partition.graph.op_nodes if mx2trt.REGISTRY.get(n.op).quantize)
        assert len(c.quant) == n_quantizable
        err = max_rel_error(outputs(c, x), want)
        if err > ZOO_RTOL[prec]:  # say which layer the error comes from
            rep = mx2trt.debug.compare(sym, params, {"data": x}, precision=prec, calibration=table,
                                       runtime="reference", tolerance=ZOO_RTOL[prec])
            pytest.fail(f"{name} {prec}: max rel error {err:.3g} > {ZOO_RTOL[prec]}\n{rep.divergence()}")


@pytest.mark.slow
@pytest.mark.parametrize("prec", ["int8", "fp8"])
def test_resnet50_builds_one_quantized_engine(prec):
    sym, params, shapes = zoo.get("resnet50_v1", size=64)
    rng = np.random.default_rng(2)
    table = mx2trt.calibrate(sym, params, shapes, [rng.standard_normal(shapes["data"]).astype(np.float32)],
                             progress=False)
    c = mx2trt.convert(sym, params, shapes, precision=prec, calibration=table, runtime="reference")
    assert len(c.engines) == 1 and c.engines[0].plan and c.engines[0].precision == prec
    assert len(c.quant) == 54  # 53 convolutions and the FC


def test_a_table_of_other_weights_warns(net, caplog):
    sym, params, shapes, _, table = net
    other = {**params, "fc0_weight": params["fc0_weight"] * 100}
    with caplog.at_level("WARNING", logger="mx2trt"):
        mx2trt.convert(sym, params, shapes, precision="int8", calibration=table, build_engines=False)
    assert "other weights" not in caplog.text
    with caplog.at_level("WARNING", logger="mx2trt"):
        mx2trt.convert(sym, other, shapes, precision="int8", calibration=table, build_engines=False)
    assert "made with other weights of this model" in caplog.text


def test_quantization_options_need_a_quantized_precision(net):
    sym, params, shapes, _, table = net
    for opt in ({"int8_fallback": "fp32"}, {"exclude_quant_ops": ["dot"]}, {"exclude_quant_nodes": ["fc0"]}):
        with pytest.raises(InputError, match=f"{next(iter(opt))} is for precision 'int8' or 'fp8', not 'fp32'"):
            mx2trt.convert(sym, params, shapes, **opt)
    with pytest.raises(InputError, match="precision 'fp8' needs a calibration table \\(mx2trt.calibrate\\)$"):
        mx2trt.convert(sym, params, shapes, precision="fp8")
