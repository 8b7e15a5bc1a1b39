"""Float32 islands that keep fp16 engines finite: the computations known to overflow fp16's 65504 (attention energies
before a softmax, exp in box decoding) run in float32 inside the engine, plus the ops and nodes the user names
(`fp32_ops`/`fp32_nodes`). Norms need no island: their converters compute sums of squares in float32 (or scaled)."""
from __future__ import annotations

from typing import Iterable

from .graph import Graph, Node

SOFTMAXES = frozenset({"softmax", "log_softmax", "softmin", "SoftmaxActivation"})
MATMULS = frozenset({"batch_dot", "dot", "_contrib_interleaved_matmul_selfatt_qk", "_linalg_gemm2"})
# Arithmetic and data movement that carry a value on unchanged in range: followed by both patterns below.
_CARRY = frozenset({
    "elemwise_add", "elemwise_sub", "elemwise_mul", "elemwise_div", "broadcast_add", "broadcast_sub", "broadcast_mul",
    "broadcast_div", "_add", "_plus", "_sub", "_minus", "_mul", "_div", "_plus_scalar", "_minus_scalar",
    "_mul_scalar", "_div_scalar", "where", "Reshape", "transpose", "expand_dims", "squeeze", "SwapAxis",
    "broadcast_like", "broadcast_to", "broadcast_axis",
})
# Ops between a matmul and its softmax that scale, mask or move the energies (followed backwards through any input).
_BETWEEN = _CARRY | {
    "_contrib_div_sqrt_dim", "SequenceMask",
    "max", "min", "sum", "mean", "max_axis", "min_axis", "sum_axis",  # DANet: broadcast_like(max(e), e) - e
}
EXPS = frozenset({"exp", "_contrib_box_decode"})
# Ops of box decoding after the exp of the size offsets, followed downstream to the outputs: arithmetic with anchors,
# data movement, and the NMS that reads the boxes (a box exp(offset) * anchor may be beyond fp16 even where the
# offsets are not: gluoncv's SSD with random weights decodes boxes of 6e24).
_DECODING = _CARRY | {
    "broadcast_maximum", "broadcast_minimum", "_maximum", "_minimum", "_rminus_scalar", "_maximum_scalar",
    "_minimum_scalar", "negative", "clip", "Concat", "slice", "slice_axis", "slice_like", "SliceChannel", "stack",
    "Flatten", "tile", "_copy", "identity", "BlockGrad", "_contrib_box_decode", "_contrib_box_nms",
}
_MAX_DEPTH = 8  # ops between a matmul and its softmax that are still followed


def overflow_islands(graph: Graph) -> dict[int, str]:
    """Node id -> why it runs in float32 inside an fp16/bf16 engine, for the patterns that overflow fp16."""
    why: dict[int, str] = {}
    for n in graph.op_nodes:
        if n.op in SOFTMAXES:
            for path in _energy_paths(graph, n):
                for nid in path:
                    why.setdefault(nid, f"attention energies: {graph.nodes[path[-1]].name} ({graph.nodes[path[-1]].op})"
                                        f" feeds {n.op} {n.name}, beyond fp16's range")
        elif n.op in EXPS:
            why.setdefault(n.id, f"{n.op} can exceed fp16's 65504 (box decoding)")
            for nid in _decoding(graph, n):
                why.setdefault(nid, f"decodes boxes from the exp of {n.name}, which can exceed fp16's 65504")
    return why


def _decoding(graph: Graph, exp: Node) -> set[int]:
    """The box-decoding nodes downstream of `exp` (through _DECODING ops only)."""
    seen: set[int] = set()
    stack = list(graph.consumers(exp.id))
    while stack:
        nid = stack.pop()
        if nid not in seen and graph.nodes[nid].op in _DECODING:
            seen.add(nid)
            stack.extend(graph.consumers(nid))
    return seen


def _energy_paths(graph: Graph, softmax: Node) -> list[list[int]]:
    """Paths [softmax, between..., matmul] from a softmax's data input back to the matmuls computing it."""
    paths: list[list[int]] = []
    stack = [(softmax.inputs[0].node, [softmax.id])] if softmax.inputs else []
    while stack:
        nid, path = stack.pop()
        node = graph.nodes[nid]
        if node.is_var or nid in path:
            continue
        if node.op in MATMULS:
            paths.append(path + [nid])
        elif node.op in _BETWEEN and len(path) <= _MAX_DEPTH:
            stack.extend((e.node, path + [nid]) for e in node.inputs)
    return paths


def named_islands(graph: Graph, ops: Iterable[str], nodes: Iterable[str]) -> dict[int, str]:
    """Node id -> why, for the user's `fp32_ops` (canonical op names) and `fp32_nodes` (node names)."""
    ops, nodes = frozenset(ops), frozenset(nodes)
    why: dict[int, str] = {}
    for n in graph.op_nodes:
        if n.name in nodes:
            why[n.id] = "named in fp32_nodes"
        elif n.op in ops:
            why[n.id] = f"{n.op} is in fp32_ops"
    return why
