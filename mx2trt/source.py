"""An engine's source: the subgraph it was built from as plain JSON plus its weights, self-contained.

A `SubgraphSource` is what the engine key hashes, what a cache entry or saved model stores beside the plan, and what
a network can be defined from again without the model it came from: to rebuild a plan that does not fit this
TensorRT or GPU, or to give the reference interpreter its program after a plan was loaded from disk.
"""
from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import xxhash

from .errors import Mx2TrtError
from .graph import Entry, Graph, Node
from .partition import Partition, Subgraph

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


class WeightDigests:
    """Content hashes of parameter values by name, each array hashed once (keys are paid on every cache hit)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self._digests: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name not in self._digests:
            v = self.params[name]
            mem = _ndarray_memory(v)
            if mem is None:
                a = np.ascontiguousarray(np_value(v))
                raw, shape, dtype = memoryview(a).cast("B"), a.shape, a.dtype
            else:
                raw, shape, dtype = mem
            h = xxhash.xxh3_128(f"{dtype.str}{shape}".encode())
            h.update(raw)
            self._digests[name] = h.hexdigest()
        return self._digests[name]


_HOST_DEVICES = (1, 3, 5)  # MXNet's cpu, cpu_pinned and cpu_shared contexts: host memory


def _ndarray_memory(v: Any) -> tuple[memoryview, tuple[int, ...], np.dtype] | None:
    """(bytes, shape, dtype) of a dense NDArray in host memory, read in place (no copy: keys are paid on every cache
    hit, and network definition reads every weight), else None. The memory view keeps `v` alive."""
    import ctypes

    from ._mx import mx

    if type(v) is not mx.nd.NDArray:  # sparse arrays are subclasses
        return None
    lib, handle = mx.base._LIB, v.handle
    dev_type, dev_id = ctypes.c_int(), ctypes.c_int()
    mx.base.check_call(lib.MXNDArrayGetContext(handle, ctypes.byref(dev_type), ctypes.byref(dev_id)))
    if dev_type.value not in _HOST_DEVICES:
        return None
    shape, dtype = tuple(v.shape), np.dtype(v.dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes == 0:
        return None
    v.wait_to_read()
    ptr = ctypes.c_void_p()
    mx.base.check_call(lib.MXNDArrayGetData(handle, ctypes.byref(ptr)))
    if not ptr.value:
        return None
    buf = (ctypes.c_char * nbytes).from_address(ptr.value)
    buf._mx2trt_owner = v  # the NDArray owns the memory: it lives as long as anything viewing it
    return memoryview(buf).cast("B"), shape, dtype


def host_view(v: Any) -> np.ndarray:
    """A parameter's value for network definition: a read-only view of a dense host NDArray's memory (no copy; the
    view keeps the NDArray alive), else a host copy. TensorRT reads weights by reference until the build returns,
    and the reference interpreter copies what it keeps."""
    mem = _ndarray_memory(v)
    if mem is None:
        return np_value(v)
    raw, shape, dtype = mem
    a = np.frombuffer(raw, dtype=dtype).reshape(shape)
    a.flags.writeable = False
    return a


@dataclass
class SubgraphSource:
    """A subgraph as JSON (`desc`: its nodes with shapes and dtypes, inputs, outputs, float32 nodes) and its weights."""

    desc: dict[str, Any]
    weights: Mapping[str, Any] = field(repr=False)

    @classmethod
    def of(
        cls, graph: Graph, sg: Subgraph, params: Mapping[str, Any], precision: str, fp32_nodes: frozenset[int]
    ) -> "SubgraphSource":
        """The source of subgraph `sg` of `graph`: inputs become variables in0.., weights keep their names."""
        local: dict[Entry, list[int]] = {}
        nodes: list[dict[str, Any]] = []

        def var(name: str, kind: str, e: Entry) -> None:
            local[e] = [len(nodes), 0]
            nodes.append({"op": "null", "name": name, "kind": kind, "attrs": {}, "inputs": [],
                          "out_shapes": [list(graph.shape(e))], "out_dtypes": [dtype_name(graph.dtype(e))]})

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
        desc = {
            "format": FORMAT,
            "precision": precision,
            "nodes": nodes,
            "inputs": [local[e] for e in sg.inputs],
            "outputs": [[ids[e.node], e.index] for e in sg.outputs],
            "fp32_nodes": sorted(ids[n] for n in fp32_nodes if n in ids),
        }
        return cls(desc, {graph.nodes[w].name: params[graph.nodes[w].name] for w in sg.weights})

    def content_hash(self, digests: WeightDigests | None = None) -> str:
        """Hash of what the engine computes: ops, attributes, edges, shapes, dtypes, weight bytes, precision; node
        names are left out, so identical subgraphs of one model (same weights) share one engine."""
        digests = digests or WeightDigests(self.weights)
        anon = [{k: v for k, v in n.items() if k != "name"} if n["op"] != "null" or n["kind"] == "data"
                else {**n, "name": digests(n["name"])} for n in self.desc["nodes"]]
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

    def partition(self) -> tuple[Partition, Subgraph, frozenset[int]]:
        """The subgraph again as a one-engine partition of its own graph, for `build.define_network`."""
        from .registry import REGISTRY

        nodes = []
        for i, n in enumerate(self.desc["nodes"]):
            nodes.append(Node(i, n["op"], n["name"], dict(n["attrs"]), tuple(Entry(a, b) for a, b in n["inputs"]),
                              n["kind"], [tuple(s) for s in n["out_shapes"]], [np.dtype(d) for d in n["out_dtypes"]]))
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
        return Partition(graph, [sg], {}, op_nodes), sg, frozenset(self.desc["fp32_nodes"])


__all__ = ["SubgraphSource", "SourceError", "WeightDigests", "host_view", "np_value"]
