"""cuda-python pieces of the GPU runtime: checked calls, one stream per runner, reusable device buffers, copies.

Kept free of MXNet and TensorRT so it can be verified on any CUDA machine (tests/test_cuda.py).
"""
from __future__ import annotations

from typing import Any

from .errors import Mx2TrtError


class CudaError(Mx2TrtError):
    """A CUDA runtime call failed."""


def _cudart() -> Any:
    from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]

    return cudart


def check(result: Any, what: str = "CUDA call") -> Any:
    """Unpack a cuda-python result `(err, *values)`: raise CudaError naming the error, else return the value(s)."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        cudart = _cudart()
        _, name = cudart.cudaGetErrorName(err)
        _, desc = cudart.cudaGetErrorString(err)
        raise CudaError(f"{what} failed: {name.decode()} ({desc.decode()})")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else tuple(rest)


class DeviceBuffers:
    """A non-blocking stream on one GPU plus named device buffers that grow on demand and are reused across calls."""

    def __init__(self, device_id: int) -> None:
        self.cudart = _cudart()
        self.device_id = device_id
        self.activate()
        self.stream = check(self.cudart.cudaStreamCreateWithFlags(self.cudart.cudaStreamNonBlocking), "stream create")
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)

    def activate(self) -> None:
        """Make this runner's GPU current for the calling thread (MXNet calls custom ops from its own threads)."""
        check(self.cudart.cudaSetDevice(self.device_id), f"cudaSetDevice({self.device_id})")

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def buffer(self, name: str, nbytes: int) -> int:
        """Device pointer of buffer `name` holding at least `nbytes` (reallocated only when it must grow)."""
        ptr, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                check(self.cudart.cudaFree(ptr), "cudaFree")
            ptr = int(check(self.cudart.cudaMalloc(max(nbytes, 1)), f"cudaMalloc({nbytes}) for {name}"))
            self.buffers[name] = (ptr, nbytes)
        return ptr

    def upload(self, name: str, host_ptr: int, nbytes: int) -> int:
        """Queue a host -> device copy into buffer `name` on the stream; returns the device pointer."""
        ptr = self.buffer(name, nbytes)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        check(self.cudart.cudaMemcpyAsync(ptr, host_ptr, nbytes, kind, self.stream), f"upload of {name}")
        return ptr

    def download(self, host_ptr: int, device_ptr: int, nbytes: int) -> None:
        """Queue a device -> host copy on the stream (the host memory must stay alive until `synchronize`)."""
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(self.cudart.cudaMemcpyAsync(host_ptr, device_ptr, nbytes, kind, self.stream), "download")

    def synchronize(self) -> None:
        check(self.cudart.cudaStreamSynchronize(self.stream), "stream synchronize")

    def close(self) -> None:
        """Free every buffer and the stream."""
        for ptr, _ in self.buffers.values():
            check(self.cudart.cudaFree(ptr), "cudaFree")
        self.buffers.clear()
        if self.stream is not None:
            check(self.cudart.cudaStreamDestroy(self.stream), "stream destroy")
            self.stream = None


__all__ = ["CudaError", "DeviceBuffers", "check"]
