"""Activation, clip and softmax-family converters."""
from __future__ import annotations

from typing import Any, Literal, Optional

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import NoAttrs, attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, converter

Act = trt.ActivationType
EW = trt.ElementWiseOperation

# MXNet act_type -> (TensorRT activation, alpha, beta); softrelu is log(1 + exp(x)) = SOFTPLUS with alpha=beta=1.
_ACTIVATIONS = {
    "relu": (Act.RELU, None, None),
    "sigmoid": (Act.SIGMOID, None, None),
    "tanh": (Act.TANH, None, None),
    "softrelu": (Act.SOFTPLUS, 1.0, 1.0),
    "softsign": (Act.SOFTSIGN, None, None),
}


@schema
class ActivationAttrs:
    act_type: Literal["relu", "sigmoid", "softrelu", "softsign", "tanh"] = attr()


@converter("Activation", attrs=ActivationAttrs)
def convert_activation(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Activation -> IActivationLayer of the matching type."""
    kind, alpha, beta = _ACTIVATIONS[node.attrs.act_type]
    return [layers.activation(ctx, inputs[0], kind, alpha, beta)]


@converter("relu", "sigmoid", "tanh", "softsign", attrs=NoAttrs)
def convert_named_activation(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """relu/sigmoid/tanh/softsign -> IActivationLayer."""
    kind, alpha, beta = _ACTIVATIONS[node.op]
    return [layers.activation(ctx, inputs[0], kind, alpha, beta)]


@schema
class ClipAttrs:
    a_min: float = attr()
    a_max: float = attr()


def _clip_ok(node: OpNode) -> str | None:
    """Refuses a_min > a_max (MXNet then gives a_max above a_max and a_min elsewhere; TensorRT's CLIP gives a_min)."""
    if node.attrs.a_min > node.attrs.a_max:
        return f"{node.where()}: a_min {node.attrs.a_min} > a_max {node.attrs.a_max} is not supported"
    return None


@converter("clip", attrs=ClipAttrs, validator=_clip_ok)
def convert_clip(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """clip -> IActivationLayer CLIP (alpha=a_min, beta=a_max)."""
    return [layers.activation(ctx, inputs[0], Act.CLIP, node.attrs.a_min, node.attrs.a_max)]


@schema
class SoftmaxAttrs:
    axis: int = -1
    temperature: Optional[float] = None
    dtype: Optional[Literal["float16", "float32", "float64"]] = None
    use_length: Optional[bool] = False


def _softmax_ok(node: OpNode) -> str | None:
    """Refuses use_length=True, an axis out of range and temperature 0."""
    a, rank = node.attrs, node.inputs[0].ndim
    if a.use_length:
        return f"{node.where()}: use_length=True is not supported yet"
    if not -rank <= a.axis < rank:
        return f"{node.where()}: axis {a.axis} is out of range for rank {rank}"
    if a.temperature is not None and a.temperature == 0:
        return f"{node.where()}: temperature 0 divides by zero"
    return None


def softmax(ctx: ConversionContext, x: Any, axis: int, temperature: float | None = None, log: bool = False) -> Any:
    """softmax(x / T) along `axis`: ISoftMaxLayer with its axis always set (the default is rank-3); log_softmax is
    computed stably as (x - max) - log(sum(exp(x - max))), since log(softmax) underflows to -inf."""
    x = ctx.tensor(x)
    shape = tuple(x.shape)
    if len(shape) == 1:  # TensorRT's softmax needs rank >= 2
        return ctx.reshape(softmax(ctx, ctx.reshape(x, (1,) + shape), 1, temperature, log), shape)
    if temperature is not None and temperature != 1.0:
        x = layers.elementwise(ctx, x, 1.0 / temperature, EW.PROD)
    if log:
        shifted = layers.elementwise(ctx, x, layers.reduce(ctx, x, trt.ReduceOperation.MAX, [axis]), EW.SUB)
        total = layers.reduce(ctx, layers.unary(ctx, shifted, trt.UnaryOperation.EXP), trt.ReduceOperation.SUM, [axis])
        return layers.elementwise(ctx, shifted, layers.unary(ctx, total, trt.UnaryOperation.LOG), EW.SUB)
    sm = ctx.net.add_softmax(x)
    sm.axes = 1 << (axis % len(shape))
    return sm.get_output(0)


@converter("softmax", "log_softmax", attrs=SoftmaxAttrs, validator=_softmax_ok)
def convert_softmax(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """softmax -> (scale by 1/T) + ISoftMaxLayer; log_softmax -> reduce MAX/SUM + EXP/LOG unary + elementwise."""
    a = node.attrs
    return [softmax(ctx, inputs[0], a.axis, a.temperature, log=node.op == "log_softmax")]


@schema
class SoftmaxOutputAttrs:
    multi_output: bool = False
    preserve_shape: bool = False
    grad_scale: float = attr(1.0, ignored=True)  # the rest only shape the training gradient
    ignore_label: float = attr(-1.0, ignored=True)
    use_ignore: bool = attr(False, ignored=True)
    normalization: Literal["batch", "null", "valid"] = attr("null", ignored=True)
    out_grad: bool = attr(False, ignored=True)
    smooth_alpha: float = attr(0.0, ignored=True)


@converter("SoftmaxOutput", attrs=SoftmaxOutputAttrs, data_inputs=1)
def convert_softmax_output(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """SoftmaxOutput at inference -> ISoftMaxLayer (label ignored): axis 1 for multi_output, else the last axis for
    preserve_shape, else over all non-batch axes (so a 1-D input gives ones, as in MXNet)."""
    a, x = node.attrs, ctx.tensor(inputs[0])
    shape = tuple(x.shape)
    if a.multi_output and len(shape) > 1:  # MXNet checks multi_output before preserve_shape
        return [softmax(ctx, x, 1)]
    if a.preserve_shape:
        return [softmax(ctx, x, -1)]
    y = softmax(ctx, layers.flatten2d(ctx, x), 1)
    return [ctx.reshape(y, shape)]
