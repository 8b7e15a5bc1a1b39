"""Network builder: one subgraph -> INetworkDefinition through the converters -> serialized engine."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import _trt
from ._trt import ErrorRecorder, create_builder, create_builder_config, create_network, trt, trt_dtype
from .context import ConversionContext
from .engine import EngineSpec
from .errors import BuildError, ConversionError
from .graph import Entry, Graph
from .partition import Partition, Subgraph
from .registry import REGISTRY, Registry

log = logging.getLogger("mx2trt")


@dataclass
class NetworkBuild:
    """A defined network and everything that must outlive it until the engine is built."""

    subgraph: Subgraph
    builder: Any
    network: Any
    ctx: ConversionContext
    input_names: list[str]
    output_names: list[str]
    define_s: float


def _np_value(v: Any) -> np.ndarray:
    return v.asnumpy() if hasattr(v, "asnumpy") else np.asarray(v)


def subgraph_key(
    graph: Graph, sg: Subgraph, params: Mapping[str, Any], precision: str, fp32_nodes: frozenset[int] = frozenset()
) -> str:
    """Content hash of a subgraph: ops, attributes, edges, input shapes/dtypes, weight bytes, precision (and which
    nodes run in float32), TensorRT."""
    h = hashlib.sha256()
    local = {nid: i for i, nid in enumerate(sg.nodes)}
    ins = {e: i for i, e in enumerate(sg.inputs)}
    desc: list[Any] = [_trt.FLAVOR, _trt.VERSION, precision, sorted(local[n] for n in fp32_nodes if n in local)]
    desc.append([[list(graph.shape(e)), str(graph.dtype(e))] for e in sg.inputs])
    for nid in sg.nodes:
        n = graph.nodes[nid]
        refs = []
        for e in n.inputs:
            if e.node in local:
                refs.append(["n", local[e.node], e.index])
            elif e in ins:
                refs.append(["i", ins[e]])
            else:
                refs.append(["w", graph.nodes[e.node].name])
        # Every input's shape and dtype, read or not (MultiBoxPrior's anchors depend on H and W, its output only on
        # H * W), and the output shapes.
        ins_desc = [[list(graph.shape(e)), str(graph.dtype(e))] for e in n.inputs]
        desc.append([n.op, sorted(n.attrs.items()), refs, ins_desc, [list(x) for x in n.out_shapes],
                     [str(d) for d in n.out_dtypes]])
    desc.append([[local[e.node], e.index] for e in sg.outputs])
    h.update(json.dumps(desc, sort_keys=True).encode())
    for w in sg.weights:
        a = np.ascontiguousarray(_np_value(params[graph.nodes[w].name]))
        h.update(graph.nodes[w].name.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:24]


def define_network(
    part: Partition,
    sg: Subgraph,
    params: Mapping[str, Any],
    precision: str = "fp32",
    registry: Registry | None = None,
    fp32_nodes: frozenset[int] = frozenset(),
) -> NetworkBuild:
    """Translate subgraph `sg` into a strongly typed INetworkDefinition; raises ConversionError naming the node.
    Nodes in `fp32_nodes` run in float32 inside an fp16/bf16 engine (their float inputs are cast up, or read from the
    float32 network input itself)."""
    registry = registry or REGISTRY
    graph = part.graph
    t0 = time.perf_counter()
    recorder = ErrorRecorder()
    builder = create_builder(recorder)
    network = create_network(builder)
    ctx = ConversionContext(network, recorder, precision)
    tensors: dict[Entry, Any] = {}
    raw: dict[Entry, Any] = {}  # network inputs as MXNet gives them, for float32 nodes
    input_names = []
    for i, e in enumerate(sg.inputs):
        name = f"in{i}"
        t = raw[e] = network.add_input(name, trt_dtype(graph.dtype(e)), graph.shape(e))
        input_names.append(name)
        if graph.dtype(e).kind == "f" and graph.dtype(e) != ctx.dtype:
            t = ctx.cast(t, ctx.dtype)  # the engine boundary: MXNet's dtype outside, the engine dtype inside
        tensors[e] = t
    for nid in sg.nodes:
        node = graph.nodes[nid]
        op_node = part.op_nodes[nid]
        spec = registry.get(node.op)
        assert spec is not None  # the partitioner selected it
        limit = len(spec.reads(node.inputs))
        ctx.node = op_node
        ctx.use_precision("fp32" if nid in fp32_nodes else precision)
        inputs: list[Any] = []
        for k, e in enumerate(node.inputs):
            if k >= limit:
                inputs.append(None)
            elif e in tensors:
                inputs.append(_in_dtype(ctx, raw.get(e), tensors[e]))
            else:  # a parameter or aux state: converters get its value
                inputs.append(_np_value(params[graph.nodes[e.node].name]))
        try:
            outs = ctx.run(op_node, spec.fn, inputs)
            if len(outs) < node.num_outputs:
                ctx.fail(f"converter returned {len(outs)} outputs, MXNet has {node.num_outputs}")
            for k in range(node.num_outputs):
                t = outs[k]
                got, want = tuple(t.shape), node.out_shapes[k]
                if got != want:
                    ctx.fail(f"TensorRT infers output {k} shape {got}, MXNet {want}")
                tensors[Entry(nid, k)] = t
        except ConversionError as exc:
            exc.node_id = nid
            raise
        except Exception as exc:  # a converter bug must not lose the model: the node stays in MXNet
            log.exception("converter of %s '%s' crashed", node.op, node.name)
            err = ConversionError(node.name, node.op, f"converter error {type(exc).__name__}: {exc}")
            err.node_id = nid
            raise err from exc
    ctx.node = None
    ctx.use_precision(precision)
    output_names = []
    for k, e in enumerate(sg.outputs):
        t = tensors[e]
        want = graph.dtype(e)
        if t.is_network_input or t.is_network_output:
            t = ctx.identity(t)  # an engine output must be a tensor of its own
        t = ctx.cast(t, want)
        if t.is_network_input or t.is_network_output:
            t = ctx.identity(t)
        t.name = f"out{k}"
        network.mark_output(t)
        output_names.append(t.name)
    errors = recorder.take()
    if errors:
        raise ConversionError(graph.nodes[sg.nodes[-1]].name, "subgraph outputs", "; ".join(errors))
    return NetworkBuild(sg, builder, network, ctx, input_names, output_names, time.perf_counter() - t0)


_FLOATS = (trt.float32, trt.float16) + ((trt.bfloat16,) if hasattr(trt, "bfloat16") else ())


def _in_dtype(ctx: ConversionContext, raw: Any, t: Any) -> Any:
    """A float tensor `t` in the current node's dtype: as is, the unrounded network input `raw` it was cast from, or
    cast (a float32 node reading an fp16 tensor, or an fp16 node reading a float32 node's output)."""
    target = trt_dtype(ctx.dtype)
    if t.dtype not in _FLOATS or t.dtype == target:
        return t
    if raw is not None and raw.dtype == target:
        return raw
    return ctx.cast(t, ctx.dtype)


def build_engine(nb: NetworkBuild) -> tuple[bytes, float]:
    """Build the serialized engine (ahead-of-time on TensorRT-RTX, so this runs without a GPU)."""
    t0 = time.perf_counter()
    config = create_builder_config(nb.builder)
    plan = nb.builder.build_serialized_network(nb.network, config)
    errors = nb.ctx.recorder.take()
    if plan is None:
        raise BuildError(
            f"TensorRT could not build engine for subgraph {nb.subgraph.id}: {'; '.join(errors) or 'no reason given'}"
        )
    return bytes(memoryview(plan)), time.perf_counter() - t0


def engine_spec(part: Partition, sg: Subgraph, key: str, nb: NetworkBuild, precision: str) -> EngineSpec:
    """Describe the engine of `sg` for the rewrite and the runtime."""
    graph = part.graph
    return EngineSpec(
        key=key,
        name=f"trt_engine{sg.id}",
        nodes=[graph.nodes[n].name for n in sg.nodes],
        in_shapes=[graph.shape(e) for e in sg.inputs],
        in_dtypes=[graph.dtype(e).name for e in sg.inputs],
        in_names=[graph.entry_name(e) for e in sg.inputs],
        out_shapes=[graph.shape(e) for e in sg.outputs],
        out_dtypes=[graph.dtype(e).name for e in sg.outputs],
        precision=precision,
        num_layers=nb.network.num_layers,
        define_s=nb.define_s,
    )


__all__ = ["NetworkBuild", "EngineSpec", "define_network", "build_engine", "engine_spec", "subgraph_key", "trt"]
