"""Layer-by-layer accuracy debugging: every node's output in mx2trt's engines against MXNet's, and the first divergence.

`compare(sym, params, inputs, precision=...)` runs the model in MXNet (CPU) once, recording every node's outputs (the
internals of the folded graph `convert` partitions). It then defines each engine's network again, one engine at a
time, with the TensorRT tensor of every node output (the exact map from the converters: what each returned) exposed
as a network output, evaluates it on MXNet's own values of the engine's inputs, and compares node by node.

Each engine is compared in isolation: its inputs are MXNet's values, not an upstream engine's, so errors do not
compound across engines and the first divergence in topological order is where mx2trt goes wrong, not where an earlier
error arrives. Inside one engine errors do propagate from layer to layer, as they do in the engine itself.

Where: the NumPy reference interpreter (CPU), or, where TensorRT can execute engines, engines built with those
tensors marked as outputs (marking outputs can keep TensorRT from fusing some layers, so a GPU run measures the
unfused kernels). Either way one network (and one engine) is alive at a time.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np

from . import inputs as checks
from ._mx import mx
from ._trt import np_dtype
from .errors import InputError, Mx2TrtError
from .graph import Entry, Graph, _is_label, unique_op_names
from .partition import MXNET, Partition, Subgraph
from .registry import REGISTRY, Registry

log = logging.getLogger("mx2trt")

# Default tolerance on a node's max relative error, per precision: what the whole-model tests allow
# (tests/test_models.py: fp32 1e-5, fp16 5e-3, bf16 5e-2).
TOLERANCES = {"fp32": 1e-5, "fp16": 5e-3, "bf16": 5e-2, "int8": 1e-1, "fp8": 2e-1}
_SCALE_FLOOR = 1e-6  # a tensor whose values are all below this counts as zero (as tests/harness.py's max_rel_error)


class Row(NamedTuple):
    """One output of one op node: where it ran and how far mx2trt's value is from MXNet's.

    status: 'engine' (converted), 'fp32' (a float32 island inside an fp16/bf16 engine), 'int8'/'fp8' (quantized) or
    'mxnet' (left in MXNet: nothing to compare). max_rel is max |mx2trt - MXNet| over max |MXNet|, over the elements
    MXNet has finite; nonfinite counts the elements where mx2trt has inf/NaN and MXNet a finite value."""

    node: str
    op: str
    output: int
    engine: str | None
    status: str
    shape: tuple[int, ...]
    max_abs: float | None
    max_rel: float | None
    nonfinite: int
    inputs: tuple[str, ...]  # keys of the entries the node reads (rows, or variables)
    reason: str  # why it stays in MXNet or runs in float32; '' for a plain converted node
    key: str  # `node`, or `node:k` for output k of a node with several

    @property
    def compared(self) -> bool:
        return self.max_rel is not None


@dataclass
class DebugReport:
    """Node-by-node errors of mx2trt against MXNet, in topological order; `first_bad` is the first divergence."""

    rows: list[Row]
    precision: str
    tolerance: float
    runtime: str  # 'reference' or 'tensorrt': what evaluated the engines' networks
    engines: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)  # variable name -> 'weight' or 'input'
    folded: list[str] = field(default_factory=list)  # op nodes computed from parameters alone (constants)

    def bad(self, row: Row) -> bool:
        """Whether `row` diverges: relative error above the tolerance, or inf/NaN MXNet does not have."""
        return row.compared and (row.nonfinite > 0 or not row.max_rel <= self.tolerance)

    @property
    def first_bad(self) -> Row | None:
        """The first row in topological order that diverges; None for a clean model."""
        return next((r for r in self.rows if self.bad(r)), None)

    def row(self, key: str) -> Row:
        """The row of `node` or `node:k` (the first, where MXNet names several nodes alike)."""
        for r in self.rows:
            if r.key == key or (r.node == key and r.output == 0):
                return r
        raise KeyError(f"no op node output {key!r} in the report")

    def _describe_input(self, key: str, consumer: Row) -> str:
        kind = self.variables.get(key)
        if kind is not None:
            return f"{key}: {'weight' if kind == 'weight' else 'model input, exact'}"
        try:
            r = self.row(key)
        except KeyError:
            return f"{key}: ?"
        if not r.compared:
            return f"{r.key} ({r.op}): in MXNet, fed to {consumer.engine} as MXNet's value"
        text = f"{r.key} ({r.op}): rel err {r.max_rel:.3g}" + (f", {r.nonfinite} inf/NaN" if r.nonfinite else "")
        return text + (f" (engine {r.engine}; fed to {consumer.engine} as MXNet's value)"
                       if r.engine != consumer.engine else "")

    def divergence(self) -> str:
        """One paragraph naming the first divergent node and its inputs' errors (so the jump shows); or 'clean'."""
        r = self.first_bad
        if r is None:
            n = sum(x.compared for x in self.rows)
            return f"no divergence: all {n} compared node output(s) within rel err {self.tolerance:g}"
        island = {"fp32": ", float32 island", "int8": ", int8", "fp8": ", fp8"}.get(r.status, "")
        why = (f"{r.nonfinite} inf/NaN value(s) where MXNet is finite" if r.nonfinite
               else f"rel err {r.max_rel:.3g} > tol {self.tolerance:g} (max abs {r.max_abs:.3g})")
        ins = "; ".join(self._describe_input(k, r) for k in r.inputs) or "none"
        return f"first divergence at node {r.key} (op {r.op}, engine {r.engine}{island}): {why}\n  its inputs: {ins}"

    def __str__(self) -> str:
        first = self.first_bad
        w = max([4] + [len(r.key) for r in self.rows])
        ow = max([2] + [len(r.op) for r in self.rows])
        head = f"{'where':<14} {'shape':<18} {'max abs':>9} {'max rel':>9} {'inf/nan':>7}"
        lines = [f"{'node':<{w}}  {'op':<{ow}}  {head}"]
        for r in self.rows:
            where = (r.engine or "mxnet") + (f"/{r.status}" if r.status in ("fp32", "int8", "fp8") else "")
            if r.compared:
                nums = f"{r.max_abs:>9.2e} {r.max_rel:>9.2e} {r.nonfinite:>7}"
            else:
                nums = f"{'-':>9} {'-':>9} {'-':>7}"
            mark = "  <- first divergence" if r is first else ("  !" if self.bad(r) else "")
            lines.append(f"{r.key:<{w}}  {r.op:<{ow}}  {where:<14} {str(r.shape):<18} {nums}{mark}")
        lines.append("")
        lines.append(self.summary())
        lines.append(self.divergence())
        return "\n".join(lines)

    def summary(self) -> str:
        n = sum(r.compared for r in self.rows)
        bad = sum(self.bad(r) for r in self.rows)
        return (f"{self.precision}, {self.runtime} runtime: {n} node output(s) compared in {len(self.engines)} "
                f"engine(s), each fed MXNet's values of its inputs; {bad} above rel err {self.tolerance:g} or "
                f"with inf/NaN; {len(self.rows) - n} in MXNet"
                + (f"; {len(self.folded)} folded into constants" if self.folded else ""))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready): the rows, the tolerance and the first divergence."""
        first = self.first_bad
        return {"precision": self.precision, "tolerance": self.tolerance, "runtime": self.runtime,
                "engines": self.engines, "folded": self.folded, "variables": self.variables,
                "rows": [_row_dict(r, self.bad(r)) for r in self.rows],
                "first_bad": _row_dict(first, True) if first is not None else None,
                "divergence": self.divergence(), "summary": self.summary()}

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def plot(self, path: Any) -> None:
        """Write a PNG of each compared node's max relative error along the graph (log scale), the tolerance and
        the first divergence marked; needs matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise Mx2TrtError("plot needs matplotlib: pip install 'matplotlib>=3.7,<3.10'") from None
        rows = [r for r in self.rows if r.compared]
        xs = list(range(len(rows)))
        tiny = 1e-12
        ys = [max(r.max_rel, tiny) for r in rows]
        fig, ax = plt.subplots(figsize=(max(6.0, min(24.0, len(rows) * 0.12)), 4.0))
        try:
            ax.plot(xs, ys, ".-", lw=0.8, ms=3, label="max rel err")
            ax.axhline(self.tolerance, color="tab:orange", ls="--", lw=1, label=f"tolerance {self.tolerance:g}")
            nonfinite = [x for x, r in zip(xs, rows) if r.nonfinite]
            if nonfinite:
                top = max(ys + [self.tolerance]) * 10
                ax.scatter(nonfinite, [top] * len(nonfinite), marker="x", color="red", label="inf/NaN", zorder=3)
            first = self.first_bad
            if first is not None and first in rows:
                x = rows.index(first)
                ax.axvline(x, color="red", lw=1)
                ax.annotate(f"first divergence: {first.key} ({first.op})", (x, ys[x]), xytext=(5, 5),
                            textcoords="offset points", color="red", fontsize=8)
            for x in range(1, len(rows)):  # engine boundaries
                if rows[x].engine != rows[x - 1].engine:
                    ax.axvline(x - 0.5, color="grey", lw=0.5, ls=":")
            ax.set_yscale("log")
            if len(rows) <= 40:  # few enough to name every node
                ax.set_xticks(xs, [r.key for r in rows], rotation=60, ha="right", fontsize=7)
            ax.set_xlabel("node output (topological order)")
            ax.set_ylabel("max |mx2trt - MXNet| / max |MXNet|")
            ax.set_title(f"mx2trt vs MXNet, {self.precision} ({self.runtime})")
            ax.legend(fontsize=8, loc="best")
            fig.tight_layout()
            fig.savefig(os.fspath(path), format="png", dpi=100)
        finally:
            plt.close(fig)


def _row_dict(r: Row, bad: bool) -> dict[str, Any]:
    d = r._asdict()
    d["shape"], d["inputs"], d["bad"] = list(r.shape), list(r.inputs), bad
    return d


# ---- inputs ------------------------------------------------------------------------------------------------------


def check_inputs(sym: Any, params: Mapping[str, Any], values: Any,
                 shapes: Mapping[str, Iterable[int]] | None = None) -> dict[str, np.ndarray]:
    """The data inputs as NumPy arrays: every one given (training labels may be left out), no unknown name, and
    each of the shape in `shapes` if given; InputError naming the input otherwise."""
    if not isinstance(values, Mapping):
        raise InputError(f"inputs must be a mapping of input name -> array, got {type(values).__name__}")
    data = [n for n in sym.list_arguments() + sym.list_auxiliary_states() if n not in params]
    out: dict[str, np.ndarray] = {}
    for name, v in values.items():
        if name not in data:
            what = "a parameter (it is in params)" if name in params else "not an input of the symbol"
            raise InputError(f"inputs: '{name}' is {what}; its data inputs are {data}")
        if isinstance(v, mx.nd.NDArray):
            v = v.asnumpy()
        if not isinstance(v, np.ndarray):
            raise InputError(f"inputs: '{name}' must be a numpy array or NDArray, got {type(v).__name__}")
        if v.dtype.kind not in "fiub" or v.ndim == 0:
            raise InputError(f"inputs: '{name}' has dtype {v.dtype} and shape {v.shape}; MXNet needs a numeric "
                             "array of at least one dimension")
        out[name] = v
    missing = [n for n in data if n not in out and not _is_label(n)]
    if missing:
        raise InputError(f"inputs: no value for {missing}: give every data input's array")
    for name, shape in checks.shapes(shapes or {}).items():
        if name not in out:
            raise InputError(f"inputs: '{name}' has a shape but no value")
        if out[name].shape != shape:
            raise InputError(f"inputs: '{name}' has shape {out[name].shape}, not the {shape} given")
    return out


def _mkldnn_check() -> None:
    if os.environ.get("MXNET_MKLDNN_ENABLED") != "0" and mx.runtime.Features().is_enabled("MKLDNN"):
        log.warning("MXNet's side runs with MKLDNN, whose kernels are wrong for some ops: set "
                    "MXNET_MKLDNN_ENABLED=0 in the environment before the process runs MXNet")


# ---- the two sides -----------------------------------------------------------------------------------------------


def _mxnet_values(graph: Graph, params: Mapping[str, Any], data: Mapping[str, np.ndarray]) -> dict[Entry, np.ndarray]:
    """Every op node output of `graph`, computed by MXNet on CPU in one bind of its internals, and the data inputs."""
    unique = unique_op_names(graph.json)  # the internals are picked by position, and bound with unique names
    internals = mx.sym.load_json(json.dumps(unique)).get_internals()
    picked, entries, pos = [], [], 0
    for n, jn in zip(graph.nodes, unique["nodes"]):
        for k in range(n.num_outputs):
            if not n.is_var:
                if internals[pos].name != jn["name"]:
                    raise Mx2TrtError(f"internal: MXNet's internals do not line up at node '{n.name}'")
                picked.append(internals[pos])
                entries.append(Entry(n.id, k))
            pos += 1
    group = mx.sym.Group(picked)

    def nd(v: Any) -> Any:
        return v.as_in_context(mx.cpu()) if isinstance(v, mx.nd.NDArray) else mx.nd.array(v, dtype=v.dtype)

    values = {**params, **data}
    args, aux = group.list_arguments(), group.list_auxiliary_states()
    absent = [n for n in args + aux if n not in values]
    if absent:  # training labels: inference ignores them, but binding needs an array
        arg_sh, _, aux_sh = group.infer_shape_partial(**{k: v.shape for k, v in values.items() if k in args + aux})
        known = dict(zip(args, arg_sh or [])) | dict(zip(aux, aux_sh or []))
        for n in absent:
            values[n] = np.zeros(tuple(known.get(n) or (1,)), np.float32)
    ex = group.bind(mx.cpu(), {n: nd(values[n]) for n in args}, aux_states={n: nd(values[n]) for n in aux},
                    grad_req="null")
    outs = ex.forward(is_train=False)
    got = {e: o.asnumpy() for e, o in zip(entries, outs)}
    got.update((Entry(n.id, 0), data[n.name]) for n in graph.nodes if n.is_var and n.name in data)
    return got


def _recording(base: Registry, part: Partition, sg: Subgraph, seen: dict[int, list[Any]]) -> Registry:
    """A registry of `sg`'s ops whose converters record the tensors they return (by the typed node's id): exactly
    the tensors define_network maps each node output to."""
    reg = Registry()

    def wrap(fn: Any) -> Any:
        def record(ctx: Any, node: Any, ins: list) -> list:
            outs = list(fn(ctx, node, ins))
            seen[id(node)] = outs
            return outs

        return record

    for op in sorted({part.graph.nodes[n].op for n in sg.nodes}):
        spec = base.get(op)
        if spec is None:
            raise Mx2TrtError(f"internal: no converter for op '{op}', which convert placed in an engine")
        reg.register(dataclasses.replace(spec, fn=wrap(spec.fn)))
    return reg


def _expose(nb: Any, part: Partition, sg: Subgraph, seen: dict[int, list[Any]]) -> dict[Entry, str]:
    """Mark the tensor of every node output of `sg` as a network output (float32, int32 as is; cast exactly); returns
    entry -> output or input name. Outputs are out0, out1...: the engine's own first, so its runner takes them."""
    from ._trt import trt

    net, ctx = nb.network, nb.ctx
    names: dict[Any, str] = {}
    for i in range(net.num_inputs):
        names[net.get_input(i)] = net.get_input(i).name
    for k in range(net.num_outputs):
        names[net.get_output(k)] = net.get_output(k).name
    out: dict[Entry, str] = {}
    for nid in sg.nodes:
        tensors = seen[id(part.op_nodes[nid])]
        for k in range(part.graph.nodes[nid].num_outputs):
            t = tensors[k]
            if t not in names:
                shown = t if t.dtype in (trt.float32, trt.int32) else ctx.cast(t, np.float32)
                shown.name = f"out{net.num_outputs}"
                net.mark_output(shown)
                names[t] = shown.name
            out[Entry(nid, k)] = names[t]
    refused = ctx.recorder.take()
    if refused:
        raise Mx2TrtError(f"engine trt_engine{sg.id}: TensorRT refused the debug outputs: {'; '.join(refused)}")
    return out


def _evaluate(nb: Any, feeds: dict[str, np.ndarray], runtime: str, device: int) -> dict[str, np.ndarray]:
    """Every network output (and input) by name, from the reference interpreter or a TensorRT engine."""
    if runtime == "tensorrt":
        got = _run_engine(nb, feeds, device)
    else:
        from .reference import ReferenceProgram

        got = ReferenceProgram.from_network(nb.network, nb.ctx.host_weights).run(feeds)
    return {**feeds, **got}


def _run_engine(nb: Any, feeds: dict[str, np.ndarray], device: int) -> dict[str, np.ndarray]:
    """Build the network into an engine and run it once with TensorRT on GPU `device` (CPU arrays staged)."""
    from .build import build_engine
    from .engine import EngineSpec
    from .trt_runner import TensorRTRunner

    net = nb.network
    ins = [net.get_input(i) for i in range(net.num_inputs)]
    outs = [net.get_output(k) for k in range(net.num_outputs)]
    plan, _ = build_engine(nb)
    spec = EngineSpec(key=f"debug{nb.subgraph.id}", name=f"debug of trt_engine{nb.subgraph.id}", nodes=[],
                      in_shapes=[tuple(t.shape) for t in ins], in_dtypes=[np_dtype(t.dtype).name for t in ins],
                      out_shapes=[tuple(t.shape) for t in outs], out_dtypes=[np_dtype(t.dtype).name for t in outs],
                      precision=nb.ctx.precision, plan=plan)
    runner = TensorRTRunner(spec, device)
    try:
        x = [mx.nd.array(feeds[t.name], dtype=feeds[t.name].dtype) for t in ins]
        # allocated now (mx.nd.empty may defer it): the runner writes into their memory directly
        y = [mx.nd.array(np.zeros(s, d), dtype=d) for s, d in zip(spec.out_shapes, spec.out_dtypes)]
        runner.forward(None, ["write"] * len(y), x, y)
        return {t.name: a.asnumpy() for t, a in zip(outs, y)}
    finally:
        runner.close()


def errors(got: np.ndarray, want: np.ndarray) -> tuple[float, float, int]:
    """(max abs error, max rel error, count of inf/NaN in `got` where `want` is finite) over `want`'s finite
    elements; relative to max |want| (at least 1e-6)."""
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if g.shape != w.shape:
        raise Mx2TrtError(f"internal: mx2trt's value has shape {g.shape}, MXNet's {w.shape}")
    finite = np.isfinite(w)
    ok = finite & np.isfinite(g)
    nonfinite = int(np.count_nonzero(finite & ~np.isfinite(g)))
    if not ok.any():
        return 0.0, 0.0, nonfinite
    max_abs = float(np.abs(g[ok] - w[ok]).max())
    return max_abs, max_abs / max(float(np.abs(w[finite]).max()), _SCALE_FLOOR), nonfinite


# ---- compare -----------------------------------------------------------------------------------------------------


def compare(
    sym: Any,
    params: Mapping[str, Any],
    inputs: Mapping[str, Any],
    *,
    precision: str = "fp32",
    tolerance: float | None = None,
    runtime: str = "auto",
    device: int = 0,
    registry: Registry | None = None,
    min_subgraph_size: int = 1,
    exclude_ops: Iterable[str] = (),
    exclude_nodes: Iterable[str] = (),
    **quantization: Any,
) -> DebugReport:
    """Compare every node output of mx2trt's engines with MXNet's on `inputs` ({data input: array}); see the module.

    `tolerance` on the max relative error defaults by precision (TOLERANCES). `runtime`: 'reference' (the NumPy
    interpreter), 'tensorrt' (engines built with every node output marked, on GPU `device`), or 'auto'. `registry`:
    the converters to partition and define with (default mx2trt's). With precision 'int8'/'fp8', `quantization`
    takes optimize's calibration, int8_fallback, exclude_quant_ops and exclude_quant_nodes; MXNet's float32 values
    are the reference, so the rows show where quantization error enters and grows."""
    from . import api
    from .fold import fold_constants
    from .runtime import resolve_runtime

    checks.symbol(sym)
    params = checks.params(sym, params)
    data = check_inputs(sym, params, inputs)
    if tolerance is None:
        tolerance = TOLERANCES.get(precision, TOLERANCES["fp32"])
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise InputError(f"tolerance must be a number of at least 0, not {tolerance!r}")
    if registry is not None and not isinstance(registry, Registry):
        raise InputError(f"registry must be an mx2trt Registry, not {type(registry).__name__}")
    runtime = resolve_runtime(runtime)
    _mkldnn_check()
    shapes = {k: v.shape for k, v in data.items()}
    dtypes = {k: v.dtype for k, v in data.items()}
    c = api.convert(sym, params, shapes, dtypes=dtypes, precision=precision, runtime="reference",
                    min_subgraph_size=min_subgraph_size, exclude_ops=exclude_ops, exclude_nodes=exclude_nodes,
                    build_engines=False, cache=False, progress=False, registry=registry, **quantization)
    part, graph = c.partition, c.partition.graph
    c.engines.clear()  # their reference programs are not needed: the networks are defined again, one at a time
    folded = fold_constants(sym, params, shapes, dtypes)  # the values of the folded graph's new parameters
    if folded.json["nodes"] != graph.json["nodes"]:
        raise Mx2TrtError("internal: folding the model again gave another graph")
    reference = _mxnet_values(graph, folded.params, data)
    ours: dict[Entry, tuple[float, float, int]] = {}
    for sg in part.subgraphs:
        ours.update(_compare_engine(part, sg, folded.params, c, REGISTRY if registry is None else registry,
                                    reference, runtime, device))
    rows = _rows(part, ours, c.fp32_nodes, c.quant)
    variables = {n.name: ("weight" if n.kind in ("param", "aux") else "input") for n in graph.nodes if n.is_var}
    rep = DebugReport(rows, precision, float(tolerance), runtime, [f"trt_engine{sg.id}" for sg in part.subgraphs],
                      variables, list(c.report.folded))
    log.info("mx2trt debug: %s", rep.divergence().splitlines()[0])
    return rep


def _compare_engine(part: Partition, sg: Subgraph, params: Mapping[str, Any], c: Any, registry: Registry,
                    reference: dict[Entry, np.ndarray], runtime: str, device: int
                    ) -> dict[Entry, tuple[float, float, int]]:
    """Errors of every node output of one engine (of Conversion `c`), fed MXNet's values of its inputs."""
    from .build import define_network

    graph = part.graph
    fp32 = c.fp32_nodes & frozenset(sg.nodes)
    seen: dict[int, list[Any]] = {}
    nb = define_network(part, sg, params, c.float_precision, _recording(registry, part, sg, seen), fp32_nodes=fp32,
                        quant=c.quant)
    exposed = _expose(nb, part, sg, seen)
    feeds = {}
    for i, e in enumerate(sg.inputs):
        feeds[f"in{i}"] = np.ascontiguousarray(reference[e], dtype=graph.dtype(e))
    got = _evaluate(nb, feeds, runtime, device)
    del nb, seen
    return {e: errors(got[name], reference[e]) for e, name in exposed.items()}


def _rows(part: Partition, ours: dict[Entry, tuple[float, float, int]], fp32_nodes: frozenset[int],
          quant: Mapping[int, Any]) -> list[Row]:
    graph = part.graph
    rows = []
    for n in graph.op_nodes:
        p = part.placements[n.id]
        engine = f"trt_engine{p.engine}" if p.where != MXNET and p.engine is not None else None
        status = ("mxnet" if engine is None else quant[n.id].dtype if n.id in quant else "fp32" if n.id in fp32_nodes
                  else "engine")
        ins = tuple(_key(graph, e) for e in n.inputs)
        for k in range(n.num_outputs):
            err = ours.get(Entry(n.id, k))
            rows.append(Row(n.name, n.op, k, engine, status, tuple(n.out_shapes[k]), err[0] if err else None,
                            err[1] if err else None, err[2] if err else 0, ins,
                            "" if status == "engine" else p.reason, _key(graph, Entry(n.id, k))))
    return rows


def _key(graph: Graph, e: Entry) -> str:
    n = graph.nodes[e.node]
    return n.name if n.num_outputs == 1 else f"{n.name}:{e.index}"


__all__ = ["compare", "check_inputs", "errors", "DebugReport", "Row", "TOLERANCES"]
