"""A catalogue of bad or hostile inputs: each gets a clear mx2trt error naming what is wrong (or, where the input is
legitimate but unusual, does exactly what it says), never a raw traceback and never a silently altered input."""
from __future__ import annotations

import re
from unittest import mock
from typing import Any, Callable

import numpy as np
import pytest

import mx2trt
from mx2trt._mx import mx
from mx2trt.engine import EngineStore
from mx2trt.runtime import EngineNodeError

from harness import assert_close, run_symbol

RNG = np.random.default_rng(7)
SHAPES = {"data": (1, 3, 8, 8)}


def _net() -> Any:
    x = mx.sym.Convolution(mx.sym.var("data"), kernel=(3, 3), num_filter=4, name="conv")
    x = mx.sym.BatchNorm(x, name="bn")
    return mx.sym.FullyConnected(mx.sym.relu(x, name="relu"), num_hidden=2, name="fc")


def _params(**override: Any) -> dict[str, Any]:
    p = {
        "conv_weight": mx.nd.array(RNG.standard_normal((4, 3, 3, 3))), "conv_bias": mx.nd.zeros(4),
        "bn_gamma": mx.nd.ones(4), "bn_beta": mx.nd.zeros(4),
        "bn_moving_mean": mx.nd.zeros(4), "bn_moving_var": mx.nd.ones(4),
        "fc_weight": mx.nd.array(RNG.standard_normal((2, 144))), "fc_bias": mx.nd.zeros(2),
    }
    p.update(override)
    return {k: v for k, v in p.items() if v is not _DROP}


_DROP = object()
NET = _net()


def convert(params: Any = None, shapes: Any = None, sym: Any = NET, **options: Any) -> Any:
    return mx2trt.convert(sym, _params() if params is None else params, SHAPES if shapes is None else shapes,
                          runtime="reference", build_engines=False, **options)


# (id, call, error class, message pattern)
CASES: list[tuple[str, Callable[[], Any], type, str]] = [
    # the symbol and the options
    ("symbol-is-a-dict", lambda: mx2trt.convert({}, {}, SHAPES), mx2trt.InputError, "expected an mxnet Symbol, got dict"),
    ("symbol-is-json", lambda: mx2trt.optimize(NET.tojson(), _params(), SHAPES), mx2trt.InputError,
     "expected an mxnet Symbol, got str"),
    ("precision-int4", lambda: convert(precision="int4"), mx2trt.InputError, "precision must be one of"),
    # int8/fp8 (more in tests/test_quant.py and tests/test_calibration.py)
    ("int8-without-a-table", lambda: convert(precision="int8"), mx2trt.InputError, "needs a calibration table"),
    ("int8-table-file-missing", lambda: convert(precision="int8", calibration="no-such-table.json"),
     mx2trt.InputError, "no-such-table.json"),
    ("int8-fallback-for-float", lambda: convert(precision="fp16", int8_fallback="fp32"), mx2trt.InputError,
     "int8_fallback is for precision 'int8' or 'fp8'"),
    ("precision-number", lambda: convert(precision=16), mx2trt.InputError, "precision must be one of"),
    ("runtime-cuda", lambda: mx2trt.convert(NET, _params(), SHAPES, runtime="cuda"),
     mx2trt.InputError, "runtime must be one of"),
    ("min-subgraph-size-0", lambda: convert(min_subgraph_size=0), mx2trt.InputError,
     "min_subgraph_size must be an integer of at least 1, not 0"),
    ("min-subgraph-size-float", lambda: convert(min_subgraph_size=1.5), mx2trt.InputError, "min_subgraph_size"),
    ("min-subgraph-size-bool", lambda: convert(min_subgraph_size=True), mx2trt.InputError, "min_subgraph_size"),
    ("exclude-ops-typo", lambda: convert(exclude_ops=["Convolutoin"]), mx2trt.InputError,
     r"exclude_ops: \['Convolutoin'\] is not an MXNet op"),
    ("exclude-ops-number", lambda: convert(exclude_ops=5), mx2trt.InputError,
     "exclude_ops must be a name or a list of names, got int"),
    ("exclude-ops-non-string", lambda: convert(exclude_ops=["relu", 1]), mx2trt.InputError, "exclude_ops: 1 is not a name"),
    ("exclude-nodes-unknown", lambda: convert(exclude_nodes=["nope"]), mx2trt.InputError,
     r"exclude_nodes: no op node is named \['nope'\]"),
    ("build-engines-string", lambda: mx2trt.convert(NET, _params(), SHAPES, build_engines="no"), mx2trt.InputError,
     "build_engines must be True or False"),
    ("cache-string", lambda: convert(cache="off"), mx2trt.InputError, "cache must be True or False"),
    ("cache-dir-number", lambda: convert(cache_dir=3), mx2trt.InputError,
     r"cache_dir must be a path \(str or os.PathLike\), not 3"),
    ("progress-string", lambda: convert(progress="bar"), mx2trt.InputError,
     "progress must be True, False or None"),
    ("enabled-string", lambda: mx2trt.optimize(NET, _params(), SHAPES, enabled="no"), mx2trt.InputError,
     "enabled must be True or False"),
    ("save-prefix-number", lambda: mx2trt.save(3, NET, _params()), mx2trt.InputError, "prefix must be a path"),
    ("load-not-saved", lambda: mx2trt.load("/nonexistent/model"), mx2trt.SavedModelError,
     "is not a model saved by mx2trt.save"),
    ("misspelt-option", lambda: mx2trt.optimize(NET, _params(), SHAPES, precison="fp16"), mx2trt.InputError,
     r"unknown option\(s\) \['precison'\]"),
    # params
    ("params-list", lambda: convert(params=[1, 2]), mx2trt.InputError, "params must be a mapping .* got list"),
    ("params-none", lambda: mx2trt.optimize(NET, None, SHAPES), mx2trt.InputError, "params must be a mapping .* got NoneType"),
    ("param-value-list", lambda: convert(params=_params(conv_bias=[0, 0, 0, 0])), mx2trt.InputError,
     "params: 'conv_bias' must be an NDArray or numpy array, got list"),
    ("param-value-none", lambda: convert(params=_params(conv_bias=None)), mx2trt.InputError,
     "'conv_bias' must be an NDArray or numpy array, got NoneType"),
    ("param-value-float", lambda: convert(params=_params(conv_bias=0.0)), mx2trt.InputError, "got float"),
    ("param-object-dtype", lambda: convert(params=_params(conv_bias=np.array([None] * 4))), mx2trt.InputError,
     "'conv_bias' has dtype object"),
    ("param-key-not-string", lambda: convert(params={**_params(), 1: mx.nd.zeros(1)}), mx2trt.InputError,
     "key 1 is not a string"),
    ("param-given-twice", lambda: convert(params={**_params(), "arg:conv_bias": mx.nd.ones(4)}), mx2trt.InputError,
     r"'conv_bias' is given twice \(as 'conv_bias' and 'arg:conv_bias'\)"),
    ("aux-prefix-on-an-argument", lambda: convert(params={**_params(conv_weight=_DROP),
                                                           "aux:conv_weight": mx.nd.ones((4, 3, 3, 3))}),
     mx2trt.InputError, "'aux:conv_weight' names an argument; write 'arg:conv_weight'"),
    ("arg-prefix-on-an-aux-state", lambda: convert(params={**_params(bn_moving_mean=_DROP),
                                                            "arg:bn_moving_mean": mx.nd.zeros(4)}),
     mx2trt.InputError, "'arg:bn_moving_mean' names an aux state; write 'aux:bn_moving_mean'"),
    ("param-wrong-shape", lambda: convert(params=_params(conv_weight=mx.nd.ones((4, 3, 5, 5)))), mx2trt.InputError,
     r"conv_weight.*\(4, 3, 5, 5\).*\(4, 3, 3, 3\)"),
    ("aux-wrong-shape", lambda: convert(params=_params(bn_moving_var=mx.nd.ones(7))), mx2trt.InputError,
     r"aux state 'bn_moving_var' has shape \(7,\) but the graph needs \(4,\)"),
    ("param-missing", lambda: convert(params=_params(fc_weight=_DROP)), mx2trt.InputError,
     r"no value for \['fc_weight'\] \(MXNet expects shapes \{'fc_weight': \(2, 144\)\}\)"),
    ("param-also-in-shapes", lambda: convert(shapes={**SHAPES, "fc_bias": (2,)}), mx2trt.InputError,
     "'fc_bias' is a parameter"),
    # shapes
    ("shapes-not-a-mapping", lambda: convert(shapes=[(1, 3, 8, 8)]), mx2trt.InputError,
     "shapes must be a mapping .* got list"),
    ("shape-int", lambda: convert(shapes={"data": 5}), mx2trt.InputError,
     "shapes: 'data' must be a tuple of dimensions like .* got 5"),
    ("shape-string", lambda: convert(shapes={"data": "1,3,8,8"}), mx2trt.InputError, "shapes: 'data' must be a tuple"),
    ("shape-float-dim", lambda: convert(shapes={"data": (2.5, 3, 8, 8)}), mx2trt.InputError,
     r"shapes: 'data' = \(2.5, 3, 8, 8\): dimension 2.5 is not an integer"),
    ("shape-integral-float-dim", lambda: convert(shapes={"data": (1.0, 3, 8, 8)}), mx2trt.InputError,
     "dimension 1.0 is not an integer"),
    ("shape-bool-dim", lambda: convert(shapes={"data": (True, 3, 8, 8)}), mx2trt.InputError,
     "dimension True is not an integer"),
    ("shape-zero-dim", lambda: convert(shapes={"data": (0, 3, 8, 8)}), mx2trt.InputError,
     "dimension 0 must be between 1 and 2147483647"),
    ("shape-negative-dim", lambda: convert(shapes={"data": (-1, 3, 8, 8)}), mx2trt.InputError, "dimension -1 must be"),
    ("shape-dim-2-31", lambda: convert(shapes={"data": (2**31, 3, 8, 8)}), mx2trt.InputError,
     "dimension 2147483648 must be between 1 and 2147483647"),
    ("shape-none", lambda: convert(shapes={"data": None}), mx2trt.InputError, "'data' must be a tuple of dimensions"),
    ("shape-unknown-input", lambda: convert(shapes={"dat": (1, 3, 8, 8)}), mx2trt.InputError,
     "shapes: 'dat' is not an input of the symbol"),
    ("shape-wrong-rank", lambda: convert(shapes={"data": (3, 8, 8)}), mx2trt.InputError,
     "MXNet shape inference failed .*Error in operator conv: "),
    ("shape-missing", lambda: convert(shapes={}), mx2trt.InputError, r"no value for \['data'\]"),
    # dtypes
    ("dtype-unknown", lambda: convert(dtypes={"data": "float17"}), mx2trt.InputError,
     "dtypes: 'data' = 'float17' is not a dtype"),
    ("dtype-not-a-data-input", lambda: convert(dtypes={"fc_bias": "float16"}), mx2trt.InputError,
     "dtypes: 'fc_bias' is not a data input given in shapes"),
    ("dtypes-not-a-mapping", lambda: convert(dtypes="float16"), mx2trt.InputError, "dtypes must be a mapping"),
    ("dtype-complex", lambda: convert(dtypes={"data": "complex64"}), mx2trt.InputError, "complex64 is not a dtype"),
    # explain takes the same checks
    ("explain-wrong-rank", lambda: mx2trt.explain(NET, {"data": (3, 8, 8)}), mx2trt.InputError,
     "MXNet shape inference failed .*conv"),
    ("explain-unknown-input", lambda: mx2trt.explain(NET, {"dat": (1, 3, 8, 8)}), mx2trt.InputError,
     "'dat' is not an input"),
    ("explain-float-dim", lambda: mx2trt.explain(NET, {"data": (1, 3, 8.5, 8)}), mx2trt.InputError,
     "dimension 8.5 is not an integer"),
    ("explain-params-list", lambda: mx2trt.explain(NET, SHAPES, params=[]), mx2trt.InputError, "params must be a mapping"),
    # Gluon
    ("block-not-hybrid", lambda: mx2trt.optimize_block(mx.gluon.nn.Block(), SHAPES), mx2trt.InputError,
     "optimize_block needs a gluon.HybridBlock, got Block"),
    ("block-shapes-list", lambda: mx2trt.optimize_block(mx.gluon.nn.Dense(2), [(1, 4)]), mx2trt.InputError,
     "shapes must be a mapping"),
    # the registry
    ("register-twice", lambda: mx2trt.converter("relu")(lambda ctx, node, inputs: inputs), mx2trt.Mx2TrtError,
     "op 'relu' already has a converter"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(case):
    _, call, error, pattern = case
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, mx2trt.Mx2TrtError), f"{type(info.value).__name__} is not an Mx2TrtError"
    assert re.search(pattern, str(info.value)), str(info.value)


# ---- unusual but legitimate: does exactly what it says ---------------------------------------------------------------

def _exclude_ops_string() -> None:
    rep = convert(exclude_ops="Convolution").report
    where = {r.node: r for r in rep.rows}
    assert where["conv"].placement == "mxnet" and "excluded" in where["conv"].reason
    assert where["relu"].placement != "mxnet"


def _exclude_nodes_string() -> None:
    rep = convert(exclude_nodes="relu").report
    assert {r.node: r.placement for r in rep.rows}["relu"] == "mxnet"


def _variable_named_with_a_prefix() -> None:
    """A variable really named 'arg:w' is given its value under that name (no prefix stripped)."""
    w = RNG.standard_normal((3, 4)).astype(np.float32)
    sym = mx.sym.FullyConnected(mx.sym.var("x"), mx.sym.var("arg:w"), no_bias=True, num_hidden=3, name="fc")
    c = mx2trt.convert(sym, {"arg:w": mx.nd.array(w)}, {"x": (2, 4)}, runtime="reference")
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    assert_close(run_symbol(c.symbol, {"x": x})[0], x @ w.T, 1e-5)


def _numpy_params_come_back_as_ndarrays() -> None:
    """Params given as numpy come back as NDArrays (the README's binding recipe calls as_in_context on them)."""
    x = mx.sym.var("x")
    sym = mx.sym.broadcast_add(mxnet_sin(x), mx.sym.var("b"), name="add")
    c = mx2trt.convert(sym, {"b": np.ones((1, 3), np.float32)}, {"x": (2, 3)}, runtime="reference",
                       exclude_nodes=["add"])
    assert c.params and all(isinstance(v, mx.nd.NDArray) for v in c.params.values())


def mxnet_sin(x: Any) -> Any:
    from harness import mxnet_only

    return mxnet_only(x, "sin")


def _exclude_ops_alias() -> None:
    """An alias excludes the op MXNet writes into the graph ('flatten' is Flatten)."""
    sym = mx.sym.FullyConnected(mx.sym.flatten(mx.sym.relu(mx.sym.var("x"), name="r"), name="fl"), num_hidden=2,
                                name="fc")
    rep = mx2trt.explain(sym, {"x": (1, 2, 3)}, exclude_ops=["flatten"])
    assert rep.row("fl").placement == "mxnet" and rep.row("r").placement != "mxnet"


def _exclude_a_node_that_folding_removes() -> None:
    """A node computed from parameters alone is folded away; excluding it by name is no typo."""
    w = mx.sym.reshape(mx.sym.var("w"), shape=(2, 3), name="wreshape")
    sym = mx.sym.FullyConnected(mx.sym.var("x"), w, no_bias=True, num_hidden=2, name="fc")
    c = mx2trt.convert(sym, {"w": mx.nd.ones((6,))}, {"x": (1, 3)}, runtime="reference", exclude_nodes=["wreshape"])
    assert c.report.folded == ["wreshape"]


LEGITIMATE = [_exclude_ops_string, _exclude_ops_alias, _exclude_a_node_that_folding_removes, _exclude_nodes_string, _variable_named_with_a_prefix,
              _numpy_params_come_back_as_ndarrays]


@pytest.mark.parametrize("case", LEGITIMATE, ids=[f.__name__.strip("_") for f in LEGITIMATE])
def test_unusual_but_legitimate_input_does_what_it_says(case):
    case()


# ---- binding the optimized symbol: refused inside MXNet, with mx2trt's message -----------------------------------------

def _optimized() -> tuple[Any, dict[str, Any]]:
    sym = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc")
    return mx2trt.optimize(sym, {"fc_weight": mx.nd.ones((3, 4)), "fc_bias": mx.nd.zeros(3)}, {"data": (2, 4)},
                           runtime="reference")


def _bind_other_shape() -> None:
    sym, _ = _optimized()
    sym.simple_bind(mx.cpu(), data=(5, 4), grad_req="null")


def _bind_other_rank() -> None:
    sym, _ = _optimized()
    sym.bind(mx.cpu(), {"data": mx.nd.ones((2, 4, 1))}, grad_req="null")


def _bind_float16() -> None:
    sym, _ = _optimized()
    sym.simple_bind(mx.cpu(), data=(2, 4), type_dict={"data": np.float16}, grad_req="null")


def _backward() -> None:
    sym, _ = _optimized()
    ex = sym.simple_bind(mx.cpu(), data=(2, 4), grad_req="write")
    ex.forward(is_train=True, data=mx.nd.ones((2, 4)))
    ex.backward([mx.nd.ones((2, 3))])
    mx.nd.waitall()


def _engine_not_loaded() -> None:
    sym, _ = _optimized()
    js = sym.tojson()
    with mock.patch.object(mx2trt.runtime, "STORE", EngineStore()):  # a process that never built it
        mx.sym.load_json(js).simple_bind(mx.cpu(), data=(2, 4), grad_req="null").forward()


def _gluon_call_other_shape() -> None:
    net = mx.gluon.nn.Dense(3, in_units=4)
    net.initialize()
    fast = mx2trt.optimize_block(net, {"data": (2, 4)}, runtime="reference")
    fast(mx.nd.ones((3, 4))).asnumpy()


BIND_CASES = [
    (_bind_other_shape, r"engine node 'trt_engine0': input 0 \('data'\) has shape \(5, 4\) but the engine was built for "
                        r"\(2, 4\): run mx2trt.optimize with the new shapes"),
    (_bind_other_rank, r"input 0 \('data'\) has shape \(2, 4, 1\) but the engine was built for \(2, 4\)"),
    (_bind_float16, r"input 0 \('data'\) is float16 but the engine was built for float32: pass float32, or run "
                    r"mx2trt.optimize with that input's dtype"),
    (_backward, "TensorRT engines are inference-only"),
    (_engine_not_loaded, "is not in this process"),
    (_gluon_call_other_shape, r"has shape \(3, 4\) but the engine was built for \(2, 4\)"),
]


@pytest.mark.parametrize("case", BIND_CASES, ids=[c[0].__name__.strip("_") for c in BIND_CASES])
def test_refusal_inside_mxnet_carries_mx2trts_message(case):
    """MXNet 1.9.1 only prints what a custom-op callback raises; the exception the user catches must still say it.
    (simple_bind wraps every bind error in a RuntimeError, which then carries the message.)"""
    call, pattern = case
    with pytest.raises((EngineNodeError, RuntimeError)) as info:
        call()
    assert re.search(pattern, str(info.value)), str(info.value)
    assert "Check failed" not in str(info.value)
