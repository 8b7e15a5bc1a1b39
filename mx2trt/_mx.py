"""The one place that imports MXNet: applies the numpy shim MXNet 1.9.1 needs, then exposes `mx`."""
from __future__ import annotations

import numpy as np

# numpy >= 1.24 removed np.bool, which mxnet 1.9.1 reads at import time (mxnet/numpy/utils.py).
if "bool" not in np.__dict__:
    np.bool = bool  # type: ignore[attr-defined]

import mxnet as mx  # noqa: E402

__all__ = ["mx"]
