"""INT8/FP8 calibration: per-tensor ranges (amax) of the computed inputs of quantizable ops, from running the float
model in MXNet over calibration data; scale = amax / 127 (int8) or amax / 448 (fp8) is the consumer's business.

Histograms (methods percentile, entropy, mse) are of |x|. The first batch with a non-zero value sets the bin width
(its max / num_bins); a later batch that exceeds the range adds bins of the same width, and past 32 * num_bins bins
neighbouring bins are merged in pairs (the width doubles, so every old edge stays an edge). At the end, percentile reads
the fine histogram itself (as numpy.percentile would, to within one bin); entropy and mse re-bin it to exactly num_bins
bins over its range by linear interpolation of its cumulative counts (mass is taken as uniform inside each fine bin,
which is never wider than a final bin).
"""
from __future__ import annotations

import json
import logging
import math
import numbers
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import xxhash

from . import inputs
from ._mx import mx
from .errors import InputError, mxnet_message
from .fold import fold_constants
from .graph import Entry, Graph, unique_op_names
from .progress import mode as progress_mode
from .registry import REGISTRY, Registry

log = logging.getLogger("mx2trt")

METHODS = ("max", "percentile", "entropy", "mse")
FORMAT = 1
INT8_LEVELS = 127  # symmetric int8: |q| <= 127
ENTROPY_LEVELS = 128  # quantized levels of |x| in the entropy search (TensorRT's legacy calibrator)
START_BIN = 128  # entropy and mse try amax at every bin edge from this one up
_GROW_LIMIT = 32  # histograms grow to at most this many times num_bins before bins merge in pairs
_FIELDS = ("method", "graph_hash", "amax", "batches", "params", "created_by")


@dataclass(frozen=True)
class CalibrationTable:
    """Calibration result: amax per tensor name (MXNet's internal output name, e.g. 'relu0_output' or 'data').

    An amax of 0.0 means the tensor was zero on every batch; the consumer decides what scale that gets."""

    method: str
    graph_hash: str
    amax: dict[str, float]
    batches: int
    params: dict[str, Any] = field(default_factory=dict)
    created_by: str = "mx2trt"
    weights_hash: str = ""  # of the weights calibrated with ('' in tables that did not record them)

    def amax_of(self, name: str) -> float | None:
        """The amax of tensor `name`, or None when it was not calibrated."""
        v = self.amax.get(name)
        return None if v is None else float(v)

    def digest(self) -> str:
        """xxh3_128 hex of graph hash, method and amax (the engine cache key includes it)."""
        canon = json.dumps({"graph_hash": self.graph_hash, "method": self.method,
                            "amax": {k: float(v) for k, v in self.amax.items()}}, sort_keys=True)
        return xxhash.xxh3_128(canon.encode()).hexdigest()

    def check(self, sym: Any, params: Mapping[str, Any] | None = None) -> None:
        """Raise InputError unless the table was made for a symbol of the same structure as `sym`; warn when it was
        made with other weights than `params` (another checkpoint of the model: its ranges may no longer fit)."""
        inputs.symbol(sym)
        mine = graph_hash(sym)
        if mine != self.graph_hash:
            raise InputError(f"calibration table was made for another model (graph hash {self.graph_hash}, "
                             f"this model {mine})")
        if params is not None and self.weights_hash and weights_hash(params) != self.weights_hash:
            log.warning("mx2trt: the calibration table was made with other weights of this model (another "
                        "checkpoint?): its ranges may not fit these weights; calibrate again")

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "method": self.method, "graph_hash": self.graph_hash,
                "amax": {k: float(v) for k, v in self.amax.items()}, "batches": int(self.batches),
                "params": dict(self.params), "created_by": self.created_by, "weights_hash": self.weights_hash}

    def save(self, path: Any) -> None:
        """Write the table as JSON (indented, sorted keys)."""
        p = inputs.path("path", path)
        p.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Any) -> "CalibrationTable":
        """Read a table written by `save`; an unreadable or malformed file is an InputError naming it."""
        p = inputs.path("path", path)
        try:
            js = json.loads(Path(p).read_text())
        except OSError as exc:
            raise InputError(f"calibration table {p}: cannot read it ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"calibration table {p}: not valid JSON ({exc})") from None
        return cls.from_json(js, str(p))

    @classmethod
    def from_json(cls, js: Any, where: str = "calibration table") -> "CalibrationTable":
        """A table from its `to_json` form; `where` names the source in errors."""
        if not isinstance(js, dict):
            raise InputError(f"calibration table {where}: expected a JSON object, got {type(js).__name__}")
        if js.get("format") != FORMAT:
            raise InputError(f"calibration table {where}: format {js.get('format')!r} is not {FORMAT} "
                             "(not a calibration table, or written by another mx2trt)")
        missing = [k for k in _FIELDS if k not in js]
        if missing:
            raise InputError(f"calibration table {where}: missing field(s) {missing}")
        amax = js["amax"]
        if js["method"] not in METHODS:
            raise InputError(f"calibration table {where}: unknown method {js['method']!r}")
        if not isinstance(js["graph_hash"], str) or not isinstance(js["created_by"], str):
            raise InputError(f"calibration table {where}: graph_hash and created_by must be strings")
        if not isinstance(amax, dict) or not all(_amax_ok(v) for v in amax.values()):
            raise InputError(f"calibration table {where}: amax must map tensor names to finite numbers >= 0")
        if isinstance(js["batches"], bool) or not isinstance(js["batches"], int) or js["batches"] < 1:
            raise InputError(f"calibration table {where}: batches must be a positive integer")
        if not isinstance(js["params"], dict):
            raise InputError(f"calibration table {where}: params must be an object")
        if not isinstance(js.get("weights_hash", ""), str):
            raise InputError(f"calibration table {where}: weights_hash must be a string")
        return cls(js["method"], js["graph_hash"], {k: float(v) for k, v in amax.items()}, js["batches"],
                   dict(js["params"]), js["created_by"], js.get("weights_hash", ""))


def _amax_ok(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def weights_hash(params: Mapping[str, Any]) -> str:
    """xxh3_128 hex of a model's weights (names, dtypes, shapes and bytes; `arg:`/`aux:` prefixes dropped)."""
    from .source import HostWeights

    plain = {k.split(":", 1)[1] if k.startswith(("arg:", "aux:")) else k: v for k, v in params.items()}
    w = HostWeights(plain)
    return xxhash.xxh3_128(json.dumps({k: w.digest(k) for k in sorted(plain)}).encode()).hexdigest()


def graph_hash(sym: Any) -> str:
    """xxh3_128 hex of a symbol's structure (ops, names, attributes, edges, heads): not its weights, not shapes."""
    js = json.loads(sym.tojson())
    nodes = [{"op": n["op"], "name": n["name"], "attrs": dict(sorted((n.get("attrs", n.get("param")) or {}).items())),
              "inputs": n.get("inputs", [])} for n in js["nodes"]]
    return xxhash.xxh3_128(json.dumps({"nodes": nodes, "heads": js["heads"]}, sort_keys=True).encode()).hexdigest()


# ---- statistics ------------------------------------------------------------------------------------------------------


class _Histogram:
    """Counts of |x| in bins of one width from 0 up; grows as later batches exceed the range (see the module doc)."""

    def __init__(self, num_bins: int) -> None:
        self.num_bins = num_bins
        self.width: float | None = None
        self.counts = np.zeros(0)
        self.pending_zeros = 0  # values seen while every value so far was 0 (no width yet)

    def add(self, a: np.ndarray, m: float) -> None:
        """Add |x| values `a` whose max is `m`."""
        if m == 0.0:
            if self.width is None:
                self.pending_zeros += a.size
            else:
                self.counts[0] += a.size
            return
        if self.width is None:
            self.width = m / self.num_bins
            self.counts = np.zeros(self.num_bins)
            self.counts[0] += self.pending_zeros
        need = self._bins_for(m)
        while need > _GROW_LIMIT * self.num_bins:
            c = self.counts if len(self.counts) % 2 == 0 else np.append(self.counts, 0.0)
            self.counts = c.reshape(-1, 2).sum(axis=1)
            self.width *= 2
            need = self._bins_for(m)
        if need > len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros(need - len(self.counts))])
        idx = (a / np.float32(self.width) if a.dtype == np.float32 else a / self.width).astype(np.int64)
        np.minimum(idx, len(self.counts) - 1, out=idx)
        self.counts += np.bincount(idx, minlength=len(self.counts))

    def _bins_for(self, m: float) -> int:
        n = max(1, math.ceil(m / self.width))
        return n + 1 if n * self.width < m else n

    def fine(self, top: float) -> tuple[np.ndarray, float]:
        """The counts up to the bin holding `top` (the overall max) and their width."""
        return self.counts[: min(len(self.counts), self._bins_for(top))], float(self.width)

    def rebinned(self, top: float) -> tuple[np.ndarray, float]:
        """Exactly num_bins bins over the fine histogram's range, and their width."""
        c, w = self.fine(top)
        if len(c) == self.num_bins:
            return c, w
        edges = np.arange(len(c) + 1) * w
        cum = np.concatenate([[0.0], np.cumsum(c)])
        new = np.interp(np.linspace(0.0, edges[-1], self.num_bins + 1), edges, cum)
        return np.maximum(np.diff(new), 0.0), edges[-1] / self.num_bins


class _Stats:
    """Running statistics of one tensor."""

    def __init__(self, method: str, num_bins: int) -> None:
        self.max = 0.0
        self.hist = _Histogram(num_bins) if method != "max" else None

    def add(self, x: np.ndarray, method: str) -> None:
        a = np.abs(x.astype(np.float32 if x.dtype != np.float64 else np.float64, copy=False)).ravel()
        m = float(a.max()) if a.size else 0.0
        self.max = max(self.max, m)
        if self.hist is not None:
            self.hist.add(a, m)

    def amax(self, method: str, percentile: float) -> float:
        if self.max == 0.0 or method == "max":
            return self.max
        if method == "percentile":
            return percentile_amax(*self.hist.fine(self.max), percentile, self.max)
        counts, width = self.hist.rebinned(self.max)  # its top edge is up to one fine bin above the max
        if method == "entropy":
            return min(entropy_amax(_tamed_zeros(counts), width), self.max)
        return min(mse_amax(counts, width), self.max)


def _tamed_zeros(counts: np.ndarray) -> np.ndarray:
    """The histogram entropy calibration sees: the first bin (ReLU's zeros, often half the tensor) lowered to the
    second's count, as pytorch-quantization does, so that the zero spike does not make heavy clipping look cheap
    (measured on the digits CNN: a ReLU output of max 0.44 clipped at 0.047 with the spike, 0.40 without; MXNet's own
    entropy calibration gives 0.42). Where the second bin is empty (images of few levels) the zeros are kept: without
    mass below it the first non-empty bin would clip everything above it for free."""
    if len(counts) > 1 and counts[1] > 0 and counts[0] > counts[1]:
        counts = counts.copy()
        counts[0] = counts[1]
    return counts


def percentile_amax(counts: np.ndarray, width: float, percentile: float, top: float) -> float:
    """The `percentile` of |x| as numpy.percentile computes it (linear between order statistics), each value taken
    as spread evenly over its bin: so within one bin width of the exact value; 100 gives `top`."""
    if percentile >= 100:
        return float(top)
    cum = np.cumsum(counts)
    h = (cum[-1] - 1) * percentile / 100.0
    k = int(h)

    def value(rank: int) -> float:  # the rank-th smallest value (0-based), spread over its bin
        j = int(np.searchsorted(cum, rank, side="right"))
        before = cum[j - 1] if j else 0.0
        return (j + (rank - before + 0.5) / counts[j]) * width

    lo = value(k)
    v = lo + (h - k) * (value(k + 1) - lo) if k + 1 < cum[-1] else lo
    return float(min(v, top))


def entropy_amax(counts: np.ndarray, width: float, levels: int = ENTROPY_LEVELS, start: int = START_BIN) -> float:
    """The clipping edge i * width (i >= start) minimising KL(P || Q), as TensorRT's legacy entropy calibrator: P is
    the first i bins with every count beyond folded into bin i - 1; Q merges the first i bins into `levels` levels and
    spreads each level's count evenly over its non-empty bins (empty bins stay empty in Q). A bin where P has mass and
    Q none (bin i - 1 empty but outliers beyond) makes KL infinite: that edge is never chosen."""
    c = np.asarray(counts, dtype=np.float64)
    n = len(c)
    if n <= start:
        return n * width
    tail = np.concatenate([np.cumsum(c[::-1])[::-1], [0.0]])  # tail[i] = sum(c[i:])
    total, nonzero = tail[0], c > 0
    best, best_i = np.inf, n
    for i in range(start, n + 1):
        kept = tail[0] - tail[i]
        if kept == 0.0 or (tail[i] > 0 and not nonzero[i - 1]):
            continue  # Q is empty where P is not
        g = np.arange(i) * levels // i
        nz = np.bincount(g, weights=nonzero[:i], minlength=levels)
        sums = np.bincount(g, weights=c[:i], minlength=levels)
        live = nonzero[:i]
        q = sums[g[live]] / nz[g[live]] / kept
        p = c[:i][live] / total
        if tail[i] > 0:
            p[-1] += tail[i] / total  # live[-1] holds (checked above)
        kl = float(np.sum(p * np.log(p / q)))
        if kl < best:
            best, best_i = kl, i
    return best_i * width


def mse_amax(counts: np.ndarray, width: float, levels: int = INT8_LEVELS, start: int = START_BIN) -> float:
    """The bin edge k * width (k >= start) minimising the squared error of symmetric quantisation with scale
    amax / `levels`, summed over the histogram with every value at its bin's centre."""
    c = np.asarray(counts, dtype=np.float64)
    n = len(c)
    if n <= start:
        return n * width
    live = c > 0
    v, cv = ((np.arange(n) + 0.5) * width)[live], c[live]
    cands = np.arange(start, n + 1) * width
    step = max(1, (1 << 22) // max(1, len(v)))  # candidates per block: bounds the temporary arrays
    best, best_amax = np.inf, cands[-1]
    for b in range(0, len(cands), step):
        s = cands[b:b + step, None] / levels
        err = ((v - np.minimum(np.rint(v / s), levels) * s) ** 2 * cv).sum(axis=1)
        k = int(np.argmin(err))
        if err[k] < best:
            best, best_amax = float(err[k]), float(cands[b + k])
    return best_amax


# ---- calibration data ------------------------------------------------------------------------------------------------


def _check_options(method: Any, batches: Any, percentile: Any, num_bins: Any) -> None:
    if method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, not {method!r}")
    if batches is not None:
        inputs.positive_int("batches", batches)
    if (isinstance(percentile, bool) or not isinstance(percentile, numbers.Real)
            or not 0 < float(percentile) <= 100):
        raise InputError(f"percentile must be a number in (0, 100], not {percentile!r}")
    inputs.positive_int("num_bins", num_bins)
    if method in ("entropy", "mse") and num_bins < START_BIN:
        raise InputError(f"num_bins must be at least {START_BIN} for method {method!r}, not {num_bins}")


def _check_data(data: Any) -> None:
    if isinstance(data, mx.io.DataIter):
        return
    if isinstance(data, (mx.nd.NDArray, np.ndarray)):
        raise InputError("data is one array, not an iterable of batches: pass [array] for one batch, or "
                         "mx.io.NDArrayIter(array, batch_size=...)")
    if isinstance(data, Mapping):
        raise InputError("data is one dict, not an iterable of batches: pass [dict] for one batch")
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise InputError(f"data must be an mx.io.DataIter, a Gluon DataLoader or an iterable of batches, "
                         f"not {type(data).__name__}")


def _raw_batches(data: Any, names: list[str]) -> Iterator[dict[str, Any]]:
    """Each batch of `data` as {input name: array (not yet checked)}; padding of DataIter batches is dropped."""
    provide = None
    if isinstance(data, mx.io.DataIter):
        data.reset()
        provide = [d[0] for d in data.provide_data]
    for i, item in enumerate(data):
        pad = 0
        if isinstance(item, mx.io.DataBatch):
            own = [d[0] for d in item.provide_data] if item.provide_data else provide
            pad = int(item.pad or 0)
            item = dict(zip(own, item.data)) if own else list(item.data)
        batch = _named(i, item, names)
        if pad:
            batch = {k: v[: v.shape[0] - pad] for k, v in batch.items() if v.shape[0] > pad}
            if len(batch) < len(names):
                continue  # all padding
        yield batch


def _named(i: int, item: Any, names: list[str]) -> dict[str, Any]:
    if isinstance(item, (mx.nd.NDArray, np.ndarray)):
        if len(names) != 1:
            raise InputError(f"calibration batch {i} is one array but the model has {len(names)} data inputs "
                             f"{names}: give a dict or a tuple in that order")
        return {names[0]: item}
    if isinstance(item, Mapping):
        unknown = sorted(str(k) for k in item if k not in names)
        if unknown:
            verb = "is not a data input" if len(unknown) == 1 else "are not data inputs"
            raise InputError(f"calibration batch {i}: {unknown} {verb} of the model (its data inputs: {names})")
        missing = [n for n in names if n not in item]
        if missing:
            raise InputError(f"calibration batch {i} has no {missing} (the model's data inputs: {names})")
        return {n: item[n] for n in names}
    if isinstance(item, (tuple, list)):
        if len(item) < len(names):
            raise InputError(f"calibration batch {i} has {len(item)} item(s) but the model has {len(names)} data "
                             f"inputs {names} (in the order of shapes)")
        return dict(zip(names, item))
    raise InputError(f"calibration batch {i} is a {type(item).__name__}: give an array, a dict "
                     "{input name: array} or a tuple of arrays in the order of shapes")


def _array(i: int, name: str, x: Any, want: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Batch `i`'s value of input `name`, checked against its declared shape (any batch size) and cast to `dtype`."""
    if isinstance(x, mx.nd.NDArray):
        x = x.asnumpy()
    elif not isinstance(x, np.ndarray):
        raise InputError(f"calibration batch {i}: input '{name}' is a {type(x).__name__}, not an NDArray or "
                         "numpy array")
    if x.dtype.kind not in "fiub":
        raise InputError(f"calibration batch {i}: input '{name}' has dtype {x.dtype}, not a numeric dtype "
                         f"(the model takes {dtype})")
    if want and (x.ndim != len(want) or x.shape[1:] != want[1:]):
        expected = "(N" + "".join(f", {d}" for d in want[1:]) + (",)" if len(want) == 1 else ")")
        raise InputError(f"calibration batch {i}: input '{name}' has shape {x.shape}, expected {expected} "
                         f"for any batch size N (shapes['{name}'] = {want})")
    if x.ndim and x.shape[0] == 0:
        raise InputError(f"calibration batch {i}: input '{name}' is empty (shape {x.shape})")
    with np.errstate(over="ignore"):
        out = np.asarray(x, dtype=dtype)
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        cast = f" (as {dtype})" if x.dtype != dtype else ""
        raise InputError(f"calibration batch {i}: input '{name}' contains NaN or Inf{cast}")
    return out


# ---- calibrate -------------------------------------------------------------------------------------------------------


def _targets(graph: Graph, registry: Registry) -> dict[str, Entry]:
    """{tensor name: entry} of every computed input of a quantizable op."""
    out: dict[str, Entry] = {}
    for node in graph.op_nodes:
        spec = registry.get(node.op)
        for k in spec.quantize if spec is not None else ():
            if k >= len(node.inputs) or graph.nodes[node.inputs[k].node].kind in ("param", "aux"):
                continue
            e = node.inputs[k]
            name = graph.entry_name(e)
            if out.setdefault(name, e) != e:
                raise InputError(f"two tensors are named '{name}': calibration tables key tensors by name; "
                                 "give the nodes unique names")
    if not out:
        ops = sorted(op for op in registry if registry.get(op).quantize)
        have = sorted({n.op for n in graph.op_nodes})
        why = (f"quantizable ops: {ops}; the model's ops: {have}; inputs that are parameters take no calibration"
               if ops else "no op in the registry has quantize inputs")
        raise InputError(f"nothing to calibrate: the model has no input of a quantizable op ({why})")
    return out


class _Runner:
    """Evaluates the target tensors with MXNet on CPU; one executor per set of input shapes."""

    def __init__(self, graph: Graph, sym: Any, params: Mapping[str, Any], targets: Mapping[str, Entry]) -> None:
        offsets, k = [], 0
        for n in graph.nodes:
            offsets.append(k)
            k += n.num_outputs
        js = graph.json
        unique = len({n["name"] for n in js["nodes"]}) == len(js["nodes"])
        internals = (sym if unique else mx.sym.load_json(json.dumps(unique_op_names(js)))).get_internals()
        idx = [offsets[e.node] + e.index for e in targets.values()]
        listed = internals.list_outputs()
        if unique and [listed[j] for j in idx] != list(targets):
            raise InputError(f"internal: tensor names {list(targets)} do not match MXNet's {[listed[j] for j in idx]}")
        self.group = mx.sym.Group([internals[j] for j in idx])
        self.names = list(targets)
        needed = set(self.group.list_arguments())
        self.args = inputs.as_ndarrays({k: v for k, v in params.items() if k in needed})
        aux = set(self.group.list_auxiliary_states())
        self.aux = inputs.as_ndarrays({k: v for k, v in params.items() if k in aux})
        self.data = [n for n in self.group.list_arguments() if n not in self.args]
        self.executors: dict[tuple, Any] = {}

    def run(self, i: int, batch: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        missing = [n for n in self.data if n not in batch]
        if missing:
            raise InputError(f"calibration needs a value for {missing}, which is neither a param nor in shapes")
        key = tuple((n, batch[n].shape) for n in self.data)
        try:
            ex = self.executors.get(key)
            if ex is None:
                args = dict(self.args, **{n: mx.nd.zeros(batch[n].shape, dtype=batch[n].dtype) for n in self.data})
                ex = self.executors[key] = self.group.bind(mx.cpu(), args, aux_states=self.aux, grad_req="null")
            for n in self.data:
                ex.arg_dict[n][:] = batch[n]
            return [o.asnumpy() for o in ex.forward(is_train=False)]
        except mx.base.MXNetError as exc:
            shapes = {n: batch[n].shape for n in self.data}
            raise InputError(f"calibration batch {i}: MXNet could not run the model on inputs of shapes {shapes}: "
                             f"{mxnet_message(exc)}") from None


def calibrate(
    sym: Any,
    params: Mapping[str, Any],
    shapes: Mapping[str, Iterable[int]],
    data: Any,
    *,
    method: str = "max",
    batches: int | None = None,
    percentile: float = 99.99,
    num_bins: int = 2048,
    dtypes: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    registry: Registry | None = None,
) -> CalibrationTable:
    """Run the float model on CPU over `data` and return the amax of every computed input of a quantizable op.

    `shapes`: {data input: shape}, as for optimize (the first dim of a batch may differ). `data`: an mx.io.DataIter
    (reset first; padding dropped), a Gluon DataLoader or any iterable of batches, each an array (the model's one data
    input), a dict {input name: array} or a tuple/list in the order of `shapes` (trailing items, such as labels, are
    ignored). `method`: 'max' (largest |x| seen), 'percentile' (that percentile of |x|), 'entropy' (TensorRT's KL
    divergence minimisation, 128 levels) or 'mse' (least squared int8 error); `batches`: stop after that many.
    `registry`: whose ConverterSpec.quantize says which op inputs are quantized (default REGISTRY)."""
    _check_options(method, batches, percentile, num_bins)
    progress_mode(progress)
    if registry is not None and not isinstance(registry, Registry):
        raise InputError(f"registry must be an mx2trt Registry, not {type(registry).__name__}")
    registry = REGISTRY if registry is None else registry
    _check_data(data)
    inputs.symbol(sym)
    params = inputs.params(sym, params)
    shapes = inputs.shapes(shapes)
    dtypes = inputs.dtypes(dtypes, shapes)
    folded = fold_constants(sym, params, shapes, dtypes)
    graph = Graph.from_symbol(folded.symbol, folded.params, shapes, dtypes, folded.json)
    targets = _targets(graph, registry)
    runner = _Runner(graph, folded.symbol, folded.params, targets)
    names = list(shapes)
    variables = {n.name: n for n in graph.nodes if n.is_var}
    in_dtypes = {n: variables[n].out_dtypes[0] for n in names}
    stats = {name: _Stats(method, num_bins) for name in targets}

    total = batches
    if hasattr(data, "__len__") and not isinstance(data, mx.io.DataIter):
        total = len(data) if total is None else min(total, len(data))
    shown = progress_mode(progress)
    bar = None
    if shown == "bar":
        from tqdm import tqdm

        bar = tqdm(total=total, desc="calibration", unit="batch", file=sys.stderr)
    seen = 0
    try:
        for raw in _raw_batches(data, names):
            batch = {n: _array(seen, n, raw[n], shapes[n], in_dtypes[n]) for n in names}
            outs = runner.run(seen, batch)
            for name, out in zip(runner.names, outs):
                if out.dtype.kind == "f" and not np.isfinite(out).all():
                    raise InputError(f"calibration batch {seen}: tensor '{name}' has NaN or Inf (the float model "
                                     "overflows or divides by zero on this data)")
                stats[name].add(out, method)
            seen += 1
            if bar is not None:
                bar.update(1)
            elif shown == "log":
                log.info("calibration: batch %d%s", seen, f"/{total}" if total else "")
            if batches is not None and seen >= batches:
                break
    finally:
        if bar is not None:
            bar.close()
    if not seen:
        raise InputError("no calibration data: the iterator gave no batch")
    amax = {name: float(s.amax(method, float(percentile))) for name, s in stats.items()}
    used = {"max": {}, "percentile": {"percentile": float(percentile), "num_bins": int(num_bins)},
            "entropy": {"num_bins": int(num_bins)}, "mse": {"num_bins": int(num_bins)}}[method]
    version = getattr(sys.modules.get("mx2trt"), "__version__", None)
    log.info("mx2trt: calibrated %d tensor(s) over %d batch(es) (%s)", len(amax), seen, method)
    return CalibrationTable(method, graph_hash(sym), amax, seen, used,
                            f"mx2trt {version}" if version else "mx2trt", weights_hash(params))


__all__ = ["CalibrationTable", "calibrate", "graph_hash", "METHODS", "percentile_amax", "entropy_amax", "mse_amax"]
