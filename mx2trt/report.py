"""What went where: per-node placement with reasons, engines, and coverage by nodes and multiply-accumulates."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from .graph import Graph, Node
from .partition import MXNET, TENSORRT, Partition

# Multiply-accumulates of the heavy ops, from shapes alone (weights are inputs 1). Other ops count as 0: coverage by
# MACs says how much of the arithmetic runs in TensorRT.
_MACS: dict[str, Callable[[Graph, Node], int]] = {
    "Convolution": lambda g, n: math.prod(n.out_shapes[0]) * math.prod(g.shape(n.inputs[1])[1:]),
    "Deconvolution": lambda g, n: math.prod(g.shape(n.inputs[0])) * math.prod(g.shape(n.inputs[1])[1:]),
    "FullyConnected": lambda g, n: math.prod(n.out_shapes[0]) * g.shape(n.inputs[1])[-1],
    "_contrib_quantized_conv": lambda g, n: math.prod(n.out_shapes[0]) * math.prod(g.shape(n.inputs[1])[1:]),
    "_contrib_quantized_fully_connected": lambda g, n: math.prod(n.out_shapes[0]) * g.shape(n.inputs[1])[-1],
    "batch_dot": lambda g, n: math.prod(n.out_shapes[0]) * _inner(g, n),
    "dot": lambda g, n: math.prod(n.out_shapes[0]) * _inner(g, n),
}


def _inner(g: Graph, n: Node) -> int:
    a, out = g.shape(n.inputs[0]), n.out_shapes[0]
    return max(1, math.prod(a) * math.prod(g.shape(n.inputs[1])) // max(1, math.prod(out))) if out else 1


def macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of one node (0 for ops without a rule)."""
    rule = _MACS.get(node.op)
    if rule is None:
        return 0
    try:
        return int(rule(graph, node))
    except (IndexError, ValueError):  # unusual input arity: count nothing rather than fail the report
        return 0


class Row(NamedTuple):
    """One op node of the report: where it runs ('mxnet' or its engine's name) and why."""

    node: str
    op: str
    placement: str
    reason: str


@dataclass
class EngineReport:
    name: str
    key: str
    nodes: int
    inputs: list[str]
    outputs: list[str]
    layers: int = 0
    define_s: float = 0.0
    build_s: float = 0.0
    plan_bytes: int = 0
    origin: str = ""  # 'built', 'reused' (an identical subgraph's engine), 'cache' or 'saved'


@dataclass
class Report:
    """Placement of every op node, the engines, and coverage; `str(report)` is a printable table."""

    rows: list[Row]
    engines: list[EngineReport] = field(default_factory=list)
    nodes_total: int = 0
    nodes_trt: int = 0
    macs_total: int = 0
    macs_trt: int = 0
    partition_s: float = 0.0
    # seconds per phase of convert: fold, graph, partition, define, key, build, reference_program, rewrite, total
    timings: dict[str, float] = field(default_factory=dict)
    folded: list[str] = field(default_factory=list)  # op nodes computed from parameters or shapes alone, evaluated once

    def row(self, node: str) -> Row:
        """The row of the op node named `node` (the first, where MXNet names several alike)."""
        for r in self.rows:
            if r.node == node:
                return r
        raise KeyError(f"no op node named {node!r} in the report")

    @property
    def node_coverage(self) -> float:
        return self.nodes_trt / self.nodes_total if self.nodes_total else 0.0

    @property
    def mac_coverage(self) -> float | None:
        """Share of multiply-accumulates inside TensorRT; None for a graph without any."""
        return self.macs_trt / self.macs_total if self.macs_total else None

    def summary(self) -> str:
        times = "".join(
            f"\n  {e.name}: {e.nodes} nodes"
            + (f" -> {e.layers} layers" if e.key else "")
            + f", {len(e.inputs)} in / {len(e.outputs)} out"
            + (f", define {e.define_s:.2f}s, build {e.build_s:.2f}s, plan {e.plan_bytes / 2**20:.1f} MiB" if e.key else "")
            + (f" (from the {e.origin})" if e.origin in ("cache", "saved") else "")
            for e in self.engines
        )
        return (
            f"{len(self.engines)} engine(s); {self.nodes_trt}/{self.nodes_total} op nodes in TensorRT "
            f"({100 * self.node_coverage:.1f}%), "
            + (f"{100 * self.mac_coverage:.1f}% of multiply-accumulates" if self.macs_total else "no multiply-accumulates")
            + (f"; {len(self.folded)} node(s) computed from parameters or shapes alone folded into constants" if self.folded else "")
            + "".join(f"; {n} node(s) quantized to {dt}" for dt, n in sorted(self.quantized().items()))
            + (f"; {len(self.float32_islands())} node(s) in float32 inside reduced-precision engines: "
               f"{_names(self.float32_islands())}" if self.float32_islands() else "")
            + times
        )

    def float32_islands(self) -> list[str]:
        """Nodes that run in float32 inside fp16/bf16 engines (overflow guard, fp32_ops/fp32_nodes, exact indices)."""
        return [r.node for r in self.rows if r.reason.startswith("converted; runs in float32 inside")]

    def quantized(self) -> dict[str, int]:
        """Nodes quantized inside engines, per dtype ('int8', 'fp8')."""
        return dict(Counter(r.reason.split()[1] for r in self.rows
                            if r.reason.startswith(("converted; int8 ", "converted; fp8 "))))

    def op_table(self) -> str:
        """One line per op: count, how many in TensorRT, and the first reason one stayed in MXNet."""
        count, trt, why = Counter(), Counter(), {}
        for r in self.rows:
            op = r.op
            count[op] += 1
            if r.placement != MXNET:
                trt[op] += 1
            else:
                why.setdefault(op, r.reason)
        lines = [f"{'op':<24} {'count':>5} {'in TRT':>6}  reason (first node left in MXNet)"]
        for op in sorted(count, key=lambda o: (-count[o], o)):
            lines.append(f"{op:<24} {count[op]:>5} {trt[op]:>6}  {why.get(op, '')}")
        return "\n".join(lines)

    def node_table(self) -> str:
        w = max([4] + [len(r.node) for r in self.rows])
        lines = [f"{'node':<{w}}  {'op':<20} {'placement':<18} reason"]
        lines += [f"{n:<{w}}  {op:<20} {where:<18} {reason}" for n, op, where, reason in self.rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.node_table() + "\n\n" + self.summary()


def make_report(part: Partition, engines: dict[int, Any] | None = None) -> Report:
    """Build the report of a partition; `engines` maps subgraph id -> EngineSpec for the built ones."""
    g = part.graph
    engines = engines or {}
    names = {sg.id: (engines[sg.id].name if sg.id in engines else f"subgraph{sg.id}") for sg in part.subgraphs}
    rows = []
    rep = Report(rows)
    for nid, p in sorted(part.placements.items()):
        where = names[p.engine] if p.where == TENSORRT and p.engine is not None else "mxnet"
        rows.append(Row(p.node, p.op, where, "" if p.where == TENSORRT and p.reason == "converted" else p.reason))
        m = macs(g, g.nodes[nid])
        rep.nodes_total += 1
        rep.macs_total += m
        if p.where == TENSORRT:
            rep.nodes_trt += 1
            rep.macs_trt += m
    for sg in part.subgraphs:
        spec = engines.get(sg.id)
        rep.engines.append(
            EngineReport(
                name=names[sg.id],
                key=spec.key if spec else "",
                nodes=len(sg.nodes),
                inputs=[g.entry_name(e) for e in sg.inputs],
                outputs=[g.entry_name(e) for e in sg.outputs],
                layers=spec.num_layers if spec else 0,
                define_s=spec.define_s if spec else 0.0,
                build_s=spec.build_s if spec else 0.0,
                plan_bytes=len(spec.plan) if spec else 0,
                origin=spec.origin if spec else "",
            )
        )
    return rep


def _names(names: list[str], limit: int = 6) -> str:
    """The first `limit` names, then how many more."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
