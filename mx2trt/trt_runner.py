"""GPU execution of one engine with TensorRT through cuda-python (the `tensorrt` runtime of `_mx2trt_engine` nodes)."""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from . import _trt
from ._mx import mx
from .engine import EngineSpec
from .errors import Mx2TrtError


def _data_ptr(arr: Any) -> int:
    p = ctypes.c_void_p()
    mx.base.check_call(mx.base._LIB.MXNDArrayGetData(arr.handle, ctypes.byref(p)))
    return int(p.value or 0)


class TensorRTRunner:
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


__all__ = ["TensorRTRunner"]
