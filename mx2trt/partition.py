"""Partitioner: groups nodes the registry accepts into maximal cycle-free subgraphs and records every placement."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .inputs import positive_int
from .graph import Entry, Graph
from .registry import REGISTRY, OpNode, Registry

log = logging.getLogger("mx2trt")

TENSORRT = "tensorrt"
MXNET = "mxnet"


@dataclass(frozen=True)
class PartitionOptions:
    """Knobs of the partitioner."""

    min_subgraph_size: int = 1  # subgraphs with fewer op nodes stay in MXNet
    exclude_ops: frozenset[str] = frozenset()
    exclude_nodes: frozenset[str] = frozenset()

    @classmethod
    def make(
        cls, min_subgraph_size: int = 1, exclude_ops: Iterable[str] = (), exclude_nodes: Iterable[str] = ()
    ) -> "PartitionOptions":
        size = positive_int("min_subgraph_size", min_subgraph_size)
        return cls(size, frozenset(exclude_ops), frozenset(exclude_nodes))


@dataclass
class Placement:
    """Where one op node runs, and why."""

    node: str
    op: str
    where: str  # TENSORRT or MXNET
    reason: str
    engine: int | None = None


@dataclass
class Subgraph:
    """A set of op nodes that becomes one engine."""

    id: int
    nodes: list[int]  # op node ids in topological order
    inputs: list[Entry]  # computed tensors entering the subgraph, in first-use order
    outputs: list[Entry]  # member outputs read outside the subgraph or returned by the graph
    weights: list[int]  # parameter/aux variable ids the subgraph reads (baked into the engine)


@dataclass
class Partition:
    """Result of partitioning: the subgraphs, each op node's placement and the typed nodes."""

    graph: Graph
    subgraphs: list[Subgraph]
    placements: dict[int, Placement]
    op_nodes: dict[int, OpNode] = field(default_factory=dict)

    def drop(self, sg: Subgraph, reason: str) -> None:
        """Send a subgraph back to MXNet (e.g. after a build failure), recording why."""
        self.subgraphs = [s for s in self.subgraphs if s.id != sg.id]
        for nid in sg.nodes:
            p = self.placements[nid]
            p.where, p.engine, p.reason = MXNET, None, reason


class _Clusters:
    """Union of supported nodes into clusters over the DAG, merging along edges only when no cycle appears."""

    def __init__(self, graph: Graph, supported: set[int], used: dict[int, list[Entry]]) -> None:
        self.of: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}
        self.succ: dict[int, set[int]] = {}
        self.pred: dict[int, set[int]] = {}
        self.lo: dict[int, int] = {}
        self.hi: dict[int, int] = {}
        self.ok: dict[int, bool] = {}
        for n in graph.op_nodes:
            self.of[n.id] = n.id
            self.members[n.id] = [n.id]
            self.succ[n.id], self.pred[n.id] = set(), set()
            self.lo[n.id] = self.hi[n.id] = n.id  # JSON order is topological
            self.ok[n.id] = n.id in supported
        for n in graph.op_nodes:  # a converted node depends only on the inputs its converter reads
            for e in used.get(n.id, n.inputs):
                if e.node in self.of:
                    self.succ[e.node].add(n.id)
                    self.pred[n.id].add(e.node)

    def _other_path(self, a: int, b: int) -> bool:
        """Whether cluster `b` is reachable from cluster `a` through some third cluster."""
        stack = [c for c in self.succ[a] if c != b]
        seen = set(stack)
        limit = self.hi[b]
        while stack:
            c = stack.pop()
            if c == b:
                return True
            if self.lo[c] > limit:  # everything downstream of c comes after all of b
                continue
            for s in self.succ[c]:
                if s == b:
                    return True
                if s not in seen:
                    seen.add(s)
                    stack.append(s)
        return False

    def try_merge(self, a: int, b: int) -> bool:
        if a == b or not (self.ok[a] and self.ok[b]):
            return False
        if self._other_path(a, b) or self._other_path(b, a):
            return False
        for c in self.members[b]:
            self.of[c] = a
        self.members[a] += self.members.pop(b)
        for direction, back in ((self.succ, self.pred), (self.pred, self.succ)):
            for c in direction.pop(b):
                back[c].discard(b)
                if c != a:
                    back[c].add(a)
                    direction[a].add(c)
            direction[a].discard(a)
            direction[a].discard(b)
        self.lo[a], self.hi[a] = min(self.lo[a], self.lo.pop(b)), max(self.hi[a], self.hi.pop(b))
        del self.ok[b]
        return True


def partition(
    graph: Graph,
    options: PartitionOptions | None = None,
    registry: Registry | None = None,
    refused: Mapping[int, str] | None = None,
) -> Partition:
    """Ask the registry about every op node and group the accepted ones into engines-to-be; nodes in `refused`
    (node id -> reason: their converter failed on an earlier try) stay in MXNet with that reason."""
    options = options or PartitionOptions()
    registry = REGISTRY if registry is None else registry
    refused = refused or {}
    placements: dict[int, Placement] = {}
    op_nodes: dict[int, OpNode] = {}
    supported: set[int] = set()
    for n in graph.op_nodes:
        where = f"{n.op} '{n.name}'"
        if n.id in refused:
            placements[n.id] = Placement(n.name, n.op, MXNET, refused[n.id])
            continue
        if n.name in options.exclude_nodes:
            placements[n.id] = Placement(n.name, n.op, MXNET, f"{where}: excluded by exclude_nodes")
            continue
        if n.op in options.exclude_ops:
            placements[n.id] = Placement(n.name, n.op, MXNET, f"{where}: excluded by exclude_ops")
            continue
        op_node, reason = registry.check(graph, n)
        if op_node is not None:
            op_nodes[n.id] = op_node
        if reason:
            log.debug("stays in MXNet: %s", reason)
            placements[n.id] = Placement(n.name, n.op, MXNET, reason)
        else:
            supported.add(n.id)
            placements[n.id] = Placement(n.name, n.op, TENSORRT, "converted")

    used = {nid: used_inputs(graph, nid, registry) for nid in supported}
    clusters = _Clusters(graph, supported, used)
    merged = True
    while merged:  # a merge refused for a path through a third cluster may succeed once that cluster has merged
        merged = False
        for n in graph.op_nodes:
            if n.id not in supported:
                continue
            # Along every edge, even one the converter does not read (zeros_like's input): no data crosses it, so it
            # cannot make a cycle, and the pair is better in one engine than split; cycles are judged on read edges.
            for e in n.inputs:
                if e.node in supported:
                    merged |= clusters.try_merge(clusters.of[e.node], clusters.of[n.id])

    head_entries = set(graph.heads)
    subgraphs: list[Subgraph] = []
    for root, members in sorted(clusters.members.items(), key=lambda kv: min(kv[1])):
        if not clusters.ok[root]:
            continue
        members = sorted(members)
        specs = [registry.get(graph.nodes[m].op) for m in members]
        reason = None
        if not any(s is not None and s.compute for s in specs):
            reason = "subgraph holds no compute (only data movement)"
        elif len(members) < options.min_subgraph_size:
            reason = f"subgraph of {len(members)} node(s) is below min_subgraph_size={options.min_subgraph_size}"
        if reason:
            for m in members:
                p = placements[m]
                p.where, p.reason = MXNET, f"{p.op} '{p.node}': {reason}"
            continue
        subgraphs.append(_make_subgraph(graph, len(subgraphs), members, head_entries, used))
        for m in members:
            placements[m].engine = subgraphs[-1].id
    return Partition(graph, subgraphs, placements, op_nodes)


def used_inputs(graph: Graph, nid: int, registry: Registry) -> list[Entry]:
    """The inputs a converter reads: all, or the first `data_inputs` (e.g. SoftmaxOutput ignores its label)."""
    node = graph.nodes[nid]
    spec = registry.get(node.op)
    return spec.reads(node.inputs, graph.dynamic) if spec is not None else list(node.inputs)


def _make_subgraph(
    graph: Graph, sid: int, members: list[int], heads: set[Entry], used: dict[int, list[Entry]]
) -> Subgraph:
    member_set = set(members)
    inputs: list[Entry] = []
    weights: list[int] = []
    for m in members:
        for e in used[m]:
            if e.node in member_set:
                continue
            src = graph.nodes[e.node]
            if src.kind in ("param", "aux"):
                if e.node not in weights:
                    weights.append(e.node)
            elif e not in inputs:
                inputs.append(e)
    outputs: set[Entry] = set()
    for m in members:
        for c in graph.consumers(m):
            if c not in member_set:
                outputs.update(e for e in graph.nodes[c].inputs if e.node == m)
    outputs.update(e for e in heads if e.node in member_set)
    return Subgraph(sid, members, inputs, sorted(outputs), weights)
