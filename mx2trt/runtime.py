"""Runtime: the `_mx2trt_engine` Custom op; runs each engine with TensorRT on a GPU, or the reference interpreter."""
from __future__ import annotations

import ctypes
import json
import logging
import threading
from typing import Any

import numpy as np

from . import _trt
from ._mx import mx
from .build import EngineSpec
from .errors import Mx2TrtError

log = logging.getLogger("mx2trt")

OP_TYPE = "_mx2trt_engine"
RUNTIMES = ("auto", "tensorrt", "reference")

_ENGINES: dict[str, EngineSpec] = {}  # process-level store: engine key -> spec (plan + reference program)
_lock = threading.Lock()
_resolved: dict[str, tuple[str, str]] = {}


def register_engine(spec: EngineSpec) -> None:
    """Make an engine available to `_mx2trt_engine` nodes whose `key` names it."""
    with _lock:
        _ENGINES[spec.key] = spec


def get_engine(key: str) -> EngineSpec:
    try:
        return _ENGINES[key]
    except KeyError:
        raise Mx2TrtError(
            f"engine '{key}' is not loaded in this process: run mx2trt.optimize on the original model first"
        ) from None


def resolve_runtime(requested: str) -> str:
    """'auto' -> 'tensorrt' where this process can execute engines, else 'reference'; logged once with the reason."""
    if requested not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {requested!r}")
    with _lock:
        if requested not in _resolved:
            ok, why = _trt.can_execute_engines()
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
        prog = self.spec.program
        feeds = {f"in{i}": x.asnumpy() for i, x in enumerate(in_data)}
        outs = prog.run(feeds)
        for k, dst in enumerate(out_data):
            op.assign(dst, req[k], mx.nd.array(outs[f"out{k}"], ctx=dst.context, dtype=dst.dtype))


def _data_ptr(arr: Any) -> int:
    p = ctypes.c_void_p()
    mx.base.check_call(mx.base._LIB.MXNDArrayGetData(arr.handle, ctypes.byref(p)))
    return int(p.value or 0)


class _TensorRTRunner:
    """Executes the engine on a GPU through cuda-python: GPU arrays zero-copy, CPU arrays staged."""

    def __init__(self, spec: EngineSpec, device_id: int) -> None:
        from .cuda import DeviceBuffers

        self.spec = spec
        self.io = DeviceBuffers(device_id)
        self.runtime = _trt.trt.Runtime(_trt.LOGGER)
        self.engine = self.runtime.deserialize_cuda_engine(spec.plan)
        if self.engine is None:
            raise Mx2TrtError(f"TensorRT could not deserialize engine {spec.name} ({spec.key}) on GPU {device_id}")
        self.context = self.engine.create_execution_context()

    def forward(self, op: mx.operator.CustomOp, req: list[str], in_data: list[Any], out_data: list[Any]) -> None:
        io = self.io
        io.activate()
        for i, x in enumerate(in_data):
            name = f"in{i}"
            nbytes = x.size * np.dtype(x.dtype).itemsize
            # MXNet hands a custom op its inputs computed, so a GPU array can be read in place.
            ptr = _data_ptr(x) if x.context.device_type == "gpu" else io.upload(name, _data_ptr(x), nbytes)
            self.context.set_tensor_address(name, ptr)
        staged = []
        for k, y in enumerate(out_data):
            name = f"out{k}"
            if y.context.device_type == "gpu" and req[k] == "write":
                ptr = _data_ptr(y)
            else:  # CPU outputs, and 'add' requests, go through a device buffer
                ptr = io.buffer(name, y.size * np.dtype(y.dtype).itemsize)
                staged.append((k, ptr))
            self.context.set_tensor_address(name, ptr)
        if not self.context.execute_async_v3(io.stream_handle):
            raise Mx2TrtError(f"TensorRT execution of {self.spec.name} failed")
        host = {}
        for k, ptr in staged:
            y = out_data[k]
            host[k] = np.empty(y.shape, dtype=y.dtype)
            io.download(host[k].ctypes.data, ptr, host[k].nbytes)
        io.synchronize()  # MXNet treats outputs as ready when forward returns
        for k, buf in host.items():
            op.assign(out_data[k], req[k], mx.nd.array(buf, ctx=out_data[k].context, dtype=out_data[k].dtype))


_runners: dict[tuple[str, str, int], Any] = {}


def _runner(spec: EngineSpec, runtime: str, device_id: int) -> Any:
    key = (spec.key, runtime, device_id)
    with _lock:
        if key not in _runners:
            _runners[key] = _ReferenceRunner(spec) if runtime == "reference" else _TensorRTRunner(spec, device_id)
        return _runners[key]


class EngineOp(mx.operator.CustomOp):
    """Forward of one engine; cheap to create (MXNet creates one per bind, or per call in imperative Gluon)."""

    def __init__(self, spec: EngineSpec, runtime: str) -> None:
        super().__init__()
        self.spec, self.runtime = spec, runtime

    def forward(self, is_train: bool, req: list[str], in_data: list[Any], out_data: list[Any], aux: list[Any]) -> None:
        ctx = in_data[0].context if in_data else out_data[0].context
        device = ctx.device_id if ctx.device_type == "gpu" else 0
        _runner(self.spec, resolve_runtime(self.runtime), device).forward(self, req, in_data, out_data)

    def backward(self, req: list[str], out_grad: list[Any], in_data: list[Any], out_data: list[Any], in_grad: list[Any], aux: list[Any]) -> None:
        raise Mx2TrtError(f"{self.spec.name}: TensorRT engines are inference-only (no backward)")


@mx.operator.register(OP_TYPE)
class EngineProp(mx.operator.CustomOpProp):
    """Self-describing engine node: shapes and dtypes live in its attributes, the engine in the process store."""

    def __init__(self, key: str, n_in: str, out_shapes: str, out_dtypes: str, runtime: str = "auto") -> None:
        super().__init__(need_top_grad=False)
        self.key = key
        self.n_in = int(n_in)
        self.out_shapes = [tuple(s) for s in json.loads(out_shapes)]
        self.out_dtypes = [np.dtype(d) for d in json.loads(out_dtypes)]
        self.runtime = runtime

    def list_arguments(self) -> list[str]:
        return [f"in{i}" for i in range(self.n_in)]

    def list_outputs(self) -> list[str]:
        return [f"out{k}" for k in range(len(self.out_shapes))]

    def infer_shape(self, in_shape: list[list[int]]) -> tuple[list, list, list]:
        return in_shape, [list(s) for s in self.out_shapes], []

    def infer_type(self, in_type: list[Any]) -> tuple[list, list, list]:
        return in_type, [d.type for d in self.out_dtypes], []

    def create_operator(self, ctx: Any, in_shapes: list[list[int]], in_dtypes: list[int]) -> EngineOp:
        spec = get_engine(self.key)
        for i, (got, want) in enumerate(zip(in_shapes, spec.in_shapes)):
            if tuple(got) != tuple(want):
                raise Mx2TrtError(
                    f"{spec.name}: input {i} has shape {tuple(got)} but the engine was built for {tuple(want)}; "
                    "run mx2trt.optimize with the new shapes"
                )
        return EngineOp(spec, self.runtime)
