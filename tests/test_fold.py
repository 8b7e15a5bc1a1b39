"""Constant folding: nodes computed from parameters alone are evaluated once by MXNet and become parameters."""
from __future__ import annotations

import numpy as np

import mx2trt
from mx2trt._mx import mx
from mx2trt.fold import fold_constants

from harness import check_graph

RNG = np.random.default_rng(11)


def fused_qkv_dense():
    """GluonNLP-style: the dense weight is the concatenation of three parameters (q, k, v projections)."""
    ws = [mx.sym.var(f"w{i}") for i in range(3)]
    w = mx.sym.Concat(*[mx.sym.reshape(v, shape=(-1, 0)) for v in ws], dim=0, name="qkv_weight")
    y = mx.sym.FullyConnected(mx.sym.var("data"), weight=w, num_hidden=6, no_bias=True, flatten=False, name="fc")
    params = {f"w{i}": RNG.standard_normal((2, 4)).astype(np.float32) for i in range(3)}
    return y, params


def test_weight_computed_from_parameters_is_folded_and_converted():
    y, params = fused_qkv_dense()
    c = check_graph(y, {"data": RNG.standard_normal((3, 4)).astype(np.float32)}, params, on_trt=["fc"], engines=1)
    assert "qkv_weight" in c.report.folded and "fold" in c.report.summary()
    assert not c.params, "the folded weight is baked into the engine"


def test_folding_is_visible_in_explain():
    y, params = fused_qkv_dense()
    rep = mx2trt.explain(y, {"data": (3, 4)}, params={k: mx.nd.array(v) for k, v in params.items()})
    assert {r.node: r.placement for r in rep.rows}["fc"] != "mxnet"
    assert len(rep.folded) == 4  # three reshapes and the concat


def test_constant_head_and_mixed_nodes():
    w = mx.sym.var("w")
    scaled = mx.sym._internal._mul_scalar(w, scalar=3.0, name="scaled")  # parameters only: folded
    mixed = mx.sym.broadcast_add(mx.sym.relu(mx.sym.var("data"), name="r"), scaled, name="mixed")  # reads data
    sym = mx.sym.Group([mixed, scaled])
    p = {"w": RNG.standard_normal((1, 3)).astype(np.float32)}
    c = check_graph(sym, {"data": RNG.standard_normal((2, 3)).astype(np.float32)}, p, on_trt=["r", "mixed"])
    assert c.report.folded == ["scaled"]


def test_nondeterministic_and_data_dependent_nodes_are_not_folded():
    noise = mx.sym.random.uniform(shape=(2, 3), name="noise")
    y = mx.sym.broadcast_add(mx.sym.var("data"), noise, name="add")
    f = fold_constants(y, {}, {"data": (2, 3)})
    assert f.nodes == [] and f.symbol.tojson() == y.tojson()


def test_folded_constants_declare_shape_and_dtype_so_the_result_binds_with_data_shapes_alone():
    """A folded constant read by a node left in MXNet: MXNet cannot infer a new variable's shape from its consumer
    (Concat here), so the variable declares it (found with gluoncv's Faster-RCNN, whose ROI ids are such a constant)."""
    from harness import binds_alone

    data, w = mx.sym.var("data"), mx.sym.var("w")
    ids = mx.sym.reshape(mx.sym.broadcast_add(mx.sym.arange(0, 6) * 0, w), shape=(-1, 1), name="reshape0")
    sym = mx.sym.Concat(ids, mx.sym.slice_axis(mx.sym.relu(data), axis=1, begin=0, end=4), dim=1, name="cat")
    sym2, params2 = mx2trt.optimize(sym, {"w": mx.nd.array([3.0])}, {"data": (6, 8)}, exclude_ops=["Concat"],
                                    runtime="reference")
    assert "reshape0_folded" in sym2.list_arguments()
    assert binds_alone(sym2, {"data": (6, 8)}, {"data": np.float32})
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    ex = sym2.simple_bind(mx.cpu(), grad_req="null", data=(6, 8))
    for k, v in params2.items():
        ex.arg_dict[k][:] = v
    got = ex.forward(data=mx.nd.array(x))[0].asnumpy()
    np.testing.assert_array_equal(got, np.concatenate([np.full((6, 1), 3.0, np.float32), np.maximum(x[:, :4], 0)], 1))


def box_clipping():
    """gluoncv's BBoxClipToImage: the image's (w, h) from shape_array -> slice_axis -> reverse -> tile, cast to float
    and used as the upper bound of data-dependent boxes."""
    data = mx.sym.var("data")
    feat = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), name="conv")
    wh = mx.sym.reverse(mx.sym.slice_axis(mx.sym.shape_array(data, name="shape"), axis=0, begin=2, end=4, name="hw"),
                        axis=0, name="wh")
    bound = mx.sym.Cast(mx.sym.tile(wh, reps=(2,), name="whwh"), dtype="float32", name="bound")
    boxes = mx.sym.reshape(mx.sym.relu(feat, name="r") * 10, shape=(0, -1, 4), name="boxes")
    clipped = mx.sym.broadcast_minimum(boxes, mx.sym.reshape(bound, shape=(1, 1, 4), name="bound4"), name="clip")
    params = {"conv_weight": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32),
              "conv_bias": RNG.standard_normal(4).astype(np.float32)}
    return clipped, params


def test_shape_only_chains_are_folded_and_the_rest_is_one_engine():
    sym, params = box_clipping()
    c = check_graph(sym, {"data": RNG.standard_normal((2, 3, 7, 9)).astype(np.float32)}, params,
                    on_trt=["conv", "r", "clip"], engines=1)
    assert set(c.report.folded) == {"shape", "hw", "wh", "whwh", "bound", "bound4"}, c.report.folded
    (name,) = [k for k in fold_constants(sym, params, {"data": (2, 3, 7, 9)}).params if k.endswith("_folded")]
    assert fold_constants(sym, params, {"data": (2, 3, 7, 9)}).params[name].asnumpy().ravel().tolist() == \
        [9, 7, 9, 7]


def test_a_shape_only_op_reads_a_computed_tensor_without_computing_it():
    """shape_array of a conv output: the conv is not evaluated (its input is a zeros placeholder of its shape and
    dtype), and size_array of an int32 data input folds as well."""
    data, idx = mx.sym.var("data"), mx.sym.var("idx", dtype="int32")
    conv = mx.sym.Convolution(data, num_filter=5, kernel=(1, 1), name="conv")
    n = mx.sym.Cast(mx.sym.size_array(idx, name="n"), dtype="float32", name="nf")
    y = mx.sym.broadcast_add(mx.sym.Cast(mx.sym.shape_array(conv, name="s"), dtype="float32", name="sf"), n,
                             name="y")
    params = {"conv_weight": np.full((5, 3, 1, 1), np.nan, np.float32), "conv_bias": np.zeros(5, np.float32)}
    f = fold_constants(y, params, {"data": (1, 3, 4, 6), "idx": (2, 3)}, {"idx": np.int32})
    assert set(f.nodes) == {"s", "sf", "n", "nf", "y"}
    (value,) = [v for k, v in f.params.items() if k.endswith("_folded")]
    assert value.asnumpy().tolist() == [7, 11, 10, 12]  # (1, 5, 4, 6) + 6, with no NaN from the conv


def test_values_of_data_are_never_folded():
    """Only shapes make a shape-only op constant: what reads data values next to it stays."""
    data = mx.sym.var("data")
    y = mx.sym.broadcast_add(mx.sym.Cast(mx.sym.shape_array(data, name="s"), dtype="float32", name="sf"),
                             mx.sym.sum(data, axis=(1, 2), name="total"), name="y")
    f = fold_constants(y, {}, {"data": (3, 2, 2)})
    assert set(f.nodes) == {"s", "sf"}
