"""Flatten, Concat, Dropout and the identity ops (BlockGrad, _copy...). They move data only, and a subgraph without
compute is dropped by design (it stays in MXNet), so each is tested inside a small graph with compute nodes around it:
the op after a relu, before one, or between a relu and a sigmoid, optionally with its own output leaving the graph.
The op must join the engine and the graph must match MXNet CPU; Dropout(mode='always') must stay in MXNet.

Bugs these tests found have regression tests at the end.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import mx2trt
from harness import check_alias_entry, check_graph, check_property_tests, registered_ops, run_symbol
from mx2trt._mx import mx

MODULE = "mx2trt.converters.shape"
SEEDS = st.integers(0, 2**32 - 1)
POSITIONS = ("after", "before", "between")  # op after relu(x) / op(x) then relu / relu -> op -> sigmoid
FLATTEN_OPS = ("Flatten", "flatten")
CONCAT_OPS = ("Concat", "concat")
IDENTITY_OPS = ("BlockGrad", "stop_gradient", "_copy", "identity")


def sym_fn(op: str) -> Any:
    return getattr(mx.sym, op, None) or getattr(mx.sym._internal, op)


def shapes(min_rank: int = 1, max_rank: int = 4, max_dim: int = 6) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(1, max_dim), min_size=min_rank, max_size=max_rank).map(tuple)


def normal(seed: int, shape: Sequence[int], k: int = 0) -> np.ndarray:
    return np.random.default_rng([seed, k]).standard_normal(tuple(shape)).astype(np.float32)


def around(apply: Callable[[Any], Any], position: str, expose: bool, x: Any) -> Any:
    """`apply` (the op under test, named 'node') placed around compute nodes 'pre' (relu) and 'post' (relu/sigmoid);
    with `expose` the op's own output is a graph output too (it leaves the engine directly)."""
    if position == "after":
        y = out = apply(mx.sym.relu(x, name="pre"))
    elif position == "before":
        y = apply(x)
        out = mx.sym.relu(y, name="post")
    else:
        y = apply(mx.sym.relu(x, name="pre"))
        out = mx.sym.sigmoid(y, name="post")
    return mx.sym.Group([out, y]) if expose and out is not y else out


def compute_nodes(position: str) -> list[str]:
    return {"after": ["pre"], "before": ["post"], "between": ["pre", "post"]}[position]


# ---- Flatten -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", FLATTEN_OPS)
@given(shape=shapes(), position=st.sampled_from(POSITIONS), expose=st.booleans(), seed=SEEDS,
       as_param=st.sampled_from([False, False, False, True]))
def test_flatten(op, shape, position, expose, seed, as_param):
    sym = around(lambda t: sym_fn(op)(t, name="node"), position, expose, mx.sym.var("x"))
    check_graph(sym, {"x": normal(seed, shape)}, {}, on_trt=["node", *compute_nodes(position)], engines=1)


# ---- Concat ----------------------------------------------------------------------------------------------------------


@st.composite
def concat_cases(draw):
    rank = draw(st.integers(1, 4))
    base = list(draw(shapes(rank, rank)))
    num = draw(st.integers(1, 4))
    dim = draw(st.one_of(st.none(), st.integers(-rank, rank - 1)))  # None: MXNet's default 1
    if dim is None:
        assume(rank >= 2)
    axis = (1 if dim is None else dim) % rank
    in_shapes = []
    for _ in range(num):
        s = list(base)
        s[axis] = draw(st.integers(1, 4))
        in_shapes.append(tuple(s))
    # How each input reaches the Concat: through a relu (compute inside the engine), directly from a data input,
    # or as a parameter (a TensorRT constant).
    kinds = [draw(st.sampled_from(["relu", "relu", "data", "param"])) for _ in range(num)]
    post = draw(st.sampled_from([None, "relu", "sigmoid"]))
    if "relu" not in kinds and post is None:
        post = "relu"  # some compute next to the Concat, or it would be dropped (by design)
    if "data" not in kinds and "relu" not in kinds:
        kinds[0] = "data"  # at least one data input
    attrs = {} if dim is None else {"dim": dim}
    return in_shapes, kinds, post, attrs, draw(st.booleans()), draw(SEEDS)


@pytest.mark.parametrize("op", CONCAT_OPS)
@given(case=concat_cases())
def test_concat(op, case):
    in_shapes, kinds, post, attrs, expose, seed = case
    data, params, parts, on_trt = {}, {}, [], ["node"]
    for i, (s, kind) in enumerate(zip(in_shapes, kinds)):
        v = mx.sym.var(f"x{i}")
        (params if kind == "param" else data)[f"x{i}"] = normal(seed, s, i)
        if kind == "relu":
            v = mx.sym.relu(v, name=f"r{i}")
            on_trt.append(f"r{i}")
        parts.append(v)
    y = sym_fn(op)(*parts, name="node", **attrs)
    out = y
    if post is not None:
        out = sym_fn(post)(y, name="post")
        on_trt.append("post")
        if expose:
            out = mx.sym.Group([out, y])
    check_graph(out, data, params, on_trt=on_trt, engines=1)


# ---- Dropout -------------------------------------------------------------------------------------------------------


@st.composite
def dropout_cases(draw):
    shape = draw(shapes())
    attrs: dict[str, Any] = {}
    mode = draw(st.sampled_from([None, "training", "training", "always"]))  # None: MXNet's default 'training'
    if mode is not None:
        attrs["mode"] = mode
    p = draw(st.one_of(st.none(), st.just(0.0), st.floats(0.05, 0.9).map(lambda v: round(v, 3))))
    if p is not None:
        attrs["p"] = p
    if draw(st.booleans()):
        attrs["axes"] = tuple(sorted(draw(st.sets(st.integers(0, len(shape) - 1), max_size=len(shape)))))
    if draw(st.booleans()):
        attrs["cudnn_off"] = draw(st.booleans())
    return shape, attrs, draw(st.sampled_from(POSITIONS)), draw(st.booleans()), draw(SEEDS)


def check_dropout_always(sym: Any, x: np.ndarray, p: float, position: str) -> None:
    """Dropout(mode='always', p>0) drops at inference, so MXNet's own output is random: check it stays in MXNet and
    that every output element is either dropped (0) or kept and scaled by 1/(1-p)."""
    c = mx2trt.convert(sym, {}, {"x": x.shape}, runtime="reference", min_subgraph_size=1)
    rows = {r[0]: r for r in c.report.rows}
    assert rows["node"][2] == "mxnet", "Dropout(mode='always') must stay in MXNet"
    assert "always" in rows["node"][3], rows["node"][3]
    for name in compute_nodes(position):
        assert rows[name][2] != "mxnet", f"{name} stayed in MXNet: {rows[name][3]}"
    (got,) = run_symbol(c.symbol, {"x": x})
    relu = np.maximum(x, 0)
    kept = {"after": relu / (1 - p), "before": np.maximum(x / (1 - p), 0), "between": 1 / (1 + np.exp(-relu / (1 - p)))}
    dropped = {"after": 0.0, "before": 0.0, "between": 0.5}[position]
    ok = np.isclose(got, dropped, rtol=0, atol=1e-6) | np.isclose(got, kept[position], rtol=1e-5, atol=1e-6)
    assert ok.all(), f"elements neither dropped nor kept/(1-p): {got[~ok]}"


@given(case=dropout_cases())
def test_dropout(case):
    shape, attrs, position, expose, seed = case
    x = normal(seed, shape)
    p = attrs.get("p", 0.5)
    refused = attrs.get("mode") == "always" and p > 0
    sym = around(lambda t: mx.sym.Dropout(t, name="node", **attrs), position, expose and not refused, mx.sym.var("x"))
    if refused:
        check_dropout_always(sym, x, p, position)
    else:  # 'training' (or p == 0): the identity at inference
        check_graph(sym, {"x": x}, {}, on_trt=["node", *compute_nodes(position)], engines=1)


# ---- identity ops ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", IDENTITY_OPS)
@given(shape=shapes(), position=st.sampled_from(POSITIONS), expose=st.booleans(), chain=st.integers(1, 2), seed=SEEDS)
def test_identity(op, shape, position, expose, chain, seed):
    def apply(t: Any) -> Any:
        for k in range(chain - 1):
            t = sym_fn(op)(t, name=f"node{k}")
        return sym_fn(op)(t, name="node")

    sym = around(apply, position, expose, mx.sym.var("x"))
    names = ["node", *(f"node{k}" for k in range(chain - 1)), *compute_nodes(position)]
    check_graph(sym, {"x": normal(seed, shape)}, {}, on_trt=names, engines=1)


# ---- aliases and registry coverage ---------------------------------------------------------------------------------




@pytest.mark.parametrize("op", sorted(registered_ops(MODULE)))
def test_alias_entries_share_the_canonical_converter(op):
    """flatten/concat/identity/stop_gradient reach the partitioner as Flatten/Concat/_copy/BlockGrad; the alias's own
    registry entry must be the same converter as the canonical one the property tests exercise."""
    check_alias_entry(op, 2 if op in CONCAT_OPS else 1)


# Explicit op -> property test; test_every_registered_op_has_a_property_test fails when an op is added to
# converters/shape.py without a line here (and a test drawing it).
PROPERTY_TESTS = {
    "Flatten": test_flatten, "flatten": test_flatten,
    "Concat": test_concat, "concat": test_concat,
    "Dropout": test_dropout,
    "BlockGrad": test_identity, "stop_gradient": test_identity, "_copy": test_identity, "identity": test_identity,
}




def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)


# ---- regression tests for known bugs -----------------------------------------------------------------------------


def test_flatten_of_param_does_not_crash():
    x, w = mx.sym.var("x"), mx.sym.var("w")
    sym = mx.sym.elemwise_add(mx.sym.relu(x, name="pre"), mx.sym.Flatten(w, name="node"), name="add")
    check_graph(sym, {"x": normal(0, (2, 6))}, {"w": normal(1, (2, 2, 3))}, on_trt=["add"])
