"""Typed view of an NNVM graph: nodes, edges, and every output's shape and dtype from MXNet's own inference."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from ._mx import mx
from .errors import InputError

log = logging.getLogger("mx2trt")

Shape = tuple[int, ...]


@dataclass(frozen=True, order=True)
class Entry:
    """One output of one node: (node id, output index)."""

    node: int
    index: int = 0


@dataclass
class Node:
    """An NNVM node; `kind` tells variables apart: 'data', 'param' (arg param) or 'aux' (aux state); ops are 'op'."""

    id: int
    op: str
    name: str
    attrs: dict[str, str]
    inputs: tuple[Entry, ...]
    kind: str
    out_shapes: list[Shape] = field(default_factory=list)
    out_dtypes: list[np.dtype] = field(default_factory=list)
    # per output, its shapes at every profile point, the first profile's opt (out_shapes) first (None: static shapes)
    out_points: list[tuple[Shape, ...]] | None = None

    @property
    def out_dims(self) -> list[Shape] | None:
        """out_shapes with -1 where a dimension differs between profile points (None: static shapes)."""
        if self.out_points is None:
            return None
        return [tuple(d if all(p[i] == d for p in pts) else -1 for i, d in enumerate(s))
                for s, pts in zip(self.out_shapes, self.out_points)]

    @property
    def is_var(self) -> bool:
        return self.op == "null"

    @property
    def num_outputs(self) -> int:
        return len(self.out_shapes)


class Graph:
    """The graph of a Symbol with shapes and dtypes resolved for the given input shapes."""

    def __init__(self, js: dict[str, Any], nodes: list[Node], heads: list[Entry]) -> None:
        self.json = js
        self.nodes = nodes
        self.heads = heads
        self.by_name = {n.name: n for n in nodes}
        self.float64: frozenset[Entry] = frozenset()  # entries MXNet holds in float64, read as float32 (opt-in)
        # With optimization profiles: each profile's (min, opt, max) as indices into every node's out_points (empty
        # under static shapes, and in a stored subgraph's graph, whose nodes carry their points all the same).
        self.profile_points: list[tuple[int, int, int]] = []
        self.dynamic = any(n.out_points is not None for n in nodes)  # some tensor varies within the profiles
        self._consumers: dict[int, list[int]] = {n.id: [] for n in nodes}
        for n in nodes:
            for e in n.inputs:
                if n.id not in self._consumers[e.node]:
                    self._consumers[e.node].append(n.id)

    def float64_as_float32(self) -> frozenset[Entry]:
        """Read every float64 tensor as float32 (optimize's float64='float32'); returns the entries that were float64.
        Engines compute them in float32, and their nodes cast from and to MXNet's float64 at the boundary."""
        wide = set()
        for n in self.nodes:
            for k, d in enumerate(n.out_dtypes):
                if d == np.float64:
                    n.out_dtypes[k] = np.dtype(np.float32)
                    wide.add(Entry(n.id, k))
        self.float64 = frozenset(wide)
        return self.float64

    def consumers(self, node_id: int) -> list[int]:
        """Ids of the nodes that read any output of `node_id`."""
        return self._consumers[node_id]

    def shape(self, e: Entry) -> Shape:
        """The shape at the (first profile's) opt point: what converters read for attributes."""
        return self.nodes[e.node].out_shapes[e.index]

    def dims(self, e: Entry) -> Shape:
        """The shape with -1 for every dimension that varies within the profiles (TensorRT's network shape)."""
        dims = self.nodes[e.node].out_dims
        return self.shape(e) if dims is None else dims[e.index]

    def points(self, e: Entry) -> tuple[Shape, ...] | None:
        """The shapes of `e` at every profile point (None under static shapes)."""
        pts = self.nodes[e.node].out_points
        return None if pts is None else pts[e.index]

    def ranges(self, e: Entry) -> list[tuple[Shape, Shape, Shape]]:
        """Per profile, the (min, opt, max) shape of `e`: elementwise bounds over its profile's points."""
        pts = self.points(e) or ()
        out = []
        for p in self.profile_points:
            lo, opt, hi = (pts[j] for j in p)
            out.append((tuple(map(min, lo, opt, hi)), opt, tuple(map(max, lo, opt, hi))))
        return out

    def profiles(self, entries: list[Entry]) -> list[list[tuple[Shape, Shape, Shape]]]:
        """Per optimization profile, each of `entries`' (min, opt, max): a subgraph's profiles over its inputs."""
        per_entry = [self.ranges(e) for e in entries]
        return [[r[p] for r in per_entry] for p in range(len(self.profile_points))]

    def use_profiles(self, points: list["Graph"], profile_points: list[tuple[int, int, int]]) -> None:
        """Take the shapes the same graph has at each profile point (`points[0]` is this graph): a dimension that
        differs anywhere becomes -1 in `dims`."""
        for n in self.nodes:
            per = [g.nodes[n.id].out_shapes for g in points]
            for k, shape in enumerate(n.out_shapes):
                ranks = {len(s[k]) for s in per}
                if ranks != {len(shape)}:
                    raise InputError(f"node '{n.name}' ({n.op}): output {k} changes rank within the profiles "
                                     f"({sorted(ranks)}); engines need one rank")
            n.out_points = [tuple(s[k] for s in per) for k in range(len(n.out_shapes))]
        self.profile_points = list(profile_points)
        self.dynamic = True

    def dtype(self, e: Entry) -> np.dtype:
        return self.nodes[e.node].out_dtypes[e.index]

    def entry_name(self, e: Entry) -> str:
        """MXNet's name for an output, as in `get_internals().list_outputs()`."""
        n = self.nodes[e.node]
        if n.is_var:
            return n.name
        return f"{n.name}_output" if n.num_outputs == 1 else f"{n.name}_output{e.index}"

    @property
    def op_nodes(self) -> list[Node]:
        return [n for n in self.nodes if not n.is_var]

    @classmethod
    def with_profiles(
        cls, sym: Any, params: Mapping[str, Any], profiles: Any, dtypes: Mapping[str, Any] | None = None,
        parsed: dict[str, Any] | None = None,
    ) -> "Graph":
        """`from_symbol` at the profiles' opt shapes; with ranges, MXNet's inference at every min/opt/max point too
        tells which dimensions of which tensors vary (`dims`, `ranges`)."""
        graph = cls.from_symbol(sym, params, profiles.opt, dtypes, parsed)
        if not profiles.dynamic and len(profiles.ranges) == 1:
            return graph
        pts = profiles.points()
        graphs = [graph] + [cls.from_symbol(sym, params, pt, dtypes, parsed) for pt in pts[1:]]
        index = [tuple(pts.index({k: r[j] for k, r in p.items()}) for j in range(3)) for p in profiles.ranges]
        graph.use_profiles(graphs, index)  # type: ignore[arg-type]
        return graph

    @classmethod
    def from_symbol(
        cls,
        sym: Any,
        params: Mapping[str, Any],
        shapes: Mapping[str, Iterable[int]],
        dtypes: Mapping[str, Any] | None = None,
        parsed: dict[str, Any] | None = None,
    ) -> "Graph":
        """Read `sym` (`parsed`: its tojson() as parsed JSON, if known; not modified), tell data/params/aux apart and
        infer every output's shape and dtype."""
        args = sym.list_arguments()
        aux = sym.list_auxiliary_states()
        inputs = set(args) | set(aux)
        shapes = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
        dtypes = {k: np.dtype(v) for k, v in (dtypes or {}).items()}
        for name in dtypes:
            if name not in shapes:
                raise InputError(f"dtypes: '{name}' is not a data input given in shapes")
        # Data inputs default to float32 unless the variable declares its own dtype (mx.sym.var(..., dtype=)).
        js = parsed if parsed is not None else json.loads(sym.tojson())
        declared = {jn["name"] for jn in js["nodes"] if jn["op"] == "null" and "__dtype__" in jn.get("attrs", {})}
        dtypes = {k: dtypes.get(k, np.dtype(np.float32)) for k in shapes if k in dtypes or k not in declared}
        for name in shapes:
            if name not in inputs:
                raise InputError(f"shapes: '{name}' is not an input of the symbol; its inputs are {sorted(set(args) - set(params))}")
            if name in params:
                raise InputError(f"shapes: '{name}' is a parameter (it is in params); give shapes for data inputs only")
        unused = sorted(set(params) - inputs)
        if unused:
            log.debug("params not used by the symbol are ignored: %s", unused)
        param_shapes = {k: tuple(params[k].shape) for k in params if k in inputs}
        param_dtypes = {k: np.dtype(params[k].dtype) for k in params if k in inputs}

        # Outputs are aligned with nodes by name, and MXNet allows duplicate names: then op nodes are renamed uniquely
        # for inference (a symbol reloaded from JSON, which costs more than the inference on big graphs).
        names = [jn["name"] for jn in js["nodes"]]
        if len(set(names)) == len(names):
            unique, internals = js, sym.get_internals()
        else:
            unique = unique_op_names(js)
            internals = mx.sym.load_json(json.dumps(unique)).get_internals()

        def without_params() -> dict[str, Any]:
            """Shapes inferred from the data shapes alone, to name missing or wrongly shaped parameters."""
            try:
                arg_sh, _, aux_sh = internals.infer_shape_partial(**shapes)
            except mx.base.MXNetError:  # some ops (take, Pad...) need their parameters' shapes to infer anything
                arg_sh, aux_sh = [], []
            inferred = dict(zip(internals.list_arguments(), arg_sh or []))
            inferred.update(zip(internals.list_auxiliary_states(), aux_sh or []))
            return inferred

        missing = [k for k in args + aux if k not in params and k not in shapes and not _is_label(k)]
        if missing:
            inferred = without_params()
            known = {k: tuple(inferred[k]) for k in missing if inferred.get(k) and all(d > 0 for d in inferred[k])}
            hint = f" (MXNet expects shapes {known})" if known else ""
            raise InputError(
                f"no value for {missing}{hint}: give weights and aux states in params, data inputs in shapes"
            )
        try:
            arg_sh, out_sh, aux_sh = internals.infer_shape_partial(**shapes, **param_shapes)
        except mx.base.MXNetError as exc:
            _check_param_shapes(param_shapes, without_params(), aux)  # name the parameter, where inference can
            why = re.sub(r"__n\d+\b", "", _first_line(exc))  # the node's own name, not its inference alias
            raise InputError(f"MXNet shape inference failed for shapes {shapes}: {why}") from None
        inferred = dict(zip(internals.list_arguments(), arg_sh or []))
        inferred.update(zip(internals.list_auxiliary_states(), aux_sh or []))
        _check_param_shapes(param_shapes, inferred, aux)  # MXNet ignores the aux shapes it is given
        unresolved = [k for k in args if k not in params and not _known(inferred.get(k))]
        if unresolved or out_sh is None or not all(_known(s) for s in out_sh):
            raise InputError(
                f"cannot infer the shape of {unresolved or 'some outputs'}: give every data input's shape in shapes"
            )
        _, out_ty, _ = _mx_call("MXNet type inference failed", internals.infer_type, **dtypes, **param_dtypes)
        if out_ty is None or any(t is None for t in out_ty):
            out_ty = [np.float32 if t is None else t for t in (out_ty or [None] * len(out_sh))]

        aux_set, param_set = set(aux), set(params)
        nodes: list[Node] = []
        for i, jn in enumerate(js["nodes"]):
            op = jn["op"]
            kind = "op"
            if op == "null":
                # An aux state fed through shapes is a runtime input like data; only values in params are constants.
                name = jn["name"]
                kind = ("aux" if name in aux_set else "param") if name in param_set else "data"
            ins = tuple(Entry(int(e[0]), int(e[1])) for e in jn.get("inputs", []))
            nodes.append(Node(i, op, jn["name"], dict(jn.get("attrs", jn.get("param", {})) or {}), ins, kind))
        # internals lists every visible output, node by node in the JSON's order.
        counts = _output_counts(unique["nodes"], internals.list_outputs())
        if counts is None:
            out_names = [internals[i].name for i in range(len(out_sh))]  # the owning node's name, one symbol each
            counts, k = [], 0
            for jn in unique["nodes"]:
                start = k
                while k < len(out_names) and out_names[k] == jn["name"]:
                    k += 1
                counts.append(k - start)
        k = 0
        for n, count in zip(nodes, counts):
            if count == 0 or k + count > len(out_sh):
                raise InputError(f"internal: could not align outputs of node '{n.name}' ({n.op})")
            n.out_shapes.extend(tuple(s) for s in out_sh[k:k + count])
            n.out_dtypes.extend(np.dtype(t) for t in out_ty[k:k + count])
            k += count
        heads = [Entry(int(h[0]), int(h[1])) for h in js["heads"]]
        return cls(js, nodes, heads)


def unique_op_names(js: Mapping[str, Any]) -> dict[str, Any]:
    """A symbol's JSON with each op node renamed NAME__nID (MXNet allows duplicate names); variables keep theirs."""
    return dict(js, nodes=[jn if jn["op"] == "null" else dict(jn, name=f"{jn['name']}__n{i}")
                           for i, jn in enumerate(js["nodes"])])


def _output_counts(nodes: list[dict[str, Any]], outputs: list[str]) -> list[int] | None:
    """How many of `outputs` (internals' output names: a variable's own name, NAME_SUFFIX for an op's) each node owns,
    read from the names alone; None where the names cannot tell (an op's name, plus "_", starts the next node's or
    the other way round), and the caller asks MXNet for each output's node."""
    counts, k = [], 0
    for i, jn in enumerate(nodes):
        name = jn["name"]
        if jn["op"] == "null":
            if k >= len(outputs) or outputs[k] != name:
                return None
            counts.append(1)
            k += 1
            continue
        nxt = nodes[i + 1]["name"] if i + 1 < len(nodes) else None
        if not name or (nxt is not None and (nxt.startswith(name + "_") or name.startswith(nxt + "_"))):
            return None  # an op's outputs are read greedily: the next node's first output must not look like one
        start = k
        while k < len(outputs) and outputs[k].startswith(name + "_"):
            k += 1
        counts.append(k - start)
    return counts if k == len(outputs) and all(counts) else None


def _check_param_shapes(given: Mapping[str, Shape], inferred: Mapping[str, Any], aux: Iterable[str]) -> None:
    """Name the first parameter or aux state whose shape differs from the one inference derived for it."""
    for k, shape in given.items():
        need = inferred.get(k)
        if need and all(d > 0 for d in need) and tuple(need) != shape:
            kind = "aux state" if k in aux else "param"
            raise InputError(f"{kind} '{k}' has shape {shape} but the graph needs {tuple(need)}") from None


def _mx_call(what: str, fn: Any, **kwargs: Any) -> Any:
    """Call an MXNet inference function; its errors become an InputError starting with `what`."""
    try:
        return fn(**kwargs)
    except mx.base.MXNetError as exc:
        raise InputError(f"{what}: {_first_line(exc)}") from None


def _is_label(name: str) -> bool:
    """Training labels (MXNet's `label_names` convention, e.g. softmax_label) may go without a value at inference."""
    return name == "label" or name.endswith("_label")


def _known(shape: Any) -> bool:
    return bool(shape is not None and len(shape) and all(d > 0 for d in shape)) or shape == ()


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("Stack trace")]
    return lines[0] if lines else str(exc)


def splice(
    old: list[dict[str, Any]],
    heads: list[Entry],
    remap: dict[Entry, tuple[str, int]],
    extra: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """NNVM JSON of `old` where every entry in `remap` is read from output k of the new node `extra[key]` instead
    (each new node lists its inputs as Entries under `_inputs`); nodes no head depends on any more are dropped."""
    # Emit nodes depth-first from the heads so every node follows its inputs; appending Custom nodes at the end
    # would not do, since their consumers can come earlier in the old order.
    new_nodes: list[dict[str, Any]] = []
    placed: dict[Any, int] = {}

    def source(e: Entry) -> tuple[Any, int]:
        if e in remap:
            key, k = remap[e]
            return key, k
        return e.node, e.index

    def visit(key: Any) -> int:
        if key in placed:
            return placed[key]
        stack: list[tuple[Any, bool]] = [(key, False)]
        while stack:
            k, expanded = stack.pop()
            if k in placed:
                continue
            ins = extra[k]["_inputs"] if isinstance(k, str) else old[k].get("inputs", [])
            entries = [e if isinstance(e, Entry) else Entry(int(e[0]), int(e[1])) for e in ins]
            if not expanded:
                stack.append((k, True))
                stack.extend((source(e)[0], False) for e in reversed(entries) if source(e)[0] not in placed)
                continue
            if isinstance(k, str):
                node = {kk: v for kk, v in extra[k].items() if kk != "_inputs"}
            else:
                node = {kk: v for kk, v in old[k].items() if kk != "inputs"}
            node["inputs"] = [[placed[source(e)[0]], source(e)[1], 0] for e in entries]
            placed[k] = len(new_nodes)
            new_nodes.append(node)
        return placed[key]

    new_heads = []
    for h in heads:
        key, k = source(h)
        new_heads.append([visit(key), k, 0])
    js = {
        "nodes": new_nodes,
        "arg_nodes": [i for i, n in enumerate(new_nodes) if n["op"] == "null"],
        "heads": new_heads,
        "attrs": {"mxnet_version": ["int", 10901]},
    }
    return js
