"""Runtime: the `_mx2trt_engine` Custom op; runs each engine with TensorRT on a GPU, or the reference interpreter.

An engine node declares the input shapes and dtypes its engine was built for, so MXNet's own inference fills them in
and a conflicting shape or dtype is refused at bind time. MXNet 1.9.1 runs a custom op's callbacks inside C++ and only
prints what they raise, then fails with a generic check: `EngineNodeError` carries mx2trt's message to the caller
instead (see `_translate_errors`)."""
from __future__ import annotations

import functools
import json
import re
import logging
import threading
from typing import Any, Callable, TypeVar

import numpy as np

from . import _trt
from ._mx import mx
from .engine import STORE, EngineSpec
from .errors import InputError, Mx2TrtError
from .profiles import contains, describe, holding

log = logging.getLogger("mx2trt")

OP_TYPE = "_mx2trt_engine"
RUNTIMES = ("auto", "tensorrt", "reference")

_lock = threading.Lock()
_resolved: dict[str, tuple[str, str]] = {}


class EngineNodeError(Mx2TrtError, mx.base.MXNetError):
    """An engine node refused inside MXNet (bind, forward or backward); also an MXNetError, as MXNet's callers expect."""


class EngineInputError(EngineNodeError, InputError):
    """An engine node was bound with an input shape or dtype its engine does not take."""


# What engine-node callbacks raised, oldest first: (MXNet's name of the callback, engine node, message). MXNet's check
# that follows names the callback (and, for inference, the node), which pairs the two.
_pending: list[tuple[str, str, str, type]] = []
_CALLBACKS = {"infer_shape": "kCustomOpPropInferShape", "infer_type": "kCustomOpPropInferType",
              "create_operator": "kCustomOpPropCreateOperator", "forward": "kCustomOpForward",
              "backward": "kCustomOpBackward"}
_F = TypeVar("_F", bound=Callable[..., Any])


def _reported(fn: _F) -> _F:
    """Record what an engine-node callback raises, so the MXNetError it turns into can carry it."""
    callback = _CALLBACKS[fn.__name__]

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except Exception as exc:
            name = self.name
            msg = str(exc) if isinstance(exc, Mx2TrtError) else f"engine node '{name}': {type(exc).__name__}: {exc}"
            cls = type(exc) if isinstance(exc, EngineNodeError) else EngineNodeError
            with _lock:
                _pending.append((callback, name, msg, cls))
                del _pending[:-64]  # failures nobody waited for do not pile up
            raise

    return wrapper  # type: ignore[return-value]


def _translate_errors() -> None:
    """Wrap `mxnet.base.get_last_ffi_error`, through which every MXNet C API failure becomes a Python exception: the
    failed check of an engine-node callback becomes an EngineNodeError with the message that callback raised."""
    base = mx.base
    original = base.get_last_ffi_error
    if getattr(original, "_mx2trt", False):
        return

    def get_last_ffi_error() -> Exception:
        err = original()
        text = str(err)
        if "custom.cc" not in text:
            return err
        node = re.search(r"Error in operator (\S+?):", text)
        with _lock:
            for i, (callback, name, message, cls) in enumerate(_pending):
                if callback in text and (node is None or node.group(1) == name):
                    del _pending[i]
                    break
            else:
                return err  # another custom op's failure: MXNet's own error, untouched
        out = cls(message)
        out.__cause__ = err  # MXNet's own check, for the record
        return out

    get_last_ffi_error._mx2trt = True  # type: ignore[attr-defined]
    base.get_last_ffi_error = get_last_ffi_error


_translate_errors()


def register_engine(spec: EngineSpec) -> EngineSpec:
    """Make an engine available to `_mx2trt_engine` nodes whose `key` names it (see engine.py for its lifetime)."""
    return STORE.register(spec)


def get_engine(key: str, name: str = "") -> EngineSpec:
    """The engine stored under `key`; EngineNotLoadedError if this process has none."""
    return STORE.get(key, name)


def resolve_runtime(requested: str) -> str:
    """'auto' -> 'tensorrt' where this process can execute engines, else 'reference'; logged once with the reason."""
    if requested not in RUNTIMES:
        raise InputError(f"runtime must be one of {list(RUNTIMES)}, not {requested!r}")
    with _lock:
        if requested not in _resolved:
            # runtime='reference' needs no probe (the probe imports and initialises CUDA)
            ok, why = (False, "runtime='reference' was asked for") if requested == "reference" else \
                _trt.can_execute_engines()
            if requested == "tensorrt" and not ok:
                raise Mx2TrtError(f"runtime='tensorrt' cannot run here: {why}")
            chosen = "tensorrt" if (requested == "tensorrt" or (requested == "auto" and ok)) else "reference"
            _resolved[requested] = (chosen, why)
            if requested == "auto":
                if chosen == "reference":
                    log.warning("mx2trt runtime: reference interpreter (NumPy, slow) because %s", why)
                else:
                    log.info("mx2trt runtime: TensorRT %s %s on %s", _trt.FLAVOR, _trt.VERSION, why)
        return _resolved[requested][0]


class _ReferenceRunner:
    """Evaluates the engine's network with the NumPy reference interpreter (CPU or GPU arrays alike)."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec

    def forward(self, op: mx.operator.CustomOp, req: list[str], in_data: list[Any], out_data: list[Any]) -> None:
        prog = self.spec.reference_program()
        feeds = {f"in{i}": x.asnumpy() for i, x in enumerate(in_data)}
        outs = prog.run(feeds)
        for k, dst in enumerate(out_data):
            y = outs[f"out{k}"]
            if tuple(y.shape) != tuple(dst.shape):  # MXNet's assign would broadcast it silently
                raise Mx2TrtError(f"engine {self.spec.name}: output {k} is {tuple(y.shape)}, MXNet inferred "
                                  f"{tuple(dst.shape)}")
            op.assign(dst, req[k], mx.nd.array(y, ctx=dst.context, dtype=dst.dtype))


def _runner(spec: EngineSpec, runtime: str, device_id: int) -> Any:
    """The spec's runner for (runtime, device), created once; it lives and dies with the spec."""
    key = (runtime, device_id)
    with _lock:
        if key not in spec.runners:
            if runtime == "reference":
                spec.runners[key] = _ReferenceRunner(spec)
            else:
                from .trt_runner import TensorRTRunner

                spec.runners[key] = TensorRTRunner(spec, device_id)
        return spec.runners[key]


class EngineOp(mx.operator.CustomOp):
    """Forward of one engine; cheap to create (MXNet creates one per bind, or per call in imperative Gluon)."""

    def __init__(self, spec: EngineSpec, runtime: str, name: str, n_engine: int | None = None) -> None:
        super().__init__()
        self.spec, self.runtime, self.name = spec, runtime, name
        self.n_engine = len(spec.in_shapes) if n_engine is None else n_engine  # later inputs are carried, unread
        self.in_dtypes = [np.dtype(d) for d in spec.in_dtypes]
        self.out_dtypes = [np.dtype(d) for d in spec.out_dtypes]

    @_reported
    def forward(self, is_train: bool, req: list[str], in_data: list[Any], out_data: list[Any], aux: list[Any]) -> None:
        ctx = in_data[0].context if in_data else out_data[0].context
        device = ctx.device_id if ctx.device_type == "gpu" else 0
        runner = _runner(self.spec, resolve_runtime(self.runtime), device)
        # float64 that the engine computes in float32 (float64='float32') is cast by MXNet on either side
        ins = [x if x.dtype == d else x.astype(d) for x, d in zip(in_data[: self.n_engine], self.in_dtypes)]
        for x, y in zip(ins, in_data):
            if x is not y:
                x.wait_to_read()  # MXNet casts asynchronously; the TensorRT runner reads raw pointers
        outs = [y if y.dtype == d else mx.nd.empty(y.shape, ctx=y.context, dtype=d)
                for y, d in zip(out_data, self.out_dtypes)]
        runner.forward(self, [r if y is o else "write" for r, y, o in zip(req, out_data, outs)], ins, outs)
        for k, (y, o) in enumerate(zip(out_data, outs)):
            if y is not o:
                self.assign(y, req[k], o.astype(y.dtype))

    @_reported
    def backward(self, req: list[str], out_grad: list[Any], in_data: list[Any], out_data: list[Any], in_grad: list[Any], aux: list[Any]) -> None:
        raise EngineNodeError(
            f"engine node '{self.name}': TensorRT engines are inference-only (no backward); bind with "
            "grad_req='null', or exclude the nodes you train with exclude_nodes="
        )


def _known(shape: list[int]) -> bool:
    return bool(shape) and all(d > 0 for d in shape)


@mx.operator.register(OP_TYPE)
class EngineProp(mx.operator.CustomOpProp):
    """Self-describing engine node: shapes and dtypes live in its attributes, the engine in the store (engine.py);
    the node holds its spec, which keeps the engine alive while the node exists."""

    def __init__(
        self,
        key: str,
        n_in: str,
        out_shapes: str,
        out_dtypes: str,
        runtime: str = "auto",
        in_shapes: str = "",
        in_dtypes: str = "",
        in_names: str = "",
        engine_name: str = "",
        n_engine: str = "",
        profiles: str = "",
        shape_symbol: str = "",
    ) -> None:
        super().__init__(need_top_grad=False)
        self.key = key
        self.n_in = int(n_in)
        self.n_engine = int(n_engine) if n_engine else self.n_in  # inputs after these are carried, not read
        self.out_shapes = [tuple(s) for s in json.loads(out_shapes)]
        self.out_dtypes = [np.dtype(d) for d in json.loads(out_dtypes)]
        self.runtime = runtime
        self.spec = STORE.find(key)
        self.name = engine_name or (self.spec.name if self.spec else "")
        self.in_shapes = [tuple(s) for s in json.loads(in_shapes)] if in_shapes else (
            [tuple(s) for s in self.spec.in_shapes] if self.spec else None)
        self.in_dtypes = [np.dtype(d) for d in json.loads(in_dtypes)] if in_dtypes else (
            [np.dtype(d) for d in self.spec.in_dtypes] if self.spec else None)
        self.in_names = json.loads(in_names) if in_names else [f"in{i}" for i in range(self.n_in)]
        self.profiles = json.loads(profiles) if profiles else None
        self.shape_symbol = shape_symbol
        self._shape_fn: Any = None  # mx.sym.load_json(shape_symbol), loaded at the first bind

    def list_arguments(self) -> list[str]:
        return [f"in{i}" for i in range(self.n_in)]

    def list_outputs(self) -> list[str]:
        return [f"out{k}" for k in range(len(self.out_shapes))]

    def _input(self, i: int) -> str:
        return f"engine node '{self.name}': input {i} ('{self.in_names[i]}')"

    @_reported
    def infer_shape(self, in_shape: list[list[int]]) -> tuple[list, list, list]:
        if self.in_shapes is None:
            return in_shape, [list(s) for s in self.out_shapes], []
        if self.profiles:
            return self._infer_dynamic(in_shape)
        for i, (got, want) in enumerate(zip(in_shape, self.in_shapes)):
            if _known(got) and tuple(got) != tuple(want):
                raise EngineInputError(
                    f"{self._input(i)} has shape {tuple(got)} but the engine was built for {tuple(want)}: run "
                    "mx2trt.optimize with the new shapes, or with [min, opt, max] ranges for the dimensions that vary"
                )
        return [list(s) for s in self.in_shapes], [list(s) for s in self.out_shapes], []

    def _infer_dynamic(self, in_shape: list[list[int]]) -> tuple[list, list, list]:
        """A dynamic engine's shapes: the inputs must lie in one optimization profile, and the outputs are what
        MXNet's inference of the original subgraph gives for them (0, MXNet's unknown, until the inputs are known)."""
        n = self.n_engine
        ins = [list(s) for s in in_shape]
        for i, want in enumerate(self.in_shapes[:n]):
            if not _known(ins[i]):
                ins[i] = [0 if d < 0 else d for d in want]
        if not all(_known(s) for s in ins[:n]):
            return ins, [[0 if d < 0 else d for d in s] for s in self.out_shapes], []
        self.check_profiles([tuple(s) for s in ins[:n]])
        if self._shape_fn is None:
            self._shape_fn = mx.sym.load_json(self.shape_symbol)
        _, outs, _ = self._shape_fn.infer_shape_partial(**{f"in{i}": tuple(s) for i, s in enumerate(ins[:n])})
        if outs is None or not all(_known(s) for s in outs):
            raise EngineNodeError(f"engine node '{self.name}': MXNet cannot infer its output shapes for inputs "
                                  f"{[tuple(s) for s in ins[:n]]}")
        return ins, [list(s) for s in outs], []

    def check_profiles(self, shapes: list[tuple[int, ...]]) -> int:
        """The first optimization profile holding every input shape; else an EngineInputError naming the input."""
        p = holding(self.profiles, shapes)
        if p is not None:
            return p
        ranges = list(zip(*self.profiles))
        i = next((i for i, s in enumerate(shapes) if not any(contains(r, s) for r in ranges[i])), 0)
        raise EngineInputError(
            f"{self._input(i)} has shape {shapes[i]}, outside the engine's optimization profiles "
            f"({describe(ranges[i])})" + ("" if any(not any(contains(r, s) for r in ranges[j])
                                                   for j, s in enumerate(shapes) if j != i) or len(self.profiles) == 1
                                          else "; or the inputs' shapes lie in different profiles")
            + ": run mx2trt.optimize with ranges that hold it")

    @_reported
    def infer_type(self, in_type: list[Any]) -> tuple[list, list, list]:
        if self.in_dtypes is None:
            return in_type, [d.type for d in self.out_dtypes], []
        for i, (got, want) in enumerate(zip(in_type, self.in_dtypes)):
            if got is not None and np.dtype(got) != want:
                raise EngineInputError(
                    f"{self._input(i)} is {np.dtype(got).name} but the engine was built for {want.name}: pass "
                    f"{want.name}, or run mx2trt.optimize with that input's dtype (dtypes= for a data input)"
                )
        return [d.type for d in self.in_dtypes], [d.type for d in self.out_dtypes], []

    @_reported
    def create_operator(self, ctx: Any, in_shapes: list[list[int]], in_dtypes: list[int]) -> EngineOp:
        if self.spec is None:
            self.spec = get_engine(self.key, self.name)
        for i, (shape, dt) in enumerate(zip(in_shapes[: self.n_engine], in_dtypes)):  # JSON without in_shapes/dtypes
            got_dt = np.dtype(mx.ndarray.ndarray._DTYPE_MX_TO_NP[dt])
            want_shape, want_dt = tuple(self.spec.in_shapes[i]), np.dtype(self.spec.in_dtypes[i])
            if got_dt == np.float64 and want_dt == np.float32 and self.in_dtypes and self.in_dtypes[i] == got_dt:
                want_dt = got_dt  # float64='float32': the node casts
            if self.spec.profiles and len(shape) == len(want_shape):
                want_shape = tuple(s if w < 0 else w for s, w in zip(shape, want_shape))  # ranges: infer_shape's
            if tuple(shape) != want_shape or got_dt != want_dt:
                raise EngineInputError(f"{self._input(i)} is {tuple(shape)} {got_dt.name} but the engine was built for "
                                      f"{want_shape} {want_dt.name}: run mx2trt.optimize for these inputs")
        return EngineOp(self.spec, self.runtime, self.name, self.n_engine)
