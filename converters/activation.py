"""Activation, clip and softmax-family converters."""
from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np

from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import NoAttrs, attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import FLOAT_DTYPES, OpNode, converter

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
    """Refuses integer data, use_length=True on log_softmax/softmin (MXNet 1.9.1 gives them no length input), an axis
    out of range and temperature 0."""
    a, rank = node.attrs, node.inputs[0].ndim
    for side, t in (("input", node.inputs[0]), ("output", node.outputs[0])):
        if t.dtype not in FLOAT_DTYPES:
            return f"{node.where()}: {side} dtype {t.dtype} is not supported (supported: float16, float32)"
    if a.use_length and node.op != "softmax":
        return f"{node.where()}: use_length=True is not supported by MXNet's {node.op}"
    if a.use_length and (len(node.inputs) < 2 or node.inputs[1].dtype not in _LENGTH_DTYPES):
        return f"{node.where()}: use_length=True needs an int32 or int64 length input"
    if not -rank <= a.axis < rank:
        return f"{node.where()}: axis {a.axis} is out of range for rank {rank}"
    if a.temperature is not None and a.temperature == 0:
        return f"{node.where()}: temperature 0 divides by zero"
    return None


_LENGTH_DTYPES = frozenset({np.dtype(np.int32), np.dtype(np.int64)})


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


def masked_softmax(ctx: ConversionContext, x: Any, length: Any, axis: int, temperature: float | None = None,
                   size: int | None = None) -> Any:
    """softmax along `axis` over the first length[...] positions only, zeros after them (MXNet's use_length): the
    position index (an int32 constant) LESS the length gives a BOOL mask; masked entries become the lowest finite
    value before the softmax (after the temperature, so a negative one cannot flip them) and 0 after it. `size`: the
    axis's largest size within the profiles, when it varies."""
    x = ctx.tensor(x)
    shape = tuple(x.shape)
    rank, axis = len(shape), axis % len(shape)
    if not isinstance(length, trt.ITensor):
        length = ctx.constant(np.asarray(length), dtype=np.asarray(length).dtype)
    dims = shape[:axis] + (1,) + shape[axis + 1:]
    length = layers.reshape(ctx, ctx.cast(length, np.int32), dims, {j: j for j, d in enumerate(dims) if d < 0}, x)
    along = (1,) * axis + (shape[axis],) + (1,) * (rank - axis - 1)
    n = shape[axis] if shape[axis] >= 0 else int(size)
    pos = layers.constant_upto(ctx, np.arange(n, dtype=np.int32).reshape(along[:axis] + (n,) + along[axis + 1:]),
                               {axis: axis} if shape[axis] < 0 else {}, x, np.int32)
    mask = layers.elementwise(ctx, pos, length, EW.LESS)
    if temperature is not None and temperature != 1.0:
        x = layers.elementwise(ctx, x, 1.0 / temperature, EW.PROD)
    y = softmax(ctx, layers.select(ctx, mask, x, ctx.lowest), axis)
    return layers.select(ctx, mask, y, 0.0)


@converter("softmax", "log_softmax", attrs=SoftmaxAttrs, validator=_softmax_ok, dtypes=FLOAT_DTYPES | _LENGTH_DTYPES)
def convert_softmax(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """softmax -> (scale by 1/T) + ISoftMaxLayer; use_length: masked by position < length (ISelectLayer before and
    after); log_softmax -> reduce MAX/SUM + EXP/LOG unary + elementwise."""
    a = node.attrs
    if a.use_length:
        return [masked_softmax(ctx, inputs[0], inputs[1], a.axis, a.temperature,
                               layers.largest(node.inputs[0], a.axis))]
    return [softmax(ctx, inputs[0], a.axis, a.temperature, log=node.op == "log_softmax")]


@converter("softmin", attrs=SoftmaxAttrs, validator=_softmax_ok)
def convert_softmin(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """softmin = softmax(-x / T) -> IUnaryLayer NEG + (scale by 1/T) + ISoftMaxLayer."""
    a = node.attrs
    return [softmax(ctx, layers.unary(ctx, inputs[0], trt.UnaryOperation.NEG), a.axis, a.temperature)]


@schema
class SoftmaxActivationAttrs:
    mode: Literal["channel", "instance"] = "instance"


def _softmax_activation_ok(node: OpNode) -> str | None:
    """Refuses mode 'channel' below rank 3 (MXNet itself fails on it)."""
    if node.attrs.mode == "channel" and node.inputs[0].ndim < 3:
        return f"{node.where()}: mode 'channel' needs rank >= 3, not {node.inputs[0].ndim}"
    return None


@converter("SoftmaxActivation", attrs=SoftmaxActivationAttrs, validator=_softmax_activation_ok)
def convert_softmax_activation(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """SoftmaxActivation -> ISoftMaxLayer over axis 1 for mode 'channel', else over the last axis (MXNet's 'instance'
    mode flattens all leading axes: it is a softmax over the last axis, not over each whole instance)."""
    return [softmax(ctx, inputs[0], 1 if node.attrs.mode == "channel" else -1)]


@schema
class HardSigmoidAttrs:
    alpha: float = 0.2
    beta: float = 0.5


@converter("hard_sigmoid", attrs=HardSigmoidAttrs)
def convert_hard_sigmoid(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """hard_sigmoid -> IActivationLayer HARD_SIGMOID: max(0, min(1, alpha * x + beta))."""
    return [layers.activation(ctx, inputs[0], Act.HARD_SIGMOID, node.attrs.alpha, node.attrs.beta)]


# SELU's constants as MXNet writes them (mshadow_op.h).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946


@schema
class LeakyReLUAttrs:
    act_type: Literal["elu", "gelu", "leaky", "prelu", "rrelu", "selu"] = "leaky"
    slope: float = 0.25  # leaky's slope and elu's alpha
    lower_bound: float = 0.125  # rrelu: inference uses the slope (lower_bound + upper_bound) / 2
    upper_bound: float = 0.334


def _leaky_relu_ok(node: OpNode) -> str | None:
    """prelu: refuses a gamma that is not 1-D of size 1 or of the input's axis-1 size."""
    if node.attrs.act_type != "prelu":
        return None
    x, gamma = node.inputs[0], node.inputs[1]
    if x.ndim < 2 or gamma.ndim != 1 or gamma.shape[0] not in (1, x.shape[1]):
        return f"{node.where()}: prelu gamma of shape {gamma.shape} does not fit input shape {x.shape}"
    return None


@converter("LeakyReLU", attrs=LeakyReLUAttrs, validator=_leaky_relu_ok)
def convert_leaky_relu(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """LeakyReLU -> IActivationLayer LEAKY_RELU (leaky; rrelu with slope (lower+upper)/2, its mask output a zero
    constant, as MXNet leaves it unwritten at inference), ELU (alpha=slope), SELU or GELU_ERF; prelu -> ISelectLayer
    of x > 0 between x and gamma (along axis 1) * x."""
    a = node.attrs
    x = ctx.tensor(inputs[0])
    if a.act_type == "leaky":
        return [layers.activation(ctx, x, Act.LEAKY_RELU, a.slope)]
    if a.act_type == "rrelu":  # MXNet computes the slope in float32
        slope = float((np.float32(a.lower_bound) + np.float32(a.upper_bound)) / np.float32(2))
        zeros = ctx.constant(np.zeros(tuple(x.shape)))
        return [layers.activation(ctx, x, Act.LEAKY_RELU, slope), zeros]
    if a.act_type == "elu":
        return [layers.activation(ctx, x, Act.ELU, a.slope)]
    if a.act_type == "selu":
        return [layers.activation(ctx, x, Act.SELU, SELU_ALPHA, SELU_LAMBDA)]
    if a.act_type == "gelu":
        return [layers.activation(ctx, x, Act.GELU_ERF)]
    rank = len(x.shape)  # prelu
    gamma = ctx.tensor(inputs[1])
    gamma = ctx.reshape(gamma, (1,) * rank if gamma.shape[0] == 1 else (1, gamma.shape[0]) + (1,) * (rank - 2))
    negative = layers.elementwise(ctx, x, gamma, EW.PROD)
    return [layers.select(ctx, layers.elementwise(ctx, x, 0.0, EW.GREATER), x, negative)]


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
