"""Registry: registration rules, Registry.check's reasons (validator, crash, dtype, attributes) and the combinators."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from mx2trt import REGISTRY
from mx2trt._mx import mx
from mx2trt.attrs import NoAttrs, attr, schema
from mx2trt.graph import Graph
from mx2trt.partition import MXNET, TENSORRT, partition
from mx2trt.registry import (
    FLOAT_DTYPES, ConverterSpec, OpNode, Registry, RegistryError, TensorInfo, all_of, const_inputs, converter, rank_in,
)


def fn_a(ctx, node, inputs):
    """Converter A."""
    return inputs


def fn_b(ctx, node, inputs):
    """Converter B."""
    return inputs


def spec(op, fn=fn_a, validator=None, dtypes=FLOAT_DTYPES, attrs=NoAttrs):
    return ConverterSpec(op, fn, attrs, validator, True, dtypes)


def relu_graph(dtype=np.float32):
    sym = mx.sym.relu(mx.sym.var("data"), name="r")
    g = Graph.from_symbol(sym, {}, {"data": (2, 3)}, {"data": dtype})
    return g, g.by_name["r"]


# ---- registration --------------------------------------------------------------------------------------------------


def test_register_twice_raises_and_keeps_the_first():
    reg = Registry()
    reg.register(spec("relu"))
    with pytest.raises(RegistryError, match=r"'relu'.*fn_a.*override=True"):
        reg.register(spec("relu", fn_b))
    assert reg.get("relu").fn is fn_a and len(reg) == 1


def test_converter_decorator_twice_raises():
    reg = Registry()
    converter("relu", "sigmoid", registry=reg)(fn_a)
    assert list(reg) == ["relu", "sigmoid"] and reg.get("sigmoid").fn is fn_a and reg.get("relu").doc == "Converter A."
    with pytest.raises(RegistryError, match="'sigmoid'"):
        converter("sigmoid", registry=reg)(fn_b)
    with pytest.raises(TypeError):
        converter(registry=reg)


def test_override_replaces():
    reg = Registry()
    converter("relu", registry=reg)(fn_a)
    converter("relu", registry=reg, override=True, compute=False)(fn_b)
    assert reg.get("relu").fn is fn_b and reg.get("relu").compute is False and len(reg) == 1


def test_unregister():
    reg = Registry()
    reg.register(spec("relu"))
    reg.unregister("relu")
    assert "relu" not in reg and reg.get("relu") is None and len(reg) == 0
    g, node = relu_graph()
    assert reg.check(g, node) == (None, "relu 'r': no converter for op 'relu'")
    reg.register(spec("relu", fn_b))  # no override needed any more
    assert reg.get("relu").fn is fn_b


def test_private_registry_leaves_global_untouched():
    before = REGISTRY.get("relu")
    reg = Registry()
    converter("relu", registry=reg)(fn_a)
    assert REGISTRY.get("relu") is before and before.fn is not fn_a
    with pytest.raises(TypeError):
        REGISTRY.specs["relu"] = before  # read-only view


# ---- Registry.check ------------------------------------------------------------------------------------------------


def test_check_accepts_and_types_the_node():
    reg = Registry()
    reg.register(spec("relu"))
    g, node = relu_graph()
    op_node, reason = reg.check(g, node)
    assert reason is None
    assert op_node == OpNode("r", "relu", NoAttrs(), (TensorInfo((2, 3), np.dtype(np.float32), False),),
                             (TensorInfo((2, 3), np.dtype(np.float32)),))
    assert partition(g, registry=reg).placements[node.id].where == TENSORRT


def test_validator_reason_keeps_node_in_mxnet():
    seen = []
    reg = Registry()
    reg.register(spec("relu", validator=lambda n: seen.append(n) or f"{n.where()}: not today"))
    g, node = relu_graph()
    op_node, reason = reg.check(g, node)
    assert reason == "relu 'r': not today" and seen == [op_node] and op_node.inputs[0].shape == (2, 3)
    p = partition(g, registry=reg)
    assert p.placements[node.id].where == MXNET and p.placements[node.id].reason == reason and p.subgraphs == []


def test_crashing_validator_is_a_reason_not_a_crash():
    reg = Registry()
    reg.register(spec("relu", validator=lambda n: 1 / 0))
    g, node = relu_graph()
    op_node, reason = reg.check(g, node)
    assert op_node is not None
    assert reason.startswith("relu 'r': validator error ZeroDivisionError") and "division by zero" in reason
    assert partition(g, registry=reg).placements[node.id].where == MXNET


def test_dtype_refusal():
    called = []
    reg = Registry()
    reg.register(spec("relu", validator=lambda n: called.append(n)))
    g, node = relu_graph(np.int32)
    _, reason = reg.check(g, node)
    assert reason == "relu 'r': input dtype int32 is not supported (supported: float16, float32)"
    assert called == []  # refused before the validator runs
    reg.register(spec("relu", dtypes=frozenset({np.dtype(np.int32)})), override=True)
    assert reg.check(g, node)[1] is None


def test_unparsable_attributes_are_a_reason():
    @schema
    class OnlyRelu:
        act_type: Literal["relu"] = attr()

    reg = Registry()
    reg.register(spec("Activation", attrs=OnlyRelu))
    sym = mx.sym.Activation(mx.sym.var("data"), act_type="tanh", name="a")
    g = Graph.from_symbol(sym, {}, {"data": (2, 3)})
    op_node, reason = reg.check(g, g.by_name["a"])
    assert op_node is None
    assert reason.startswith("Activation 'a': attribute act_type='tanh'") and "'relu'" in reason


def test_params_and_aux_are_const_inputs():
    data = mx.sym.var("data")
    sym = mx.sym.BatchNorm(mx.sym.FullyConnected(data, num_hidden=3, name="fc"), name="bn")
    args, _, aux = sym.infer_shape(data=(2, 4))
    params = {n: mx.nd.ones(s) for n, s in zip(sym.list_arguments(), args) if n != "data"}
    params.update({n: mx.nd.ones(s) for n, s in zip(sym.list_auxiliary_states(), aux)})
    g = Graph.from_symbol(sym, params, {"data": (2, 4)})
    reg = Registry()
    reg.register(REGISTRY.get("FullyConnected"))  # the library's specs, in a private registry
    reg.register(REGISTRY.get("BatchNorm"))
    fc, _ = reg.check(g, g.by_name["fc"])
    bn, _ = reg.check(g, g.by_name["bn"])
    assert [t.const for t in fc.inputs] == [False, True, True]
    assert [t.const for t in bn.inputs] == [False, True, True, True, True]
    assert [t.shape for t in fc.inputs] == [(2, 4), (3, 4), (3,)] and fc.attrs.num_hidden == 3


# ---- combinators ---------------------------------------------------------------------------------------------------


def node(*inputs: tuple[int, bool]) -> OpNode:
    """OpNode whose inputs have the given (rank, const)."""
    return OpNode("n", "Op", NoAttrs(), tuple(TensorInfo((2,) * r, np.dtype(np.float32), c) for r, c in inputs), ())


def test_all_of_returns_first_reason_and_stops():
    def crash(n):
        raise AssertionError("must not run after a reason")

    assert all_of(lambda n: None, lambda n: "first", crash)(node((2, False))) == "first"
    assert all_of(lambda n: None, lambda n: "")(node((2, False))) is None
    assert all_of()(node((2, False))) is None


def test_const_inputs():
    check = const_inputs(1, 2, what="weight/bias")
    assert check(node((4, False), (4, True), (1, True))) is None
    assert check(node((4, False), (4, True))) is None  # no bias input (no_bias=True)
    why = "Op 'n': input 2 (weight/bias) is computed in the graph, not a parameter"
    assert check(node((4, False), (4, True), (1, False))) == why
    assert "input 1 (weight)" in const_inputs(1)(node((4, False), (4, False)))


def test_rank_in():
    check = rank_in(4, 5)
    assert check(node((4, False))) is None and check(node((5, False))) is None
    assert check(node((3, False))) == "Op 'n': input rank 3 is not supported (supported: 4, 5)"
    assert rank_in(2, input=1)(node((4, False), (2, True))) is None
    assert "rank 4" in rank_in(2, input=0)(node((4, False), (2, True)))


def test_combinators_inside_check():
    reg = Registry()
    reg.register(spec("relu", validator=all_of(rank_in(2), rank_in(4))))
    g, n = relu_graph()
    assert reg.check(g, n)[1] == "relu 'r': input rank 2 is not supported (supported: 4)"


# ---- the global registry -------------------------------------------------------------------------------------------


def test_global_registry_has_the_core_ops():
    assert {"Convolution", "FullyConnected", "BatchNorm", "Activation", "Pooling", "softmax", "Concat"} <= set(REGISTRY)


@pytest.mark.parametrize("op", list(REGISTRY))
def test_registered_op_exists_in_mxnet(op):
    from mx2trt._mx import op_arguments

    op_arguments(op)  # raises for a name MXNet does not register
    assert REGISTRY.get(op).op == op


def test_refused_alias_registers_none_of_the_ops():
    reg = Registry()

    @converter("b", registry=reg)
    def conv_b(ctx, node, inputs):
        """b -> nothing."""
        return inputs

    with pytest.raises(RegistryError):

        @converter("a", "b", registry=reg)
        def conv_ab(ctx, node, inputs):
            """a, b -> nothing."""
            return inputs

    assert reg.get("a") is None and reg.get("b").fn is conv_b
