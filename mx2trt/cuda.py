"""cuda-python pieces of the GPU runtime: checked calls, device selection, one stream per runner with reusable device
and pinned host buffers, and the per-device scratch memory that the engines of a model share.

Kept free of MXNet and TensorRT so it can be verified on any CUDA machine (tests/test_cuda.py).
"""
from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Any, Iterator

import numpy as np

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


def device_count() -> int:
    """Number of CUDA GPUs this process sees (0 when there is no GPU or no driver)."""
    err, count = _cudart().cudaGetDeviceCount()
    return int(count) if int(err) == 0 else 0


def set_device(device_id: int) -> None:
    """Make GPU `device_id` current for the calling thread; CudaError names the GPU and how many there are."""
    cudart = _cudart()
    err, *_ = cudart.cudaSetDevice(device_id)
    if int(err) != 0:
        check((err,), f"cudaSetDevice: selecting GPU {device_id} (this process sees {device_count()})")


@contextlib.contextmanager
def on_device(device_id: int) -> Iterator[None]:
    """Run the block with GPU `device_id` current, then give the calling thread back the GPU it had."""
    cudart = _cudart()
    err, previous = cudart.cudaGetDevice()
    set_device(device_id)
    try:
        yield
    finally:
        if int(err) == 0 and previous != device_id:
            cudart.cudaSetDevice(previous)


def pointer_device(ptr: int) -> tuple[str, int]:
    """('device'|'host'|'managed'|'unregistered', GPU ordinal) of a pointer, as CUDA sees it."""
    cudart = _cudart()
    attrs = check(cudart.cudaPointerGetAttributes(ptr), "cudaPointerGetAttributes")
    kinds = {cudart.cudaMemoryType.cudaMemoryTypeDevice: "device", cudart.cudaMemoryType.cudaMemoryTypeHost: "host",
             cudart.cudaMemoryType.cudaMemoryTypeManaged: "managed"}
    return kinds.get(attrs.type, "unregistered"), int(attrs.device)


# Host arrays up to this size are staged through our pinned buffers; larger ones are copied from their own pageable
# memory by the driver, which stages them through its pinned buffers, pipelined. Measured on an H200 host (VM),
# GB/s up/down: 1 MiB pinned staging 16.3/10.9 vs pageable 15.2/7.9; 16 MiB 11.6/10.2 vs 13.5/13.1; 64 MiB 5.9/7.9 vs
# 9.3/16.6: a Python-side memmove (5-10 GB/s there for large copies) then limits pinned staging, chunked or not.
PINNED_MAX = 4 << 20


def host_view(ptr: int, nbytes: int) -> np.ndarray:
    """uint8 NumPy array over `nbytes` of host memory at `ptr` (no copy; valid while that memory is)."""
    if nbytes == 0:
        return np.empty(0, np.uint8)
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))


class DeviceBuffers:
    """One GPU's non-blocking stream plus named device buffers and pinned host staging buffers, which grow on demand
    and are reused across calls. A buffer may be refilled only after `synchronize` (copies are asynchronous)."""

    def __init__(self, device_id: int) -> None:
        self.cudart = _cudart()
        self.device_id = device_id
        self.stream: Any = None
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)
        self.pinned: dict[str, tuple[int, int]] = {}  # name -> (pinned host pointer, capacity in bytes)
        self.activate()
        self.stream = check(self.cudart.cudaStreamCreateWithFlags(self.cudart.cudaStreamNonBlocking),
                            f"stream create on GPU {device_id}")

    def activate(self) -> None:
        """Make this runner's GPU current for the calling thread (MXNet calls custom ops from its own threads)."""
        set_device(self.device_id)

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def buffer(self, name: str, nbytes: int) -> int:
        """Device pointer of buffer `name` holding at least `nbytes` (reallocated only when it must grow)."""
        ptr, size = self.buffers.get(name, (0, 0))
        if size < nbytes or not ptr:
            if ptr:
                check(self.cudart.cudaFree(ptr), "cudaFree")
                del self.buffers[name]
            what = f"cudaMalloc({nbytes}) for {name} on GPU {self.device_id}"
            ptr = int(check(self.cudart.cudaMalloc(max(nbytes, 1)), what))
            self.buffers[name] = (ptr, nbytes)
        return ptr

    def host(self, name: str, nbytes: int) -> int:
        """Pinned (page-locked) host pointer of staging buffer `name` holding at least `nbytes`."""
        ptr, size = self.pinned.get(name, (0, 0))
        if size < nbytes or not ptr:
            if ptr:
                check(self.cudart.cudaFreeHost(ptr), "cudaFreeHost")
                del self.pinned[name]
            what = f"cudaHostAlloc({nbytes}) for {name} (GPU {self.device_id})"
            ptr = int(check(self.cudart.cudaHostAlloc(max(nbytes, 1), self.cudart.cudaHostAllocPortable), what))
            self.pinned[name] = (ptr, nbytes)
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

    def stage_in(self, name: str, host_ptr: int, nbytes: int) -> int:
        """Queue an upload of `nbytes` at `host_ptr` (any host memory) into device buffer `name`, through pinned buffer
        `name` when it is small (see PINNED_MAX); returns the device pointer. The caller may reuse its memory now."""
        if nbytes > PINNED_MAX:  # the driver copies pageable memory through its own pinned buffers before returning
            return self.upload(name, host_ptr, nbytes)
        pinned = self.host(name, nbytes)
        ctypes.memmove(pinned, host_ptr, nbytes)
        return self.upload(name, pinned, nbytes)

    def stage_out(self, name: str, device_ptr: int, nbytes: int) -> np.ndarray:
        """Queue a download of `nbytes` at `device_ptr` into pinned buffer `name`; returns a uint8 view of it, which
        holds the data after `synchronize` and until the next use of that buffer."""
        pinned = self.host(name, nbytes)
        self.download(pinned, device_ptr, nbytes)
        return host_view(pinned, nbytes)

    def stage_out_into(self, name: str, device_ptr: int, host_ptr: int, nbytes: int) -> None:
        """Download `nbytes` at `device_ptr` into `host_ptr` (any host memory), through pinned buffer `name` when it
        is small (see PINNED_MAX); returns once the data is there (and all work queued before it is done)."""
        if nbytes > PINNED_MAX:
            self.download(host_ptr, device_ptr, nbytes)
            self.synchronize()
            return
        raw = self.stage_out(name, device_ptr, nbytes)
        self.synchronize()
        ctypes.memmove(host_ptr, raw.ctypes.data, nbytes)

    def synchronize(self) -> None:
        check(self.cudart.cudaStreamSynchronize(self.stream), f"stream synchronize on GPU {self.device_id}")

    def close(self) -> None:
        """Wait for queued work, then free every buffer and the stream (safe to call twice)."""
        if self.stream is not None:
            self.cudart.cudaStreamSynchronize(self.stream)
        for ptr, _ in self.buffers.values():
            check(self.cudart.cudaFree(ptr), "cudaFree")
        self.buffers.clear()
        for ptr, _ in self.pinned.values():
            check(self.cudart.cudaFreeHost(ptr), "cudaFreeHost")
        self.pinned.clear()
        if self.stream is not None:
            check(self.cudart.cudaStreamDestroy(self.stream), "stream destroy")
            self.stream = None


class Scratch:
    """One GPU's scratch ("device memory") for TensorRT execution contexts: one allocation shared by every engine on
    that GPU, as large as the largest of them needs (grown on demand), freed when its last user releases it.

    Sharing by locking: `lease` holds a per-GPU lock from before the context is given the memory until the stream that
    used it is synchronized, so two contexts running at once (MXNet's custom-op worker threads, several executors)
    never use it together; they take turns. Engines on different GPUs never wait for each other. Per-thread scratch
    would let two engines on one GPU overlap, at the cost of one allocation per thread; a model's engines run one
    after another anyway, and one GPU mostly runs one engine's kernels at a time, so one allocation is the choice."""

    def __init__(self, device_id: int) -> None:
        self.device_id = device_id
        self.ptr = 0
        self.nbytes = 0
        self.users = 0
        # Re-entrant: a runner freed by the garbage collector inside a lease, in the leasing thread, releases its share
        # without deadlock (the leasing runner is still a user, so the memory stays).
        self._lock = threading.RLock()

    def _grow(self, nbytes: int) -> None:
        """Hold at least `nbytes` (256-byte aligned, as cudaMalloc gives); call with the lock held."""
        if nbytes <= self.nbytes and self.ptr:
            return
        cudart = _cudart()
        with on_device(self.device_id):
            if self.ptr:
                check(cudart.cudaFree(self.ptr), f"cudaFree of the shared scratch on GPU {self.device_id}")
                self.ptr, self.nbytes = 0, 0
            what = f"cudaMalloc({nbytes}) for the engines' shared scratch on GPU {self.device_id}"
            self.ptr = int(check(cudart.cudaMalloc(max(nbytes, 256)), what))
            self.nbytes = max(nbytes, 256)

    def retain(self, nbytes: int) -> None:
        """Register a user that needs `nbytes`, growing now so that running out of memory shows when it is created."""
        with self._lock:
            self._grow(nbytes)
            self.users += 1

    def release(self) -> None:
        """Unregister a user; the memory is freed once none is left."""
        with self._lock:
            self.users = max(self.users - 1, 0)
            if self.users == 0 and self.ptr:
                with on_device(self.device_id):
                    check(_cudart().cudaFree(self.ptr), f"cudaFree of the shared scratch on GPU {self.device_id}")
                self.ptr, self.nbytes = 0, 0

    @contextlib.contextmanager
    def lease(self, nbytes: int, stream: Any) -> Iterator[int]:
        """Exclusive use of at least `nbytes` of scratch by work queued on `stream` inside the block; the stream is
        synchronized before the block ends, so the memory is idle when the next user gets it."""
        with self._lock:
            self._grow(nbytes)
            try:
                yield self.ptr
            except BaseException:
                _cudart().cudaStreamSynchronize(stream)  # whatever failed, no queued work may still use the memory
                raise
            check(_cudart().cudaStreamSynchronize(stream), f"stream synchronize on GPU {self.device_id}")


_scratch: dict[int, Scratch] = {}
_scratch_lock = threading.Lock()


def scratch(device_id: int) -> Scratch:
    """The process's shared scratch for GPU `device_id` (created empty on first use)."""
    with _scratch_lock:
        if device_id not in _scratch:
            _scratch[device_id] = Scratch(device_id)
        return _scratch[device_id]


__all__ = ["CudaError", "DeviceBuffers", "Scratch", "check", "device_count", "host_view", "on_device",
           "pointer_device", "scratch", "set_device"]
