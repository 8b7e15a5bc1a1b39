"""GPU execution of one engine with TensorRT through cuda-python (the `tensorrt` runtime of `_mx2trt_engine` nodes).

One runner per engine and GPU (runtime.py caches them in `spec.runners`): the engine is deserialized once on that GPU
and gets one execution context with its own stream. The context's scratch memory is user-managed: every engine on a
GPU draws on one shared allocation (`cuda.Scratch`), leased from before `set_device_memory` until the stream is
synchronized. GPU arrays are read and written in place; CPU arrays go through pinned host buffers. The stream is
synchronized before `forward` returns, since MXNet takes the outputs as ready then.

Threads: MXNet runs custom-op callbacks on a pool of worker threads (MXNET_CUSTOM_OP_NUM_THREADS), and executors
bound from one symbol share the engine's runner, so two forwards may arrive at once. A runner's lock makes its one
context, its buffers and its stream serve one forward at a time; the per-GPU scratch lock is taken inside it (always
in that order, so runners never deadlock), so engines on one GPU take turns and engines on different GPUs overlap.
"""
from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np

from . import _trt, cuda
from ._mx import mx
from .engine import EngineSpec
from .errors import Mx2TrtError
from .profiles import holding


def _data_ptr(arr: Any) -> int:
    p = ctypes.c_void_p()
    mx.base.check_call(mx.base._LIB.MXNDArrayGetData(arr.handle, ctypes.byref(p)))
    return int(p.value or 0)


def _nbytes(arr: Any) -> int:
    return int(arr.size) * np.dtype(arr.dtype).itemsize


# ---- TensorRT flavour switches (TensorRT 10.x/11.x and TensorRT-RTX differ in these calls only) ----------------------


def device_memory_size(engine: Any) -> int:
    """Scratch bytes an engine's context needs: `device_memory_size_v2` (TensorRT >= 10.1, RTX), else the old name."""
    size = getattr(engine, "device_memory_size_v2", None)
    return int(engine.device_memory_size if size is None else size)


def user_managed_context(engine: Any) -> Any:
    """An execution context that allocates no scratch of its own (`set_device_memory` gives it before each run)."""
    strategy = _trt.trt.ExecutionContextAllocationStrategy.USER_MANAGED
    if _trt.FLAVOR == "tensorrt_rtx":  # RTX takes the strategy through a runtime config
        config = engine.create_runtime_config()
        config.set_execution_context_allocation_strategy(strategy)
        return engine.create_execution_context(config)
    return engine.create_execution_context(strategy)


def set_device_memory(context: Any, ptr: int, nbytes: int) -> None:
    """Give a user-managed context its scratch (`set_device_memory` since TensorRT 10.1; the property before)."""
    if hasattr(context, "set_device_memory"):
        context.set_device_memory(ptr, nbytes)
    else:
        context.device_memory = ptr


class TensorRTRunner:
    """Executes one engine on one GPU through cuda-python: GPU arrays zero-copy, CPU arrays staged through pinned
    memory, scratch shared with the GPU's other engines."""

    def __init__(self, spec: EngineSpec, device_id: int) -> None:
        # No reference to the spec, which holds the runner: without a cycle, the runner goes (and frees the GPU
        # memory) the moment its spec does, not whenever the cycle collector runs, in whichever thread.
        self.device_id = device_id
        self.where = f"engine {spec.name} ({spec.key}) on GPU {device_id}"
        self._lock = threading.Lock()
        self.io: cuda.DeviceBuffers | None = None
        self.runtime: Any = None
        self.engine: Any = None
        self.context: Any = None
        self.scratch: cuda.Scratch | None = None
        self.scratch_bytes = 0
        self.profiles = spec.profiles  # dynamic engines: per profile, each input's [min, opt, max]
        self.profile = 0  # the context's optimization profile
        try:
            with cuda.on_device(device_id):
                self.io = cuda.DeviceBuffers(device_id)
                self.runtime = _trt.trt.Runtime(_trt.LOGGER)
                self.engine = self.runtime.deserialize_cuda_engine(spec.plan)
                if self.engine is None:
                    raise Mx2TrtError(f"TensorRT could not deserialize {self.where} (see the mx2trt.trt log)")
                self._check_io(spec)
                self.scratch_bytes = device_memory_size(self.engine)
                self.context = user_managed_context(self.engine)
                if self.context is None:
                    raise Mx2TrtError(f"TensorRT could not create an execution context for {self.where}")
                shared = cuda.scratch(device_id)
                shared.retain(self.scratch_bytes)
                self.scratch = shared
        except BaseException as exc:
            self.close()
            if isinstance(exc, cuda.CudaError):
                raise cuda.CudaError(f"{self.where}: {exc}") from exc
            raise

    def _check_io(self, spec: EngineSpec) -> None:
        """The engine's I/O tensors are the spec's in{i}/out{k}, with its shapes (a plan from elsewhere is refused)."""
        engine = self.engine
        names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        want = {f"in{i}": s for i, s in enumerate(spec.in_shapes)}
        want.update({f"out{k}": s for k, s in enumerate(spec.out_shapes)})
        if names != set(want):
            raise Mx2TrtError(f"{self.where}: the plan's tensors are {sorted(names)}, not {sorted(want)}")
        for name, shape in want.items():
            got = tuple(engine.get_tensor_shape(name))
            if got != tuple(shape):
                raise Mx2TrtError(f"{self.where}: tensor {name} is {got} in the plan but {tuple(shape)} in the spec")

    def _device_ptr(self, arr: Any, what: str) -> int:
        """Data pointer of a GPU array, which must be on this runner's GPU."""
        if arr.context.device_id != self.device_id:
            raise Mx2TrtError(f"{self.where}: {what} is on GPU {arr.context.device_id}")
        return _data_ptr(arr)

    def forward(self, op: mx.operator.CustomOp, req: list[str], in_data: list[Any], out_data: list[Any]) -> None:
        """Run the engine on MXNet's arrays, writing (or adding) its outputs; returns once they are ready."""
        with self._lock:
            if self.context is None or self.io is None or self.scratch is None:
                raise Mx2TrtError(f"{self.where} was closed")
            with cuda.on_device(self.device_id):
                self._forward(op, req, in_data, out_data, self.io, self.scratch)

    def _forward(self, op: Any, req: list[str], in_data: list[Any], out_data: list[Any], io: cuda.DeviceBuffers,
                 scratch: cuda.Scratch) -> None:
        ctx = self.context
        if self.profiles:
            self._set_shapes(in_data, out_data, io)
        for i, x in enumerate(in_data):
            name = f"in{i}"
            # MXNet hands a custom op its inputs computed, so a GPU array can be read in place.
            if x.context.device_type == "gpu":
                ptr = self._device_ptr(x, f"input {i}")
            else:
                ptr = io.stage_in(name, _data_ptr(x), _nbytes(x))
            ctx.set_tensor_address(name, ptr)
        staged: list[tuple[int, int]] = []  # (output, device buffer of ours that TensorRT writes it into)
        for k, y in enumerate(out_data):
            name = f"out{k}"
            if y.context.device_type == "gpu" and req[k] in ("write", "inplace"):
                ptr = self._device_ptr(y, f"output {k}")
            else:  # CPU outputs, 'add' requests and unused ('null') outputs
                ptr = io.buffer(name, _nbytes(y))
                staged.append((k, ptr))
            ctx.set_tensor_address(name, ptr)
        with scratch.lease(self.scratch_bytes, io.stream):  # the stream is synchronized when this block ends
            set_device_memory(ctx, scratch.ptr, self.scratch_bytes)
            if not ctx.execute_async_v3(io.stream_handle):
                raise Mx2TrtError(f"TensorRT execution of {self.where} failed (see the mx2trt.trt log)")
        for k, ptr in staged:  # downloads after the lease: the next engine need not wait for them
            y, name = out_data[k], f"out{k}"
            if req[k] == "null":
                continue
            if y.context.device_type == "cpu" and req[k] in ("write", "inplace"):
                io.stage_out_into(name, ptr, _data_ptr(y), _nbytes(y))
            else:  # 'add', or a GPU array: MXNet does the arithmetic; mx.nd.array copies before returning
                raw = io.stage_out(name, ptr, _nbytes(y))
                io.synchronize()
                op.assign(y, req[k], mx.nd.array(raw.view(y.dtype).reshape(y.shape), ctx=y.context, dtype=y.dtype))

    def _set_shapes(self, in_data: list[Any], out_data: list[Any], io: cuda.DeviceBuffers) -> None:
        """Dynamic engines: select the first optimization profile holding every input's shape, set the shapes, and
        check that TensorRT's output shapes are those MXNet inferred with the engine node's shape function."""
        ctx = self.context
        shapes = [tuple(x.shape) for x in in_data]
        p = holding(self.profiles or (), shapes)
        if p is None:
            raise Mx2TrtError(f"{self.where}: input shapes {shapes} lie in no optimization profile")
        if p != self.profile:
            if not ctx.set_optimization_profile_async(p, io.stream_handle):
                raise Mx2TrtError(f"{self.where}: TensorRT refused optimization profile {p}")
            self.profile = p
        for i, s in enumerate(shapes):
            if not ctx.set_input_shape(f"in{i}", s):
                raise Mx2TrtError(f"{self.where}: TensorRT refused shape {s} for input {i}")
        for k, y in enumerate(out_data):
            got = tuple(ctx.get_tensor_shape(f"out{k}"))
            if got != tuple(y.shape):
                raise Mx2TrtError(f"{self.where}: TensorRT computes output {k} as {got}, MXNet {tuple(y.shape)}")

    def close(self) -> None:
        """Free the context, the engine, the buffers and the stream, and release the shared scratch (idempotent)."""
        with self._lock:
            io, shared = self.io, self.scratch
            self.io, self.scratch = None, None
            try:
                if io is not None:
                    with cuda.on_device(self.device_id):
                        self.context = None  # the context goes before its engine, the engine before its runtime
                        self.engine = None
                        self.runtime = None
                        io.close()
            finally:
                self.context = self.engine = self.runtime = None
                if shared is not None:
                    shared.release()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown, or a GPU already gone: nothing left to free
            pass


__all__ = ["TensorRTRunner", "device_memory_size", "set_device_memory", "user_managed_context"]
