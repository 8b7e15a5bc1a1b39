"""Network builder: one subgraph -> INetworkDefinition through the converters -> serialized engine."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import xxhash

from . import _trt
from ._trt import LOGGER, ErrorRecorder, create_builder, create_builder_config, create_network, trt, trt_dtype
from .context import ConversionContext
from .engine import EngineSpec
from .errors import BuildError, ConversionError
from .graph import Entry
from .partition import Partition, Subgraph
from .profiles import Range
from .quant import NodeQuant
from .registry import REGISTRY, Registry
from .source import HostWeights, SubgraphSource

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
    profiles: list[list[Range]] | None = None  # per optimization profile, each input's (min, opt, max)


_code_hash: str | None = None
BUILDS = 0  # engines this process has built (what cache hits and mx2trt.load are proven by)


def _mx2trt_code_hash() -> str:
    """Hash of mx2trt's own source: a changed converter must not be served an engine the old one defined."""
    global _code_hash
    if _code_hash is None:
        from . import converters as converters_pkg

        h = xxhash.xxh3_128()
        for root in (Path(__file__).parent, Path(converters_pkg.__file__).parent):
            for path in sorted(root.glob("*.py")):
                h.update(path.name.encode())
                h.update(path.read_bytes())
        _code_hash = h.hexdigest()
    return _code_hash


def build_env() -> dict[str, Any]:
    """Everything besides the subgraph that decides a plan: mx2trt's code, the TensorRT flavour, version, target
    and builder options."""
    return {"mx2trt": _mx2trt_code_hash(), "flavor": _trt.FLAVOR, "version": _trt.VERSION,
            "target": _trt.build_target(), "builder": {k: str(v) for k, v in _trt.BUILDER_OPTIONS.items()}}


def _code_fingerprint(code: Any, h: Any) -> None:
    """Feed a code object's bytecode and constants (nested functions too, without addresses) to `h`."""
    h.update(code.co_code)
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            _code_fingerprint(c, h)
        else:
            h.update(repr(c).encode())
    h.update(repr(code.co_names).encode())


def converter_fingerprints(source: SubgraphSource, registry: Registry | None = None) -> list[str]:
    """Fingerprints of the converters of the subgraph's ops that live outside mx2trt (registered by the user), whose
    code the key's mx2trt hash does not cover: a changed converter must not get the old engine."""
    registry = REGISTRY if registry is None else registry
    out = set()
    for n in source.desc["nodes"]:
        spec = registry.get(n["op"]) if n["op"] != "null" else None
        if spec is None:
            continue
        parts = [spec.fn] + ([spec.validator] if spec.validator is not None else [])
        if all(getattr(f, "__module__", "").startswith("mx2trt.") for f in parts):
            continue
        h = xxhash.xxh3_128(f"{n['op']}{spec.attrs.__qualname__}{spec.data_inputs}{sorted(map(str, spec.dtypes))}"
                            .encode())
        for f in parts:
            h.update(f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', '')}".encode())
            code = getattr(f, "__code__", None)
            if code is not None:
                _code_fingerprint(code, h)
        out.add(h.hexdigest())
    return sorted(out)


def engine_key(
    source: SubgraphSource, env: Mapping[str, Any], weights: HostWeights | None = None,
    registry: Registry | None = None,
) -> str:
    """The engine's cache key: its source's content hash (ops, attributes, edges, shapes, dtypes, weights,
    precision), the build environment, and the code of any converter from outside mx2trt."""
    h = xxhash.xxh3_128(source.content_hash(weights).encode())
    h.update(json.dumps(env, sort_keys=True).encode())
    h.update(json.dumps(converter_fingerprints(source, registry)).encode())
    return h.hexdigest()[:32]


def define_network(
    part: Partition,
    sg: Subgraph,
    params: Mapping[str, Any],
    precision: str = "fp32",
    registry: Registry | None = None,
    fp32_nodes: frozenset[int] = frozenset(),
    quant: Mapping[int, NodeQuant] | None = None,
    profiles: list[list[Range]] | None = None,
) -> NetworkBuild:
    """Translate subgraph `sg` into a strongly typed INetworkDefinition; raises ConversionError naming the node.
    Nodes in `fp32_nodes` run in float32 inside an fp16/bf16 engine (their float inputs are cast up, or read from the
    float32 network input itself); nodes in `quant` are quantized (int8/fp8 Q/DQ on the inputs their op names).
    `profiles` (per optimization profile, each input's (min, opt, max); default: the graph's) make the dimensions
    that vary -1 in the network."""
    quant = quant or {}
    registry = REGISTRY if registry is None else registry
    weights = params if isinstance(params, HostWeights) else HostWeights(params)
    graph = part.graph
    t0 = time.perf_counter()
    recorder = ErrorRecorder()
    builder = create_builder(recorder)
    network = create_network(builder)
    ctx = ConversionContext(network, recorder, precision)
    if profiles is None and graph.dynamic:
        profiles = graph.profiles(sg.inputs)
    # A dimension is -1 where it differs anywhere within the profiles (also one fixed within each of several)
    in_dims = [graph.dims(e) for e in sg.inputs]
    ctx.dynamic = bool(profiles) and any(d < 0 for dims in in_dims for d in dims)
    tensors: dict[Entry, Any] = {}
    raw: dict[Entry, Any] = {}  # network inputs as MXNet gives them, for float32 nodes
    input_names = []
    for i, e in enumerate(sg.inputs):
        name = f"in{i}"
        t = raw[e] = network.add_input(name, trt_dtype(graph.dtype(e)), in_dims[i])  # graph.dims: the shape if static
        input_names.append(name)
        if graph.dtype(e).kind == "f" and graph.dtype(e) != ctx.dtype:
            t = ctx.cast(t, ctx.dtype)  # the engine boundary: MXNet's dtype outside, the engine dtype inside
        tensors[e] = t
    for nid in sg.nodes:
        node = graph.nodes[nid]
        op_node = part.op_nodes[nid]
        spec = registry.get(node.op)
        assert spec is not None  # the partitioner selected it
        limit = len(spec.reads(node.inputs, graph.dynamic))
        ctx.node = op_node
        ctx.use_precision("fp32" if nid in fp32_nodes else precision)
        ctx.quant = quant.get(nid)
        inputs: list[Any] = []
        for k, e in enumerate(node.inputs):
            if k >= limit:
                inputs.append(None)
            elif e in tensors:
                inputs.append(_in_dtype(ctx, raw.get(e), tensors[e]))
            else:  # a parameter or aux state: converters get its value
                inputs.append(weights[graph.nodes[e.node].name])
        try:
            outs = ctx.run(op_node, spec.fn, inputs)
            if len(outs) < node.num_outputs:
                ctx.fail(f"converter returned {len(outs)} outputs, MXNet has {node.num_outputs}")
            for k in range(node.num_outputs):
                t = outs[k]
                got, want = tuple(t.shape), graph.dims(Entry(nid, k))
                if got != want:
                    ctx.fail(f"TensorRT infers output {k} shape {got}, MXNet {want}" + (
                        " (-1: varies within the optimization profiles); the converter does not handle these "
                        "dynamic dimensions" if ctx.dynamic else ""))
                tensors[Entry(nid, k)] = t
        except ConversionError as exc:
            exc.node_id = nid
            raise
        except Exception as exc:  # a converter bug must not lose the model: the node stays in MXNet
            log.exception("converter of %s '%s' crashed", node.op, node.name)
            err = ConversionError(node.name, node.op, f"converter error {type(exc).__name__}: {exc}")
            err.node_id = nid
            raise err from exc
    ctx.node, ctx.quant = None, None
    ctx.use_precision(precision)
    output_names = []
    for k, e in enumerate(sg.outputs):
        t = ctx.leaving(tensors[e])
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
    return NetworkBuild(sg, builder, network, ctx, input_names, output_names, time.perf_counter() - t0,
                        profiles if ctx.dynamic else None)


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


def build_engine(nb: NetworkBuild, monitor: Any = None) -> tuple[bytes, float]:
    """Build the serialized engine (ahead-of-time on TensorRT-RTX, so this runs without a GPU); `monitor` is a
    TensorRT IProgressMonitor (progress.py). KeyboardInterrupt if the monitor saw Ctrl-C: the build was cancelled."""
    global BUILDS
    t0 = time.perf_counter()
    config = create_builder_config(nb.builder)
    if monitor is not None:
        config.progress_monitor = monitor
    LOGGER.inconsistent.clear()
    for p, ranges in enumerate(nb.profiles or ()):
        profile = nb.builder.create_optimization_profile()
        for name, (lo, opt, hi) in zip(nb.input_names, ranges):
            profile.set_shape(name, lo, opt, hi)
        if config.add_optimization_profile(profile) < 0:  # TensorRT's only report of a bad profile
            raise BuildError(f"TensorRT refused optimization profile {p} of subgraph {nb.subgraph.id} ({ranges}): "
                             f"{'; '.join(nb.ctx.recorder.take()) or 'no reason given'}")
    BUILDS += 1
    plan = nb.builder.build_serialized_network(nb.network, config)
    errors = nb.ctx.recorder.take()
    if monitor is not None and (monitor.interrupted or (plan is None and any("BuildCanceled" in e for e in errors))):
        raise KeyboardInterrupt  # Ctrl-C in a progress callback: TensorRT cancelled the build
    if plan is None:
        raise BuildError(
            f"TensorRT could not build engine for subgraph {nb.subgraph.id}: {'; '.join(errors) or 'no reason given'}"
        )
    if LOGGER.inconsistent:  # a plan whose shapes do not hold within its profiles fails at run time: refuse it
        raise BuildError(f"subgraph {nb.subgraph.id}: its shapes do not hold within the optimization profiles "
                         f"({LOGGER.inconsistent[0]})")
    return bytes(memoryview(plan)), time.perf_counter() - t0


def reference_program(network: Any, host_weights: Mapping[tuple[str, str], Any], required: bool) -> Any:
    """The reference interpreter's program of a defined network; None if it has a layer the interpreter cannot
    evaluate and none is `required` (the TensorRT runtime does not need one)."""
    from .reference import ReferenceProgram, UnsupportedLayerError

    try:
        return ReferenceProgram.from_network(network, host_weights)
    except UnsupportedLayerError as exc:
        if required:
            raise BuildError(f"the reference interpreter cannot evaluate this engine: {exc}") from None
        log.debug("no reference program: %s", exc)
        return None


def define_source(source: SubgraphSource, registry: Registry | None = None) -> NetworkBuild:
    """Define the network of a stored subgraph again (no model needed)."""
    part, sg, fp32, quant = source.partition()
    profiles = source.desc.get("profiles")
    return define_network(part, sg, source.weights, source.desc["precision"], registry, fp32_nodes=fp32, quant=quant,
                          profiles=[[tuple(tuple(s) for s in r) for r in p] for p in profiles] if profiles else None)


def reference_program_of(source: SubgraphSource, name: str = "") -> Any:
    """The reference program of a stored subgraph, defined again from it (engines loaded from disk)."""
    try:
        nb = define_source(source)
    except ConversionError as exc:
        raise BuildError(f"engine {name}: its stored subgraph no longer defines a network: {exc}") from None
    return reference_program(nb.network, nb.ctx.host_weights, required=True)


def engine_spec(
    part: Partition, sg: Subgraph, key: str, nb: NetworkBuild | None, precision: str,
    source: SubgraphSource | None = None,
) -> EngineSpec:
    """Describe the engine of `sg` for the rewrite and the runtime; `precision` is its label ('int8' for an engine
    with quantized nodes); a dynamic engine's `source` gives its profiles and shape function."""
    graph = part.graph
    profiles = source.desc.get("profiles") if source is not None else None
    return EngineSpec(
        key=key,
        name=f"trt_engine{sg.id}",
        nodes=[graph.nodes[n].name for n in sg.nodes],
        in_shapes=[graph.dims(e) for e in sg.inputs],
        in_dtypes=[graph.dtype(e).name for e in sg.inputs],
        in_names=[graph.entry_name(e) for e in sg.inputs],
        profiles=profiles,
        shape_symbol=source.shape_symbol() if profiles else "",
        out_shapes=[graph.dims(e) for e in sg.outputs],
        out_dtypes=[graph.dtype(e).name for e in sg.outputs],
        precision=precision,
        num_layers=nb.network.num_layers if nb is not None else 0,
        define_s=nb.define_s if nb is not None else 0.0,
    )


__all__ = ["NetworkBuild", "EngineSpec", "define_network", "build_engine", "engine_spec", "engine_key", "build_env",
           "define_source", "reference_program", "reference_program_of", "trt"]
