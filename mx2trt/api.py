"""Public entry points: optimize / convert / explain a Symbol, and optimize a Gluon HybridBlock."""
from __future__ import annotations

import inspect
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from . import converters  # noqa: F401  (registers the converter library)
from . import _trt, inputs
from ._mx import canonical_op, mx
from .build import build_engine, define_network, engine_spec, subgraph_key
from .context import PRECISIONS
from .engine import EngineSpec
from .errors import BuildError, ConversionError, InputError
from .fold import fold_constants
from .graph import Graph, _mx_call
from .partition import Partition, PartitionOptions, partition, used_inputs
from .registry import REGISTRY
from .report import Report, make_report
from .rewrite import rewrite
from .runtime import RUNTIMES, register_engine, resolve_runtime

log = logging.getLogger("mx2trt")


@dataclass
class Conversion:
    """Result of `convert`: the rewritten symbol, the params MXNet still needs, the report and the engines."""

    symbol: Any
    params: dict[str, Any]
    report: Report
    engines: list[EngineSpec]
    partition: Partition


@dataclass(frozen=True)
class _Placeholder:
    """Stands in for a parameter whose value is not needed (explain without params)."""

    shape: tuple[int, ...]
    dtype: Any = np.float32
    _mx2trt_placeholder = True


def _check_options(precision: str, runtime: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
    if precision == "bf16" and not hasattr(_trt.trt, "bfloat16"):
        raise InputError(f"precision 'bf16' needs a TensorRT with bfloat16; {_trt.FLAVOR} {_trt.VERSION} has none")
    if runtime not in RUNTIMES:
        raise InputError(f"runtime must be one of {list(RUNTIMES)}, not {runtime!r}")


def _options(sym: Any, min_subgraph_size: Any, exclude_ops: Any, exclude_nodes: Any) -> PartitionOptions:
    """The partitioner's options; a node name no op node of `sym` has, or a name that is no MXNet op, is a typo.
    Op aliases ('flatten') become the names MXNet writes into graphs ('Flatten')."""
    ops, nodes = inputs.names("exclude_ops", exclude_ops), inputs.names("exclude_nodes", exclude_nodes)
    names = {n["name"] for n in json.loads(sym.tojson())["nodes"] if n["op"] != "null"}
    unknown = sorted(nodes - names)
    if unknown:
        raise InputError(f"exclude_nodes: no op node is named {unknown}")
    unknown = sorted(ops - set(mx.operator.get_all_registered_operators())) if ops else []
    if unknown:
        raise InputError(f"exclude_ops: {unknown} {'is not an MXNet op' if len(unknown) == 1 else 'are not MXNet ops'}")
    return PartitionOptions.make(min_subgraph_size, frozenset(canonical_op(op) for op in ops), nodes)


def convert(
    sym: Any,
    params: Mapping[str, Any],
    shapes: Mapping[str, Iterable[int]],
    *,
    dtypes: Mapping[str, Any] | None = None,
    precision: str = "fp32",
    runtime: str = "auto",
    min_subgraph_size: int = 1,
    exclude_ops: Iterable[str] = (),
    exclude_nodes: Iterable[str] = (),
    build_engines: bool = True,
) -> Conversion:
    """Partition `sym`, build one TensorRT engine per subgraph and rewrite the graph; see `optimize`."""
    inputs.symbol(sym)
    _check_options(precision, runtime)
    inputs.flag("build_engines", build_engines)
    params = inputs.params(sym, params)
    shapes = inputs.shapes(shapes)
    dtypes = inputs.dtypes(dtypes, shapes)
    options = _options(sym, min_subgraph_size, exclude_ops, exclude_nodes)
    t0 = time.perf_counter()
    folded = fold_constants(sym, params, shapes)
    sym, params = folded.symbol, folded.params
    graph = Graph.from_symbol(sym, params, shapes, dtypes)
    part, defined, fp32_nodes = _define_all(graph, options, params, precision)
    for nid in fp32_nodes & set(part.placements):
        if part.placements[nid].where != "mxnet":
            part.placements[nid].reason = f"converted; runs in float32 inside the {precision} engine (exact indices)"
    # fold, graph and partition (with any retries); the engines' own network definition is reported per engine
    t_part = time.perf_counter() - t0 - sum(nb.define_s for _, nb in defined)
    needs_program = resolve_runtime(runtime) == "reference" or not build_engines
    built: list[tuple[Any, EngineSpec]] = []
    while defined:  # popped as built, so one network's weights are alive at a time
        sg, nb = defined.pop(0)
        try:
            spec = engine_spec(part, sg, subgraph_key(graph, sg, params, precision, fp32_nodes), nb, precision)
            if build_engines:
                spec.plan, spec.build_s = build_engine(nb)
            spec.program = _reference_program(nb.network, nb.ctx.host_weights, required=needs_program)
        except (ConversionError, BuildError) as exc:
            log.warning("subgraph %d (%d nodes) falls back to MXNet: %s", sg.id, len(sg.nodes), exc)
            part.drop(sg, f"fell back to MXNet: {exc}")
            continue
        built.append((sg, register_engine(spec)))
    new_sym = rewrite(graph, built, runtime) if built else sym
    still = set(new_sym.list_arguments()) | set(new_sym.list_auxiliary_states())
    new_params = inputs.as_ndarrays({k: v for k, v in params.items() if k in still})
    report = make_report(part, {sg.id: spec for sg, spec in built})
    report.partition_s = t_part
    report.folded = folded.nodes
    log.info("mx2trt: %s", report.summary())
    return Conversion(new_sym, new_params, report, [s for _, s in built], part)


def _define_all(
    graph: Graph, options: PartitionOptions, params: Mapping[str, Any], precision: str
) -> tuple[Partition, list[tuple[Any, Any]], frozenset[int]]:
    """Partition and define every subgraph's network; returns the partition, (subgraph, network) pairs and the nodes
    that run in float32 inside an fp16/bf16 engine.

    A node whose converter fails stays in MXNet with the reason and the graph is partitioned again without it (its
    neighbours keep their engines); a failure no single node owns sends its whole subgraph back to MXNet. A node that
    would be right in float32 (indices or lengths an fp16/bf16 engine would round) runs in float32 instead, with the
    nodes computing those inputs. Networks of subgraphs that come back unchanged are reused."""
    refused: dict[int, str] = {}
    fp32_nodes: set[int] = set()
    networks: dict[tuple[frozenset[int], frozenset[int]], Any] = {}
    while True:
        part = partition(graph, options, refused=refused)
        keys = {sg.id: (frozenset(sg.nodes), frozenset(fp32_nodes & set(sg.nodes))) for sg in part.subgraphs}
        networks = {k: v for k, v in networks.items() if k in keys.values()}  # drop networks of subgraphs gone
        defined, retry = [], False
        for sg in list(part.subgraphs):
            key = keys[sg.id]
            try:
                nb = networks.get(key) or define_network(part, sg, params, precision, fp32_nodes=key[1])
            except ConversionError as exc:
                if exc.node_id is None:  # final: this subgraph leaves; the partition need not change
                    log.warning("subgraph %d (%d nodes) falls back to MXNet: %s", sg.id, len(sg.nodes), exc)
                    part.drop(sg, f"fell back to MXNet: {exc}")
                elif exc.needs_fp32 and precision != "fp32" and exc.node_id not in fp32_nodes:
                    promoted = _computing(graph, sg, exc)
                    log.info("%s runs in float32 inside the %s engine, with %d node(s) computing its inputs: %s",
                             graph.nodes[exc.node_id].name, precision, len(promoted) - 1, exc)
                    fp32_nodes |= promoted
                    retry = True
                else:
                    log.warning("%s stays in MXNet: %s", graph.nodes[exc.node_id].name, exc)
                    refused[exc.node_id] = f"fell back to MXNet: {exc}"
                    retry = True
                continue
            networks[key] = nb
            defined.append((sg, nb))
        if not retry:
            return part, defined, frozenset(fp32_nodes)


def _computing(graph: Graph, sg: Any, exc: ConversionError) -> set[int]:
    """The failing node and every node of its subgraph its `exact_inputs` are computed from (through the inputs
    converters read: zeros_like's values come from nowhere)."""
    members, node = set(sg.nodes), graph.nodes[exc.node_id]
    out = {exc.node_id}
    stack = [node.inputs[k].node for k in exc.exact_inputs if k < len(node.inputs)]
    while stack:
        nid = stack.pop()
        if nid in members and nid not in out:
            out.add(nid)
            stack.extend(e.node for e in used_inputs(graph, nid, REGISTRY))
    return out


def _reference_program(network: Any, host_weights: Mapping[tuple[str, str], Any], required: bool) -> Any:
    from .reference import ReferenceProgram, UnsupportedLayerError

    try:
        return ReferenceProgram.from_network(network, host_weights)
    except UnsupportedLayerError as exc:
        if required:
            raise BuildError(f"the reference interpreter cannot evaluate this engine: {exc}") from None
        log.debug("no reference program: %s", exc)
        return None


def optimize(
    sym: Any,
    params: Mapping[str, Any],
    shapes: Mapping[str, Iterable[int]],
    **options: Any,
) -> tuple[Any, dict[str, Any]]:
    """Replace every TensorRT-convertible region of `sym` by one engine node; returns (symbol, params).

    `params` holds arg params and aux states (plain names or `arg:`/`aux:` prefixed); `shapes` gives every data
    input's shape. Options: `precision` ('fp32'|'fp16'|'bf16': the dtype of weights and activations inside engines;
    inputs and outputs keep MXNet's dtypes and are cast at the engine boundary), `runtime`
    ('auto'|'tensorrt'|'reference'), `min_subgraph_size`, `exclude_ops`, `exclude_nodes`, `dtypes`. Bind the result
    exactly like the original.
    """
    _known_options(options)
    c = convert(sym, params, shapes, **options)
    return c.symbol, c.params


def _known_options(options: Mapping[str, Any]) -> None:
    """A misspelt option is an error, not a TypeError from deep inside."""
    known = [n for n, p in inspect.signature(convert).parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(f"unknown option(s) {unknown}; the options are {known}")


def explain(
    sym: Any,
    shapes: Mapping[str, Iterable[int]],
    params: Mapping[str, Any] | None = None,
    *,
    min_subgraph_size: int = 1,
    exclude_ops: Iterable[str] = (),
    exclude_nodes: Iterable[str] = (),
    dtypes: Mapping[str, Any] | None = None,
) -> Report:
    """Where each node would run and why, without building anything; arguments not in `shapes` count as weights."""
    inputs.symbol(sym)
    shapes = inputs.shapes(shapes)
    dtypes = inputs.dtypes(dtypes, shapes)
    if params is None:
        names = sym.list_arguments() + sym.list_auxiliary_states()
        for name in shapes:
            if name not in names:
                raise InputError(f"shapes: '{name}' is not an input of the symbol")
        arg_shapes, _, aux_shapes = _mx_call(f"MXNet shape inference failed for shapes {shapes}",
                                             sym.infer_shape_partial, **shapes)
        params = {
            n: _Placeholder(tuple(s or ()))
            for n, s in zip(names, (arg_shapes or []) + (aux_shapes or []))
            if n not in shapes
        }
    params = inputs.params(sym, params)
    options = _options(sym, min_subgraph_size, exclude_ops, exclude_nodes)
    folded = fold_constants(sym, params, shapes)
    graph = Graph.from_symbol(folded.symbol, folded.params, shapes, dtypes)
    t0 = time.perf_counter()
    part = partition(graph, options)
    rep = make_report(part)
    rep.partition_s = time.perf_counter() - t0
    rep.folded = folded.nodes
    return rep


def optimize_block(block: Any, shapes: Mapping[str, Iterable[int]], **options: Any) -> Any:
    """Optimize a Gluon HybridBlock for `shapes` ({input name: shape}, in call order); returns a SymbolBlock."""
    from mxnet import gluon

    if not isinstance(block, gluon.HybridBlock):
        raise InputError(f"optimize_block needs a gluon.HybridBlock, got {type(block).__name__}")
    _known_options(options)
    shapes = inputs.shapes(shapes)
    if any(p._deferred_init for p in block.collect_params().values()):
        block(*[mx.nd.zeros(tuple(s)) for s in shapes.values()])  # finish Gluon's deferred initialisation
    out = block(*[mx.sym.var(name) for name in shapes])
    sym = out if isinstance(out, mx.sym.Symbol) else mx.sym.Group(list(out))
    params = {p.name: p.data() for p in block.collect_params().values()}
    new_sym, new_params = optimize(sym, params, shapes, **options)
    net = gluon.SymbolBlock(new_sym, [mx.sym.var(n) for n in shapes])
    for name, p in net.collect_params().items():
        if name not in new_params:
            raise InputError(f"optimize_block: parameter '{name}' of the optimized graph has no value")
        p.shape = new_params[name].shape
        p.initialize(ctx=new_params[name].context)
        p.set_data(new_params[name])
    return net
