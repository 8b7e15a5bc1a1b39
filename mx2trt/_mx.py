"""The one place that imports MXNet: applies the numpy shim MXNet 1.9.1 needs, then exposes `mx`."""
from __future__ import annotations

import atexit
import os
from typing import Any

import numpy as np

# Without MKLDNN every op logs a "storage type fallback" warning unless this is off.
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

# numpy >= 1.24 removed np.bool, which mxnet 1.9.1 reads at import time (mxnet/numpy/utils.py).
if "bool" not in np.__dict__:
    np.bool = bool  # type: ignore[attr-defined]

import mxnet as mx  # noqa: E402

# MXNet runs ops asynchronously, and an engine node's forward is Python code on one of its worker threads: a script
# that ends before reading its last output would shut MXNet down (its own atexit hook) under that running callback,
# which aborts or hangs the process. Registered after MXNet's hook, this one runs first and lets pending work finish.
atexit.register(mx.nd.waitall)

__all__ = ["mx", "gluoncv"]


def gluoncv() -> Any:
    """gluoncv (0.11), imported after the numpy aliases it still reads (np.float, np.int: removed in numpy 1.24)."""
    for name, alias in (("float", float), ("int", int)):
        if name not in np.__dict__:
            setattr(np, name, alias)
    import gluoncv as gcv

    return gcv


def canonical_op(op: str) -> str:
    """The name MXNet writes into graphs for an op or one of its aliases ('flatten' -> 'Flatten')."""
    return _atomic_info(op)[0]


def op_arguments(op: str) -> dict[str, str]:
    """MXNet's own declaration of an op's attributes: name -> type string with its default (e.g. 'int, optional, default=1')."""
    return _atomic_info(op)[1]


def _atomic_info(op: str) -> tuple[str, dict[str, str]]:
    import ctypes

    from mxnet.base import _LIB, c_str, check_call, py_str

    handle = ctypes.c_void_p()
    check_call(_LIB.NNGetOpHandle(c_str(op), ctypes.byref(handle)))
    name, desc, kv, ret = (ctypes.c_char_p() for _ in range(4))
    num = ctypes.c_uint()
    names, types, descs = (ctypes.POINTER(ctypes.c_char_p)() for _ in range(3))
    check_call(
        _LIB.MXSymbolGetAtomicSymbolInfo(
            handle, ctypes.byref(name), ctypes.byref(desc), ctypes.byref(num), ctypes.byref(names),
            ctypes.byref(types), ctypes.byref(descs), ctypes.byref(kv), ctypes.byref(ret),
        )
    )
    out = {py_str(names[i]): py_str(types[i]) for i in range(num.value)}
    return py_str(name.value), {k: v for k, v in out.items() if "NDArray" not in v and "Symbol" not in v}
