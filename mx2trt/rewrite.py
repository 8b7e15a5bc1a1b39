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
        node_name = fresh(spec.name)
        customs[f"engine{b}"] = {
            "op": "Custom",
            "name": node_name,
            "attrs": {
                "op_type": OP_TYPE,
                "key": spec.key,
                "n_in": str(len(sg.inputs)),
                "out_shapes": json.dumps([list(s) for s in spec.out_shapes]),
                "out_dtypes": json.dumps(_mxnet_dtypes(graph, sg.outputs, spec.out_dtypes)),
                "in_shapes": json.dumps([list(s) for s in spec.in_shapes]),
                "in_dtypes": json.dumps(_mxnet_dtypes(graph, sg.inputs, spec.in_dtypes)),
                "in_names": json.dumps(spec.in_names),
                "engine_name": node_name,
                "runtime": runtime,
            },
            "_inputs": sg.inputs,
        }

    return mx.sym.load_json(json.dumps(splice(old, graph.heads, remap, customs)))
