"""MXNet's own int8 ops (`mx.contrib.quantization.quantize_model`, its non-fused path) -> TensorRT Q/DQ.

A graph MXNet quantized carries (data, min, max) triples: int8 or int32 data plus its range as two float32 (1,)
tensors. Inside an engine:

- an int8 tensor is a TensorRT int8 tensor (an IQuantizeLayer output) holding MXNet's very values;
- an int32 tensor (quantized_conv / fully_connected / elemwise_add) is a float32 tensor holding MXNet's int32 value
  exactly: its consumer, requantize, multiplies float(q32) by one float32 scale as MXNet does, so rounding agrees;
  where one leaves the engine it is cast to int32 (`ctx.represent`);
- a range is a float32 constant: consumers read its value with `ctx.value_of`; a range computed at run time (its
  producer stays in MXNet) keeps the consumer in MXNet.

Each op's arithmetic is MXNet 1.9.1's on CPU (MKLDNN, the only CPU implementation of these ops), measured op by op
(tests/converters/test_quantized.py): int8 levels are A/127.5 for quantize_v2, dequantize, elemwise_add and
batch_norm, A/127 for requantize's output and for the int32 range of conv/FC products, A = max(|min|, |max|).
MXNet's CPU conv takes uint8 data only; int8 quantized_conv runs on GPU (cuDNN), whose bias semantics this follows.
uint8 (out_type 'auto' with a range >= 0, or 'uint8') has no TensorRT Q: such nodes stay in MXNet.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np

from mx2trt import layers
from mx2trt._trt import layer_type, trt
from mx2trt.attrs import NoAttrs, attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import FLOAT_DTYPES, OpNode, all_of, const_inputs, converter

from .nn import ConvolutionAttrs, FullyConnectedAttrs, PoolingAttrs, _conv_ok, _layout_ok, _pool_ok, _spatial
from .nn import convert_pooling

f32 = np.float32
INT8, INT32, UINT8 = np.dtype(np.int8), np.dtype(np.int32), np.dtype(np.uint8)
# uint8 is accepted by the registry's dtype check only so that _no_uint8 can say why it stays in MXNet.
QUANT_DTYPES = FLOAT_DTYPES | {INT8, INT32, UINT8}
INT32_RANGE = f32(2147483647)  # MXNet's MinAbs(INT32_MIN, INT32_MAX) as float: 2^31
EW = trt.ElementWiseOperation
OutType = Literal["auto", "int8", "uint8"]


# ---- validators ----------------------------------------------------------------------------------------------------


def _no_uint8(node: OpNode) -> str | None:
    """No uint8 data (TensorRT quantizes to int8 only; uint8 is a network input/output type)."""
    for side, ts in (("input", node.inputs), ("output", node.outputs)):
        if any(t.dtype == UINT8 for t in ts):
            return (f"{node.where()}: uint8 {side} (MXNet's out_type 'auto' with a range >= 0, or 'uint8') has no "
                    "TensorRT Q: TensorRT quantizes to int8 only (quantize with quantized_dtype='int8')")
    return None


def _calibrated(node: OpNode) -> str | None:
    """min_calib_range and max_calib_range set (calibrated: the output range is known at conversion)."""
    a = node.attrs
    if a.min_calib_range is None or a.max_calib_range is None:
        why = ("MXNet's int8 BatchNorm refuses to run without one" if node.op == "_contrib_quantized_batch_norm"
               else "MXNet computes it from the data at run time")
        return f"{node.where()} has no calibrated range ({why})"
    return None


def _int8_data(node: OpNode) -> str | None:
    """int8 data (and weights)."""
    for k in range(len(node.inputs)):
        if node.inputs[k].dtype.kind in "iu" and node.inputs[k].dtype != INT8:
            return f"{node.where()}: input {k} is {node.inputs[k].dtype}, not int8"
    return None


# ---- helpers -------------------------------------------------------------------------------------------------------


def _unrounded(ctx: ConversionContext, t: Any) -> Any:
    """`t` as it was before define_network cast it to an fp16/bf16 node's dtype: float32 int32 values and ranges."""
    if not isinstance(t, trt.ITensor) or t.dtype == trt.float32:
        return t
    net = ctx.network
    for i in range(net.num_layers - 1, -1, -1):  # the casts are the layers added last, just before this node
        layer = net.get_layer(i)
        if layer.get_output(0).name == t.name:
            src = layer.get_input(0)
            return src if layer_type(layer) == trt.LayerType.CAST and src.dtype == trt.float32 else t
    return t


def _amax(ctx: ConversionContext, inputs: list[Any], k: int) -> np.float32:
    """MXNet's MaxAbs of the range in inputs k (min) and k+1 (max): constants or parameters known at conversion."""
    values = [ctx.value_of(_unrounded(ctx, inputs[i])) for i in (k, k + 1)]
    if any(v is None for v in values):
        ctx.fail(f"the range of input {k}/{k + 1} is computed at run time (its producer stays in MXNet)")
    return f32(max(abs(f32(np.asarray(v).ravel()[0])) for v in values))


def _range(ctx: ConversionContext, lo: Any, hi: Any) -> list[Any]:
    """The (min, max) outputs: float32 constants of shape (1,)."""
    return [ctx.constant(np.array([v], f32), dtype=f32) for v in (lo, hi)]


def _q(ctx: ConversionContext, x: Any, s: Any = 1.0) -> Any:
    """IQuantizeLayer: int8 of float32 x / s (rounded half to even, saturated), one scale."""
    return ctx.net.add_quantize(ctx.cast(x, f32), layers.scale_constant(ctx, s), trt.int8).get_output(0)


def _dq(ctx: ConversionContext, q: Any, s: Any = 1.0) -> Any:
    """IDequantizeLayer: float32 q * s, one scale; q an int8 tensor or parameter (an int8 constant)."""
    q = q if isinstance(q, trt.ITensor) else ctx.constant(np.asarray(q, np.int8), dtype=np.int8)
    return ctx.net.add_dequantize(q, layers.scale_constant(ctx, s), trt.float32).get_output(0)


def _int32_value(ctx: ConversionContext, t: Any) -> Any:
    """An int32 input as float32 of MXNet's value: an engine input is cast (MXNet also reads float(q32))."""
    t = _unrounded(ctx, t)
    return t if t.dtype == trt.float32 else ctx.cast(t, f32)


def _accumulator(ctx: ConversionContext, y: Any, bound: Any) -> list[Any]:
    """(int32 tensor held as its float32 value, its range ±bound); it leaves the engine cast to int32."""
    ctx.represent(y, lambda c, t: c.cast(t, np.int32))
    return [y] + _range(ctx, -f32(bound), f32(bound))


def _product_range(ax: np.float32, aw: np.float32) -> np.float32:
    """MXNet's int32 range of an int8 x int8 product (QuantizationRangeForS8S8Multiplication), in float32."""
    return f32(f32(ax / f32(127)) * f32(aw / f32(127))) * INT32_RANGE


# ---- quantize_v2, requantize, dequantize ---------------------------------------------------------------------------


@schema
class CalibratedAttrs:
    out_type: OutType = "int8"
    min_calib_range: Optional[float] = None
    max_calib_range: Optional[float] = None


def _calib_amax(node: OpNode) -> np.float32:
    a = node.attrs
    return f32(max(abs(f32(a.min_calib_range)), abs(f32(a.max_calib_range))))


@converter("_contrib_quantize_v2", attrs=CalibratedAttrs, validator=all_of(_no_uint8, _calibrated),
           dtypes=QUANT_DTYPES)
def convert_quantize_v2(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_quantize_v2 -> x * (127.5/A) (IElementWiseLayer) + IQuantizeLayer to int8, A the calibrated range."""
    amax = _calib_amax(node)
    x = layers.elementwise(ctx, ctx.cast(_unrounded(ctx, inputs[0]), f32), f32(127.5) / max(amax, f32(1e-30)), EW.PROD)
    return [_q(ctx, x)] + _range(ctx, -amax, amax)


@converter("_contrib_requantize", attrs=CalibratedAttrs, validator=all_of(_no_uint8, _calibrated),
           dtypes=QUANT_DTYPES)
def convert_requantize(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_requantize -> float(q32) * (R/2^31 * 127/C) (IElementWiseLayer) + IQuantizeLayer to int8."""
    amax, calib = _amax(ctx, inputs, 1), _calib_amax(node)
    scale = f32(amax / INT32_RANGE) * f32(f32(127) / max(calib, f32(1e-30)))
    y = layers.elementwise(ctx, _int32_value(ctx, inputs[0]), scale, EW.PROD)
    return [_q(ctx, y)] + _range(ctx, -calib, calib)


@schema
class DequantizeAttrs:
    out_type: Literal["float32"] = "float32"


@converter("_contrib_dequantize", attrs=DequantizeAttrs, validator=all_of(_no_uint8, _int8_data), dtypes=QUANT_DTYPES)
def convert_dequantize(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_dequantize -> IDequantizeLayer with scale A/127.5 (cast to the engine dtype)."""
    return [ctx.cast(_dq(ctx, inputs[0], _amax(ctx, inputs, 1) / f32(127.5)), ctx.dtype)]


# ---- quantized_conv, quantized_fully_connected ---------------------------------------------------------------------


def _weighted(node: OpNode) -> tuple[int, int | None]:
    """Indices of the (data min, bias min) inputs: after data, weight[, bias] come the data, weight[, bias] ranges."""
    return (2, None) if node.attrs.no_bias else (3, 7)


def _weight_params(node: OpNode) -> str | None:
    """Weight and bias (and their ranges) are parameters."""
    k, kb = _weighted(node)
    for i in (1, k + 2, k + 3) + (() if kb is None else (2, kb, kb + 1)):
        if not node.inputs[i].const:
            return f"{node.where()}: input {i} (weight, bias or their range) is computed in the graph, not a parameter"
    return None


@converter(
    "_contrib_quantized_conv",
    attrs=ConvolutionAttrs,
    validator=all_of(_no_uint8, _int8_data, _layout_ok, _conv_ok, _weight_params),
    dtypes=QUANT_DTYPES,
)
def convert_quantized_conv(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_quantized_conv -> IDequantizeLayer (scale 1) on data and kernel + IConvolutionLayer (int32 sums)."""
    # The bias follows MXNet's GPU kernel (its CPU conv takes uint8 data only): qb * (Ab/127) in units of R/2^31.
    a = node.attrs
    k, kb = _weighted(node)
    ax, aw = _amax(ctx, inputs, k), _amax(ctx, inputs, k + 2)
    bound = _product_range(ax, aw)
    x, w = _dq(ctx, inputs[0]), np.asarray(inputs[1], np.int8)
    n = len(a.kernel)
    kernel, stride = a.kernel, _spatial(a.stride, n, 1)
    dilate, pad = _spatial(a.dilate, n, 1), _spatial(a.pad, n, 0)
    if n == 1:  # TensorRT convolves 2-D and 3-D only
        x = ctx.reshape(x, tuple(x.shape[:2]) + (1, x.shape[2]))
        w = w.reshape(w.shape[:2] + (1, w.shape[2]))
        kernel, stride, dilate, pad = (1,) + kernel, (1,) + stride, (1,) + dilate, (0,) + pad
    bias = ctx.no_weights(f32)
    if kb is not None:  # the GPU kernel: (q32 * R/2^31 + qb * Ab/127) / (R/2^31)
        one_bias = float(_amax(ctx, inputs, kb)) / 127.0
        bias = ctx.weights(np.asarray(inputs[2], np.float64) * one_bias / float(f32(bound / INT32_RANGE)), f32)
    conv = ctx.net.add_convolution_nd(x, a.num_filter, kernel, ctx.no_weights(f32), bias)
    conv.set_input(1, _dq(ctx, w))
    conv.stride_nd, conv.dilation_nd, conv.padding_nd = stride, dilate, pad
    conv.num_groups = a.num_group
    y = conv.get_output(0)
    if n == 1:
        y = ctx.reshape(y, node.outputs[0].shape)
    return _accumulator(ctx, y, bound)


def _fc_bias(qb: np.ndarray, ax: np.float32, aw: np.float32, ab: np.float32) -> np.ndarray:
    """MXNet's int32 FC bias (MKLDNN): trunc(qb * (127.5/Ax * 127.5/Aw * Ab / 127.5)), in float32."""
    rescale = f32(f32(f32(f32(127.5) / ax) * f32(f32(127.5) / aw)) * ab) / f32(127.5)
    return np.trunc(np.asarray(qb, f32) * rescale).astype(f32)


@converter(
    "_contrib_quantized_fully_connected",
    attrs=FullyConnectedAttrs,
    validator=all_of(_no_uint8, _int8_data, _weight_params),
    dtypes=QUANT_DTYPES,
)
def convert_quantized_fully_connected(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_quantized_fully_connected -> IDequantizeLayer (scale 1) on data and W + IMatrixMultiplyLayer + bias."""
    a = node.attrs
    k, kb = _weighted(node)
    ax, aw = _amax(ctx, inputs, k), _amax(ctx, inputs, k + 2)
    x = inputs[0]
    if a.flatten and len(x.shape) != 2:
        x = layers.flatten2d(ctx, x)
    w = _dq(ctx, np.asarray(inputs[1], np.int8).reshape(a.num_hidden, -1))
    y = layers.matmul(ctx, _dq(ctx, x), w, transpose_b=True)
    if kb is not None:
        y = layers.elementwise(ctx, y, _fc_bias(inputs[2], ax, aw, _amax(ctx, inputs, kb)), EW.SUM)
    return _accumulator(ctx, y, _product_range(ax, aw))


# ---- ops on int8 that keep the range: act, pooling, flatten --------------------------------------------------------


@schema
class QuantizedActAttrs:
    act_type: Literal["relu", "sigmoid", "softrelu", "softsign", "tanh"] = attr()


def _relu_only(node: OpNode) -> str | None:
    """act_type 'relu' (MXNet's only quantized activation)."""
    if node.attrs.act_type != "relu":
        return f"{node.where()}: act_type '{node.attrs.act_type}' is not supported (MXNet quantizes relu only)"
    return None


def _passing(ctx: ConversionContext, inputs: list[Any], y: Any) -> list[Any]:
    """int8 y (integers in float32) with the input's range passed on."""
    lo, hi = (ctx.value_of(_unrounded(ctx, inputs[i])) for i in (1, 2))
    if lo is None or hi is None:
        ctx.fail("the range of inputs 1/2 is computed at run time (its producer stays in MXNet)")
    return [_q(ctx, y)] + _range(ctx, f32(np.ravel(lo)[0]), f32(np.ravel(hi)[0]))


@converter("_contrib_quantized_act", attrs=QuantizedActAttrs, validator=all_of(_no_uint8, _int8_data, _relu_only),
           dtypes=QUANT_DTYPES)
def convert_quantized_act(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_quantized_act -> IDequantizeLayer + IActivationLayer RELU + IQuantizeLayer (scale 1: exact)."""
    return _passing(ctx, inputs, layers.activation(ctx, _dq(ctx, inputs[0]), trt.ActivationType.RELU))


@converter("_contrib_quantized_pooling", attrs=PoolingAttrs,
           validator=all_of(_no_uint8, _int8_data, _layout_ok, _pool_ok), dtypes=QUANT_DTYPES)
def convert_quantized_pooling(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_quantized_pooling -> IDequantizeLayer + Pooling's layers + IQuantizeLayer (means round half to even)."""
    return _passing(ctx, inputs, convert_pooling(ctx, node, [_dq(ctx, inputs[0])])[0])


@converter("_contrib_quantized_flatten", attrs=NoAttrs, validator=all_of(_no_uint8, _int8_data), compute=False,
           dtypes=QUANT_DTYPES)
def convert_quantized_flatten(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_quantized_flatten -> IDequantizeLayer + IShuffleLayer to 2-D + IQuantizeLayer (scale 1: exact)."""
    return _passing(ctx, inputs, layers.flatten2d(ctx, _dq(ctx, inputs[0])))


# ---- elemwise_add, batch_norm --------------------------------------------------------------------------------------


@schema
class QuantizedAddAttrs:
    min_calib_range: Optional[float] = None
    max_calib_range: Optional[float] = None


@converter("_contrib_quantized_elemwise_add", attrs=QuantizedAddAttrs, validator=all_of(_no_uint8, _int8_data),
           dtypes=QUANT_DTYPES)
def convert_quantized_elemwise_add(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_quantized_elemwise_add -> IDequantizeLayers + IElementWiseLayer SUM + IUnaryLayer ROUND (or Q: int8)."""
    # MXNet's scales: uncalibrated, int32 out with range ±(A+B); calibrated, int8 out in levels of C/127.5.
    a_max, b_max = _amax(ctx, inputs, 2), _amax(ctx, inputs, 4)
    calibrated = _calibrated(node) is None
    if calibrated:
        c = _calib_amax(node)
        out = f32(127.5) / max(c, f32(1e-30))
        sa, sb = out / (f32(127.5) / a_max), out / (f32(127.5) / b_max)
    else:
        total = f32(a_max + b_max)
        sa, sb = (f32(v * INT32_RANGE) / f32(total * f32(127.5)) for v in (a_max, b_max))
    y = layers.elementwise(ctx, _dq(ctx, inputs[0], sa), _dq(ctx, inputs[1], sb), EW.SUM)
    if calibrated:
        return [_q(ctx, y)] + _range(ctx, f32(node.attrs.min_calib_range), f32(node.attrs.max_calib_range))
    y = layers.activation(ctx, y, trt.ActivationType.CLIP, -2.0**31, 2.0**31)  # saturates at -2^31 (-128 + -128)
    return _accumulator(ctx, layers.unary(ctx, y, trt.UnaryOperation.ROUND), total)


@schema
class QuantizedBatchNormAttrs:
    eps: float = 0.0010000000474974513
    fix_gamma: bool = True  # MXNet's int8 BatchNorm uses gamma either way
    axis: int = 1
    output_mean_var: bool = False
    use_global_stats: bool = attr(False, ignored=True)
    momentum: float = attr(0.9, ignored=True)
    cudnn_off: bool = attr(False, ignored=True)
    min_calib_range: Optional[float] = None
    max_calib_range: Optional[float] = None


def _bn_ok(node: OpNode) -> str | None:
    """No output_mean_var; axis within the rank."""
    a, rank = node.attrs, node.inputs[0].ndim
    if a.output_mean_var:
        return f"{node.where()}: output_mean_var=True is not supported"
    if not -rank <= a.axis < rank or rank < 2:
        return f"{node.where()}: axis {a.axis} is not supported for rank {rank}"
    return None


@converter(
    "_contrib_quantized_batch_norm",
    attrs=QuantizedBatchNormAttrs,
    validator=all_of(_no_uint8, _int8_data, _calibrated, _bn_ok, const_inputs(1, 2, 3, 4, what="gamma/beta/stats")),
    dtypes=QUANT_DTYPES,
)
def convert_quantized_batch_norm(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_quantized_batch_norm -> IDequantizeLayer + IScaleLayer (MXNet's int8 weights) + IQuantizeLayer."""
    a = node.attrs
    a_in, a_out = _amax(ctx, inputs, 5), _calib_amax(node)
    gamma, beta, mean, var = (np.asarray(v, f32) for v in inputs[1:5])
    invstd = (1.0 / np.sqrt(var.astype(np.float64) + a.eps)).astype(f32)
    # MKLDNN's int8 BatchNorm: these weights with mean 0 and variance 1, so eps divides the scale once more
    scale = gamma * invstd * a_in / a_out * f32(1.0 / np.sqrt(1.0 + a.eps))
    shift = (beta - mean * gamma * invstd) * f32(127.5) / a_out
    layer = ctx.net.add_scale_nd(_dq(ctx, inputs[0]), trt.ScaleMode.CHANNEL, ctx.weights(shift, f32),
                                 ctx.weights(scale, f32), ctx.no_weights(f32), a.axis % len(inputs[0].shape))
    y = layer.get_output(0)
    return [_q(ctx, y)] + _range(ctx, f32(a.min_calib_range), f32(a.max_calib_range))
