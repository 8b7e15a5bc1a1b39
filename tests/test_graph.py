"""Graph.from_symbol (kinds, shapes, dtypes, consumers, input errors) and the public API's handling of bad inputs."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import mx2trt
from mx2trt import zoo
from mx2trt._mx import mx
from mx2trt.errors import InputError
from mx2trt.graph import Entry, Graph, _output_counts
from mx2trt.partition import MXNET

# MXNet warns when a shape cannot be decided; the tests below provoke that on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Cannot decide shape:UserWarning")

SHAPES = {"data": (2, 3, 8, 8)}


def small_net():
    """conv -> bn -> relu -> SliceChannel(2) -> fc on output 0; output 1 of the split is a graph output too."""
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, name="conv")
    bn = mx.sym.BatchNorm(conv, name="bn")
    act = mx.sym.relu(bn, name="relu")
    split = mx.sym.SliceChannel(act, num_outputs=2, axis=1, name="split")
    fc = mx.sym.FullyConnected(split[0], num_hidden=3, name="fc")
    return mx.sym.Group([fc, split[1]])


def params_of(sym, shapes=SHAPES):
    args, _, aux = sym.infer_shape(**shapes)
    rng = np.random.default_rng(0)
    out = {n: mx.nd.array(rng.standard_normal(s)) for n, s in zip(sym.list_arguments(), args) if n not in shapes}
    out.update({n: mx.nd.array(rng.uniform(0.5, 1.5, s)) for n, s in zip(sym.list_auxiliary_states(), aux)})
    return out


@pytest.fixture(scope="module")
def net():
    sym = small_net()
    params = params_of(sym)
    return sym, params, Graph.from_symbol(sym, params, SHAPES)


def test_node_kinds(net):
    _, _, g = net
    kinds = {n.name: (n.kind, n.op) for n in g.nodes}
    assert kinds == {
        "data": ("data", "null"), "conv_weight": ("param", "null"), "conv_bias": ("param", "null"),
        "conv": ("op", "Convolution"), "bn_gamma": ("param", "null"), "bn_beta": ("param", "null"),
        "bn_moving_mean": ("aux", "null"), "bn_moving_var": ("aux", "null"), "bn": ("op", "BatchNorm"),
        "relu": ("op", "relu"), "split": ("op", "SliceChannel"), "fc_weight": ("param", "null"),
        "fc_bias": ("param", "null"), "fc": ("op", "FullyConnected"),
    }
    assert [n.id for n in g.nodes] == list(range(len(g.nodes)))
    assert [n.name for n in g.op_nodes] == ["conv", "bn", "relu", "split", "fc"]
    assert g.by_name["conv"].attrs == {"kernel": "(3, 3)", "num_filter": "4"}


def test_shapes_and_dtypes_agree_with_mxnet(net):
    sym, _, g = net
    internals = sym.get_internals()
    _, out_sh, _ = internals.infer_shape(**SHAPES)
    expected = dict(zip(internals.list_outputs(), map(tuple, out_sh)))
    got = {g.entry_name(Entry(n.id, i)): g.shape(Entry(n.id, i)) for n in g.nodes for i in range(n.num_outputs)}
    assert got == expected
    assert g.by_name["conv"].out_shapes == [(2, 4, 6, 6)]
    assert g.by_name["bn"].out_shapes == [(2, 4, 6, 6)]  # mean/var outputs are hidden
    assert g.by_name["split"].out_shapes == [(2, 2, 6, 6), (2, 2, 6, 6)]
    assert g.by_name["fc"].out_shapes == [(2, 3)] and g.by_name["fc_weight"].out_shapes == [(3, 72)]
    assert {d for n in g.nodes for d in n.out_dtypes} == {np.dtype(np.float32)}


def test_multi_output_and_heads(net):
    sym, _, g = net
    split, fc = g.by_name["split"], g.by_name["fc"]
    assert split.num_outputs == 2 and fc.inputs[0] == Entry(split.id, 0)
    assert g.heads == [Entry(fc.id, 0), Entry(split.id, 1)]
    assert [g.entry_name(h) for h in g.heads] == sym.list_outputs() == ["fc_output", "split_output1"]


def test_consumers(net):
    _, _, g = net
    ids = {n.name: n.id for n in g.nodes}

    def consumers(name):
        return [g.nodes[c].name for c in g.consumers(ids[name])]

    assert consumers("data") == ["conv"] and consumers("conv_weight") == ["conv"]
    assert consumers("conv") == ["bn"] and consumers("bn_moving_var") == ["bn"]
    assert consumers("relu") == ["split"] and consumers("split") == ["fc"] and consumers("fc") == []


def test_dtypes_come_from_mxnet_inference():
    sym = mx.sym.Cast(mx.sym.relu(mx.sym.var("data"), name="r"), dtype="int32", name="c")
    g = Graph.from_symbol(sym, {}, {"data": (2, 3)}, {"data": "float16"})
    f16, i32 = [np.dtype(np.float16)], [np.dtype(np.int32)]
    assert [g.by_name[n].out_dtypes for n in ("data", "r", "c")] == [f16, f16, i32]


def test_visible_outputs_of_batchnorm_with_mean_var():
    bn = mx.sym.BatchNorm(mx.sym.var("data"), output_mean_var=True, name="bn")
    params = {n: mx.nd.ones((3,)) for n in ("bn_gamma", "bn_beta", "bn_moving_mean", "bn_moving_var")}
    g = Graph.from_symbol(mx.sym.Group([bn[0], bn[2]]), params, {"data": (2, 3, 4)})
    assert g.by_name["bn"].out_shapes == [(2, 3, 4), (3,), (3,)]
    assert g.by_name["bn_moving_mean"].kind == "aux" and g.by_name["bn_gamma"].kind == "param"


# ---- input errors --------------------------------------------------------------------------------------------------


def _bad_fc_weight(p):
    return {**p, "fc_weight": mx.nd.ones((3, 71))}


@pytest.mark.parametrize(
    "shapes, params, dtypes, needles",
    [
        ({**SHAPES, "dta": (1,)}, None, None, ["shapes: 'dta' is not an input", "['data']"]),
        ({**SHAPES, "fc_weight": (3, 72)}, None, None, ["'fc_weight' is a parameter"]),
        (SHAPES, _bad_fc_weight, None, ["param 'fc_weight' has shape (3, 71) but the graph needs (3, 72)"]),
        ({}, None, None, ["no value for ['data']", "data inputs in shapes"]),
        (SHAPES, None, {"conv_weight": "float16"}, ["dtypes: 'conv_weight' is not a data input"]),
        (SHAPES, None, {"dta": "float16"}, ["dtypes: 'dta'"]),
    ],
    ids=["unknown-input", "shape-for-param", "param-shape-mismatch", "missing-data-shape", "dtype-for-param",
         "dtype-unknown"],
)
def test_input_errors(net, shapes, params, dtypes, needles):
    sym, good, _ = net
    with pytest.raises(InputError) as ei:
        Graph.from_symbol(sym, params(good) if params else good, shapes, dtypes)
    for needle in needles:
        assert needle in str(ei.value)


def _add_param_net():
    """A parameter whose shape MXNet cannot infer from the data shape alone (a free bias added by broadcast_add)."""
    fc = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc")
    return mx.sym.broadcast_add(fc, mx.sym.var("w"), name="add")


def test_param_whose_shape_only_params_give():
    params = {"fc_weight": mx.nd.ones((3, 4)), "fc_bias": mx.nd.ones((3,)), "w": mx.nd.ones((1, 3))}
    g = Graph.from_symbol(_add_param_net(), params, {"data": (2, 4)})
    assert g.by_name["add"].out_shapes == [(2, 3)] and g.by_name["w"].kind == "param"


def test_uninferable_input_error_names_only_that_input():
    params = {"fc_weight": mx.nd.ones((3, 4)), "fc_bias": mx.nd.ones((3,))}
    with pytest.raises(InputError) as ei:
        Graph.from_symbol(_add_param_net(), params, {"data": (2, 4)})
    assert "'w'" in str(ei.value) and "'data'" not in str(ei.value)


def test_duplicate_node_names():
    sym = mx.sym.relu(mx.sym.relu(mx.sym.var("data"), name="act"), name="act")
    g = Graph.from_symbol(sym, {}, {"data": (2, 3)})
    assert [n.out_shapes for n in g.op_nodes] == [[(2, 3)], [(2, 3)]]


def _with_params(sym, shapes):
    arg_shapes, _, aux_shapes = sym.infer_shape_partial(**shapes)
    return sym, {n: mx.nd.ones(s) for n, s in [*zip(sym.list_arguments(), arg_shapes),
                                                *zip(sym.list_auxiliary_states(), aux_shapes)] if n not in shapes}, shapes


def _prefixed_names_net():
    """Names where one plus "_" starts the next node's: conv then conv_relu, and a variable conv_relu_w read later."""
    x = mx.sym.relu(mx.sym.Convolution(mx.sym.var("data"), kernel=(1, 1), num_filter=4, name="conv"), name="conv_relu")
    return _with_params(mx.sym.broadcast_mul(x, mx.sym.var("conv_relu_w"), name="mul"),
                        {"data": (2, 3, 4, 4), "conv_relu_w": (1, 4, 1, 1)})


@pytest.mark.parametrize("make, fast", [(lambda: _with_params(small_net(), SHAPES), True), (zoo.lenet, True),
                                        (_prefixed_names_net, False)], ids=["multi_output", "lenet", "prefixed_names"])
def test_output_counts_from_names_match_mxnets_own_or_defer(make, fast: bool):
    """Graph aligns inferred outputs with nodes by internals' output names when they tell (no symbol per output);
    where a name plus "_" starts the next node's, it asks MXNet output by output, with the same result."""
    sym, params, shapes = make()
    internals = sym.get_internals()
    nodes = json.loads(sym.tojson())["nodes"]
    owners = [internals[i].name for i in range(len(internals.list_outputs()))]
    exact = [sum(1 for _ in group) for _, group in itertools.groupby(owners)]
    counts = _output_counts(nodes, internals.list_outputs())
    assert (counts is not None) == fast
    if fast:
        assert counts == exact and len(counts) == len(nodes) and max(counts) == (2 if make is not zoo.lenet else 1)
    g = Graph.from_symbol(sym, params, shapes)
    assert [len(n.out_shapes) for n in g.nodes] == exact


# ---- through the public API ----------------------------------------------------------------------------------------


def _convert(sym, params, shapes):
    return mx2trt.convert(sym, params, shapes, runtime="reference", build_engines=False)


def test_convert_missing_param_names_it():
    sym = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc")
    with pytest.raises(InputError, match="fc_weight"):
        _convert(sym, {"fc_bias": mx.nd.ones((3,))}, {"data": (2, 4)})


def test_convert_missing_aux_names_it():
    sym = mx.sym.BatchNorm(mx.sym.var("data"), name="bn")
    params = {k: mx.nd.ones((3,)) for k in ("bn_gamma", "bn_beta", "bn_moving_mean")}
    with pytest.raises(InputError, match="bn_moving_var"):
        _convert(sym, params, {"data": (2, 3, 4)})


def _load_json(op, attrs, params=()):
    """data (+ params) -> op named 'n', written by hand as a symbol JSON."""
    nodes = [{"op": "null", "name": v, "inputs": []} for v in ("data", *params)]
    nodes.append({"op": op, "name": "n", "attrs": attrs, "inputs": [[i, 0, 0] for i in range(len(nodes))]})
    js = {"nodes": nodes, "arg_nodes": list(range(len(nodes) - 1)), "node_row_ptr": list(range(len(nodes) + 1)),
          "heads": [[len(nodes) - 1, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}
    return mx.sym.load_json(json.dumps(js))


def test_unparsable_attribute_stays_in_mxnet_with_reason():
    """MXNet itself rejects a malformed value of an attribute it declares (Convolution kernel='(3,x)' fails in
    load_json), so what reaches mx2trt's parser is an attribute MXNet does not check, e.g. an extra one on a
    parameterless op: the node stays in MXNet and the report says why (no AttributeParseError escapes)."""
    with pytest.raises(mx.base.MXNetError, match=r"kernel.*\(3,x\).*Convolution\(name=\"n\""):
        _load_json("Convolution", {"kernel": "(3,x)", "num_filter": "4"}, ("n_weight", "n_bias"))
    sym = _load_json("relu", {"foo": "(3,x)"})
    why = "relu 'n': attribute foo='(3,x)': unknown attribute (not in mx2trt's schema for this op)"
    want = ("n", "relu", "mxnet", why)
    assert mx2trt.explain(sym, {"data": (2, 3)}).rows == [want]
    conv = _convert(sym, {}, {"data": (2, 3)})
    assert conv.report.rows == [want] and conv.engines == [] and conv.partition.placements[1].where == MXNET
    assert conv.symbol.tojson() == sym.tojson()


def test_unknown_op_stays_in_mxnet_with_reason():
    sym = mx.sym.sort(mx.sym.var("data"), axis=-1, name="srt")
    want = [("srt", "sort", "mxnet", "sort 'srt': no converter for op 'sort'")]
    assert mx2trt.explain(sym, {"data": (2, 3)}).rows == want
    conv = _convert(sym, {}, {"data": (2, 3)})
    assert conv.report.rows == want and conv.engines == [] and conv.report.nodes_trt == 0
