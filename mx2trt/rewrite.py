"""Rewrite: replace each built subgraph by one `_mx2trt_engine` Custom node in the NNVM JSON."""
from __future__ import annotations

import json
from typing import Any

from ._mx import mx
from .engine import EngineSpec
from .graph import Entry, Graph
from .partition import Subgraph
from .runtime import OP_TYPE


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
    for b, (sg, spec) in enumerate(built):
        customs[f"engine{b}"] = {
            "op": "Custom",
            "name": fresh(spec.name),
            "attrs": {
                "op_type": OP_TYPE,
                "key": spec.key,
                "n_in": str(len(sg.inputs)),
                "out_shapes": json.dumps([list(s) for s in spec.out_shapes]),
                "out_dtypes": json.dumps(spec.out_dtypes),
                "in_shapes": json.dumps([list(s) for s in spec.in_shapes]),
                "in_dtypes": json.dumps(spec.in_dtypes),
                "in_names": json.dumps(spec.in_names),
                "engine_name": spec.name,
                "runtime": runtime,
            },
            "_inputs": sg.inputs,
        }

    return mx.sym.load_json(json.dumps(splice(old, graph.heads, remap, customs)))


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

