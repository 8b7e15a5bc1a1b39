"""Constant folding: nodes computed from parameters alone (e.g. GluonNLP concatenating the q/k/v weights), and under
static shapes from shapes alone (gluoncv's `shape_array -> slice_axis -> reverse -> tile` box clipping), are evaluated
once by MXNet and become parameters, so converters see weights, not computations."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ._mx import mx
from .graph import Entry, splice

log = logging.getLogger("mx2trt")

# Ops whose output depends on their inputs' shapes and dtypes only, never on their values: constants under static
# shapes, whatever computes their inputs.
SHAPE_ONLY = frozenset({"shape_array", "size_array"})
# Ops whose output is not a function of their inputs alone.
_NONDETERMINISTIC = ("_random_", "_sample_", "random_", "sample_", "_shuffle", "_npi_random", "Custom")


@dataclass
class Folded:
    """The graph after folding: the symbol, params with the folded values added, and what was folded."""

    symbol: Any
    params: dict[str, Any]
    nodes: list[str]  # names of the op nodes that were evaluated away
    json: dict[str, Any]  # symbol.tojson(), parsed: the graph reads it next (tojson is slow)


def _deterministic(op: str) -> bool:
    return not op.startswith(_NONDETERMINISTIC)


def fold_constants(
    sym: Any, params: Mapping[str, Any], shapes: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    dtypes: Mapping[str, Any] | None = None,
) -> Folded:
    """Evaluate every op node whose inputs are all parameters, shape-only ops or other such nodes with MXNet, once
    (`dtypes` of the data inputs, default float32: a shape-only op's output may take its input's dtype). `shapes`
    may be a list of the data shapes at every optimization profile's min, opt and max (the first is used): a
    shape-only op reading a tensor whose shape varies among them is no constant."""
    points = [shapes] if isinstance(shapes, Mapping) else list(shapes)
    shapes = points[0]
    js = json.loads(sym.tojson())
    nodes = js["nodes"]
    varying = _varying(js, points) if len(points) > 1 else set()
    const = []
    for n in nodes:
        if n["op"] == "null":
            const.append(n["name"] in params and n["name"] not in shapes)
        elif n["op"] in SHAPE_ONLY:
            const.append(not any(Entry(int(e[0]), int(e[1])) in varying for e in n.get("inputs", [])))
        else:
            const.append(_deterministic(n["op"]) and all(const[e[0]] for e in n.get("inputs", [])))
    heads = [Entry(int(h[0]), int(h[1])) for h in js["heads"]]
    # Roots: outputs of constant op nodes read by non-constant nodes (or returned by the graph).
    roots: list[Entry] = []
    for i, n in enumerate(nodes):
        if n["op"] != "null" and not const[i]:
            roots += [Entry(int(e[0]), int(e[1])) for e in n.get("inputs", []) if nodes[e[0]]["op"] != "null" and const[e[0]]]
    roots += [h for h in heads if nodes[h.node]["op"] != "null" and const[h.node]]
    roots = list(dict.fromkeys(roots))
    if not roots:
        return Folded(sym, dict(params), [], js)
    values = _evaluate(js, roots, params, _shape_sources(js, const, shapes, dtypes or {}))
    names = {n["name"] for n in nodes}
    remap: dict[Entry, tuple[str, int]] = {}
    extra: dict[str, dict[str, Any]] = {}
    new_params = dict(params)
    for r, value in zip(roots, values):
        base = nodes[r.node]["name"] + (f"_output{r.index}" if r.index else "") + "_folded"
        name, k = base, 0
        while name in names:
            k += 1
            name = f"{base}{k}"
        names.add(name)
        # A declared shape and dtype, as mx.sym.var(shape=, dtype=) writes them: the optimized symbol must bind with
        # the data shapes alone, like the original (MXNet cannot infer a new variable's shape from its consumers).
        attrs = {"__shape__": str(tuple(int(d) for d in value.shape)),
                 "__dtype__": str(mx.ndarray.ndarray._DTYPE_NP_TO_MX[np.dtype(value.dtype).type])}
        extra[name] = {"op": "null", "name": name, "attrs": attrs, "_inputs": []}
        remap[r] = (name, 0)
        new_params[name] = value
    folded_js = splice(nodes, heads, remap, extra)
    folded = [n["name"] for i, n in enumerate(nodes) if n["op"] != "null" and const[i]]
    log.info("mx2trt: folded %d node(s) computed from parameters or shapes alone", len(folded))
    return Folded(mx.sym.load_json(json.dumps(folded_js)), new_params, folded, folded_js)


def _varying(js: dict[str, Any], points: Sequence[Mapping[str, Any]]) -> set[Entry]:
    """The entries shape-only ops read whose shape differs between the profile points."""
    nodes = js["nodes"]
    wanted = list(dict.fromkeys(Entry(int(e[0]), int(e[1])) for n in nodes if n["op"] in SHAPE_ONLY
                                for e in n.get("inputs", [])))
    if not wanted:
        return set()
    sub = mx.sym.load_json(json.dumps(dict(js, heads=[[e.node, e.index, 0] for e in wanted])))
    args = set(sub.list_arguments())
    seen = [sub.infer_shape_partial(**{k: tuple(v) for k, v in pt.items() if k in args})[1] for pt in points]
    return {e for k, e in enumerate(wanted) if len({tuple(s[k]) for s in seen}) > 1}


def _shape_sources(
    js: dict[str, Any], const: list[bool], shapes: Mapping[str, Any], dtypes: Mapping[str, Any]
) -> dict[Entry, np.ndarray]:
    """Data-dependent entries that shape-only ops read, as zeros of their shape and dtype (their values unused)."""
    nodes = js["nodes"]
    wanted = list(dict.fromkeys(Entry(int(e[0]), int(e[1])) for n in nodes if n["op"] in SHAPE_ONLY
                                for e in n.get("inputs", []) if not const[e[0]]))
    if not wanted:
        return {}
    sub = mx.sym.load_json(json.dumps(dict(js, heads=[[e.node, e.index, 0] for e in wanted])))
    args = set(sub.list_arguments())
    _, out_shapes, _ = sub.infer_shape_partial(**{k: tuple(v) for k, v in shapes.items() if k in args})
    _, out_types, _ = sub.infer_type(**{k: np.dtype(dtypes.get(k, np.float32)) for k in shapes if k in args})
    return {e: np.zeros(tuple(s), np.dtype(t)) for e, s, t in zip(wanted, out_shapes, out_types)}


def _evaluate(
    js: dict[str, Any], roots: list[Entry], params: Mapping[str, Any], sources: Mapping[Entry, np.ndarray]
) -> list[Any]:
    """Values of `roots`, computed by MXNet on CPU from the parameters (and zeros for the data-dependent `sources`
    that shape-only ops read)."""
    remap = {e: (f"__mx2trt_shape_source{k}", 0) for k, e in enumerate(sources)}
    extra = {name: {"op": "null", "name": name, "attrs": {}, "_inputs": []} for name, _ in remap.values()}
    sub = splice(js["nodes"], roots, remap, extra)
    sym = mx.sym.load_json(json.dumps(sub))
    values = {**params, **{remap[e][0]: v for e, v in sources.items()}}
    args = {n: mx.nd.array(_value(values[n]), dtype=_value(values[n]).dtype) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(_value(values[n]), dtype=_value(values[n]).dtype) for n in sym.list_auxiliary_states()}
    ex = sym.bind(mx.cpu(), args, aux_states=aux, grad_req="null")
    return [o.copy() for o in ex.forward(is_train=False)]


def _value(v: Any) -> np.ndarray:
    """A parameter's value; a shape-only placeholder (explain without params) evaluates as zeros."""
    if hasattr(v, "asnumpy"):
        return v.asnumpy()
    if isinstance(v, np.ndarray):
        return v
    return np.zeros(tuple(v.shape), np.dtype(v.dtype))


__all__ = ["Folded", "fold_constants"]
