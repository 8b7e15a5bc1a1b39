"""The reference interpreter's Q/DQ layers, and TensorRT's fused int8/fp8 convolution and matrix multiply.

IQuantizeLayer and IDequantizeLayer are evaluated exactly (mx2trt.quant's host arithmetic: x / scale rounded half to
even and saturated; fp8 e4m3 through ml_dtypes). A convolution or matrix multiply whose two operands are DQ outputs
runs as TensorRT's int8 (fp8) kernels do, on the quantized values themselves: products summed exactly (int8, in
float64, which holds int32 sums exactly; fp8 in float32), then scaled once. Registered into reference.py's makers.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._trt import downcast, layer_type, trt
from .quant import dequantize_host, quantize_host
from .reference import _PRODUCERS, LT, UnsupportedLayerError, _maker

_QUANTIZED = {trt.int8: "int8", **({trt.fp8: "fp8"} if hasattr(trt, "fp8") else {})}


def _dq_source(t: Any, axes: tuple[int, ...] | None) -> tuple[Any, Any, int | None] | None:
    """(quantized tensor, scale tensor, axis) of a tensor made by an IDequantizeLayer from int8/fp8 with one scale, or
    one per slice along an axis in `axes`; None otherwise (also for a zero point)."""
    layer = _PRODUCERS.get().get(t)
    if layer is None or layer_type(layer) != LT.DEQUANTIZE:
        return None
    downcast(layer)
    q, s = layer.get_input(0), layer.get_input(1)
    if (layer.num_inputs > 2 and layer.get_input(2) is not None) or q.dtype not in _QUANTIZED:
        return None
    if len(s.shape) == 0:
        return q, s, None
    axis = int(layer.axis) % len(q.shape)
    return (q, s, axis) if axes is not None and axis in axes else None


def fused_qdq(a: Any, b_axis: int | None, b: Any) -> tuple[tuple, tuple, type] | None:
    """TensorRT fuses DQ -> convolution/matmul <- DQ into one int8 (or fp8) kernel that accumulates in int32 (fp32)
    and scales once: ((a's Q source), (b's), accumulation dtype) when `a` is per-tensor and `b` is per-tensor or per
    slice along `b_axis`, both of one quantized dtype; None otherwise (the layer then computes on the DQ outputs).
    int8 products are summed in float64, which holds int32 sums exactly."""
    if b is None:
        return None
    qa = _dq_source(a, None)
    qb = _dq_source(b, () if b_axis is None else (b_axis % max(len(b.shape), 1),))
    if qa is None or qb is None or qa[0].dtype != qb[0].dtype:
        return None
    return qa, qb, np.float64 if qa[0].dtype == trt.int8 else np.float32


@_maker(LT.QUANTIZE)
def _quantize(layer: Any, ins: list, outs: list) -> Callable:
    if len(ins) > 2 and ins[2] is not None:
        raise UnsupportedLayerError("zero points (TensorRT quantizes symmetrically)")
    kind = _QUANTIZED.get(outs[0].dtype)
    if kind is None:
        raise UnsupportedLayerError(f"quantize to {outs[0].dtype}")
    axis = int(layer.axis)
    return lambda args: [quantize_host(args[0], args[1], kind, axis if np.ndim(args[1]) else None)]


@_maker(LT.DEQUANTIZE)
def _dequantize(layer: Any, ins: list, outs: list) -> Callable:
    if len(ins) > 2 and ins[2] is not None:
        raise UnsupportedLayerError("zero points (TensorRT quantizes symmetrically)")
    axis = int(layer.axis)
    return lambda args: [dequantize_host(args[0], args[1], axis if np.ndim(args[1]) else None)]
