"""Public entry points: optimize / convert / explain a Symbol, and optimize a Gluon HybridBlock."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from . import converters  # noqa: F401  (registers the converter library)
from ._mx import mx
from .build import EngineSpec, build_engine, define_network, engine_spec, subgraph_key
from .context import PRECISIONS
from .errors import BuildError, ConversionError, InputError
from .fold import fold_constants
from .graph import Graph
from .partition import Partition, PartitionOptions, partition
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


def _check_options(precision: str, runtime: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
    if runtime not in RUNTIMES:
        raise InputError(f"runtime must be one of {list(RUNTIMES)}, not {runtime!r}")


def _check_symbol(sym: Any) -> None:
    if not isinstance(sym, mx.sym.Symbol):
        raise InputError(f"expected an mxnet Symbol, got {type(sym).__name__}")


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
    _check_symbol(sym)
    _check_options(precision, runtime)
    params = {k[4:] if k.startswith(("arg:", "aux:")) else k: v for k, v in params.items()}
    t0 = time.perf_counter()
    folded = fold_constants(sym, params, shapes)
    sym, params = folded.symbol, folded.params
    graph = Graph.from_symbol(sym, params, shapes, dtypes)
    options = PartitionOptions.make(min_subgraph_size, exclude_ops, exclude_nodes)
    part, defined = _define_all(graph, options, params, precision)
    t_part = time.perf_counter() - t0
    needs_program = resolve_runtime(runtime) == "reference" or not build_engines
    built: list[tuple[Any, EngineSpec]] = []
    for sg, nb in defined:
        try:
            spec = engine_spec(part, sg, subgraph_key(graph, sg, params, precision), nb, precision)
            if build_engines:
                spec.plan, spec.build_s = build_engine(nb)
            spec.program = _reference_program(nb.network, nb.ctx.host_weights, required=needs_program)
        except (ConversionError, BuildError) as exc:
            log.warning("subgraph %d (%d nodes) falls back to MXNet: %s", sg.id, len(sg.nodes), exc)
            part.drop(sg, f"fell back to MXNet: {exc}")
            continue
        register_engine(spec)
        built.append((sg, spec))
    new_sym = rewrite(graph, built, runtime) if built else sym
    still = set(new_sym.list_arguments()) | set(new_sym.list_auxiliary_states())
    new_params = {k: v for k, v in params.items() if k in still}
    report = make_report(part, {sg.id: spec for sg, spec in built})
    report.partition_s = t_part
    report.folded = folded.nodes
    log.info("mx2trt: %s", report.summary())
    return Conversion(new_sym, new_params, report, [s for _, s in built], part)


def _define_all(
    graph: Graph, options: PartitionOptions, params: Mapping[str, Any], precision: str
) -> tuple[Partition, list[tuple[Any, Any]]]:
    """Partition and define every subgraph's network. A node whose own converter fails stays in MXNet with the
    reason and the graph is partitioned again without it (its neighbours keep their engines); a failure no single
    node owns sends its whole subgraph back to MXNet."""
    refused: dict[str, str] = {}
    while True:
        part = partition(graph, options, refused=refused)
        defined, retry = [], False
        for sg in list(part.subgraphs):
            try:
                defined.append((sg, define_network(part, sg, params, precision)))
            except ConversionError as exc:
                if exc.node_id is not None:
                    log.warning("%s stays in MXNet: %s", graph.nodes[exc.node_id].name, exc)
                    refused[graph.nodes[exc.node_id].name] = f"fell back to MXNet: {exc}"
                    retry = True
                else:
                    log.warning("subgraph %d (%d nodes) falls back to MXNet: %s", sg.id, len(sg.nodes), exc)
                    part.drop(sg, f"fell back to MXNet: {exc}")
        if not retry:
            return part, defined


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
    c = convert(sym, params, shapes, **options)
    return c.symbol, c.params


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
    _check_symbol(sym)
    if params is None:
        arg_shapes, _, aux_shapes = sym.infer_shape_partial(**{k: tuple(v) for k, v in shapes.items()})
        names = sym.list_arguments() + sym.list_auxiliary_states()
        params = {
            n: _Placeholder(tuple(s or ()))
            for n, s in zip(names, (arg_shapes or []) + (aux_shapes or []))
            if n not in shapes
        }
    folded = fold_constants(sym, params, shapes)
    graph = Graph.from_symbol(folded.symbol, folded.params, shapes, dtypes)
    t0 = time.perf_counter()
    part = partition(graph, PartitionOptions.make(min_subgraph_size, exclude_ops, exclude_nodes))
    rep = make_report(part)
    rep.partition_s = time.perf_counter() - t0
    rep.folded = folded.nodes
    return rep


def optimize_block(block: Any, shapes: Mapping[str, Iterable[int]], **options: Any) -> Any:
    """Optimize a Gluon HybridBlock for `shapes` ({input name: shape}, in call order); returns a SymbolBlock."""
    from mxnet import gluon

    if not isinstance(block, gluon.HybridBlock):
        raise InputError(f"optimize_block needs a gluon.HybridBlock, got {type(block).__name__}")
    if any(p._deferred_init for p in block.collect_params().values()):
        block(*[mx.nd.zeros(tuple(s)) for s in shapes.values()])  # finish Gluon's deferred initialisation
    inputs = [mx.sym.var(name) for name in shapes]
    out = block(*inputs)
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
