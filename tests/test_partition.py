"""Partitioner through the whole pipeline: placement, engine boundaries, cycles, multi-output, fallbacks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mx2trt
from mx2trt._mx import mx
from mx2trt.errors import BuildError, ConversionError
from mx2trt.graph import Graph
from mx2trt.partition import PartitionOptions, partition, used_inputs

from harness import check_graph, mxnet_only

RNG = np.random.default_rng(7)


def conv(x, name, c_in, c_out, params):
    """3x3 same-size convolution whose weights go into `params`."""
    params[f"{name}_weight"] = RNG.standard_normal((c_out, c_in, 3, 3)).astype(np.float32) * 0.3
    params[f"{name}_bias"] = RNG.standard_normal(c_out).astype(np.float32) * 0.1
    return mx.sym.Convolution(x, kernel=(3, 3), pad=(1, 1), num_filter=c_out, name=name)


def relu(x, name):
    return mx.sym.Activation(x, act_type="relu", name=name)


def data(shape=(2, 3, 8, 8)):
    return {"data": RNG.standard_normal(shape).astype(np.float32)}


def engine_of(c: mx2trt.Conversion) -> dict[str, str]:
    return {row.node: row.placement for row in c.report.rows}


def test_unsupported_op_in_the_middle_gives_two_engines():
    p: dict = {}
    x = relu(conv(mx.sym.var("data"), "conv1", 3, 4, p), "relu1")
    x = mxnet_only(x, "sin")  # no converter: stays in MXNet
    x = relu(conv(x, "conv2", 4, 5, p), "relu2")
    c = check_graph(x, data(), p, on_trt=["conv1", "relu1", "conv2", "relu2"], in_mxnet=["sin"], engines=2)
    where = engine_of(c)
    assert where["conv1"] == where["relu1"] != where["conv2"] == where["relu2"]
    assert "no converter" in dict((r.node, r.reason) for r in c.report.rows)["sin"]
    assert set(c.params) == set(), "weights baked into engines must not be returned"
    nodes = __import__("json").loads(c.symbol.tojson())["nodes"]
    ops = [n["op"] for n in nodes if n["op"] != "null"]
    assert ops == ["Custom", "Custom", "Custom"] and "sin" in [n["name"] for n in nodes]


def test_diamond_is_one_engine():
    p: dict = {}
    x = relu(conv(mx.sym.var("data"), "conv0", 3, 4, p), "relu0")
    a = conv(x, "conv_a", 4, 4, p)
    b = conv(x, "conv_b", 4, 4, p)
    y = relu(mx.sym.elemwise_add(a, b, name="add"), "out")
    c = check_graph(y, data(), p, on_trt=["conv0", "relu0", "conv_a", "conv_b", "add", "out"], engines=1)
    assert c.report.engines[0].nodes == 6


def test_grouping_that_would_create_a_cycle_is_split():
    # relu0 -> sin (MXNet) -> add and relu0 -> conv -> add: {relu0, conv, add} as one engine would need sin's output
    # before it could produce relu0 — a cycle through MXNet. The partitioner must cut it.
    p: dict = {}
    x = relu(conv(mx.sym.var("data"), "conv0", 3, 4, p), "relu0")
    s = mxnet_only(x, "sin")
    y = mx.sym.elemwise_add(conv(x, "conv1", 4, 4, p), s, name="add")
    c = check_graph(y, data(), p, on_trt=["conv0", "relu0", "conv1", "add"], in_mxnet=["sin"], engines=2)
    where = engine_of(c)
    assert where["relu0"] != where["add"]
    graph = Graph.from_symbol(y, {k: mx.nd.array(v) for k, v in p.items()}, {"data": (2, 3, 8, 8)})
    part = partition(graph)
    last = next(sg for sg in part.subgraphs if any(graph.nodes[n].name == "add" for n in sg.nodes))
    assert "sin_output" in [graph.entry_name(e) for e in last.inputs]


def test_engine_with_several_outputs_keeps_their_order():
    p: dict = {}
    x = relu(conv(mx.sym.var("data"), "conv0", 3, 4, p), "relu0")
    a = mxnet_only(x, "sin")  # consumes relu0 in MXNet
    b = mx.sym.Activation(conv(x, "conv1", 4, 2, p), act_type="tanh", name="tanh")
    c = check_graph(mx.sym.Group([b, a, x]), data(), p, on_trt=["conv0", "relu0", "conv1", "tanh"], engines=1)
    assert len(c.report.engines[0].outputs) == 2  # relu0 (read by sin and returned) and tanh


def test_multi_output_mxnet_op_feeds_an_engine():
    parts = mx.sym.SliceChannel(mx.sym.var("data"), num_outputs=2, axis=1, name="split")
    y = mx.sym.elemwise_add(relu(parts[1], "ra"), mx.sym.tanh(parts[0], name="tb"), name="add")
    c = check_graph(y, data((2, 4, 5, 5)), {}, on_trt=["ra", "tb", "add"], in_mxnet=["split"], engines=1,
                    exclude_nodes=["split"])  # kept in MXNet: a multi-output MXNet node feeding one engine
    assert len(c.report.engines[0].inputs) == 2


def test_min_subgraph_size_and_exclusions():
    p: dict = {}
    x = relu(conv(mx.sym.var("data"), "conv0", 3, 4, p), "relu0")
    x = mxnet_only(x, "sin")
    y = relu(conv(x, "conv1", 4, 4, p), "relu1")
    y = mx.sym.tanh(y, name="tanh1")
    c = check_graph(y, data(), p, in_mxnet=["conv0", "relu0"], on_trt=["conv1"], min_subgraph_size=3)
    assert "min_subgraph_size=3" in dict((r.node, r.reason) for r in c.report.rows)["conv0"]
    assert "conv0_weight" in c.params and "conv1_weight" not in c.params
    c = check_graph(y, data(), p, in_mxnet=["relu0", "relu1"], engines=3, exclude_ops=["Activation"])
    assert "exclude_ops" in dict((r.node, r.reason) for r in c.report.rows)["relu1"]
    c = check_graph(y, data(), p, in_mxnet=["conv1"], engines=2, exclude_nodes=["conv1"])
    assert "exclude_nodes" in dict((r.node, r.reason) for r in c.report.rows)["conv1"]


def test_subgraph_without_compute_stays_in_mxnet():
    x = mxnet_only(mx.sym.var("data"), "sin0")
    x = mx.sym.Flatten(x, name="flat")
    y = mxnet_only(x, "sin1")
    c = check_graph(y, data(), {}, in_mxnet=["flat"], engines=0)
    assert "no compute" in dict((r.node, r.reason) for r in c.report.rows)["flat"]


def test_options_are_validated():
    with pytest.raises(ValueError, match="min_subgraph_size"):
        PartitionOptions.make(min_subgraph_size=0)
    with pytest.raises(mx2trt.errors.InputError, match="precision"):
        mx2trt.convert(mx.sym.var("data") + 1, {}, {"data": (1,)}, precision="int4")


@pytest.mark.parametrize("failure", [BuildError("injected build failure"), None])
def test_failing_subgraph_falls_back_to_mxnet(monkeypatch, failure):
    """A subgraph that cannot be converted or built runs in MXNet; the others keep their engines."""
    import mx2trt.api as api

    p: dict = {}
    x = relu(conv(mx.sym.var("data"), "conv0", 3, 4, p), "relu0")
    x = mxnet_only(x, "sin")
    y = relu(conv(x, "conv1", 4, 4, p), "relu1")
    calls = {"n": 0}
    real_build, real_define = api.build_engine, api.define_network

    def flaky_build(nb, *args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise failure
        return real_build(nb, *args)

    def flaky_define(part, sg, params, precision, **kwargs):
        if part.graph.nodes[sg.nodes[0]].name == "conv0":
            raise ConversionError("conv0", "Convolution", "injected conversion failure", "kernel")
        return real_define(part, sg, params, precision, **kwargs)

    if failure is not None:
        monkeypatch.setattr(api, "build_engine", flaky_build)
    else:
        monkeypatch.setattr(api, "define_network", flaky_define)
    c = check_graph(y, data(), p, in_mxnet=["conv0", "relu0"], on_trt=["conv1", "relu1"], engines=1)
    reason = dict((r.node, r.reason) for r in c.report.rows)["conv0"]
    assert "fell back to MXNet" in reason
    assert ("injected build failure" in reason) if failure else ("attribute 'kernel'" in reason or "kernel" in reason)
    assert "conv0_weight" in c.params


def test_float16_data_enters_an_fp32_engine_through_boundary_casts():
    y = mx.sym.tanh(relu(mx.sym.var("data"), "relu"), name="tanh")
    c = check_graph(y, {"data": data().pop("data").astype(np.float16)}, {}, on_trt=["relu", "tanh"], rtol=2e-3)
    assert c.engines[0].in_dtypes == ["float16"] and c.engines[0].out_dtypes == ["float16"]


def test_graph_heads_that_are_inputs_or_repeated():
    x = mx.sym.var("data")
    r = relu(x, "r")
    check_graph(mx.sym.Group([x, r, r]), data((2, 3)), {}, on_trt=["r"], engines=1)


def test_weight_shared_by_two_engines_is_baked_into_both():
    w = mx.sym.var("w")
    a = mx.sym.FullyConnected(mx.sym.var("data"), w, num_hidden=3, no_bias=True, name="fc1")
    b = mx.sym.FullyConnected(mxnet_only(a, "sort"), w, num_hidden=3, no_bias=True, name="fc2")
    p = {"w": RNG.standard_normal((3, 3)).astype(np.float32)}
    c = check_graph(b, data((2, 3)), p, on_trt=["fc1", "fc2"], in_mxnet=["sort"], engines=2)
    assert not c.params, "the weight lives in both engines, MXNet no longer needs it"


@pytest.mark.parametrize("op, attrs", [
    ("Pooling", {"kernel": (2, 2), "pool_type": "max"}),
    ("Pooling", {"kernel": (2, 2), "pool_type": "avg", "global_pool": True}),
    ("Convolution", {"kernel": (3, 3), "num_filter": 2, "pad": (1, 1), "no_bias": True}),
    ("BatchNorm", {"fix_gamma": False}),
])
def test_node_on_parameters_alone_is_folded(op, attrs):
    """A node whose inputs are all parameters is evaluated once by MXNet (constant folding) and its value used."""
    w = mx.sym.var("w")
    extra = {}
    if op == "Convolution":
        extra = {"weight": mx.sym.var("k")}
    node = getattr(mx.sym, op)(w, name="node", **extra, **attrs)
    y = mx.sym.broadcast_add(node, mx.sym.var("data"), name="add")
    p = {"w": RNG.standard_normal((1, 2, 4, 4)).astype(np.float32)}
    if op == "Convolution":
        p["k"] = RNG.standard_normal((2, 2, 3, 3)).astype(np.float32)
    if op == "BatchNorm":
        p.update({f"node_{n}": RNG.uniform(0.5, 1.5, 2).astype(np.float32)
                  for n in ("gamma", "beta", "moving_mean", "moving_var")})
    out_shape = run_out_shape(node, p)
    c = check_graph(y, data(out_shape), p, on_trt=["add"], engines=1)
    assert c.report.folded == ["node"]


def run_out_shape(sym, params):
    return tuple(sym.infer_shape(**{k: v.shape for k, v in params.items()})[1][0])


def test_variable_dtype_is_kept():
    x = mx.sym.var("x", dtype="float16")
    y = mx.sym.relu(x, name="r")
    sym = mx.sym.Group([y, mx.sym.broadcast_hypot(y, x, name="hypot")])  # hypot stays in MXNet
    c = mx2trt.convert(sym, {}, {"x": (2, 3)}, runtime="reference")  # no dtypes=: the variable's own is used
    assert c.engines[0].in_dtypes == ["float16"] and c.symbol.infer_type()[1] == [np.float16, np.float16]
    check_graph(sym, {"x": RNG.standard_normal((2, 3)).astype(np.float16)}, {}, on_trt=["r"], rtol=1e-3)


# ---- property: engines are cycle-free and maximal on random DAGs ---------------------------------------------------


@st.composite
def random_dags(draw):
    """A DAG over data x: each node is relu (convertible), mxnet_only (stays in MXNet), an elemwise_add of two
    earlier nodes (convertible) or arange_like (convertible, reads only its input's shape: an edge the partitioner
    does not merge along); nodes nobody reads are the graph's outputs."""
    n = draw(st.integers(2, 12))
    nodes = []  # (kind, input indices); index -1 is x
    for i in range(n):
        kind = draw(st.sampled_from(["relu", "relu", "add", "add", "mxnet", "ramp"]))
        k = 2 if kind == "add" else 1
        nodes.append((kind, [draw(st.integers(-1, i - 1)) for _ in range(k)]))
    return nodes


def _dag_symbol(nodes):
    syms = []
    x = mx.sym.var("data")
    get = lambda j: x if j < 0 else syms[j]  # noqa: E731
    for i, (kind, ins) in enumerate(nodes):
        if kind == "relu":
            syms.append(relu(get(ins[0]), f"n{i}"))
        elif kind == "add":
            syms.append(mx.sym.elemwise_add(get(ins[0]), get(ins[1]), name=f"n{i}"))
        elif kind == "ramp":
            syms.append(mx.sym.contrib.arange_like(get(ins[0]), name=f"n{i}"))
        else:
            syms.append(mxnet_only(get(ins[0]), f"n{i}"))
    read = {j for _, ins in nodes for j in ins}
    return mx.sym.Group([s for i, s in enumerate(syms) if i not in read])


@settings(deadline=None)
@given(nodes=random_dags())
def test_engines_are_acyclic_and_maximal(nodes):
    """Contracting each engine to one node leaves a DAG (no cycle through MXNet), no two engines joined by an edge
    could be merged without creating one (the greedy merge is repeated until nothing changes; edges a converter does
    not read, like arange_like's, are no dependency), and the rewritten graph matches MXNet."""
    sym = _dag_symbol(nodes)
    graph = Graph.from_symbol(sym, {}, {"data": (2, 3)})
    part = partition(graph)
    owner = {n: sg.id for sg in part.subgraphs for n in sg.nodes}
    succ: dict = {}
    ops = {m.id for m in graph.op_nodes}
    for n in graph.op_nodes:
        for e in (used_inputs(graph, n.id, mx2trt.REGISTRY) if n.id in owner else n.inputs):  # edges data flows on
            if e.node in ops:
                a, b = owner.get(e.node, ("mx", e.node)), owner.get(n.id, ("mx", n.id))
                if a != b:
                    succ.setdefault(a, set()).add(b)

    def reaches(a, b, skip_direct=False):
        stack = [c for c in succ.get(a, ()) if not (skip_direct and c == b)]
        seen = set(stack)
        while stack:
            c = stack.pop()
            if c == b:
                return True
            for s in succ.get(c, ()):
                if s not in seen:
                    seen.add(s)
                    stack.append(s)
        return False

    for sg in part.subgraphs:
        assert not reaches(sg.id, sg.id), f"engine {sg.id} depends on itself through MXNet"
    for a in (sg.id for sg in part.subgraphs):
        for b in succ.get(a, ()):
            if isinstance(b, int):  # an edge between two engines: merging them must create a cycle
                assert reaches(a, b, skip_direct=True), f"engines {a} -> {b} could be one engine"
    relus = {n.id for n in graph.op_nodes if n.op in ("Activation", "elemwise_add")}
    assert relus <= set(owner), "every relu and add joins an engine"
    check_graph(sym, data((2, 3)), {}, engines=len(part.subgraphs))  # and the rewritten graph still matches MXNet


@pytest.mark.parametrize("error", ["conversion", "crash"])
def test_node_whose_converter_fails_stays_alone_in_mxnet(error):
    """A converter failing on one node (a refusal raised while converting, or a converter bug) leaves that node in
    MXNet with the reason; its neighbours are partitioned again and keep their engines."""
    import dataclasses

    spec = mx2trt.REGISTRY.get("Activation")

    def failing(ctx, node, inputs):
        if node.name == "relu1":
            if error == "crash":
                raise KeyError("injected converter bug")
            ctx.fail("injected refusal", attr="act_type")
        return spec.fn(ctx, node, inputs)

    p: dict = {}
    x = relu(conv(mx.sym.var("data"), "conv0", 3, 4, p), "relu0")
    x = relu(conv(x, "conv1", 4, 4, p), "relu1")
    y = relu(conv(x, "conv2", 4, 4, p), "relu2")
    mx2trt.REGISTRY.register(dataclasses.replace(spec, fn=failing), override=True)
    try:
        c = check_graph(y, data(), p, on_trt=["conv0", "relu0", "conv1", "conv2", "relu2"], in_mxnet=["relu1"],
                        engines=2)
    finally:
        mx2trt.REGISTRY.register(spec, override=True)
    reason = dict((r.node, r.reason) for r in c.report.rows)["relu1"]
    want = "injected converter bug" if error == "crash" else "attribute act_type: injected refusal"
    assert reason.startswith("fell back to MXNet: Activation 'relu1'") and want in reason, reason


def test_refusal_names_the_node_not_its_namesakes():
    """MXNet allows duplicate node names: a converter failing on one of them leaves only that node in MXNet."""
    import dataclasses

    spec = mx2trt.REGISTRY.get("Activation")

    def failing(ctx, node, inputs):
        if node.attrs.act_type == "sigmoid":
            ctx.fail("injected refusal")
        return spec.fn(ctx, node, inputs)

    x = mx.sym.Activation(mx.sym.var("data"), act_type="tanh", name="r")
    y = mx.sym.Activation(mx.sym.sin(x, name="s"), act_type="sigmoid", name="r")
    mx2trt.REGISTRY.register(dataclasses.replace(spec, fn=failing), override=True)
    try:
        c = check_graph(y, data((2, 3)), {}, on_trt=["s"], engines=1)
    finally:
        mx2trt.REGISTRY.register(spec, override=True)
    placed = [(r.op, r.placement) for r in c.report.rows if r.node == "r"]
    assert sorted(p[1] == "mxnet" for p in placed) == [False, True], c.report.op_table()


def test_refusal_survives_a_later_subgraph_falling_back(monkeypatch):
    """One pass over the subgraphs: a node refused in the first (the partition is redone) must not be forgotten when
    a later subgraph falls back whole in the same pass."""
    import dataclasses

    import mx2trt.api as api

    spec = mx2trt.REGISTRY.get("Activation")
    real_define = api.define_network

    def failing(ctx, node, inputs):
        if node.name == "relu0":
            ctx.fail("injected refusal")
        return spec.fn(ctx, node, inputs)

    def flaky_define(part, sg, params, precision, **kwargs):
        if any(part.graph.nodes[n].name == "conv1" for n in sg.nodes):
            raise ConversionError("conv1", "Convolution", "injected failure no node owns")
        return real_define(part, sg, params, precision, **kwargs)

    p: dict = {}
    x = relu(conv(mx.sym.var("data"), "conv0", 3, 4, p), "relu0")
    y = relu(conv(mxnet_only(x, "sin"), "conv1", 4, 4, p), "relu1")
    monkeypatch.setattr(api, "define_network", flaky_define)
    mx2trt.REGISTRY.register(dataclasses.replace(spec, fn=failing), override=True)
    try:
        c = check_graph(y, data(), p, on_trt=["conv0"], in_mxnet=["relu0", "sin", "conv1", "relu1"], engines=1)
    finally:
        mx2trt.REGISTRY.register(spec, override=True)
    assert "injected refusal" in dict((r.node, r.reason) for r in c.report.rows)["relu0"]
