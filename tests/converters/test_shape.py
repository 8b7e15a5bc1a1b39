"""Data-movement converters: Flatten, Concat, Dropout, the identity ops (BlockGrad, _copy...), Reshape, reshape_like,
transpose, SwapAxis, expand_dims, squeeze, stack, SliceChannel, slice, slice_axis, slice_like, Crop, tile, repeat, Pad,
Cast, zeros_like/ones_like, reverse and SequenceReverse (shape_array/size_array are folded under static shapes: tests/test_fold.py; they convert under profiles). They move data only, and a subgraph
without compute is dropped by design (it stays in MXNet), so each is tested inside a small graph with compute nodes
around it: the op after a relu, before one, or between a relu and a sigmoid, optionally with its own output leaving the
graph. A node the registry selects must join the engine and the graph match MXNet CPU; a node it refuses
(Dropout(mode='always'), deprecated Reshape attributes, more than 8 dims, non-float Cast, Crop windows MXNet fails
on...) must stay in MXNet with that reason. The ops added with Reshape run in fp32 and fp16 engines.

Bugs these tests found have regression tests at the end.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import numpy as np
import pytest
from hypothesis import assume, currently_in_test_context, event, given
from hypothesis import strategies as st

import mx2trt
from harness import check_graph, check_profiles, check_property_tests, registered_ops, run_symbol
from mx2trt import REGISTRY
from mx2trt._mx import mx
from mx2trt.graph import Graph
from mx2trt.runtime import EngineNodeError

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


# The same with the op on integer tensors (see around): int32, or int64 for the int64_* positions.
INT_POSITIONS = ("int_after", "int_before", "int_between", "int64_after", "int64_before", "int64_between")


def _int_dtype(position: str) -> str | None:
    return "int64" if position.startswith("int64_") else "int32" if position.startswith("int_") else None


def around(apply: Callable[[Any], Any], position: str, expose: bool, x: Any) -> Any:
    """`apply` (the op under test, named 'node') placed around compute nodes 'pre' (relu) and 'post' (relu/sigmoid);
    with `expose` the op's own output is a graph output too (it leaves the engine directly). The int_*/int64_*
    positions put the op on int32/int64 tensors: 'pre' is x Cast to the integer dtype ('pre_cast') plus 1, and Cast
    'post_cast' goes back to float32 before 'post' (int_before: x itself is integer data, so the engine takes an
    integer input; int_after: it returns one). The Cast reads the float32 input x, which fp16/bf16 engines take
    unrounded for it."""
    int_dtype = _int_dtype(position)
    position = position.split("_", 1)[1] if int_dtype else position
    if int_dtype:
        pre = lambda t: mx.sym._internal._plus_scalar(  # noqa: E731
            mx.sym.Cast(t, dtype=int_dtype, name="pre_cast"), scalar=1, name="pre")
    else:
        pre = lambda t: mx.sym.relu(t, name="pre")  # noqa: E731
    to_float = (lambda t: mx.sym.Cast(t, dtype="float32", name="post_cast")) if int_dtype else (lambda t: t)  # noqa
    if position == "after":
        y = out = apply(pre(x))
    elif position == "before":
        y = apply(x)
        out = mx.sym.relu(to_float(y), name="post")
    else:
        y = apply(pre(x))
        out = mx.sym.sigmoid(to_float(y), name="post")
    return mx.sym.Group([out, y]) if expose and out is not y else out


def compute_nodes(position: str) -> list[str]:
    plain = position.split("_", 1)[1] if _int_dtype(position) else position
    names = {"after": ["pre"], "before": ["post"], "between": ["pre", "post"]}[plain]
    if _int_dtype(position):
        names += {"after": ["pre_cast"], "before": ["post_cast"], "between": ["pre_cast", "post_cast"]}[plain]
    return names


def inputs_for(position: str, seed: int, shape: Sequence[int], k: int = 0) -> np.ndarray:
    """Data for x of `around`: float32 normal values, except for the integer positions: integers for *_before,
    quarter steps for the others (exact in fp16 too, so the truncating Cast gives MXNet's integers in both
    precisions)."""
    v = normal(seed, shape, k)
    if _int_dtype(position) and position.endswith("_before"):
        return np.round(v * 3).astype(_int_dtype(position))
    if _int_dtype(position):
        return np.round(v * 4) / 4
    return v


# ---- Flatten -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", FLATTEN_OPS)
@given(shape=shapes(), position=st.sampled_from(POSITIONS + INT_POSITIONS), expose=st.booleans(), seed=SEEDS,
       as_param=st.sampled_from([False, False, False, True]))
def test_flatten(op, shape, position, expose, seed, as_param):
    sym = around(lambda t: sym_fn(op)(t, name="node"), position, expose, mx.sym.var("x"))
    check_graph(sym, {"x": inputs_for(position, seed, shape)}, {}, on_trt=["node", *compute_nodes(position)],
                engines=1)


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
@given(shape=shapes(), position=st.sampled_from(POSITIONS + INT_POSITIONS), expose=st.booleans(),
       chain=st.integers(1, 2), seed=SEEDS)
def test_identity(op, shape, position, expose, chain, seed):
    def apply(t: Any) -> Any:
        for k in range(chain - 1):
            t = sym_fn(op)(t, name=f"node{k}")
        return sym_fn(op)(t, name="node")

    sym = around(apply, position, expose, mx.sym.var("x"))
    names = ["node", *(f"node{k}" for k in range(chain - 1)), *compute_nodes(position)]
    check_graph(sym, {"x": inputs_for(position, seed, shape)}, {}, on_trt=names, engines=1)


# ---- the ops added with Reshape: shared helpers --------------------------------------------------------------------
# Each property test draws shapes and attributes MXNet accepts, places the op in a small graph with compute (POSITIONS)
# and asks the registry for its verdict: a selected node must join the engine and the graph match MXNet CPU; a refused
# one must stay in MXNet with that reason. (An op reading parameters alone is folded into a parameter before
# partitioning, so parameter inputs are drawn only for ops that also read data: stack, slice_like.)
# Every test runs in both engine precisions. fp32 data movement is exact (1e-5 covers the sigmoid around it); an fp16
# engine rounds each tensor to fp16 (relative error <= 2**-11 = 4.9e-4 of the largest value, sigmoid adding no more).

PLACES = st.tuples(st.sampled_from(POSITIONS), st.booleans(), SEEDS)
# For ops that also carry integers (DATA_DTYPES): 2 examples in 5 put the op on int32 or int64 tensors.
ANY_PLACES = st.tuples(st.sampled_from(POSITIONS * 3 + INT_POSITIONS), st.booleans(), SEEDS)
PRECISIONS = ("fp32", "fp16")
RTOL = {"fp32": 1e-5, "fp16": 1e-3}


def verdict(sym: Any, data: dict[str, np.ndarray], params: dict[str, np.ndarray]) -> str | None:
    """The registry's verdict on node 'node' of `sym`: None when it is selected, else the reason it stays in MXNet."""
    graph = Graph.from_symbol(sym, {k: mx.nd.array(v, dtype=v.dtype) for k, v in params.items()},
                              {k: v.shape for k, v in data.items()}, {k: v.dtype for k, v in data.items()})
    return REGISTRY.check(graph, graph.by_name["node"])[1]


def check_case(sym: Any, data: dict[str, np.ndarray], params: dict[str, np.ndarray], compute: Sequence[str],
               precision: str, *, run: bool = True, rtol: float | None = None) -> str | None:
    """Selected: 'node' joins one engine with the `compute` nodes and the outputs match MXNet CPU. Refused: 'node'
    stays in MXNet with the registry's reason, which names it, and the outputs still match; with run=False (nodes on
    which MXNet itself fails or returns garbage when run) only the placement is checked, through explain()."""
    reason = verdict(sym, data, params)
    if currently_in_test_context():  # statistics for --hypothesis-show-statistics
        event("selected" if reason is None else "refused")
    rtol = RTOL[precision] if rtol is None else rtol
    if reason is None:
        check_graph(sym, data, params, on_trt=["node", *compute], engines=1, precision=precision, rtol=rtol)
        return None
    if run:
        rows = check_graph(sym, data, params, in_mxnet=["node"], precision=precision, rtol=rtol).report.rows
    else:
        rows = mx2trt.explain(sym, {k: v.shape for k, v in data.items()}, params,
                              dtypes={k: v.dtype for k, v in data.items()}).rows
    _, op, where, why = {r[0]: r for r in rows}["node"]
    assert where == "mxnet" and why == reason, f"report gives {where}: {why!r}, the registry {reason!r}"
    assert reason.startswith(f"{op} 'node': "), reason
    return reason


def unary_graph(apply: Callable[[Any], Any], shape: Sequence[int], place: tuple[str, bool, int],
                dtype: Any = np.float32) -> tuple[Any, dict, dict, list[str]]:
    """(symbol, data, params, compute node names) with `apply` (the op, named 'node') placed by `around`."""
    position, expose, seed = place
    sym = around(apply, position, expose, mx.sym.var("x"))
    x = inputs_for(position, seed, shape)
    return sym, {"x": x if _int_dtype(position) else x.astype(dtype)}, {}, compute_nodes(position)


def check_unary(apply: Callable[[Any], Any], shape: Sequence[int], place: tuple[str, bool, int], precision: str,
                dtype: Any = np.float32, run: bool = True) -> str | None:
    return check_case(*unary_graph(apply, shape, place, dtype), precision, run=run)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def small_shapes(draw, min_rank: int = 1, max_rank: int = 4, max_dim: int = 4) -> tuple[int, ...]:
    """Shapes of at most 256 elements: dims up to `max_dim` through rank 4, up to 2 beyond (ranks up to 8)."""
    rank = draw(st.integers(min_rank, max_rank))
    return tuple(draw(st.integers(1, max_dim if rank <= 4 else 2)) for _ in range(rank))


# ---- Reshape -------------------------------------------------------------------------------------------------------


@st.composite
def reshape_codes(draw, dims: Sequence[int]) -> list[int]:
    """A Reshape `shape` read left to right over `dims` with MXNet's codes, each keeping the element count: 0 (copy a
    dim), the dim itself, -1 (infer; once, and never after a -4: MXNet then fills in the wrong dim, see
    test_reshape_minus_one_after_split_is_refused), -3 (merge two dims), -4 a b (split a dim; a or b may be -1),
    -2 (the rest)."""
    codes: list[int] = []
    i, inferred = 0, False
    while i < len(dims):
        d = dims[i]
        infer = not inferred and -4 not in codes
        kinds = ["copy", "same", "split", "rest"] + ["infer"] * infer + ["merge"] * (i + 1 < len(dims))
        kind = draw(st.sampled_from(kinds))
        if kind == "copy":
            codes.append(0)
        elif kind == "same":
            codes.append(d)
        elif kind == "infer":
            codes.append(-1)
            inferred = True
        elif kind == "merge":
            codes.append(-3)
            i += 1
        elif kind == "split":
            a = draw(st.sampled_from(divisors(d)))
            hide = draw(st.sampled_from([None, 0, 1]))  # which half is written as -1
            codes += [-4, -1 if hide == 0 else a, -1 if hide == 1 else d // a]
        else:
            codes.append(-2)
            break
        i += 1
    return codes


@st.composite
def factorization(draw, volume: int, max_rank: int = 6, infer: bool = True) -> list[int]:
    """An explicit target shape with `volume` elements (size-1 dims anywhere), optionally one dim written as -1."""
    dims, left = [], volume
    while left > 1 and len(dims) < max_rank - 1:
        d = draw(st.sampled_from(divisors(left)))
        dims.append(d)
        left //= d
    dims.append(left)
    for _ in range(draw(st.integers(0, 2))):
        dims.insert(draw(st.integers(0, len(dims))), 1)
    if infer and draw(st.booleans()):
        dims[draw(st.integers(0, len(dims) - 1))] = -1
    return dims


@st.composite
def reshapes(draw):
    shape = draw(small_shapes(1, 4))
    reverse = draw(st.sampled_from([None, False, True]))  # None: MXNet's default False
    style = draw(st.sampled_from(["codes", "codes", "explicit", "deep", "deprecated"]))
    if style == "codes":  # generated over the dims in the order MXNet reads them (reversed with reverse=True)
        codes = draw(reshape_codes(shape[::-1] if reverse else shape))
        attrs: dict[str, Any] = {"shape": tuple(codes[::-1] if reverse else codes)}
    elif style == "explicit":
        attrs = {"shape": tuple(draw(factorization(int(np.prod(shape)))))}
    elif style == "deep":  # 10 or 11 dims: more than TensorRT's 8
        attrs = {"shape": tuple(draw(st.integers(9, 10)) * [1]) + (-1,)}
    else:  # deprecated target_shape/keep_highest: MXNet 1.9.1 mishandles them (one run crashed the process with
        # "free(): invalid next size"): refused, not run
        attrs = {"target_shape": tuple(draw(factorization(int(np.prod(shape)), 3, infer=False))),
                 "keep_highest": draw(st.booleans())}
    if reverse is not None:
        attrs["reverse"] = reverse
    return shape, attrs, style


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=reshapes(), op=st.sampled_from(["Reshape", "reshape"]), place=ANY_PLACES)
def test_reshape(precision, case, op, place):
    shape, attrs, style = case
    event(style)
    if style in ("deep", "deprecated"):
        place = ("after", False, place[2])  # nothing around it computes on rank 9+ (or runs what MXNet cannot)
    reason = check_unary(lambda t: sym_fn(op)(t, name="node", **attrs), shape, place, precision,
                         run=style != "deprecated")
    assert (reason is not None) == (style in ("deep", "deprecated")), reason


def test_reshape_minus_one_after_split_is_refused():
    """MXNet 1.9.1 writes an inferred -1 at its index in `shape`, which a preceding -4 shifts: (2, 3, 4) with
    (-4, 1, 2, -1, 0) infers (1, 2, 1, 3), 6 elements of 24 (as the last code it even writes out of bounds). Refused;
    not run, since MXNet's own run of it is wrong."""
    sym = mx.sym.Reshape(mx.sym.relu(mx.sym.var("x"), name="pre"), shape=(-4, 1, 2, -1, 0), name="node")
    reason = check_case(sym, {"x": normal(0, (2, 3, 4))}, {}, ["pre"], "fp32", run=False)
    assert reason is not None and "different number of elements" in reason, reason


# ---- reshape_like --------------------------------------------------------------------------------------------------


def _range_attrs(draw, begin: int, end: int, rank: int, side: str) -> dict[str, Any]:
    """lhs_/rhs_ begin and end for the canonical range [begin, end) of `rank` dims, each left out where MXNet's
    default gives it (0, the rank), or written negative or positive."""
    attrs: dict[str, Any] = {}
    b = draw(st.sampled_from(([None] if begin == 0 else []) + [begin, begin - rank]))
    e = draw(st.sampled_from(([None] if end == rank else []) + [end] + ([end - rank] if end < rank else [])))
    if b is not None:
        attrs[f"{side}_begin"] = b
    if e is not None:
        attrs[f"{side}_end"] = e
    return attrs


@st.composite
def reshape_likes(draw):
    """lhs and rhs shapes with ranges [lb, le) and [rb, re) of one element count: rhs[rb:re] replaces lhs[lb:le]."""
    shape = draw(small_shapes(1, 4))
    rank = len(shape)
    lb = draw(st.integers(0, rank - 1))
    le = draw(st.integers(lb + 1, rank))
    middle = draw(factorization(int(np.prod(shape[lb:le])), 4, infer=False))
    before, after = draw(small_shapes(0, 2, 3)), draw(small_shapes(0, 2, 3))
    like = before + tuple(middle) + after
    assume(len(like) <= 8 and rank - (le - lb) + len(middle) <= 8)  # rhs is an engine input too
    attrs = {**_range_attrs(draw, lb, le, rank, "lhs"),
             **_range_attrs(draw, len(before), len(before) + len(middle), len(like), "rhs")}
    # How the shape-only rhs arrives; MXNet takes any rhs dtype, an engine only those it carries (float64 is refused)
    like_kind = draw(st.sampled_from(["data", "data", "relu", "param", "int32", "int64", "float64"]))
    return shape, like, attrs, like_kind


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=reshape_likes(), place=ANY_PLACES)
def test_reshape_like(precision, case, place):
    shape, like, attrs, like_kind = case
    y = mx.sym.var("y")
    if like_kind == "relu":
        y = mx.sym.relu(y, name="like")
    sym, data, params, compute = unary_graph(lambda t: mx.sym.reshape_like(t, y, name="node", **attrs), shape, place)
    dtype = {"int32": np.int32, "int64": np.int64, "float64": np.float64}.get(like_kind, np.float32)
    (params if like_kind == "param" else data)["y"] = normal(place[2], like, 2).astype(dtype)
    reason = check_case(sym, data, params, compute + ["like"] * (like_kind == "relu"), precision)
    assert (reason is not None) == (like_kind == "float64"), reason
    assert reason is None or "input dtype float64" in reason, reason


# ---- transpose -----------------------------------------------------------------------------------------------------


@st.composite
def transposes(draw):
    shape = draw(small_shapes(1, 6))
    rank = len(shape)
    kind = draw(st.sampled_from(["default", "perm", "perm", "perm", "not a permutation"]))
    attrs: dict[str, Any] = {}
    if kind == "perm":
        attrs["axes"] = tuple(draw(st.permutations(range(rank))))
    elif kind == "not a permutation":  # MXNet infers a shape and returns garbage: refused, not run
        assume(rank >= 2)
        axes = list(draw(st.permutations(range(rank))))
        i = draw(st.integers(0, rank - 1))
        axes[i] = draw(st.sampled_from([a for a in range(rank) if a != axes[i]]))  # now listed twice
        attrs["axes"] = tuple(axes)
    return shape, attrs, kind


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=transposes(), place=ANY_PLACES)
def test_transpose(precision, case, place):
    shape, attrs, kind = case
    event(kind)
    bad = kind == "not a permutation"
    if bad:
        place = ("after", False, place[2])
    reason = check_unary(lambda t: mx.sym.transpose(t, name="node", **attrs), shape, place, precision, run=not bad)
    assert (reason is not None) == bad, reason


@pytest.mark.parametrize("op", ["SwapAxis", "swapaxes"])
@pytest.mark.parametrize("precision", PRECISIONS)
@given(shape=small_shapes(1, 6), data=st.data(), place=ANY_PLACES)
def test_swap_axis(op, precision, shape, data, place):
    """dim1/dim2 anywhere in [-rank, rank), equal ones too; either left out takes MXNet's default 0."""
    rank = len(shape)
    attrs = {k: data.draw(st.integers(-rank, rank - 1), label=k) for k in ("dim1", "dim2") if data.draw(st.booleans())}
    assert check_unary(lambda t: sym_fn(op)(t, name="node", **attrs), shape, place, precision) is None


def test_channel_shuffle():
    """gluoncv's ShuffleNet channel shuffle: conv -> reshape (N, g, C/g, H, W) -> SwapAxis(1, 2) -> reshape back ->
    relu, all in one engine, in fp16 too."""
    x = mx.sym.var("x")
    y = mx.sym.Convolution(x, num_filter=6, kernel=(1, 1), no_bias=True, name="conv")
    y = mx.sym.reshape(y, shape=(0, -4, 2, -1, -2), name="split")
    y = mx.sym.SwapAxis(y, dim1=1, dim2=2, name="node")
    y = mx.sym.relu(mx.sym.reshape(y, shape=(0, -3, -2), name="merge"), name="post")
    for precision in PRECISIONS:
        check_graph(y, {"x": normal(0, (2, 4, 3, 3))}, {"conv_weight": normal(1, (6, 4, 1, 1))},
                    on_trt=["conv", "split", "node", "merge", "post"], engines=1, precision=precision,
                    rtol=RTOL[precision])


# ---- expand_dims, squeeze ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
@given(rank=st.sampled_from([1, 2, 3, 4, 6, 8, 8]), data=st.data(), place=ANY_PLACES)
def test_expand_dims(precision, rank, data, place):
    shape = data.draw(small_shapes(rank, rank), label="shape")
    axis = data.draw(st.integers(-rank - 1, rank), label="axis")
    if rank == 8:  # the output has 9 dims: refused; kept at the graph's end (MXNet runs it)
        place = ("after", place[1], place[2])
    reason = check_unary(lambda t: mx.sym.expand_dims(t, axis=axis, name="node"), shape, place, precision)
    assert (reason is not None) == (rank == 8), reason


@st.composite
def squeezes(draw):
    shape = list(draw(small_shapes(1, 5)))
    for i in draw(st.sets(st.integers(0, len(shape) - 1))):
        shape[i] = 1
    ones = [i for i, d in enumerate(shape) if d == 1]
    attrs: dict[str, Any] = {}
    if ones and draw(st.booleans()):
        picked = draw(st.lists(st.sampled_from(ones), min_size=1, max_size=len(ones), unique=True))
        attrs["axis"] = tuple(a - len(shape) if draw(st.booleans()) else a for a in picked)
    return tuple(shape), attrs


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=squeezes(), place=ANY_PLACES)
def test_squeeze(precision, case, place):
    shape, attrs = case
    assert check_unary(lambda t: mx.sym.squeeze(t, name="node", **attrs), shape, place, precision) is None


# ---- stack ---------------------------------------------------------------------------------------------------------


@st.composite
def stack_cases(draw):
    shape = draw(small_shapes(1, 3))
    num = draw(st.integers(1, 3))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape) - 1, len(shape))))  # None: MXNet's default 0
    kinds = [draw(st.sampled_from(["relu", "relu", "data", "param"])) for _ in range(num)]
    post = draw(st.sampled_from([None, "relu", "sigmoid"]))
    if "relu" not in kinds and post is None:
        post = "relu"
    if "data" not in kinds and "relu" not in kinds:
        kinds[0] = "data"
    return shape, kinds, post, ({} if axis is None else {"axis": axis}), draw(st.booleans()), draw(SEEDS)


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=stack_cases())
def test_stack(precision, case):
    shape, kinds, post, attrs, expose, seed = case
    data, params, parts, compute = {}, {}, [], []
    for i, kind in enumerate(kinds):
        v = mx.sym.var(f"x{i}")
        (params if kind == "param" else data)[f"x{i}"] = normal(seed, shape, i)
        if kind == "relu":
            v = mx.sym.relu(v, name=f"r{i}")
            compute.append(f"r{i}")
        parts.append(v)
    y = out = mx.sym.stack(*parts, name="node", **attrs)
    if post is not None:
        out = sym_fn(post)(y, name="post")
        compute.append("post")
        if expose:
            out = mx.sym.Group([out, y])
    assert check_case(out, data, params, compute, precision) is None


# ---- SliceChannel --------------------------------------------------------------------------------------------------


@st.composite
def split_cases(draw):
    shape = list(draw(small_shapes(1, 4)))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))  # None: MXNet's default 1
    if axis is None:
        assume(len(shape) >= 2)
    ax = (1 if axis is None else axis) % len(shape)
    num = draw(st.integers(1, 4))
    shape[ax] = num * draw(st.integers(1, 2))
    attrs: dict[str, Any] = {"num_outputs": num}
    if axis is not None:
        attrs["axis"] = axis
    squeeze = draw(st.sampled_from([None, False, True])) if shape[ax] == num else draw(st.sampled_from([None, False]))
    if squeeze is not None:
        attrs["squeeze_axis"] = squeeze
    zero_d = bool(squeeze) and len(shape) == 1  # MXNet returns 0-d pieces: refused (an engine cannot return them)
    return tuple(shape), attrs, zero_d


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=split_cases(), op=st.sampled_from(["SliceChannel", "split"]), position=st.sampled_from(POSITIONS),
       expose=st.booleans(), seed=SEEDS)
def test_slice_channel(precision, case, op, position, expose, seed):
    """Every output of the multi-output node leaves it: straight out of the graph (after), into its own relu (before),
    or relu -> split -> a sigmoid per output (between); `expose` also returns the outputs themselves."""
    shape, attrs, zero_d = case
    if zero_d:
        position = "after"  # nothing around to compute on 0-d pieces
    x = mx.sym.var("x")
    parts = sym_fn(op)(x if position == "before" else mx.sym.relu(x, name="pre"), name="node", **attrs)
    pieces = [parts[k] for k in range(attrs["num_outputs"])]
    if position == "after":
        outs, compute = pieces, ["pre"]
    else:
        post = mx.sym.relu if position == "before" else mx.sym.sigmoid
        outs = [post(p, name=f"post{k}") for k, p in enumerate(pieces)]
        compute = [f"post{k}" for k in range(len(pieces))] + (["pre"] if position == "between" else [])
        if expose:
            outs += pieces
    sym = mx.sym.Group(outs) if len(outs) > 1 else outs[0]
    reason = check_case(sym, {"x": normal(seed, shape)}, {}, compute, precision)
    assert (reason is not None) == zero_d, reason


# ---- slice, slice_axis, slice_like ---------------------------------------------------------------------------------


@st.composite
def slices(draw):
    shape = draw(small_shapes(1, 4))
    k = draw(st.integers(0, len(shape)))
    begin, end, step = [], [], []
    for d in shape[:k]:
        s = draw(st.sampled_from([None, None, 1, 2, 3, -1, -1, -2]))
        b = draw(st.one_of(st.none(), st.integers(-d - 1, d)))
        e = draw(st.one_of(st.none(), st.integers(-d - 1, d + 1)))
        assume(len(range(d)[slice(b, e, s)]) > 0)  # MXNet's rules match Python's here; empty outputs are refused
        begin.append(b), end.append(e), step.append(s)
    attrs: dict[str, Any] = {"begin": tuple(begin), "end": tuple(end)}
    if any(s is not None for s in step) or draw(st.booleans()):
        attrs["step"] = tuple(step)
    return shape, attrs


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=slices(), op=st.sampled_from(["slice", "crop"]), place=ANY_PLACES)
def test_slice(precision, case, op, place):
    shape, attrs = case
    assert check_unary(lambda t: sym_fn(op)(t, name="node", **attrs), shape, place, precision) is None


@st.composite
def slice_axis_cases(draw):
    shape = draw(small_shapes(1, 4))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    d = shape[axis]
    begin = draw(st.integers(-d, d - 1))
    b = begin % d
    ends = [st.none(), st.integers(b + 1, d)] + ([st.integers(b + 1 - d, -1)] if b <= d - 2 else [])  # end > begin
    end = draw(st.one_of(ends))
    return shape, {"axis": axis, "begin": begin, "end": end}


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=slice_axis_cases(), place=ANY_PLACES)
def test_slice_axis(precision, case, place):
    shape, attrs = case
    assert check_unary(lambda t: mx.sym.slice_axis(t, name="node", **attrs), shape, place, precision) is None


@st.composite
def slice_like_cases(draw):
    shape = draw(small_shapes(1, 4))
    rank = len(shape)
    axes = draw(st.one_of(st.none(), st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True)))
    like = tuple(draw(st.integers(1, d)) if axes is None or i in axes else draw(st.integers(1, 4))
                 for i, d in enumerate(shape))
    attrs = {} if axes is None else {"axes": tuple(a - rank if draw(st.booleans()) else a for a in axes)}
    like_kind = draw(st.sampled_from(["data", "relu", "param"]))  # how the shape-only input arrives
    return shape, like, attrs, like_kind


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=slice_like_cases(), place=ANY_PLACES)
def test_slice_like(precision, case, place):
    """The second input gives only its shape, whether it is data, computed (relu) or a parameter; examples differing
    only in that shape must not share an engine."""
    shape, like, attrs, like_kind = case
    int_dtype = _int_dtype(place[0])  # MXNet wants both inputs of one dtype: y is integer data or a parameter then
    if int_dtype and like_kind == "relu":
        like_kind = "data"
    y = mx.sym.var("y")
    if like_kind == "relu":
        y = mx.sym.relu(y, name="like")
    sym, data, params, compute = unary_graph(lambda t: mx.sym.slice_like(t, y, name="node", **attrs), shape, place)
    (params if like_kind == "param" else data)["y"] = normal(place[2], like, 2).astype(int_dtype or np.float32)
    assert check_case(sym, data, params, compute, precision) is None


@st.composite
def crops(draw):
    """Crop with h_w (num_args 1) or a crop_like's size (num_args 2), at an offset or centred. 'bad' cases, which
    MXNet fails on when run, are refused: an offset outside the spare room or not two values, a crop_like larger
    than the input."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    h, w = draw(st.integers(1, shape[2])), draw(st.integers(1, shape[3]))
    num_args = draw(st.sampled_from([1, 2]))
    bad = draw(st.sampled_from([None] * 6 + ["offset", "offset length"] + ["larger"] * (num_args == 2)))
    attrs: dict[str, Any] = {"num_args": num_args} if num_args == 2 or draw(st.booleans()) else {}
    center = draw(st.sampled_from([None, False, True])) if bad not in ("offset", "offset length") else False
    if center is not None:
        attrs["center_crop"] = center
    if center:  # offset is not read then, whatever it holds
        if draw(st.booleans()):
            attrs["offset"] = (draw(st.integers(-2, 6)), draw(st.integers(-2, 6)))
    elif bad == "offset":
        y, x = draw(st.integers(0, shape[2] - h)), draw(st.integers(0, shape[3] - w))
        attrs["offset"] = (shape[2] - h + 1, x) if draw(st.booleans()) else (y, draw(st.sampled_from([-1, shape[3]])))
    elif bad == "offset length":
        attrs["offset"] = (draw(st.integers(0, shape[2] - h)),)
    elif draw(st.booleans()):
        attrs["offset"] = (draw(st.integers(0, shape[2] - h)), draw(st.integers(0, shape[3] - w)))
    if num_args == 1:
        attrs["h_w"] = (h, w)
    if bad == "larger":  # the crop_like's size, after drawing offsets that fitted
        more = draw(st.integers(1, 2))
        h, w = (shape[2] + more, w) if draw(st.booleans()) else (h, shape[3] + more)
    like = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w) + tuple(draw(small_shapes(0, 1, 2)))
    like_kind = draw(st.sampled_from(["data", "relu", "param"]))  # how crop_like arrives (only its size is read)
    return shape, attrs, like, like_kind, bad


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=crops(), place=PLACES)
def test_crop(precision, case, place):
    """MXNet's Crop takes float32 only (its type inference refuses the rest), so there are no int32 placements."""
    shape, attrs, like, like_kind, bad = case
    event(f"num_args={attrs.get('num_args', 1)} {'bad: ' + bad if bad else 'ok'}")
    if bad:
        place = ("after", False, place[2])
    y = mx.sym.var("y")
    if like_kind == "relu":
        y = mx.sym.relu(y, name="like")
    args = [y] if attrs.get("num_args", 1) == 2 else []
    sym, data, params, compute = unary_graph(lambda t: mx.sym.Crop(t, *args, name="node", **attrs), shape, place)
    if args:
        (params if like_kind == "param" else data)["y"] = normal(place[2], like, 2)
    reason = check_case(sym, data, params, compute + ["like"] * (bool(args) and like_kind == "relu" and not bad),
                        precision, run=not bad)
    assert (reason is not None) == bool(bad), reason
    assert not bad or ("larger than the input" if bad == "larger" else "offset") in reason, reason


def test_crop_center_offset_rounds_down():
    """center_crop halves the spare room rounding down, as MXNet's InferCropOfferset: 4 of 7 rows and 3 of 6 columns
    start at (1, 1), where rounding half up would start at (2, 2) and give other values."""
    sym = mx.sym.relu(mx.sym.Crop(mx.sym.var("x"), h_w=(4, 3), center_crop=True, name="node"), name="post")
    for precision in PRECISIONS:
        check_graph(sym, {"x": normal(0, (1, 2, 7, 6))}, {}, on_trt=["node", "post"], engines=1, precision=precision,
                    rtol=RTOL[precision])


@pytest.mark.parametrize("op", ["reshape_like", "Crop"])
def test_shape_only_input_keys_the_bind(op):
    """The shape-only second input is an engine input: binding the optimized symbol with another shape for it (which
    changes MXNet's output shape) is refused, not answered with the output shape the engine was built for."""
    x, y = mx.sym.var("x"), mx.sym.var("y")
    if op == "reshape_like":
        node = mx.sym.reshape_like(mx.sym.relu(x, name="pre"), y, name="node")
        shapes, other = {"x": (6,), "y": (2, 3)}, (3, 2)
    else:
        node = mx.sym.Crop(mx.sym.relu(x, name="pre"), y, num_args=2, name="node")
        shapes, other = {"x": (1, 1, 4, 4), "y": (1, 1, 2, 2)}, (1, 1, 3, 3)
    sym, _ = mx2trt.optimize(node, {}, shapes, runtime="reference")
    pattern = r"input \d \('y'\) has shape .* but the engine was built for"
    with pytest.raises((EngineNodeError, RuntimeError), match=pattern):
        sym.simple_bind(mx.cpu(), x=shapes["x"], y=other, grad_req="null")


# ---- broadcast_axis, broadcast_to, broadcast_like -----------------------------------------------------------------


@st.composite
def broadcasts(draw):
    """A shape with some size-1 axes and the target each of them grows to."""
    shape = tuple(draw(st.lists(st.sampled_from([1, 1, 2, 3]), min_size=1, max_size=4)))
    target = tuple(draw(st.integers(1, 3)) if d == 1 else d for d in shape)
    return shape, target


@pytest.mark.parametrize("op", ["broadcast_axis", "broadcast_axes", "broadcast_to", "broadcast_like"])
@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=broadcasts(), place=ANY_PLACES)
def test_broadcast(op, precision, case, place):
    shape, target = case
    if op in ("broadcast_axis", "broadcast_axes"):
        axes = tuple(i for i, (d, t) in enumerate(zip(shape, target)) if d != t)
        sizes = tuple(target[i] for i in axes)
        fn = lambda t: getattr(mx.sym, op)(t, axis=axes, size=sizes, name="node")  # noqa: E731
    elif op == "broadcast_to":
        fn = lambda t: mx.sym.broadcast_to(t, shape=target, name="node")  # noqa: E731
    else:
        fn = lambda t: mx.sym.broadcast_like(t, mx.sym.var("like"), name="node")  # noqa: E731
    sym, data, params, compute = unary_graph(fn, shape, place)
    if op == "broadcast_like":
        integer_x = _int_dtype(place[0]) and place[0].endswith("_before")
        data["like"] = normal(place[2], target, 3).astype(data["x"].dtype if integer_x else np.float32)
    assert check_case(sym, data, params, compute, precision) is None


# ---- tile, repeat --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
@given(shape=small_shapes(1, 3, 3), reps=st.lists(st.integers(1, 3), max_size=4).map(tuple), place=ANY_PLACES)
def test_tile(precision, shape, reps, place):
    rank = max(len(shape), len(reps))
    repeated = sum(d > 1 for d in shape) + sum(r > 1 for r in reps)
    # MXNet's CPU tile is itself wrong beyond this: (2,) with reps (2, 2, 2, 2) gives zeros, (2, 2, 2) with (2, 2, 2)
    # raises "Too many reduction axes" (checked over all dims and reps in {1, 2}); the engine gives np.tile's values
    assume(repeated <= 4 or (repeated == 5 and rank <= 3))
    assert check_unary(lambda t: mx.sym.tile(t, reps=reps, name="node"), shape, place, precision) is None


@pytest.mark.parametrize("precision", PRECISIONS)
@given(shape=small_shapes(1, 3), repeats=st.integers(1, 3), data=st.data(), place=ANY_PLACES)
def test_repeat(precision, shape, repeats, data, place):
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)), label="axis")
    attrs = {"repeats": repeats} if axis is None and data.draw(st.booleans()) else {"repeats": repeats, "axis": axis}
    assert check_unary(lambda t: mx.sym.repeat(t, name="node", **attrs), shape, place, precision) is None


# ---- Pad -----------------------------------------------------------------------------------------------------------


@st.composite
def pads(draw):
    rank = draw(st.sampled_from([4, 5]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + tuple(draw(st.integers(1, 4)) for _ in range(rank - 2))
    mode = draw(st.sampled_from(["constant", "edge", "reflect"]))
    width = [0, 0, 0, 0]
    for d in shape[2:]:  # MXNet pads spatial axes only; reflect needs pads smaller than the dim
        width += [draw(st.integers(0, d - 1 if mode == "reflect" else 3)) for _ in range(2)]
    attrs: dict[str, Any] = {"mode": mode, "pad_width": tuple(width)}
    if mode == "constant" and draw(st.booleans()):
        attrs["constant_value"] = draw(st.sampled_from([0.0, 1.0, -2.5, 0.3]))
    return shape, attrs


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=pads(), op=st.sampled_from(["Pad", "pad"]), place=PLACES)
def test_pad(precision, case, op, place):
    shape, attrs = case
    event(attrs["mode"])
    assert check_unary(lambda t: sym_fn(op)(t, name="node", **attrs), shape, place, precision) is None


# ---- Cast ----------------------------------------------------------------------------------------------------------

FLOAT_TARGETS = ("float32", "float16")
INT_TARGETS = ("int32", "int64")
OTHER_TARGETS = ("float64", "int8", "uint8", "bool")


@pytest.mark.parametrize("precision", PRECISIONS)
@given(shape=small_shapes(1, 4), source=st.sampled_from(["float32", "float16", "int32", "int64"]),
       target=st.sampled_from((FLOAT_TARGETS + INT_TARGETS) * 3 + OTHER_TARGETS),
       op=st.sampled_from(["Cast", "cast"]), place=PLACES)
def test_cast(precision, shape, source, target, op, place):
    """Among float32, float16, int32 and int64 it converts; other targets are refused by dtype and stay in MXNet
    (tested beside a relu or +1 engine, so the values MXNet casts are exact inputs in either precision). Casts from or
    to an integer read x directly and feed Cast(float32) -> relu; float data then holds quarter steps (exact in fp16),
    so truncation toward zero is tested on values MXNet and an fp16 engine see alike."""
    event(f"{source}->{target}")
    apply = lambda t: sym_fn(op)(t, dtype=target, name="node")  # noqa: E731
    seed, integer = place[2], source in INT_TARGETS
    if target in OTHER_TARGETS:
        x = mx.sym.var("x")
        pre = mx.sym._internal._plus_scalar(x, scalar=1, name="pre") if integer else mx.sym.relu(x, name="pre")
        data = inputs_for("int_before", seed, shape) if integer else normal(seed, shape)
        reason = check_case(mx.sym.Group([pre, apply(x)]), {"x": data.astype(source)}, {}, ["pre"], precision)
        assert reason is not None and f"output dtype {np.dtype(target)}" in reason, reason
        return
    if target in FLOAT_TARGETS and not integer:
        assert check_unary(apply, shape, place, precision, dtype=np.dtype(source)) is None
        return
    post = mx.sym.relu(mx.sym.Cast(apply(mx.sym.var("x")), dtype="float32", name="post_cast"), name="post")
    x = inputs_for("int_before" if integer else "int_after", seed, shape).astype(source)
    assert check_case(post, {"x": x}, {}, ["post_cast", "post"], precision) is None


# ---- zeros_like, ones_like -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
@given(shape=small_shapes(1, 4), op=st.sampled_from(["zeros_like", "ones_like"]),
       dtype=st.sampled_from(["float32", "float32", "float16"]), place=ANY_PLACES, special=st.booleans(),
       dtype_attr=st.sampled_from([None, None, "int64", "float16"]))
def test_fill_like(precision, shape, op, dtype, place, special, dtype_attr):
    """With `special`, the input (read directly: position 'before') holds NaN and inf, which must not leak. A `dtype`
    attribute (gluoncv's CenterNet passes 'int64') is recorded and ignored by MXNet 1.9.1: the output has x's dtype."""
    attrs = {} if dtype_attr is None else {"dtype": dtype_attr}
    sym, data, params, compute = unary_graph(lambda t: sym_fn(op)(t, name="node", **attrs), shape, place,
                                             np.dtype(dtype))
    if special and place[0] == "before":
        x = data["x"].reshape(-1)
        x[::2], x[1::3] = np.nan, -np.inf
    assert check_case(sym, data, params, compute, precision) is None


# ---- reverse -------------------------------------------------------------------------------------------------------


@st.composite
def reverses(draw):
    shape = draw(small_shapes(1, 4))
    rank = len(shape)
    axes = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=3))  # repeats allowed: each flips again
    bad = draw(st.sampled_from([False, False, False, True]))
    if bad:  # MXNet fails at run time on a negative or too large axis: refused, not run
        axes.insert(draw(st.integers(0, len(axes))), draw(st.sampled_from([-1, -rank, rank])))
    return shape, tuple(axes), bad


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=reverses(), op=st.sampled_from(["reverse", "flip"]), place=ANY_PLACES)
def test_reverse(precision, case, op, place):
    shape, axes, bad = case
    if bad:
        place = ("after", False, place[2])
    reason = check_unary(lambda t: sym_fn(op)(t, axis=axes, name="node"), shape, place, precision, run=not bad)
    assert (reason is not None) == bad, reason


# ---- SequenceReverse -----------------------------------------------------------------------------------------------

# How sequence_length arrives: a data input (float32, float16, int32 or int64), a parameter, or computed (relu) inside the engine, where fp16/bf16 would round a float length that
# MXNet truncates (2.9999 -> 3): that relu and the node then run in float32.
LENGTH_KINDS = ("float32", "float32", "float16", "int32", "param", "relu", "relu", "int64")


@st.composite
def sequence_reverses(draw):
    """(T, B, ...) data with per-batch lengths in [0, T], fractional ones (truncated toward zero by MXNet) included,
    some just below an integer. Lengths outside [0, T] are not drawn: MXNet reads and writes out of bounds on them."""
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 4))) + tuple(draw(small_shapes(0, 2, 3)))
    use = draw(st.sampled_from([None, False, True, True, True]))  # None: MXNet's default False
    kind = draw(st.sampled_from(LENGTH_KINDS))
    steps = shape[0]
    dtype = {"float16": np.float16, "int32": np.int32, "int64": np.int64}.get(kind, np.float32)
    lengths = []
    for _ in range(shape[1]):
        n = draw(st.integers(0, steps))
        frac = 0.0 if kind in ("int32", "int64") else draw(st.sampled_from([0.0, 0.0, 0.25, 0.5, 1 - 2**-13, 0.9999]))
        v = dtype(n + frac)
        lengths.append(v if v < steps + 1 else dtype(n))  # float16 rounds 3.9999 to 4
    attrs = {} if use is None else {"use_sequence_length": use}
    if draw(st.booleans()):
        attrs["axis"] = 0
    return shape, attrs, np.asarray(lengths, dtype), kind


@pytest.mark.parametrize("precision", PRECISIONS)
@given(case=sequence_reverses(), place=ANY_PLACES)
def test_sequence_reverse(precision, case, place):
    shape, attrs, lengths, kind = case
    use = attrs.get("use_sequence_length", False)
    event(f"lengths {kind}" if use else "no lengths")
    length = mx.sym.var("len")
    if kind == "relu":
        length = mx.sym.relu(length, name="len_relu")
    inputs = [length] if use else []
    sym, data, params, compute = unary_graph(lambda t: mx.sym.SequenceReverse(t, *inputs, name="node", **attrs),
                                             shape, place)
    if use:
        (params if kind == "param" else data)["len"] = lengths
        compute = compute + ["len_relu"] * (kind == "relu")
    assert check_case(sym, data, params, compute, precision) is None


def test_sequence_reverse_rounding_lengths_run_in_float32():
    """Computed lengths 2.9999 and 1.9999 truncate to 2 and 1 in MXNet; an fp16 engine would round them to 3 and 2:
    the relu computing them and the SequenceReverse run in float32 inside the fp16 engine."""
    x, length = mx.sym.var("x"), mx.sym.relu(mx.sym.var("len"), name="len_relu")
    sym = mx.sym.sigmoid(mx.sym.SequenceReverse(mx.sym.relu(x, name="pre"), length, use_sequence_length=True,
                                                name="node"), name="post")
    data = {"x": normal(0, (4, 2, 3)), "len": np.array([2.9999, 1.9999], np.float32)}
    c = check_graph(sym, data, {}, on_trt=["pre", "len_relu", "node", "post"], engines=1, precision="fp16",
                    rtol=RTOL["fp16"])
    reasons = {r[0]: r[3] for r in c.report.rows}
    assert "runs in float32" in reasons["len_relu"] and "runs in float32" in reasons["node"], reasons


# ---- aliases and registry coverage ---------------------------------------------------------------------------------




# Inputs and required attributes to build each op with (harness.check_alias_entry builds ops without attributes).
ALIAS_ARGS: dict[str, tuple[int, dict[str, Any]]] = {
    "Concat": (2, {}), "concat": (2, {}), "stack": (2, {}), "slice_like": (2, {}), "reshape_like": (2, {}),
    "expand_dims": (1, {"axis": 0}), "tile": (1, {"reps": (1,)}), "repeat": (1, {"repeats": 1}),
    "SliceChannel": (1, {"num_outputs": 1}), "split": (1, {"num_outputs": 1}),
    "slice": (1, {"begin": (0,), "end": (1,)}), "crop": (1, {"begin": (0,), "end": (1,)}),
    "slice_axis": (1, {"axis": 0, "begin": 0, "end": 1}),
    "Pad": (1, {"mode": "edge", "pad_width": (0,) * 8}), "pad": (1, {"mode": "edge", "pad_width": (0,) * 8}),
    "Cast": (1, {"dtype": "float16"}), "cast": (1, {"dtype": "float16"}),
    "reverse": (1, {"axis": (0,)}), "flip": (1, {"axis": (0,)}),
}


@pytest.mark.parametrize("op", sorted(registered_ops(MODULE)))
def test_alias_entries_share_the_canonical_converter(op):
    """flatten/concat/identity/reshape/split/crop/pad/cast/flip... reach the partitioner under their canonical op name
    (Flatten, Concat, _copy, Reshape, SliceChannel, slice, Pad, Cast, reverse...); the alias's own registry entry must
    be the same converter as the canonical one the property tests exercise."""
    num_inputs, attrs = ALIAS_ARGS.get(op, (1, {}))
    sym = sym_fn(op)(*[mx.sym.var(f"x{i}") for i in range(num_inputs)], **attrs)
    canon = json.loads(sym.tojson())["nodes"][-1]["op"]
    assert canon in mx2trt.REGISTRY, f"{op} resolves to {canon}, which has no converter"
    a, b = mx2trt.REGISTRY.get(op), mx2trt.REGISTRY.get(canon)
    assert (a.fn, a.attrs, a.validator, a.compute, a.dtypes, a.data_inputs) == \
        (b.fn, b.attrs, b.validator, b.compute, b.dtypes, b.data_inputs)


# Explicit op -> property test; test_every_registered_op_has_a_property_test fails when an op is added to
# converters/shape.py without a line here (and a test drawing it).
@pytest.mark.parametrize("op", ["shape_array", "size_array"])
@given(lo=st.integers(1, 3), span=st.integers(0, 4), cols=st.integers(1, 5), seed=SEEDS)
def test_shape_array_of_a_varying_input(op, lo, span, cols, seed):
    """Folded under static shapes (tests/test_fold.py); under a batch range the value is the bind's: x * size along
    the batch, through int64 arithmetic and a Cast, in the engine, at min, opt and max."""
    x = mx.sym.var("data")
    size = mx.sym.cast(mx.sym.slice_axis(getattr(mx.sym, op)(x, name="node"), axis=0, begin=0, end=1), "float32")
    sym = mx.sym.broadcast_mul(mx.sym.relu(x), mx.sym.reshape(size, shape=(1, 1)), name="scaled")
    hi = lo + span
    shapes = {"data": [(lo, cols), ((lo + hi) // 2, cols), (hi, cols)]}
    if span == 0:  # a range of one shape is static: folded, nothing varies
        c = mx2trt.convert(sym, {}, shapes, runtime="reference", cache=False)
        assert c.report.folded and not any(e.profiles for e in c.engines)
        return
    c = check_profiles(sym, {}, shapes, lambda p: {"data": normal(seed, p["data"])})
    assert {r.node: r.placement for r in c.report.rows}["node"] != "mxnet"


PROPERTY_TESTS = {
    "shape_array": test_shape_array_of_a_varying_input, "size_array": test_shape_array_of_a_varying_input,
    "broadcast_axis": test_broadcast, "broadcast_axes": test_broadcast, "broadcast_to": test_broadcast,
    "broadcast_like": test_broadcast,
    "Flatten": test_flatten, "flatten": test_flatten,
    "Concat": test_concat, "concat": test_concat,
    "Dropout": test_dropout,
    "BlockGrad": test_identity, "stop_gradient": test_identity, "_copy": test_identity, "identity": test_identity,
    "Reshape": test_reshape, "reshape": test_reshape,
    "transpose": test_transpose,
    "expand_dims": test_expand_dims,
    "squeeze": test_squeeze,
    "stack": test_stack,
    "SliceChannel": test_slice_channel, "split": test_slice_channel,
    "slice": test_slice, "crop": test_slice,
    "slice_axis": test_slice_axis,
    "slice_like": test_slice_like,
    "tile": test_tile,
    "repeat": test_repeat,
    "Pad": test_pad, "pad": test_pad,
    "Cast": test_cast, "cast": test_cast,
    "zeros_like": test_fill_like, "ones_like": test_fill_like,
    "reverse": test_reverse, "flip": test_reverse,
    "reshape_like": test_reshape_like,
    "SwapAxis": test_swap_axis, "swapaxes": test_swap_axis,
    "Crop": test_crop,
    "SequenceReverse": test_sequence_reverse,
}




def test_every_registered_op_has_a_property_test():
    check_property_tests(MODULE, PROPERTY_TESTS)


# ---- regression tests for known bugs -----------------------------------------------------------------------------


def test_flatten_of_param_does_not_crash():
    x, w = mx.sym.var("x"), mx.sym.var("w")
    sym = mx.sym.elemwise_add(mx.sym.relu(x, name="pre"), mx.sym.Flatten(w, name="node"), name="add")
    check_graph(sym, {"x": normal(0, (2, 6))}, {"w": normal(1, (2, 2, 3))}, on_trt=["add"])



@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cast_to_int32_of_a_computed_float_runs_in_float32(precision):
    """relu(x) -> Cast(int32) in an fp16/bf16 engine would truncate a rounded value (2049.5 -> 2048): the Cast and
    the relu computing its input run in float32 inside the engine; the int32 arithmetic after it is exact anyway."""
    x = mx.sym.var("x")
    y = mx.sym.Cast(mx.sym.relu(x, name="pre"), dtype="int32", name="node")
    out = mx.sym._internal._plus_scalar(y, scalar=1, name="post")  # an int32 output: exact in any engine
    data = np.array([[2049.5, 257.25, 3.0, -4.0]], np.float32)
    c = check_graph(out, {"x": data}, {}, on_trt=["pre", "node", "post"], engines=1, precision=precision, rtol=0.0)
    assert "runs in float32" in {r[0]: r[3] for r in c.report.rows}["pre"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("case", ["mod", "island"])
def test_cast_to_int_of_a_float32_computed_from_rounded_values_runs_in_float32(precision, case):
    """A float32 value an fp16/bf16 engine computes from its rounded tensors (mod works in float32; a user's
    fp32_nodes island reads fp16 producers) is no exact source for a truncating Cast: the nodes computing it run in
    float32 (2049.5 mod 3 is 0.5, not fp16's 2050 mod 3 = 1)."""
    x = mx.sym.var("x")
    if case == "mod":
        out, opts = mx.sym.Cast(mx.sym._internal._mod_scalar(x, scalar=3.0, name="pre"), dtype="int32"), {}
    else:
        pre = mx.sym.relu(mx.sym._internal._plus_scalar(x, scalar=0.25, name="add"), name="pre")
        out, opts = mx.sym.Cast(pre, dtype="int32"), {"fp32_nodes": ["pre"]}
    data = {"x": np.array([[2049.5, 4097.5, 1.5, 5.25]], np.float32)}
    check_graph(out, data, {}, engines=1, precision=precision, rtol=0.0, **opts)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cast_of_indices_keeps_their_producers_in_reduced_precision(precision):
    """gluoncv's CenterNet decoder: top-k indices over 4096 positions cast to int64, and a parameter arange sliced
    to a computed tensor's shape (slice_like) cast to int64. The top-k and the data movement on the arange run in
    float32 inside the fp16/bf16 engine; the convolution and relu feeding them do not (the top-k's integer indices
    are read as they are, and slice_like takes only its second input's shape)."""
    x = mx.sym.var("x")
    heat = mx.sym.relu(mx.sym.Convolution(x, mx.sym.var("w"), num_filter=2, kernel=(1, 1), no_bias=True,
                                          name="conv"), name="pre")
    idx = mx.sym.topk(mx.sym.reshape(heat, (0, -1)), k=5, name="topk")
    rows = mx.sym.slice_like(mx.sym.var("positions"), mx.sym.reshape(heat, (-1,), name="flat"), axes=(0,),
                             name="like")
    ints = [mx.sym.Cast(idx, dtype="int64", name="node"), mx.sym.Cast(rows, dtype="int64", name="rows")]
    out = mx.sym.Group([mx.sym._internal._plus_scalar(t, scalar=1, name=f"post{k}") for k, t in enumerate(ints)])
    rng = np.random.default_rng(4)
    data, params = {"x": rng.standard_normal((1, 3, 32, 64)).astype(np.float32)}, {
        "w": rng.standard_normal((2, 3, 1, 1)).astype(np.float32), "positions": np.arange(5000, dtype=np.float32)}
    c = check_graph(out, data, params, on_trt=["conv", "pre", "topk", "node", "like", "rows"], engines=1,
                    precision=precision, rtol=0.0)
    reasons = {r[0]: r[3] for r in c.report.rows}
    assert all("float32" in reasons[n] for n in ("topk", "like", "rows")), reasons
    assert not any("float32" in reasons[n] for n in ("conv", "pre", "flat")), reasons
