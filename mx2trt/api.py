"""Public entry points: optimize / convert / explain a Symbol, and optimize a Gluon HybridBlock."""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from . import converters  # noqa: F401  (registers the converter library)
from . import _trt, inputs, profiles
from ._mx import canonical_op, mx
from .build import build_engine, build_env, define_network, engine_key, engine_spec, reference_program
from .cache import EngineCache, search
from .context import PRECISIONS
from .engine import EngineSpec
from .errors import BuildError, ConversionError, InputError
from .fold import fold_constants
from .graph import Entry, Graph, _mx_call
from .overflow import named_islands, overflow_islands
from .partition import Partition, PartitionOptions, Subgraph, partition
from .progress import BuildProgress
from .quant import FALLBACKS, QUANT_DTYPES, NodeQuant, is_quantized_graph
from .quant import plan as plan_quant
from .progress import mode as progress_mode
from .registry import REGISTRY, Registry
from .report import Report, make_report
from .rewrite import rewrite
from .runtime import RUNTIMES, register_engine, resolve_runtime
from .source import HostWeights, SubgraphSource

log = logging.getLogger("mx2trt")


@dataclass
class Conversion:
    """Result of `convert`: the rewritten symbol, the params MXNet still needs, the report and the engines."""

    symbol: Any
    params: dict[str, Any]
    report: Report
    engines: list[EngineSpec]
    partition: Partition
    fp32_nodes: frozenset[int] = frozenset()  # node ids kept in float32 inside fp16/bf16 engines (report: why)
    quant: Mapping[int, NodeQuant] = field(default_factory=dict)  # node ids quantized to int8/fp8, with their ranges
    float_precision: str = "fp32"  # of the engines' float layers: `precision`, or int8_fallback when quantized


PHASES = ("fold", "graph", "partition", "define", "key", "build", "reference_program", "rewrite")


class _Clock:
    """Seconds `convert` spends per phase (Report.timings); phases may be entered many times."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - t0


@dataclass
class _Prepared:
    """A subgraph ready to become an engine: its source and key, and its defined network or its cached engine."""

    source: SubgraphSource
    key: str
    network: Any = None  # build.NetworkBuild, unless the cache had the engine
    cached: EngineSpec | None = None


@dataclass(frozen=True)
class _Placeholder:
    """Stands in for a parameter whose value is not needed (explain without params)."""

    shape: tuple[int, ...]
    dtype: Any = np.float32
    _mx2trt_placeholder = True


def _check_options(precision: str, runtime: str) -> None:
    if precision not in PRECISIONS and precision not in QUANT_DTYPES:
        raise InputError(f"precision must be one of {sorted(PRECISIONS) + sorted(QUANT_DTYPES)}, not {precision!r}")
    if precision == "fp8" and not hasattr(_trt.trt, "fp8"):
        raise InputError(f"precision 'fp8' needs a TensorRT with FP8; {_trt.FLAVOR} {_trt.VERSION} has none")
    if precision == "bf16" and not hasattr(_trt.trt, "bfloat16"):
        raise InputError(f"precision 'bf16' needs a TensorRT with bfloat16; {_trt.FLAVOR} {_trt.VERSION} has none")
    if runtime not in RUNTIMES:
        raise InputError(f"runtime must be one of {list(RUNTIMES)}, not {runtime!r}")


FLOAT64 = ("refuse", "float32")


def _check_float64(value: Any) -> None:
    if value not in FLOAT64:
        raise InputError(f"float64 must be one of {list(FLOAT64)} (TensorRT has no float64: 'float32' computes it in "
                         f"float32, 'refuse' leaves it in MXNet), not {value!r}")


def _mark_float64(graph: Graph, part: Any) -> None:
    """Give converted nodes that read or produce a tensor MXNet holds in float64 (float64='float32') that reason."""
    for n in graph.nodes:
        place = part.placements.get(n.id)
        if place is not None and place.where != "mxnet" and (
                any(e in graph.float64 for e in n.inputs)
                or any(Entry(n.id, k) in graph.float64 for k in range(n.num_outputs))):
            place.reason = "converted; its float64 computed in float32 (float64='float32')"


def _options(sym: Any, min_subgraph_size: Any, exclude_ops: Any, exclude_nodes: Any) -> PartitionOptions:
    """The partitioner's options; a node name no op node of `sym` has, or a name that is no MXNet op, is a typo.
    Op aliases ('flatten') become the names MXNet writes into graphs ('Flatten')."""
    ops, nodes = _exclusions(sym, "exclude_ops", exclude_ops, "exclude_nodes", exclude_nodes)
    return PartitionOptions.make(min_subgraph_size, ops, nodes)


def _exclusions(
    sym: Any, ops_name: str, ops: Any, nodes_name: str, nodes: Any
) -> tuple[frozenset[str], frozenset[str]]:
    """(MXNet op names, op node names) of an exclude_ops/exclude_nodes pair of options, checked against `sym`."""
    ops, nodes = inputs.names(ops_name, ops), inputs.names(nodes_name, nodes)
    names = {n["name"] for n in json.loads(sym.tojson())["nodes"] if n["op"] != "null"} if nodes else set()
    unknown = sorted(nodes - names)
    if unknown:
        raise InputError(f"{nodes_name}: no op node is named {unknown}")
    unknown = sorted(ops - set(mx.operator.get_all_registered_operators())) if ops else []
    if unknown:
        raise InputError(f"{ops_name}: {unknown} {'is not an MXNet op' if len(unknown) == 1 else 'are not MXNet ops'}")
    return frozenset(canonical_op(op) for op in ops), frozenset(nodes)


@dataclass(frozen=True)
class _QuantOptions:
    table: Any  # calibration.CalibrationTable, or None for a graph MXNet already quantized
    exclude_ops: frozenset[str]
    exclude_nodes: frozenset[str]


def _quant_options(
    sym: Any, params: Mapping[str, Any], precision: str, calibration: Any, fallback: Any, exclude_ops: Any,
    exclude_nodes: Any,
) -> _QuantOptions | None:
    """The checked quantization options of precision 'int8'/'fp8' (None for float precisions)."""
    if precision not in QUANT_DTYPES:
        given = [name for name, v, unset in (("calibration", calibration, None), ("int8_fallback", fallback, "fp16"),
                                              ("exclude_quant_ops", exclude_ops, ()),
                                              ("exclude_quant_nodes", exclude_nodes, ())) if v != unset]
        if given:
            raise InputError(f"{given[0]} is for precision 'int8' or 'fp8', not {precision!r}")
        return None
    if fallback not in FALLBACKS:
        raise InputError(f"int8_fallback must be one of {list(FALLBACKS)}, not {fallback!r}")
    ops, nodes = _exclusions(sym, "exclude_quant_ops", exclude_ops, "exclude_quant_nodes", exclude_nodes)
    if calibration is None:
        if precision != "int8" or not is_quantized_graph(sym):
            raise InputError(f"precision {precision!r} needs a calibration table (mx2trt.calibrate)"
                             + (", unless the graph was already quantized to int8 by MXNet" if precision == "int8"
                                else ""))
        return _QuantOptions(None, ops, nodes)
    from .calibration import CalibrationTable

    table = calibration if isinstance(calibration, CalibrationTable) else CalibrationTable.load(
        inputs.path("calibration", calibration))
    table.check(sym, params)
    if precision == "fp8" and table.method in ("entropy", "mse"):
        log.warning("mx2trt: the calibration table's %s ranges are chosen for int8's 127 levels, not fp8's",
                    table.method)
    return _QuantOptions(table, ops, nodes)


def _plan_quant(
    graph: Graph, registry: Registry, dtype: str, opts: _QuantOptions
) -> tuple[dict[int, NodeQuant], dict[int, str]]:
    """The nodes quantized to `dtype`, and why the other quantizable ones are not: every node whose op takes Q/DQ
    (its converter's `quantize`), its computed inputs' ranges taken from the calibration table."""
    candidates = []
    for n in graph.op_nodes:
        spec = registry.get(n.op)
        if spec is None or not spec.quantize:
            continue
        tensors = {k: graph.entry_name(n.inputs[k]) for k in spec.quantize
                   if k < len(n.inputs) and graph.nodes[n.inputs[k].node].kind not in ("param", "aux")}
        candidates.append((n.id, n.op, n.name, tensors))
    return plan_quant(candidates, opts.table, dtype, opts.exclude_ops, opts.exclude_nodes)


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
    calibration: Any = None,
    int8_fallback: str = "fp16",
    exclude_quant_ops: Iterable[str] = (),
    exclude_quant_nodes: Iterable[str] = (),
    fp32_ops: Iterable[str] = (),
    fp32_nodes: Iterable[str] = (),
    overflow_guard: bool = True,
    float64: str = "refuse",
    build_engines: bool = True,
    cache: bool = True,
    cache_dir: Any = None,
    progress: bool | None = None,
    registry: Registry | None = None,
) -> Conversion:
    """Partition `sym`, build one TensorRT engine per subgraph (or load it from the cache) and rewrite the graph;
    see `optimize`. `registry`: the converters to use (default: mx2trt's own, REGISTRY)."""
    inputs.symbol(sym)
    _check_options(precision, runtime)
    inputs.flag("build_engines", build_engines)
    inputs.flag("cache", cache)
    if cache_dir is not None:
        inputs.path("cache_dir", cache_dir)
    progress_mode(progress)  # the option is checked before any work
    params = inputs.params(sym, params)
    qopts = _quant_options(sym, params, precision, calibration, int8_fallback, exclude_quant_ops, exclude_quant_nodes)
    label, precision = precision, (int8_fallback if precision in QUANT_DTYPES else precision)
    island_opts = _island_options(sym, precision, fp32_ops, fp32_nodes, overflow_guard)
    _check_float64(float64)
    ranges = profiles.parse(shapes)
    shapes = ranges.opt
    dtypes = inputs.dtypes(dtypes, shapes)
    options = _options(sym, min_subgraph_size, exclude_ops, exclude_nodes)
    if registry is not None and not isinstance(registry, Registry):
        raise InputError(f"registry must be an mx2trt Registry, not {type(registry).__name__}")
    registry = REGISTRY if registry is None else registry
    clock = _Clock()
    t0 = time.perf_counter()
    with clock("fold"):
        folded = fold_constants(sym, params, ranges.points(), dtypes)
    sym, params = folded.symbol, folded.params
    with clock("graph"):
        graph = Graph.with_profiles(sym, params, ranges, dtypes, folded.json)
        if float64 == "float32":
            graph.float64_as_float32()
    engine_cache = engine_cache_for(cache, cache_dir) if build_engines else None
    env, weights = build_env(), HostWeights(params)
    quant, float_reasons = _plan_quant(graph, registry, label, qopts) if qopts is not None else ({}, {})
    islands = _islands(graph, island_opts, quant, precision) if precision != "fp32" else {}

    def prepare(sg: Subgraph, fp32: frozenset[int]) -> _Prepared:
        with clock("key"):
            source = SubgraphSource.of(graph, sg, params, precision, fp32, quant)
            key = engine_key(source, env, weights, registry)
            hit = engine_cache.load(key, env) if engine_cache is not None else None
        return _Prepared(source, key, cached=hit)

    part, defined, fp32_nodes = _define_all(graph, options, weights, precision, prepare, registry, clock, quant,
                                            islands)
    for nid in fp32_nodes & set(part.placements):
        if part.placements[nid].where != "mxnet":
            why = islands.get(nid, "exact indices")
            part.placements[nid].reason = f"converted; runs in float32 inside the {precision} engine ({why})"
    for nid, place in part.placements.items():
        if place.where != "mxnet" and nid in quant:
            place.reason = f"converted; {quant[nid].dtype} (Q/DQ on its input and weights, {precision} around it)"
        elif place.where != "mxnet" and nid in float_reasons:
            place.reason = f"converted; {float_reasons[nid]}"
    _mark_float64(graph, part)
    # fold, graph and partition (with any retries); the engines' own network definition is reported per engine
    t_part = time.perf_counter() - t0 - sum(p.network.define_s for _, p in defined if p.network is not None)
    needs_program = resolve_runtime(runtime) == "reference" or not build_engines
    built: list[tuple[Any, EngineSpec]] = []
    by_key: dict[str, EngineSpec] = {}
    bar = BuildProgress(progress, len({p.key for _, p in defined if p.cached is None}) if build_engines else 0)
    try:
        while defined:  # popped as built, so one network's weights are alive at a time
            sg, prep = defined.pop(0)
            try:
                tag = label if any(n in quant for n in sg.nodes) else precision
                spec = by_key.get(prep.key) or _engine(part, sg, prep, tag, build_engines, needs_program,
                                                        engine_cache, env, bar, clock)
            except (ConversionError, BuildError) as exc:
                log.warning("subgraph %d (%d nodes) falls back to MXNet: %s", sg.id, len(sg.nodes), exc)
                part.drop(sg, f"fell back to MXNet: {exc}")
                continue
            by_key[prep.key] = spec
            built.append((sg, register_engine(spec)))
    finally:
        bar.close()
    with clock("rewrite"):
        new_sym = rewrite(graph, built, runtime) if built else sym
        still = set(new_sym.list_arguments()) | set(new_sym.list_auxiliary_states())
        new_params = inputs.as_ndarrays({k: v for k, v in params.items() if k in still})
    report = make_report(part, {sg.id: spec for sg, spec in built})
    report.partition_s = t_part
    report.timings = {**clock.seconds, "total": time.perf_counter() - t0}
    report.folded = folded.nodes
    log.info("mx2trt: %s", report.summary())
    return Conversion(new_sym, new_params, report, [s for _, s in built], part, fp32_nodes, quant, precision)


def engine_cache_for(cache: bool, cache_dir: Any) -> EngineCache | None:
    """The engine cache `optimize` uses: `cache_dir`, else MX2TRT_CACHE_DIR, else the user's cache directory; none
    with cache=False or MX2TRT_CACHE=0."""
    if not cache or (cache_dir is None and os.environ.get("MX2TRT_CACHE", "1") == "0"):
        return None
    engine_cache = EngineCache(inputs.path("cache_dir", cache_dir) if cache_dir is not None else None)
    search(engine_cache)
    return engine_cache


def _engine(
    part: Partition, sg: Subgraph, prep: _Prepared, precision: str, build_engines: bool, needs_program: bool,
    engine_cache: EngineCache | None, env: dict[str, Any], bar: BuildProgress, clock: _Clock,
) -> EngineSpec:
    """The engine of one prepared subgraph: from the cache, or built (and cached) from its network."""
    spec = engine_spec(part, sg, prep.key, prep.network, precision, prep.source)
    found = prep.cached
    if found is None and build_engines:
        with engine_cache.lock(prep.key) if engine_cache is not None else contextlib.nullcontext():
            found = engine_cache.load(prep.key, env) if engine_cache is not None else None  # built meanwhile?
            if found is None:
                with clock("build"):
                    spec.plan, spec.build_s = build_engine(prep.network, bar.monitor(spec.name))
                bar.finished()
                with clock("reference_program"):
                    program = reference_program(prep.network.network, prep.network.ctx.host_weights, needs_program)
                spec.stats["reference_program"] = program is not None
                spec.program = program if needs_program else None  # the TensorRT runtime does not need its weights
                # The source (for save and rebuilds) is read back from the entry when needed; without an entry it
                # is not kept, since holding it would keep the model's weights alive as long as the engine.
                if engine_cache is not None and engine_cache.store(spec, env, prep.source):
                    spec.source = engine_cache.reader(prep.key)
                return spec
    if found is None:  # build_engines=False: the network's program is the engine
        with clock("reference_program"):
            spec.program = reference_program(prep.network.network, prep.network.ctx.host_weights, True)
        return spec
    spec.plan, spec.num_layers, spec.origin, spec.source = found.plan, found.num_layers, "cache", found.source
    spec.define_s, spec.build_s, spec.stats = found.define_s, found.build_s, dict(found.stats)
    if needs_program and not spec.stats.get("reference_program"):
        with clock("reference_program"):
            spec.program = spec.reference_program()  # the cached engine was never evaluated here: prove it now
    return spec


@dataclass(frozen=True)
class _IslandOptions:
    ops: frozenset[str]
    nodes: frozenset[str]
    guard: bool


def _island_options(sym: Any, precision: str, ops: Any, nodes: Any, guard: Any) -> _IslandOptions:
    """The checked fp32_ops/fp32_nodes/overflow_guard options (`precision`: that of the engines' float layers)."""
    guard = inputs.flag("overflow_guard", guard)
    ops, nodes = _exclusions(sym, "fp32_ops", ops, "fp32_nodes", nodes)
    if (ops or nodes) and precision == "fp32":
        raise InputError(f"{'fp32_ops' if ops else 'fp32_nodes'} is for fp16/bf16 engines (precision 'fp16' or "
                         "'bf16', or int8/fp8 with int8_fallback 'fp16'); these engines are float32 throughout")
    return _IslandOptions(ops, nodes, guard)


def _islands(graph: Graph, opts: _IslandOptions, quant: Mapping[int, NodeQuant], precision: str) -> dict[int, str]:
    """Node id -> why it runs in float32 inside the fp16/bf16 engines: the user's fp32_ops/fp32_nodes, and with
    overflow_guard in fp16 engines the computations known to overflow fp16 (bf16 has float32's range); quantized
    nodes keep their Q/DQ."""
    why = overflow_islands(graph) if opts.guard and precision == "fp16" else {}
    why.update(named_islands(graph, opts.ops, opts.nodes))
    return {nid: w for nid, w in why.items() if nid not in quant}


def _define_all(
    graph: Graph, options: PartitionOptions, params: Mapping[str, Any], precision: str,
    prepare: Callable[[Subgraph, frozenset[int]], _Prepared], registry: Registry, clock: _Clock,
    quant: Mapping[int, NodeQuant], islands: dict[int, str] | None = None,
) -> tuple[Partition, list[tuple[Subgraph, _Prepared]], frozenset[int]]:
    """Partition and define every subgraph's network, unless `prepare` finds its engine in the cache; returns the
    partition, (subgraph, prepared) pairs and the nodes that run in float32 inside an fp16/bf16 engine.

    A node whose converter fails stays in MXNet with the reason and the graph is partitioned again without it (its
    neighbours keep their engines); a failure no single node owns sends its whole subgraph back to MXNet. A node that
    would be right in float32 (indices or lengths an fp16/bf16 engine would round) runs in float32 instead, with the
    nodes computing those inputs, as do the `islands` from the start (node id -> why; the promoted nodes are added
    with the converter's reason). Networks of subgraphs that come back unchanged are reused."""
    refused: dict[int, str] = {}
    islands = {} if islands is None else islands
    fp32_nodes: set[int] = set(islands)
    networks: dict[tuple[frozenset[int], frozenset[int]], _Prepared] = {}
    while True:
        with clock("partition"):
            part = partition(graph, options, registry, refused=refused)
        keys = {sg.id: (frozenset(sg.nodes), frozenset(fp32_nodes & set(sg.nodes))) for sg in part.subgraphs}
        networks = {k: v for k, v in networks.items() if k in keys.values()}  # drop networks of subgraphs gone
        defined, retry = [], False
        for sg in list(part.subgraphs):
            key = keys[sg.id]
            try:
                prep = networks.get(key) or prepare(sg, key[1])
                if prep.cached is None and prep.network is None:
                    with clock("define"):
                        prep.network = define_network(part, sg, params, precision, registry=registry, fp32_nodes=key[1],
                                                      quant=quant)
            except ConversionError as exc:
                if exc.node_id is None:  # final: this subgraph leaves; the partition need not change
                    log.warning("subgraph %d (%d nodes) falls back to MXNet: %s", sg.id, len(sg.nodes), exc)
                    part.drop(sg, f"fell back to MXNet: {exc}")
                elif exc.needs_fp32 and precision != "fp32" and exc.node_id not in fp32_nodes:
                    promoted = _computing(graph, sg, exc, registry)
                    log.info("%s runs in float32 inside the %s engine, with %d node(s) computing its inputs: %s",
                             graph.nodes[exc.node_id].name, precision, len(promoted) - 1, exc)
                    fp32_nodes |= promoted
                    failing = graph.nodes[exc.node_id].name
                    for nid in promoted:
                        islands.setdefault(nid, str(exc).split(": ", 1)[-1] if nid == exc.node_id
                                           else f"computes an input {failing} needs exact")
                    retry = True
                else:
                    log.warning("%s stays in MXNet: %s", graph.nodes[exc.node_id].name, exc)
                    refused[exc.node_id] = f"fell back to MXNet: {exc}"
                    retry = True
                continue
            networks[key] = prep
            defined.append((sg, prep))
        if not retry:
            return part, defined, frozenset(fp32_nodes)


def _computing(graph: Graph, sg: Any, exc: ConversionError, registry: Registry) -> set[int]:
    """The failing node and every node of its subgraph its `exact_inputs` are computed from (through the inputs
    values flow from: zeros_like's come from nowhere, slice_like's from its first input alone)."""
    members, node = set(sg.nodes), graph.nodes[exc.node_id]
    out = {exc.node_id}
    stack = [node.inputs[k].node for k in exc.exact_inputs if k < len(node.inputs)]
    while stack:
        nid = stack.pop()
        if nid in members and nid not in out:
            out.add(nid)
            spec = registry.get(graph.nodes[nid].op)
            stack.extend(e.node for e in (spec.values_from(graph.nodes[nid].inputs) if spec is not None else []))
    return out


def optimize(
    sym: Any,
    params: Mapping[str, Any],
    shapes: Mapping[str, Iterable[int]],
    **options: Any,
) -> tuple[Any, dict[str, Any]]:
    """Replace every TensorRT-convertible region of `sym` by one engine node; returns (symbol, params).

    `params` holds arg params and aux states (plain names or `arg:`/`aux:` prefixed); `shapes` gives every data
    input's shape. Options: `precision` ('fp32'|'fp16'|'bf16': the dtype of weights and activations inside engines;
    inputs and outputs keep MXNet's dtypes and are cast at the engine boundary; 'int8'|'fp8': convolutions, FCs and
    matrix products quantized with Q/DQ from `calibration`, a table from `mx2trt.calibrate` or its JSON file, the
    rest in `int8_fallback` ('fp16' or 'fp32'), except ops/nodes in `exclude_quant_ops`/`exclude_quant_nodes`),
    `fp32_ops`/`fp32_nodes` (ops/nodes that run in float32 inside fp16/bf16 engines), `overflow_guard` (default True:
    so do attention energies before a softmax, exp in box decoding and norms' sums of squares, which overflow fp16),
    `float64` ('refuse', the default: float64 nodes stay in MXNet, since TensorRT has no float64; 'float32': engines
    compute them in float32, cast from and to float64 at the engine node), `runtime`
    ('auto'|'tensorrt'|'reference'), `min_subgraph_size`, `exclude_ops`, `exclude_nodes`, `dtypes`, `cache`
    (default True: engines are loaded from and saved to the on-disk engine cache), `cache_dir`, `progress` (None: a
    bar on a terminal, log lines otherwise; False: quiet), `enabled` (False, or MX2TRT_ENABLE=0: return the model
    unchanged). Bind the result exactly like the original.
    """
    _known_options(options)
    if not _enabled(options.pop("enabled", None)):
        return sym, dict(params)
    c = convert(sym, params, shapes, **options)
    return c.symbol, c.params


def _enabled(enabled: Any) -> bool:
    """The on/off switch: `enabled=` if given, else MX2TRT_ENABLE (default on); logs when off."""
    if enabled is None:
        raw = os.environ.get("MX2TRT_ENABLE", "1").strip().lower()
        if raw not in ("0", "1", "false", "true", "no", "yes", "off", "on", ""):
            raise InputError(f"MX2TRT_ENABLE must be 0 or 1, not {raw!r}")
        on, why = raw not in ("0", "false", "no", "off"), "MX2TRT_ENABLE=0"
    else:
        on, why = inputs.flag("enabled", enabled), "enabled=False"
    if not on:
        log.warning("mx2trt is disabled (%s): the model runs in MXNet unchanged", why)
    return on


def _known_options(options: Mapping[str, Any]) -> None:
    """A misspelt option is an error, not a TypeError from deep inside."""
    known = [n for n, p in inspect.signature(convert).parameters.items() if p.kind is p.KEYWORD_ONLY] + ["enabled"]
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
    float64: str = "refuse",
) -> Report:
    """Where each node would run and why, without building anything; arguments not in `shapes` count as weights.
    `shapes` takes [min, opt, max] ranges as optimize does (a converter's refusal of a varying dimension shows when
    its network is defined, so only in convert's report)."""
    inputs.symbol(sym)
    _check_float64(float64)
    ranges = profiles.parse(shapes)
    shapes = ranges.opt
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
    folded = fold_constants(sym, params, ranges.points(), dtypes)
    graph = Graph.with_profiles(folded.symbol, folded.params, ranges, dtypes, folded.json)
    if float64 == "float32":
        graph.float64_as_float32()
    t0 = time.perf_counter()
    part = partition(graph, options)
    _mark_float64(graph, part)
    rep = make_report(part)
    rep.partition_s = time.perf_counter() - t0
    rep.folded = folded.nodes
    return rep


def optimize_block(block: Any, shapes: Mapping[str, Iterable[int]], **options: Any) -> Any:
    """Optimize a Gluon HybridBlock for `shapes` ({input name: shape or [min, opt, max]}, in call order); returns a
    SymbolBlock."""
    from mxnet import gluon

    if not isinstance(block, gluon.HybridBlock):
        raise InputError(f"optimize_block needs a gluon.HybridBlock, got {type(block).__name__}")
    _known_options(options)
    if not _enabled(options.pop("enabled", None)):
        return block
    opt = profiles.parse(shapes).opt
    if any(p._deferred_init for p in block.collect_params().values()):
        block(*[mx.nd.zeros(tuple(s)) for s in opt.values()])  # finish Gluon's deferred initialisation
    out = block(*[mx.sym.var(name) for name in opt])
    sym = out if isinstance(out, mx.sym.Symbol) else mx.sym.Group(list(out))
    params = {p.name: p.data() for p in block.collect_params().values()}
    new_sym, new_params = optimize(sym, params, shapes, **options)
    return symbol_block(new_sym, new_params, list(opt))


def symbol_block(sym: Any, params: Mapping[str, Any], input_names: list[str]) -> Any:
    """A Gluon SymbolBlock of `sym` over data inputs `input_names`, its parameters set from `params`."""
    from mxnet import gluon

    net = gluon.SymbolBlock(sym, [mx.sym.var(n) for n in input_names])
    for name, p in net.collect_params().items():
        if name not in params:
            raise InputError(f"parameter '{name}' of the optimized graph has no value")
        p.shape = params[name].shape
        p.initialize(ctx=params[name].context)
        p.set_data(params[name])
    return net
