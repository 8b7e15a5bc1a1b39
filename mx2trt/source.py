"""An engine's source: the subgraph it was built from as plain JSON plus its weights, self-contained.

A `SubgraphSource` is what the engine key hashes, what a cache entry or saved model stores beside the plan, and what
a network can be defined from again without the model it came from: to rebuild a plan that does not fit this
TensorRT or GPU, or to give the reference interpreter its program after a plan was loaded from disk.
"""
from __future__ import annotations

import ctypes
import functools
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import xxhash

from ._mx import mx
from .errors import Mx2TrtError
from .graph import Entry, Graph, Node
from .partition import Partition, Subgraph
from .quant import NodeQuant

FORMAT = 1


class SourceError(Mx2TrtError):
    """A stored subgraph that cannot be read back or defined again."""


@functools.lru_cache(maxsize=None)
def dtype_name(dt: np.dtype) -> str:
    """`dt.name`, which NumPy computes anew on every call (slow enough to show in conversion profiles)."""
    return dt.name


def np_value(v: Any) -> np.ndarray:
    """A parameter's value as a NumPy array (MXNet NDArrays are copied to the host)."""
    return v.asnumpy() if hasattr(v, "asnumpy") else np.asarray(v)


class HostWeights(Mapping[str, np.ndarray]):
    """Parameter values by name as host arrays, for network definition and engine keys: an NDArray in host memory is
    read once, as a read-only view (no copy), and each array is hashed once (keys are paid on every cache hit).
    Copies (arrays on a GPU) are not kept, so one subgraph's copies are alive at a time."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self._views: dict[str, np.ndarray] = {}
        self._digests: dict[str, str] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        view = self._views.get(name)
        if view is None:
            v = self.params[name]
            view = _host_view(v)
            if view is None:
                return np_value(v)
            self._views[name] = view
        return view

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def digest(self, name: str) -> str:
        """The content hash of a parameter's value (dtype, shape and bytes)."""
        if name not in self._digests:
            a = np.ascontiguousarray(self[name])
            h = xxhash.xxh3_128(f"{a.dtype.str}{a.shape}".encode())
            h.update(memoryview(a).cast("B"))
            self._digests[name] = h.hexdigest()
        return self._digests[name]


_NDArray = mx.nd.NDArray
_HOST_DEVICES = (1, 3, 5)  # MXNet's cpu, cpu_pinned and cpu_shared contexts: host memory


def _host_view(v: Any) -> np.ndarray | None:
    """A read-only view of a dense NDArray's memory if it is on the host (no copy: network definition and keys read
    every weight), else None. The view keeps `v` alive."""
    if type(v) is not _NDArray:  # sparse arrays are subclasses
        return None
    lib, handle = mx.base._LIB, v.handle
    dev_type, dev_id = ctypes.c_int(), ctypes.c_int()
    mx.base.check_call(lib.MXNDArrayGetContext(handle, ctypes.byref(dev_type), ctypes.byref(dev_id)))
    if dev_type.value not in _HOST_DEVICES:
        return None
    shape, dtype = tuple(v.shape), np.dtype(v.dtype)
    if math.prod(shape) == 0:
        return None
    v.wait_to_read()
    ptr = ctypes.c_void_p()
    mx.base.check_call(lib.MXNDArrayGetData(handle, ctypes.byref(ptr)))
    if not ptr.value:
        return None
    return np.asarray(_Memory(ptr.value, shape, dtype, v))


class _Memory:
    """NDArray memory as NumPy's array interface (read-only); the array made from it keeps this, and so the NDArray
    that owns the memory, alive."""

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype, owner: Any) -> None:
        self.__array_interface__ = {"data": (ptr, True), "shape": shape, "typestr": dtype.str, "version": 3}
        self.owner = owner


@dataclass
class SubgraphSource:
    """A subgraph as JSON (`desc`: its nodes with shapes and dtypes, inputs, outputs, float32 nodes) and its weights."""

    desc: dict[str, Any]
    weights: Mapping[str, Any] = field(repr=False)

    @classmethod
    def of(
        cls, graph: Graph, sg: Subgraph, params: Mapping[str, Any], precision: str, fp32_nodes: frozenset[int],
        quant: Mapping[int, NodeQuant] | None = None,
    ) -> "SubgraphSource":
        """The source of subgraph `sg` of `graph`: inputs become variables in0.., weights keep their names; `quant`
        (quantized nodes, with their ranges) is part of it."""
        local: dict[Entry, list[int]] = {}
        nodes: list[dict[str, Any]] = []

        dynamic = graph.dynamic

        def var(name: str, kind: str, e: Entry) -> None:
            local[e] = [len(nodes), 0]
            nodes.append({"op": "null", "name": name, "kind": kind, "attrs": {}, "inputs": [],
                          "out_shapes": [list(graph.shape(e))], "out_dtypes": [dtype_name(graph.dtype(e))]})
            if dynamic:
                nodes[-1]["out_points"] = [[list(s) for s in graph.points(e)]]

        for i, e in enumerate(sg.inputs):
            var(f"in{i}", "data", e)
        for w in sg.weights:
            var(graph.nodes[w].name, graph.nodes[w].kind, Entry(w, 0))
        ids = {}
        for nid in sg.nodes:
            n = graph.nodes[nid]
            for e in n.inputs:  # inputs the converter does not read (a loss's label) still need a node to point at
                if e.node not in ids and e not in local:
                    var(f"unread{len(nodes)}", "data", e)
            ids[nid] = len(nodes)
            nodes.append({"op": n.op, "name": n.name, "kind": "op", "attrs": dict(sorted(n.attrs.items())),
                          "inputs": [[ids[e.node], e.index] if e.node in ids else local[e] for e in n.inputs],
                          "out_shapes": [list(s) for s in n.out_shapes], "out_dtypes": [dtype_name(d) for d in n.out_dtypes]})
            if dynamic:
                nodes[-1]["out_points"] = [[list(s) for s in graph.points(Entry(nid, k))]
                                           for k in range(n.num_outputs)]
        desc = {
            "format": FORMAT,
            "precision": precision,
            "nodes": nodes,
            "inputs": [local[e] for e in sg.inputs],
            "outputs": [[ids[e.node], e.index] for e in sg.outputs],
            "fp32_nodes": sorted(ids[n] for n in fp32_nodes if n in ids),
        }
        if dynamic:  # absent under static shapes, so static engines keep their keys
            desc["profiles"] = [[[list(s) for s in r] for r in p] for p in graph.profiles(sg.inputs)]
        q = {str(ids[n]): nq.as_json() for n, nq in sorted((quant or {}).items()) if n in ids}
        if q:  # absent when nothing is quantized, so float engines keep their keys
            desc["quant"] = q
        return cls(desc, {graph.nodes[w].name: params[graph.nodes[w].name] for w in sg.weights})

    def shape_symbol(self) -> str:
        """The subgraph as MXNet symbol JSON over variables in0.. (weights declare their shapes): MXNet's own shape
        inference of it is a dynamic engine's shape function at bind time."""
        nodes = []
        for n in self.desc["nodes"]:
            attrs = dict(n["attrs"])
            if n["op"] == "null" and n["kind"] != "data":
                attrs["__shape__"] = str(tuple(n["out_shapes"][0]))
            nodes.append({"op": n["op"], "name": n["name"], "attrs": attrs,
                          "inputs": [[a, b, 0] for a, b in n["inputs"]]})
        return json.dumps({"nodes": nodes, "arg_nodes": [i for i, n in enumerate(nodes) if n["op"] == "null"],
                           "heads": [[a, b, 0] for a, b in self.desc["outputs"]],
                           "attrs": {"mxnet_version": ["int", 10901]}}, separators=(",", ":"))

    def content_hash(self, weights: HostWeights | None = None) -> str:
        """Hash of what the engine computes: ops, attributes, edges, shapes, dtypes, weight bytes, precision; node
        names are left out, so identical subgraphs of one model (same weights) share one engine."""
        weights = HostWeights(self.weights) if weights is None else weights
        anon = [{k: v for k, v in n.items() if k != "name"} if n["op"] != "null" or n["kind"] == "data"
                else {**n, "name": weights.digest(n["name"])} for n in self.desc["nodes"]]
        return xxhash.xxh3_128(json.dumps({**self.desc, "nodes": anon}, sort_keys=True).encode()).hexdigest()

    def sections(self) -> tuple[bytes, bytes]:
        """Its engine-file sections: the description as JSON and the weights as an .npz (read with allow_pickle=False)."""
        buf = io.BytesIO()
        np.savez(buf, **{k: np_value(v) for k, v in self.weights.items()})
        return json.dumps(self.desc).encode(), buf.getvalue()

    @classmethod
    def from_bytes(cls, desc_json: bytes, npz: bytes) -> "SubgraphSource":
        try:
            desc = json.loads(desc_json)
            with np.load(io.BytesIO(npz), allow_pickle=False) as z:
                weights = {k: z[k] for k in z.files}
        except (ValueError, OSError, KeyError) as exc:
            raise SourceError(f"stored subgraph is unreadable: {exc}") from None
        if not isinstance(desc, dict) or desc.get("format") != FORMAT:
            raise SourceError(f"stored subgraph has format {desc.get('format') if isinstance(desc, dict) else '?'}, "
                              f"this mx2trt reads {FORMAT}")
        return cls(desc, weights)

    def partition(self) -> tuple[Partition, Subgraph, frozenset[int], dict[int, NodeQuant]]:
        """The subgraph again as a one-engine partition of its own graph, for `build.define_network`, with its float32
        and its quantized nodes."""
        from .registry import REGISTRY

        nodes = []
        for i, n in enumerate(self.desc["nodes"]):
            nodes.append(Node(i, n["op"], n["name"], dict(n["attrs"]), tuple(Entry(a, b) for a, b in n["inputs"]),
                              n["kind"], [tuple(s) for s in n["out_shapes"]], [np.dtype(d) for d in n["out_dtypes"]],
                              [tuple(tuple(s) for s in o) for o in n["out_points"]] if "out_points" in n else None))
        outputs = [Entry(a, b) for a, b in self.desc["outputs"]]
        graph = Graph({}, nodes, outputs)
        op_nodes = {}
        for n in graph.op_nodes:
            op_node, reason = REGISTRY.check(graph, n)
            if reason or op_node is None:
                raise SourceError(f"stored subgraph no longer converts: {reason}")
            op_nodes[n.id] = op_node
        weights = [n.id for n in nodes if n.kind in ("param", "aux")]
        sg = Subgraph(0, [n.id for n in graph.op_nodes], [Entry(a, b) for a, b in self.desc["inputs"]], outputs,
                      weights)
        quant = {int(k): NodeQuant.from_json(v) for k, v in self.desc.get("quant", {}).items()}
        return Partition(graph, [sg], {}, op_nodes), sg, frozenset(self.desc["fp32_nodes"]), quant


__all__ = ["SubgraphSource", "SourceError", "HostWeights", "np_value"]
