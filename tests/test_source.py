"""Engine sources: the in-place weight views network definition reads, and the subgraph description."""
from __future__ import annotations

import gc

import numpy as np
import pytest

from mx2trt._mx import mx
from mx2trt.source import HostWeights, dtype_name


def host_view(value):
    return HostWeights({"w": value})["w"]


def test_host_view_reads_a_cpu_ndarray_in_place_read_only_and_keeps_it_alive():
    nd = mx.nd.array(np.arange(12, dtype=np.float32).reshape(3, 4))
    v = host_view(nd)
    assert v.base.owner is nd  # the view holds the NDArray that owns its memory
    assert v.shape == (3, 4) and v.dtype == np.float32 and not v.flags.writeable
    np.testing.assert_array_equal(v, np.arange(12).reshape(3, 4))
    with pytest.raises(ValueError):
        v[0, 0] = 1
    nd[0, 0] = 100  # the same memory
    mx.nd.waitall()
    assert v[0, 0] == 100
    del nd
    gc.collect()
    _ = [mx.nd.ones((3, 4)) * 5 for _ in range(20)]  # would reuse freed memory
    mx.nd.waitall()
    assert v[0, 0] == 100 and v[2, 3] == 11


@pytest.mark.parametrize("make", [lambda: np.ones((2, 2), np.float16), lambda: mx.nd.ones((2, 2), ctx=mx.cpu()).astype("float16"), lambda: 3.5,
                                  lambda: mx.nd.ones((4, 2)).tostype("row_sparse")],
                         ids=["numpy", "float16_ndarray", "scalar", "sparse"])
def test_host_view_gives_the_values_of_any_parameter(make):
    """Dense CPU NDArrays are viewed in place; numpy arrays, scalars and sparse arrays come as host values."""
    value = make()
    want = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
    got = host_view(value)
    np.testing.assert_array_equal(got, want)
    assert got.shape == want.shape
    in_place = type(value) is mx.nd.NDArray  # dense, on the CPU
    assert got.flags.writeable != in_place and (getattr(got.base, "owner", None) is value) == in_place


def test_host_weights_view_each_host_ndarray_once_and_hash_dtype_shape_and_bytes():
    """Network definition and engine keys read each weight through one HostWeights: a host NDArray is viewed once
    (the same read-only view every time), other values are copies, and the digest covers dtype, shape and bytes."""
    a = mx.nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    params = {"a": a, "same": a.copy(), "reshaped": a.reshape((3, 2)), "half": a.astype("float16"),
              "numpy": np.arange(6, dtype=np.float32).reshape(2, 3)}
    w = HostWeights(params)
    assert w["a"] is w["a"] and not w["a"].flags.writeable
    np.testing.assert_array_equal(w["numpy"], params["numpy"])
    assert sorted(w) == sorted(params) and len(w) == len(params)
    digests = {k: w.digest(k) for k in params}
    assert digests["a"] == digests["same"] == digests["numpy"]  # the same values, wherever they live
    assert len({digests["a"], digests["reshaped"], digests["half"]}) == 3
    assert HostWeights(params).digest("a") == digests["a"]


def test_dtype_name():
    assert dtype_name(np.dtype(np.float16)) == "float16" and dtype_name(np.dtype("int32")) == "int32"
