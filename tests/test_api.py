"""Public API: optimize + bind as before (simple_bind, Module, Gluon), explain, fp16, and the engine store."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import mx2trt
from mx2trt import zoo
from mx2trt._mx import mx

from harness import check_graph, max_rel_error, mxnet_only, run_symbol

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def resnet():
    sym, params, shapes = zoo.get("resnet18_v1", batch=2)
    x = RNG.standard_normal(shapes["data"]).astype(np.float32)
    want = run_symbol(sym, {"data": x, **{k: v.asnumpy() for k, v in params.items()}})[0]
    return sym, params, shapes, x, want


def test_optimize_then_bind_with_module_as_before(resnet, caplog):
    sym, params, shapes, x, want = resnet
    arg = {k: v for k, v in params.items() if k in sym.list_arguments()}
    aux = {k: v for k, v in params.items() if k in sym.list_auxiliary_states()}
    with caplog.at_level(logging.INFO, logger="mx2trt"):
        sym2, params2 = mx2trt.optimize(sym, {**{f"arg:{k}": v for k, v in arg.items()}, **aux}, shapes,
                                        runtime="reference")
    assert any("1 engine(s)" in r.getMessage() for r in caplog.records), "optimize must log its summary"
    mod = mx.mod.Module(sym2, data_names=["data"], label_names=None, context=mx.cpu())
    mod.bind(data_shapes=[("data", shapes["data"])], for_training=False)
    mod.set_params({k: v for k, v in params2.items() if k in sym2.list_arguments()},
                   {k: v for k, v in params2.items() if k in sym2.list_auxiliary_states()})
    mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)
    got = mod.get_outputs()[0].asnumpy()
    assert max_rel_error(got, want) <= 1e-5
    ex = sym2.simple_bind(mx.cpu(), data=shapes["data"], grad_req="null")
    ex.forward(is_train=False, data=mx.nd.array(x))
    assert max_rel_error(ex.outputs[0].asnumpy(), want) <= 1e-5


def test_engine_nodes_reference_the_store_by_key(resnet):
    sym, params, shapes, _, _ = resnet
    c1 = mx2trt.convert(sym, params, shapes, runtime="reference")
    c2 = mx2trt.convert(sym, params, shapes, runtime="reference")
    assert c1.engines[0].key == c2.engines[0].key, "same subgraph, shapes and weights must give the same key"
    c3 = mx2trt.convert(sym, params, {"data": (1, 3, 32, 32)}, runtime="reference")
    assert c3.engines[0].key != c1.engines[0].key, "other shapes must give another key"
    nodes = json.loads(c1.symbol.tojson())["nodes"]
    custom = [n for n in nodes if n["op"] == "Custom"]
    assert len(custom) == 1
    attrs = custom[0]["attrs"]
    assert attrs["op_type"] == "_mx2trt_engine" and attrs["key"] == c1.engines[0].key
    assert sum(len(v) for v in attrs.values()) < 1000, "no engine bytes in node attributes"
    with pytest.raises(mx2trt.errors.Mx2TrtError, match="is not in this process"):
        mx2trt.runtime.get_engine("0" * 24)


def test_fp16_engine_is_close_to_fp32_mxnet(resnet):
    sym, params, shapes, x, want = resnet
    c = mx2trt.convert(sym, params, shapes, precision="fp16", runtime="reference")
    assert c.engines[0].precision == "fp16"
    got = run_symbol(c.symbol, {"data": x})[0]
    assert got.dtype == np.float32  # the engine casts back at its boundary
    err = max_rel_error(got, want)
    assert 0 < err <= 1e-2, f"fp16 error {err:g}: zero means fp16 was not applied, large means it is wrong"


def test_explain_reports_placement_engines_and_coverage():
    x = mx.sym.Convolution(mx.sym.var("data"), kernel=(3, 3), num_filter=4, name="conv")
    x = mxnet_only(mx.sym.Activation(x, act_type="relu", name="relu"), "sort")
    y = mx.sym.FullyConnected(x, num_hidden=5, name="fc")
    rep = mx2trt.explain(y, {"data": (1, 3, 6, 6)})
    rows = {r.node: r for r in rep.rows}
    assert rows["sort"].placement == "mxnet" and "no converter" in rows["sort"].reason
    assert rows["conv"].placement == rows["relu"].placement != rows["fc"].placement != "mxnet"
    assert len(rep.engines) == 2 and rep.engines[0].inputs == ["data"] and rep.engines[0].plan_bytes == 0
    assert rep.nodes_total == 4 and rep.nodes_trt == 3
    assert rep.macs_total == 4 * 27 * 16 + 5 * 64 and rep.mac_coverage == 1.0
    text = str(rep)
    assert "sort" in text and "3/4 op nodes" in text
    table = {ln.split()[0]: ln.split()[1:3] for ln in rep.op_table().splitlines()[1:]}
    assert table["Convolution"] == ["1", "1"] and table["Custom"] == ["1", "0"], rep.op_table()


def test_optimize_block_returns_a_runnable_gluon_block():
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Conv2D(4, 3, padding=1), mx.gluon.nn.BatchNorm(), mx.gluon.nn.Activation("relu"),
            mx.gluon.nn.MaxPool2D(), mx.gluon.nn.Dense(3))
    net.initialize(mx.init.Xavier())
    x = mx.nd.array(RNG.standard_normal((2, 3, 8, 8)).astype(np.float32))
    opt = mx2trt.optimize_block(net, {"data": x.shape}, runtime="reference")
    assert isinstance(opt, mx.gluon.SymbolBlock)
    want = net(x).asnumpy()
    assert max_rel_error(opt(x).asnumpy(), want) <= 1e-5
    with pytest.raises(mx2trt.errors.InputError, match="HybridBlock"):
        mx2trt.optimize_block(mx.gluon.nn.Block(), {"data": (1,)})


def test_engine_key_covers_inputs_a_converter_does_not_read():
    """arange_like reads only its input's shape (data_inputs=0): graphs differing there must not share an engine."""
    a, b = mx.sym.var("a"), mx.sym.var("b")
    y = mx.sym.broadcast_add(mx.sym.relu(a, name="r"), mx.sym.contrib.arange_like(b, name="ramp"), name="add")
    keys, outs = [], []
    for rows in (2, 4):
        c = mx2trt.convert(y, {}, {"a": (1, 3), "b": (rows, 3)}, runtime="reference")
        keys.append(c.engines[0].key)
        outs.append(run_symbol(c.symbol, {"a": np.ones((1, 3), np.float32), "b": np.zeros((rows, 3), np.float32)})[0])
    assert keys[0] != keys[1]
    assert outs[1].shape == (4, 3) and outs[1][3, 2] == 1 + 11


def test_tensors_of_more_than_8_dims_stay_in_mxnet():
    c = mx2trt.convert(mx.sym.relu(mx.sym.var("x"), name="r"), {}, {"x": (1,) * 10}, runtime="reference")
    assert c.report.rows[0].placement == "mxnet" and "rank 10" in c.report.rows[0].reason


def test_convert_reports_its_time_per_phase(resnet):
    sym, params, shapes, _, _ = resnet
    c = mx2trt.convert(sym, params, shapes, runtime="reference", cache=False)
    t = c.report.timings
    assert list(t) == [*mx2trt.api.PHASES, "total"]
    assert all(v >= 0 for v in t.values())
    assert t["define"] > 0 and t["build"] > 0 and t["fold"] > 0 and t["graph"] > 0
    assert sum(t[p] for p in mx2trt.api.PHASES) <= t["total"] + 1e-3
    assert t["build"] == pytest.approx(sum(e.build_s for e in c.engines), abs=0.05)


def test_engines_keep_what_the_weights_were_at_convert_time(resnet):
    """Networks read CPU NDArray weights in place (no copy); an engine must not change when the user later writes
    into or drops those NDArrays."""
    sym, params, shapes, x, want = resnet
    mine = {k: v.copy() for k, v in params.items()}
    c = mx2trt.convert(sym, mine, shapes, runtime="reference", cache=False)
    for v in mine.values():
        v[:] = 7.0  # in place: the memory the network was defined from
    del mine
    feeds = {"data": x, **{k: v.asnumpy() for k, v in c.params.items()}}
    assert max_rel_error(run_symbol(c.symbol, feeds)[0], want) <= 1e-5


def test_convert_uses_the_registry_it_is_given():
    from mx2trt.registry import Registry

    x = mx.sym.relu(mx.sym.var("data"), name="relu0")
    c = mx2trt.convert(x, {}, {"data": (2, 3)}, runtime="reference", cache=False, registry=Registry())
    assert c.engines == [] and "no converter for op" in c.report.row("relu0").reason
    with pytest.raises(mx2trt.InputError, match="registry must be"):
        mx2trt.convert(x, {}, {"data": (2, 3)}, registry={})


# ---- float64 ---------------------------------------------------------------------------------------------------------


def _float64_graph(mixed: bool) -> tuple[object, dict, dict]:
    """A float64 model (input, weights and every tensor; with `mixed`, a Cast to float32 and a float32 output too)."""
    x = mx.sym.var("x")
    y = mx.sym.FullyConnected(mx.sym.relu(x, name="pre"), mx.sym.var("w"), num_hidden=5, no_bias=True, name="fc")
    out = mx.sym.softmax(mx.sym.broadcast_add(y, mx.sym.var("b"), name="add"), name="post")
    if mixed:
        out = mx.sym.Group([mx.sym.Cast(out, dtype="float32", name="to32"), y])
    rng = np.random.default_rng(5)
    return out, {"x": rng.standard_normal((3, 4))}, {"w": rng.standard_normal((5, 4)), "b": rng.standard_normal((1, 5))}


def test_float64_stays_in_mxnet_by_default_with_the_reason():
    sym, data, params = _float64_graph(mixed=False)
    report = mx2trt.explain(sym, {"x": (3, 4)}, {k: mx.nd.array(v, dtype=v.dtype) for k, v in params.items()},
                            dtypes={"x": np.float64})
    reasons = {r.node: r.reason for r in report.rows}
    assert all(r.placement == "mxnet" for r in report.rows), report.node_table()
    assert "input dtype float64 is not supported" in reasons["fc"], reasons["fc"]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("mixed", [False, True])
def test_float64_opt_in_computes_in_float32_inside_one_engine(precision, mixed):
    """float64='float32': one engine computes the float64 graph in float32 (or fp16); the engine node takes and gives
    MXNet's float64 (and float32 where the graph has it), binds with the data shapes alone and matches MXNet's
    float64 within float32's (fp16's) rounding; the report says so per node."""
    sym, data, params = _float64_graph(mixed)
    c = check_graph(sym, data, params, on_trt=["pre", "fc", "add", "post"], engines=1, float64="float32",
                    precision=precision, rtol=1e-5 if precision == "fp32" else 3e-3)
    assert "float64 computed in float32" in {r.node: r.reason for r in c.report.rows}["fc"]
    node = next(n for n in json.loads(c.symbol.tojson())["nodes"] if n["op"] == "Custom")
    assert json.loads(node["attrs"]["in_dtypes"]) == ["float64"]


def test_float64_option_is_checked():
    sym, data, params = _float64_graph(mixed=False)
    with pytest.raises(mx2trt.InputError, match="float64 must be one of"):
        mx2trt.convert(sym, params, {"x": (3, 4)}, float64="float16")


def test_float64_engine_nodes_save_and_load(tmp_path):
    """The engine node's float64 boundary is in the saved symbol: a loaded model binds with float64 data and gives
    the same numbers."""
    sym, data, params = _float64_graph(mixed=True)
    sym2, params2 = mx2trt.optimize(sym, {k: mx.nd.array(v, dtype=v.dtype) for k, v in params.items()}, {"x": (3, 4)},
                                    dtypes={"x": np.float64}, float64="float32", runtime="reference",
                                    cache_dir=tmp_path / "cache")
    mx2trt.save(tmp_path / "m", sym2, params2)
    sym3, params3 = mx2trt.load(tmp_path / "m")
    want = run_symbol(sym2, {**data, **{k: v.asnumpy() for k, v in params2.items()}})
    got = run_symbol(sym3, {**data, **{k: v.asnumpy() for k, v in params3.items()}})
    assert [g.dtype for g in got] == [np.float32, np.float64]
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_a_softmax_output_checkpoint_binds_with_its_label_as_before():
    """A trained Module's symbol ends in SoftmaxOutput, whose label the engine does not read; the optimized symbol
    still takes 'softmax_label', so Module's default label_names and bind(label_shapes=...) work as before."""
    x = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=4, name="fc")
    sym = mx.sym.SoftmaxOutput(x, name="softmax")
    w, b = RNG.standard_normal((4, 3)).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    params = {"fc_weight": mx.nd.array(w), "fc_bias": mx.nd.array(b)}
    sym2, params2 = mx2trt.optimize(sym, params, {"data": (2, 3)}, runtime="reference", cache=False)
    assert "softmax_label" in sym2.list_arguments()
    assert sum(n["op"] == "Custom" for n in json.loads(sym2.tojson())["nodes"]) == 1
    data = RNG.standard_normal((2, 3)).astype(np.float32)
    outs = []
    for s, p in ((sym, params), (sym2, params2)):
        mod = mx.mod.Module(s, context=mx.cpu())  # label_names=('softmax_label',), MXNet's default
        mod.bind(data_shapes=[("data", (2, 3))], label_shapes=[("softmax_label", (2,))], for_training=False)
        mod.set_params({k: v for k, v in p.items() if k in s.list_arguments()}, {})
        mod.forward(mx.io.DataBatch([mx.nd.array(data)], [mx.nd.zeros(2)]), is_train=False)
        outs.append(mod.get_outputs()[0].asnumpy())
    assert max_rel_error(outs[1], outs[0]) < 1e-5
