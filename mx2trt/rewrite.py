"""Rewrite: replace each built subgraph by one `_mx2trt_engine` Custom node in the NNVM JSON."""
from __future__ import annotations

import json
from typing import Any

from ._mx import mx
from .engine import EngineSpec
from .graph import Entry, Graph, splice
from .partition import Subgraph
from .runtime import OP_TYPE


def _mxnet_dtypes(graph: Graph, entries: Any, engine: list[str]) -> list[str]:
    """The dtypes the engine node shows MXNet: the engine's, except float64 where MXNet holds float64 (the engine
    computes those in float32 and the node casts)."""
    return ["float64" if e in graph.float64 else d for e, d in zip(entries, engine)]


def _unread_data(graph: Graph, sg: Subgraph, in_engines: set[int], carried: set[Entry]) -> list[Entry]:
    """Data inputs behind inputs its nodes have but do not read (SoftmaxOutput's label, zeros_like's input: the data
    input itself, or those an MXNet-side node computing it reads), not carried by an earlier engine node: the engine
    node takes them without passing them on, so they stay arguments of the optimized symbol and
    Module.bind(data_shapes=..., label_shapes=...) takes them as before, while the MXNet node is not run for
    nothing."""
    out: list[Entry] = []
    stack = [e for nid in sg.nodes for e in reversed(graph.nodes[nid].inputs) if e not in sg.inputs]
    seen: set[int] = set()
    while stack:
        e = stack.pop()
        src = graph.nodes[e.node]
        if src.kind == "data" and e not in carried and e not in sg.inputs:
            carried.add(e)
            out.append(e)
        elif src.kind == "op" and e.node not in in_engines and e.node not in seen:
            seen.add(e.node)
            stack.extend(reversed(src.inputs))
    return out


def rewrite(graph: Graph, built: list[tuple[Subgraph, EngineSpec]], runtime: str = "auto") -> Any:
    """New Symbol with one Custom node per (subgraph, engine); unconverted nodes and their variables stay."""
    old = graph.json["nodes"]
    remap: dict[Entry, tuple[str, int]] = {}  # member output -> (custom node key, output index)
    for b, (sg, _) in enumerate(built):
        for k, e in enumerate(sg.outputs):
            remap[e] = (f"engine{b}", k)
    names = {n["name"] for n in old}

    def fresh(base: str) -> str:
        name, i = base, 0
        while name in names:
            i += 1
            name = f"{base}_{i}"
        names.add(name)
        return name

    customs: dict[str, dict[str, Any]] = {}
    carried: set[Entry] = set()
    in_engines = {n for sg, _ in built for n in sg.nodes}
    for b, (sg, spec) in enumerate(built):
        node_name = fresh(spec.name)
        unread = _unread_data(graph, sg, in_engines, carried)
        entries = list(sg.inputs) + unread
        customs[f"engine{b}"] = {
            "op": "Custom",
            "name": node_name,
            "attrs": {
                "op_type": OP_TYPE,
                "key": spec.key,
                "n_in": str(len(entries)),
                "n_engine": str(len(sg.inputs)),
                "out_shapes": json.dumps([list(s) for s in spec.out_shapes]),
                "out_dtypes": json.dumps(_mxnet_dtypes(graph, sg.outputs, spec.out_dtypes)),
                "in_shapes": json.dumps([list(s) for s in spec.in_shapes] + [list(graph.shape(e)) for e in unread]),
                "in_dtypes": json.dumps(_mxnet_dtypes(graph, entries, list(spec.in_dtypes)
                                                      + [graph.dtype(e).name for e in unread])),
                "in_names": json.dumps(list(spec.in_names) + [graph.entry_name(e) for e in unread]),
                "engine_name": node_name,
                "runtime": runtime,
            },
            "_inputs": entries,
        }
        if spec.profiles:  # a dynamic engine: its ranges, and the shape function MXNet's bind asks
            customs[f"engine{b}"]["attrs"].update(profiles=json.dumps(spec.profiles), shape_symbol=spec.shape_symbol)

    return mx.sym.load_json(json.dumps(splice(old, graph.heads, remap, customs)))
