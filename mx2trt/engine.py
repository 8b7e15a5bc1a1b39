"""Engines and their lifetime: `EngineSpec` (what the rewrite and the runtime know of one engine) and the in-process
store that engine nodes find their engines in, by key.

Lifetime: every `_mx2trt_engine` node of a live Symbol or executor holds its spec, so an engine lives exactly as long
as something can still run it. The store itself holds specs weakly, plus the most recently registered or used ones
strongly up to `MX2TRT_ENGINE_STORE_MB` (default 256 MiB), so that a symbol re-created from its JSON in the same
process still finds recent engines. Nothing else keeps engines alive: repeated `optimize` does not grow memory.
An engine the store does not hold is looked for in the engine cache and in models loaded with `mx2trt.load`."""
from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import Mx2TrtError


@dataclass(eq=False)
class EngineSpec:
    """What the rewritten graph and the runtime need to know about one engine."""

    key: str
    name: str
    nodes: list[str]
    in_shapes: list[tuple[int, ...]]
    in_dtypes: list[str]
    out_shapes: list[tuple[int, ...]]
    out_dtypes: list[str]
    precision: str
    in_names: list[str] = field(default_factory=list)  # MXNet's names of the entries feeding each input
    # Dynamic engines (in_shapes/out_shapes hold -1 where a dimension varies): per optimization profile, each
    # input's [min, opt, max]; and the subgraph's MXNet symbol JSON, whose shape inference gives the output shapes.
    profiles: list[list[list[list[int]]]] | None = None
    shape_symbol: str = ""
    plan: bytes = b""
    program: Any = None  # reference.ReferenceProgram of the same network
    num_layers: int = 0
    define_s: float = 0.0
    build_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    runners: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False)  # (runtime, device) -> runner
    # a callable giving the source.SubgraphSource it was built from, read from its engine file (cache entry or saved
    # model; None without one): saved with the plan, and defines the reference program of an engine loaded from disk.
    # `origin`: 'built', 'cache' or 'saved'.
    source: Any = field(default=None, repr=False)
    origin: str = "built"

    def reference_program(self) -> Any:
        """The reference interpreter's program of this engine, defined from its source the first time if needed."""
        if self.program is None:
            with _program_lock:
                if self.program is None:
                    if self.source is None:
                        raise Mx2TrtError(
                            f"engine {self.name} ({self.key}) has no reference program and no stored subgraph to "
                            "define one from: save it with include_source=True, or optimize the original model here"
                        )
                    from .build import reference_program_of

                    self.program = reference_program_of(self.source(), self.name)
        return self.program

    @property
    def nbytes(self) -> int:
        """Host memory this spec holds: the plan and the reference program's weights (its source is read from its
        engine file when needed)."""
        return len(self.plan) + (self.program.nbytes if self.program is not None else 0)


_program_lock = threading.Lock()


class EngineNotLoadedError(Mx2TrtError):
    """An engine node's key names no engine this process has."""

    def __init__(self, key: str, name: str = "") -> None:
        self.key = key
        who = f"engine node '{name}': " if name else ""
        super().__init__(
            f"{who}engine {key} is not in this process, the engine cache or any model loaded with mx2trt.load: "
            "load the saved model with mx2trt.load (not mx.sym.load), or run mx2trt.optimize on the original model"
        )


def _default_limit() -> int:
    raw = os.environ.get("MX2TRT_ENGINE_STORE_MB", "256")
    try:
        mb = float(raw)
    except ValueError:
        raise Mx2TrtError(f"MX2TRT_ENGINE_STORE_MB must be a number of MiB, not {raw!r}") from None
    return int(mb * 2**20)


class EngineStore:
    """Engine key -> spec: weak for every engine, strong for the most recent ones up to `limit_bytes`."""

    def __init__(self, limit_bytes: int | None = None) -> None:
        self.limit_bytes = _default_limit() if limit_bytes is None else limit_bytes
        self._live: weakref.WeakValueDictionary[str, EngineSpec] = weakref.WeakValueDictionary()
        self._recent: OrderedDict[str, EngineSpec] = OrderedDict()
        self._lock = threading.Lock()
        self._finders: list[Callable[[str], EngineSpec | None]] = []

    def add_finder(self, finder: Callable[[str], EngineSpec | None]) -> None:
        """Where `get` looks for an engine it does not hold (the cache, saved models), in the order added."""
        with self._lock:
            if finder not in self._finders:
                self._finders.append(finder)

    def register(self, spec: EngineSpec) -> EngineSpec:
        """Make `spec` findable by its key (nodes holding an earlier spec of the same key keep theirs)."""
        with self._lock:
            self._live[spec.key] = spec
            self._touch(spec)
            return spec

    def find(self, key: str) -> EngineSpec | None:
        with self._lock:
            spec = self._live.get(key)
            if spec is not None:
                self._touch(spec)
            return spec

    def get(self, key: str, name: str = "") -> EngineSpec:
        """The engine of `key`: held here, else from the first finder that has it; EngineNotLoadedError if none."""
        spec = self.find(key)
        if spec is None:
            with self._lock:
                finders = list(self._finders)
            for finder in finders:
                spec = finder(key)
                if spec is not None:
                    return self.register(spec)
            raise EngineNotLoadedError(key, name)
        return spec

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._live.keys())

    @property
    def recent_bytes(self) -> int:
        with self._lock:
            return sum(s.nbytes for s in self._recent.values())

    def clear(self) -> None:
        """Forget every engine (nodes that hold their spec keep running)."""
        with self._lock:
            self._recent.clear()
            self._live.clear()

    def _touch(self, spec: EngineSpec) -> None:
        self._recent[spec.key] = spec
        self._recent.move_to_end(spec.key)
        total = sum(s.nbytes for s in self._recent.values())
        while len(self._recent) > 1 and total > self.limit_bytes:
            _, old = self._recent.popitem(last=False)
            total -= old.nbytes


STORE = EngineStore()

__all__ = ["EngineSpec", "EngineStore", "EngineNotLoadedError", "STORE"]
