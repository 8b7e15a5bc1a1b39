"""Converter registry: `@converter(op, ...)` makes one frozen spec per MXNet op; the partitioner asks only this."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence, TypeVar

import numpy as np

from . import _trt
from .attrs import NoAttrs, parse_attrs
from .errors import AttributeParseError, Mx2TrtError
from .graph import Entry, Graph, Node, Shape

T = TypeVar("T")
MAX_RANK = 8  # TensorRT's Dims::MAX_DIMS

if TYPE_CHECKING:
    from .context import ConversionContext

log = logging.getLogger("mx2trt")

FLOAT_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float16)})
INT32, INT64 = np.dtype(np.int32), np.dtype(np.int64)
INT_DTYPES = frozenset({INT32, INT64})
# Ops that move or select data, and integer arithmetic, also carry int32/int64 tensors (lengths, indices, shapes) inside
# an engine.
DATA_DTYPES = FLOAT_DTYPES | INT_DTYPES


@dataclass(frozen=True)
class TensorInfo:
    """Shape and dtype of a node input or output; `const` when its value is a parameter known at conversion."""

    shape: Shape
    dtype: np.dtype
    const: bool = False
    dims: Shape | None = None  # `shape` with -1 where it varies within optimization profiles (None: static)
    points: tuple[Shape, ...] | None = None  # its shapes at every profile point (None: static)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dynamic(self) -> tuple[int, ...]:
        """The axes that vary within the optimization profiles."""
        return () if self.dims is None else tuple(i for i, d in enumerate(self.dims) if d < 0)


def _info(graph: Graph, e: Entry, const: bool) -> TensorInfo:
    points = graph.points(e)
    return TensorInfo(graph.shape(e), graph.dtype(e), const, graph.dims(e) if points is not None else None, points)


@dataclass(frozen=True)
class OpNode:
    """What validators and converters see of a node: typed attributes, input/output shapes and dtypes."""

    name: str
    op: str
    attrs: Any
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def where(self) -> str:
        """`Op 'name'`, the prefix of every message about this node."""
        return f"{self.op} '{self.name}'"


Validator = Callable[[OpNode], Optional[str]]
# A converter returns one TensorRT tensor per visible output of the node.
ConverterFn = Callable[["ConversionContext", OpNode, list], Sequence[Any]]


@dataclass(frozen=True)
class ConverterSpec:
    """One registered converter: the op, its function, its attribute schema and its validator."""

    op: str
    fn: ConverterFn
    attrs: type
    validator: Validator | None
    compute: bool
    dtypes: frozenset[np.dtype]
    data_inputs: int | None = None  # inputs the converter reads; later ones (e.g. training labels) are not wired in
    # Inputs that take int8/fp8 Q/DQ when the node is quantized (precision='int8'|'fp8'): a computed input gets a
    # per-tensor scale from the calibration table, a parameter (weights) scales of its own.
    quantize: tuple[int, ...] = ()
    # Inputs wired in (their shape keys the engine) whose values the converter never reads (slice_like's second).
    shape_inputs: tuple[int, ...] = ()

    def reads(self, inputs: Sequence[T], dynamic: bool = False) -> list[T]:
        """The inputs the converter reads: all of them, or the first `data_inputs`; under optimization profiles
        (`dynamic`) also the shape inputs past them (zeros_like's input gives its size at run time)."""
        n = self.data_inputs
        if n is not None and dynamic and self.shape_inputs:
            n = max(n, max(self.shape_inputs) + 1)
        return list(inputs if n is None else inputs[:n])

    def values_from(self, inputs: Sequence[T]) -> list[T]:
        """The inputs the node's values are computed from: those it reads, less the shape-only ones."""
        return [x for k, x in enumerate(self.reads(inputs)) if k not in self.shape_inputs]

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""


class RegistryError(Mx2TrtError):
    """Registering an op twice without `override=True`."""


class Registry:
    """Read-only mapping op name -> ConverterSpec, written only through `register`."""

    def __init__(self) -> None:
        self._specs: dict[str, ConverterSpec] = {}

    def register(self, spec: ConverterSpec, *, override: bool = False) -> None:
        if spec.op in self._specs and not override:
            old = self._specs[spec.op].fn
            raise RegistryError(
                f"op '{spec.op}' already has a converter ({old.__module__}.{old.__qualname__}); "
                "pass override=True to replace it"
            )
        self._specs[spec.op] = spec

    def unregister(self, op: str) -> None:
        """Remove an op (for tests and user overrides)."""
        del self._specs[op]

    def get(self, op: str) -> ConverterSpec | None:
        return self._specs.get(op)

    def __contains__(self, op: str) -> bool:
        return op in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def specs(self) -> Mapping[str, ConverterSpec]:
        return MappingProxyType(self._specs)

    def check(self, graph: Graph, node: Node) -> tuple[OpNode | None, str | None]:
        """(typed node, None) when `node` can be converted, else (typed node or None, human-readable reason)."""
        where = f"{node.op} '{node.name}'"
        spec = self._specs.get(node.op)
        if spec is None:
            return None, f"{where}: no converter for op '{node.op}'"
        try:
            attrs = parse_attrs(spec.attrs, node.attrs, op=node.op, node=node.name)
        except AttributeParseError as exc:
            return None, str(exc)
        op_node = OpNode(
            node.name,
            node.op,
            attrs,
            tuple(_info(graph, e, graph.nodes[e.node].kind in ("param", "aux")) for e in node.inputs),
            tuple(_info(graph, Entry(node.id, k), False) for k in range(node.num_outputs)),
        )
        used = spec.reads(op_node.inputs, graph.dynamic)
        for i, t in enumerate(used + list(op_node.outputs)):
            if t.dtype not in spec.dtypes:
                side = "input" if i < len(used) else "output"
                return op_node, f"{where}: {side} dtype {t.dtype} is not supported (supported: {_names(spec.dtypes)})"
            if 0 in t.shape:
                return op_node, f"{where}: empty tensor of shape {t.shape}"
            if not 1 <= len(t.shape) <= MAX_RANK:  # MXNet's 0-d shapes mean "unknown"; TensorRT has at most 8 dims
                side = "input" if i < len(used) else "output"
                return op_node, f"{where}: {side} of rank {len(t.shape)} is not supported (1 to {MAX_RANK} dims)"
        if spec.validator is not None:
            try:
                reason = spec.validator(op_node)
            except Exception as exc:  # a validator bug must not lose the node: it stays in MXNet
                log.exception("validator of %s crashed", where)
                return op_node, f"{where}: validator error {type(exc).__name__}: {exc}"
            if reason:
                return op_node, reason
        return op_node, None


def _names(dtypes: frozenset[np.dtype]) -> str:
    return ", ".join(sorted(d.name for d in dtypes))


REGISTRY = Registry()


def converter(
    *ops: str,
    attrs: type = NoAttrs,
    validator: Validator | None = None,
    compute: bool = True,
    dtypes: frozenset[np.dtype] = FLOAT_DTYPES,
    data_inputs: int | None = None,
    quantize: Sequence[int] = (),
    shape_inputs: Sequence[int] = (),
    override: bool = False,
    registry: Registry | None = None,
) -> Callable[[ConverterFn], ConverterFn]:
    """Register `fn` as the converter of each op in `ops` (aliases share the function); `compute=False` marks
    ops that only move data (reshape, flatten), so a subgraph made of them alone is not worth an engine;
    `data_inputs=k` says only the first k inputs are read at inference (the converter gets None for the rest);
    `quantize` lists the inputs the converter puts int8/fp8 Q/DQ on when the node is quantized (ctx.quant);
    `shape_inputs` the inputs it wires in but reads only the shape of (no value flows from them)."""
    if not ops:
        raise TypeError("converter() needs at least one op name")

    def deco(fn: ConverterFn) -> ConverterFn:
        reg = REGISTRY if registry is None else registry
        taken = [op for op in ops if reg.get(op) is not None]
        q, shaped = tuple(int(i) for i in quantize), tuple(int(i) for i in shape_inputs)
        if taken and not override:  # check every alias first, so a refusal registers none of them
            reg.register(ConverterSpec(taken[0], fn, attrs, validator, compute, dtypes, data_inputs, q, shaped))
        for op in ops:
            reg.register(ConverterSpec(op, fn, attrs, validator, compute, dtypes, data_inputs, q, shaped),
                         override=override)
        return fn

    return deco


# ---- validator combinators -------------------------------------------------------------------------------------


def all_of(*validators: Validator) -> Validator:
    """A validator that returns the first reason any of `validators` gives."""

    def check(node: OpNode) -> str | None:
        for v in validators:
            reason = v(node)
            if reason:
                return reason
        return None

    return check


def const_inputs(*indices: int, what: str = "weight") -> Validator:
    """Inputs at `indices` (when present) must be parameters, since TensorRT takes them as weights."""

    def check(node: OpNode) -> str | None:
        for i in indices:
            if i < len(node.inputs) and not node.inputs[i].const:
                return f"{node.where()}: input {i} ({what}) is computed in the graph, not a parameter"
        return None

    return check


def rank_in(*ranks: int, input: int = 0) -> Validator:
    """Input `input` must have one of `ranks`."""

    def check(node: OpNode) -> str | None:
        r = node.inputs[input].ndim
        if r not in ranks:
            return f"{node.where()}: input rank {r} is not supported (supported: {', '.join(map(str, ranks))})"
        return None

    return check


def unless_quirk(name: str, what: str, hit: Callable[[OpNode], Optional[str]]) -> Validator:
    """Where the TensorRT in use has quirk `name` (`_trt.QUIRKS`), a node `hit` describes stays in MXNet (`hit` gives
    the detail for the reason, None for a node the quirk spares); `what` describes those nodes in docs/ops.md."""

    def check(node: OpNode) -> str | None:
        reason = _trt.quirk(name)
        detail = hit(node) if reason else None
        return f"{node.where()}: {detail} ({reason})" if detail else None

    check.__doc__ = f"on {_trt.QUIRKS[name].releases()} only: {what}"  # what docs/ops.md shows
    return check
