"""The GPU runtime's cuda-python layer (buffers, copies, stream, errors) on a real GPU; skipped without one.

It needs no TensorRT and no MXNet, so it also runs on GPU machines where neither is installed (mx2trt.cuda is then
loaded on its own).
"""
from __future__ import annotations

import importlib
import pathlib
import sys
import types

import numpy as np
import pytest


def _cuda_module():
    try:
        from mx2trt import cuda
    except ImportError:  # numpy + cuda-python only: load mx2trt.cuda without the package's MXNet imports
        pkg = types.ModuleType("mx2trt")
        pkg.__path__ = [str(pathlib.Path(__file__).resolve().parents[1] / "mx2trt")]
        sys.modules["mx2trt"] = pkg
        cuda = importlib.import_module("mx2trt.cuda")
    return cuda


def _gpu_or_skip() -> None:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        pytest.skip("cuda-python is not installed")
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        pytest.skip("needs a CUDA GPU: none is visible")


@pytest.fixture
def io():
    _gpu_or_skip()
    buffers = _cuda_module().DeviceBuffers(0)
    yield buffers
    buffers.close()


def test_round_trip_through_device_buffers(io):
    rng = np.random.default_rng(0)
    for dtype, shape in [(np.float32, (2, 3, 5, 7)), (np.float16, (1000,)), (np.int32, (3, 1))]:
        x = rng.standard_normal(shape).astype(dtype)
        ptr = io.upload(f"x_{np.dtype(dtype).name}", x.ctypes.data, x.nbytes)
        y = np.empty_like(x)
        io.download(y.ctypes.data, ptr, y.nbytes)
        io.synchronize()
        np.testing.assert_array_equal(y, x)


def test_buffers_grow_only_and_are_reused(io):
    small = io.buffer("a", 64)
    assert io.buffer("a", 32) == small, "a smaller request reuses the buffer"
    big = io.buffer("a", 1 << 20)
    assert io.buffers["a"] == (big, 1 << 20)
    assert io.buffer("b", 16) not in (big, 0)
    x = np.arange(1 << 18, dtype=np.float32)  # fills the grown buffer completely
    io.upload("a", x.ctypes.data, x.nbytes)
    y = np.zeros_like(x)
    io.download(y.ctypes.data, big, y.nbytes)
    io.synchronize()
    np.testing.assert_array_equal(y, x)


def test_stream_ordering_of_many_copies(io):
    """Copies queued on the runner's non-blocking stream complete in order by `synchronize`."""
    xs = [np.full(4096, i, np.float32) for i in range(16)]
    ys = [np.empty_like(x) for x in xs]
    for i, (x, y) in enumerate(zip(xs, ys)):
        ptr = io.upload("shared", x.ctypes.data, x.nbytes)  # one buffer reused: order matters
        io.download(y.ctypes.data, ptr, y.nbytes)
    io.synchronize()
    for i, y in enumerate(ys):
        assert (y == i).all(), f"copy {i} was overtaken"


def test_cuda_errors_are_named(io):
    cuda = _cuda_module()
    with pytest.raises(cuda.CudaError, match="cudaMalloc.*cudaErrorMemoryAllocation"):
        io.buffer("huge", 1 << 60)
    with pytest.raises(cuda.CudaError, match="cudaSetDevice"):
        cuda.DeviceBuffers(1 << 20)
