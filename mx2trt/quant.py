"""Explicit quantization: which nodes get int8/fp8 Q/DQ, their scales, and the exact host arithmetic of Q and DQ.

TensorRT 10+/RTX networks are strongly typed: quantization is written into the network as IQuantizeLayer /
IDequantizeLayer pairs (symmetric only: no zero points). Activations get one scale per tensor, amax/127 (int8) or
amax/448 (fp8 e4m3), from a calibration table; weights get one scale per output channel from their own values.
The reference interpreter and the converters share `quantize_host`, so both round alike (half to even, saturating).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from ._trt import FP8

# Quantized dtype -> (NumPy dtype of its values, largest magnitude: the scale is amax / this).
QUANT_DTYPES: Mapping[str, tuple[np.dtype, float]] = {
    "int8": (np.dtype(np.int8), 127.0),
    "fp8": (FP8, 448.0),
}
# Float precision of everything that is not quantized, per int8_fallback.
FALLBACKS = ("fp16", "fp32")
_TINY = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class NodeQuant:
    """How one node is quantized: the dtype, and the activation amax of each input that takes Q/DQ (by index;
    weights, which have no entry, are scaled per output channel from their values)."""

    dtype: str
    amax: Mapping[int, float]

    def scale(self, k: int) -> float:
        """Per-tensor scale of input `k`."""
        return scale_of(self.amax[k], self.dtype)

    def as_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "amax": {str(k): float(v) for k, v in sorted(self.amax.items())}}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "NodeQuant":
        return cls(str(obj["dtype"]), {int(k): float(v) for k, v in obj["amax"].items()})


def scale_of(amax: Any, dtype: str) -> Any:
    """float32 scale(s) amax / qmax; an amax of 0 (a tensor or channel that is all zeros) gets the smallest normal
    scale, so that it quantizes to 0 instead of dividing by zero."""
    qmax = QUANT_DTYPES[dtype][1]
    s = np.asarray(amax, dtype=np.float64) / qmax
    return np.maximum(s, _TINY).astype(np.float32)


def channel_amax(w: np.ndarray, axis: int) -> np.ndarray:
    """max |w| per slice along `axis` (per output channel of a weight)."""
    w = np.asarray(w, dtype=np.float32)
    other = tuple(a for a in range(w.ndim) if a != axis % w.ndim)
    return np.abs(w).max(axis=other) if other else np.abs(w)


def _broadcast(scale: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    scale = np.asarray(scale, dtype=np.float32)
    if scale.ndim == 0 or axis is None:
        return scale
    shape = [1] * ndim
    shape[axis % ndim] = scale.size
    return scale.reshape(shape)


def quantize_host(x: Any, scale: Any, dtype: str, axis: int | None = None) -> np.ndarray:
    """TensorRT's Q: x / scale in float32, rounded half to even and saturated (int8 to [-128, 127], fp8 e4m3 to
    ±448; NaN stays NaN in fp8). `axis`: the axis a 1-d `scale` runs along."""
    np_dt, qmax = QUANT_DTYPES[dtype]
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = x / _broadcast(scale, x.ndim, axis)
    if dtype == "int8":
        return np.clip(np.rint(y), -128, 127).astype(np.int8)
    return np.clip(y, -qmax, qmax).astype(np_dt)  # ml_dtypes rounds to nearest even


def dequantize_host(q: Any, scale: Any, axis: int | None = None) -> np.ndarray:
    """TensorRT's DQ: q * scale in float32."""
    q = np.asarray(q)
    return q.astype(np.float32) * _broadcast(scale, q.ndim, axis)


# MXNet's own int8 ops (mx.contrib.quantization): a graph holding one is quantized already.
# ("_contrib_quantize" covers quantize_v2 and every quantized_* op.)
MXNET_QUANTIZED_PREFIXES = ("_contrib_quantize", "_contrib_requantize", "_contrib_dequantize")


def is_quantized_graph(sym: Any) -> bool:
    """Whether MXNet's quantization flow made `sym` (it holds MXNet's int8 ops)."""
    return any(n["op"].startswith(MXNET_QUANTIZED_PREFIXES) for n in json.loads(sym.tojson())["nodes"])


def plan(
    candidates: Iterable[tuple[int, str, str, Mapping[int, str]]],
    table: Any,
    dtype: str,
    exclude_ops: frozenset[str],
    exclude_nodes: frozenset[str],
) -> tuple[dict[int, NodeQuant], dict[int, str]]:
    """Which nodes are quantized: `candidates` are (node id, op, node name, {input index: tensor name}) of the
    converted nodes whose op takes Q/DQ, the tensors being their computed inputs; returns ({node id: NodeQuant},
    {node id: why it stays in floating point})."""
    quantized: dict[int, NodeQuant] = {}
    kept: dict[int, str] = {}
    for nid, op, name, tensors in candidates:
        if op in exclude_ops:
            kept[nid] = f"kept in floating point: op {op} is in exclude_quant_ops"
            continue
        if name in exclude_nodes:
            kept[nid] = "kept in floating point: named in exclude_quant_nodes"
            continue
        if table is None:
            kept[nid] = "kept in floating point: no calibration table (the graph was quantized by MXNet)"
            continue
        amax: dict[int, float] = {}
        missing = []
        for k, tensor in tensors.items():
            a = table.amax_of(tensor)
            if a is None:
                missing.append(f"input {k} ('{tensor}')")
            else:
                amax[k] = float(a)
        if missing:
            kept[nid] = f"kept in floating point: the calibration table has no range for {', '.join(missing)}"
            continue
        quantized[nid] = NodeQuant(dtype, amax)
    return quantized, kept


__all__ = ["QUANT_DTYPES", "FALLBACKS", "NodeQuant", "scale_of", "channel_amax", "quantize_host", "dequantize_host",
           "plan", "is_quantized_graph", "MXNET_QUANTIZED_PREFIXES"]
