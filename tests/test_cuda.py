"""The GPU runtime's cuda-python layer on a real GPU: device and pinned buffers, staging, streams, device selection
and the engines' shared scratch; skipped without a GPU (two-GPU tests without two).

It needs no TensorRT and no MXNet, so it also runs on GPU machines where neither is installed (mx2trt.cuda is then
loaded on its own): `python -m pytest --noconftest tests/test_cuda.py`.
"""
from __future__ import annotations

import importlib
import pathlib
import sys
import threading
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


def _gpus() -> int:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        pytest.skip("cuda-python is not installed")
    err, count = cudart.cudaGetDeviceCount()
    return count if int(err) == 0 else 0


def _gpu_or_skip(n: int = 1) -> None:
    count = _gpus()
    if count < n:
        pytest.skip(f"needs {n} CUDA GPU(s): {count} visible")


def _cudart():
    from cuda.bindings import runtime as cudart

    return cudart


def _current_device() -> int:
    return int(_cuda_module().check(_cudart().cudaGetDevice()))


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
    with pytest.raises(cuda.CudaError, match=r"selecting GPU 1048576 \(this process sees \d+\).*InvalidDevice"):
        cuda.DeviceBuffers(1 << 20)


# ---- pinned staging (the path of MXNet CPU arrays) -------------------------------------------------------------------


def test_staging_goes_through_pinned_host_buffers(io):
    """stage_in copies pageable memory into a pinned buffer and uploads it; stage_out downloads into a pinned buffer."""
    cuda = _cuda_module()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 17, 19)).astype(np.float32)  # pageable NumPy memory, like an MXNet CPU array's
    dev = io.stage_in("in0", x.ctypes.data, x.nbytes)
    x_copy = x.copy()
    x[...] = 0  # stage_in copied already: the caller's memory is free at once
    out = io.stage_out("out0", dev, x.nbytes)
    io.synchronize()
    np.testing.assert_array_equal(out.view(np.float32).reshape(x.shape), x_copy)
    assert cuda.pointer_device(io.pinned["in0"][0])[0] == "host", "staging memory is page-locked"
    assert cuda.pointer_device(io.pinned["out0"][0])[0] == "host"
    assert cuda.pointer_device(x.ctypes.data)[0] == "unregistered", "NumPy's own memory is pageable"
    assert cuda.pointer_device(dev) == ("device", 0)


def test_pinned_buffers_are_reused_across_calls_and_grow(io):
    x = np.arange(1000, dtype=np.int32)
    io.stage_in("in0", x.ctypes.data, x.nbytes)
    first = io.pinned["in0"][0]
    for n in (10, 500, 1000):  # like repeated forwards: no new allocation
        io.stage_in("in0", x.ctypes.data, n * 4)
        assert io.pinned["in0"][0] == first
    io.synchronize()
    y = np.arange(5000, dtype=np.int32)
    dev = io.stage_in("in0", y.ctypes.data, y.nbytes)
    assert io.pinned["in0"][1] == y.nbytes
    out = io.stage_out("out0", dev, y.nbytes)
    io.synchronize()
    np.testing.assert_array_equal(out.view(np.int32), y)


def test_staging_many_dtypes_and_empty_tensors(io):
    rng = np.random.default_rng(2)
    for i, (dtype, shape) in enumerate([(np.float16, (3, 7)), (np.int64, (5,)), (np.uint8, (0,)), (np.bool_, (9,)),
                                        (np.float32, (1,))]):
        x = (rng.standard_normal(shape) * 10).astype(dtype)
        dev = io.stage_in(f"in{i}", x.ctypes.data, x.nbytes)
        out = io.stage_out(f"out{i}", dev, x.nbytes)
        io.synchronize()
        np.testing.assert_array_equal(out.view(dtype).reshape(shape), x)


def test_large_tensors_bypass_our_pinned_buffers_and_still_arrive(io):
    """Up to PINNED_MAX, staging goes through pinned buffers; above it the driver copies from pageable memory (it is
    faster there, see cuda.PINNED_MAX). Both must deliver every byte, into pageable memory like an MXNet CPU array."""
    cuda = _cuda_module()
    rng = np.random.default_rng(3)
    for i, nbytes in enumerate((cuda.PINNED_MAX * 2 + 12_345, cuda.PINNED_MAX, 8)):
        x = rng.integers(0, 256, nbytes, dtype=np.uint8)
        dev = io.stage_in(f"in{i}", x.ctypes.data, nbytes)
        y = np.zeros_like(x)
        io.stage_out_into(f"out{i}", dev, y.ctypes.data, nbytes)
        np.testing.assert_array_equal(y, x)
        assert (f"in{i}" in io.pinned) == (f"out{i}" in io.pinned) == (nbytes <= cuda.PINNED_MAX)


def test_close_frees_device_and_pinned_memory():
    _gpu_or_skip()
    cuda, cudart = _cuda_module(), _cudart()
    io = cuda.DeviceBuffers(0)
    io.buffer("warm", 1)  # the context's own overhead is not what is measured
    free0, _ = cuda.check(cudart.cudaMemGetInfo())
    io.buffer("big", 512 << 20)
    io.host("pinned", 64 << 20)
    free1, _ = cuda.check(cudart.cudaMemGetInfo())
    assert free0 - free1 >= 500 << 20
    io.close()
    io.close()  # twice is fine
    free2, _ = cuda.check(cudart.cudaMemGetInfo())
    assert free2 - free1 >= 500 << 20, "the device buffers were freed"
    assert not io.buffers and not io.pinned and io.stream is None


# ---- streams and device selection ------------------------------------------------------------------------------------


def test_each_runner_has_its_own_stream_and_threads_do_not_mix():
    """Runners in different threads (MXNet's custom-op workers) copy on their own streams without interfering."""
    _gpu_or_skip()
    cuda = _cuda_module()
    runners = [cuda.DeviceBuffers(0) for _ in range(4)]
    assert len({r.stream_handle for r in runners}) == 4
    errors: list[BaseException] = []

    def work(t: int, io) -> None:
        try:
            for it in range(20):
                x = np.full(1 << 16, t * 100 + it, np.float32)
                out = io.stage_out("o", io.stage_in("i", x.ctypes.data, x.nbytes), x.nbytes)
                io.synchronize()
                assert (out.view(np.float32) == t * 100 + it).all(), f"thread {t} iteration {it}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t, r)) for t, r in enumerate(runners)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for r in runners:
        r.close()
    assert not errors, errors


def test_on_device_restores_the_callers_device():
    _gpu_or_skip()
    cuda = _cuda_module()
    cuda.set_device(0)
    with cuda.on_device(0):
        assert _current_device() == 0
    assert _current_device() == 0
    with pytest.raises(cuda.CudaError, match="selecting GPU 77"):
        with cuda.on_device(77):
            pass
    assert _current_device() == 0, "a failed selection leaves the current device alone"
    assert cuda.device_count() == _gpus()


def test_buffers_of_a_second_gpu_live_there_and_the_thread_gets_its_device_back():
    _gpu_or_skip(2)
    cuda = _cuda_module()
    cuda.set_device(0)
    io = cuda.DeviceBuffers(1)
    try:
        with cuda.on_device(1):
            x = np.arange(4096, dtype=np.float32)
            dev = io.stage_in("in0", x.ctypes.data, x.nbytes)
            out = io.stage_out("out0", dev, x.nbytes)
            io.synchronize()
            assert _current_device() == 1
        assert _current_device() == 0
        assert cuda.pointer_device(dev) == ("device", 1)
        np.testing.assert_array_equal(out.view(np.float32), x)
    finally:
        io.close()


# ---- the engines' shared scratch -------------------------------------------------------------------------------------


@pytest.fixture
def fresh_scratch():
    """A Scratch of GPU 0 not shared with other tests."""
    _gpu_or_skip()
    return _cuda_module().Scratch(0)


def test_scratch_is_one_allocation_sized_to_the_largest_user(fresh_scratch):
    s = fresh_scratch
    s.retain(10_000)  # one engine
    first = s.ptr
    s.retain(4_000)  # a smaller one reuses it
    assert (s.ptr, s.nbytes, s.users) == (first, 10_000, 2)
    s.retain(1 << 20)  # a larger one grows it, once
    assert s.nbytes == 1 << 20 and s.users == 3
    assert s.ptr % 256 == 0, "TensorRT wants 256-byte aligned device memory"
    cuda = _cuda_module()
    assert cuda.pointer_device(s.ptr) == ("device", 0)
    io = cuda.DeviceBuffers(0)
    try:
        for need in (10_000, 4_000, 1 << 20):
            with s.lease(need, io.stream) as ptr:
                assert ptr == s.ptr
    finally:
        io.close()
    for _ in range(3):
        s.release()
    assert (s.ptr, s.nbytes, s.users) == (0, 0, 0), "freed with its last user"


def test_scratch_grows_on_demand_in_a_lease(fresh_scratch):
    s = fresh_scratch
    s.retain(0)
    assert s.nbytes == 256, "a user needing none still gets a valid pointer"
    io = _cuda_module().DeviceBuffers(0)
    try:
        with s.lease(3 << 20, io.stream) as ptr:
            assert s.nbytes == 3 << 20 and ptr == s.ptr
    finally:
        io.close()
        s.release()


def test_scratch_is_per_device_and_shared_by_name():
    _gpu_or_skip()
    cuda = _cuda_module()
    assert cuda.scratch(0) is cuda.scratch(0)
    if _gpus() >= 2:
        a, b = cuda.scratch(0), cuda.scratch(1)
        assert a is not b
        a.retain(1 << 16)
        b.retain(1 << 16)
        try:
            assert cuda.pointer_device(a.ptr) == ("device", 0) and cuda.pointer_device(b.ptr) == ("device", 1)
        finally:
            a.release()
            b.release()


def test_scratch_lease_is_exclusive_across_threads(fresh_scratch):
    """Threads with their own streams (contexts) fill the whole scratch with their id, queue slow work, then read it
    back: if two held it at once, one would read the other's bytes. The lease ends only after its stream synced."""
    cuda, cudart = _cuda_module(), _cudart()
    s = fresh_scratch
    n = 8 << 20
    s.retain(n)
    errors: list[BaseException] = []
    leases = [0]

    def work(t: int) -> None:
        io = cuda.DeviceBuffers(0)
        try:
            slow = io.buffer("slow", 64 << 20)
            for it in range(8):
                with s.lease(n, io.stream) as ptr:
                    leases[0] += 1
                    cuda.check(cudart.cudaMemsetAsync(ptr, t + 1, n, io.stream), "memset")
                    for _ in range(4):  # keep the stream busy before reading back
                        cuda.check(cudart.cudaMemsetAsync(slow, it, 64 << 20, io.stream), "memset")
                    out = io.stage_out("back", ptr, n)
                if not (out == t + 1).all():
                    errors.append(AssertionError(f"thread {t} iteration {it} read another thread's scratch"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            io.close()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    s.release()
    assert not errors, errors
    assert leases[0] == 32


def test_scratch_released_inside_a_lease_by_the_same_thread(fresh_scratch):
    """A runner freed by the garbage collector while its thread leases the scratch releases its share at once."""
    s = fresh_scratch
    s.retain(1024)
    s.retain(1024)
    io = _cuda_module().DeviceBuffers(0)
    try:
        with s.lease(1024, io.stream) as ptr:
            s.release()
            assert (s.ptr, s.users) == (ptr, 1), "the leasing user keeps the memory"
    finally:
        io.close()
        s.release()
    assert s.ptr == 0
