"""Data-movement converters: Flatten, Concat, and ops that are the identity at inference (Dropout, BlockGrad...)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from mx2trt import layers
from mx2trt.attrs import NoAttrs, attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, converter


@converter("Flatten", "flatten", attrs=NoAttrs, compute=False)
def convert_flatten(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Flatten -> IShuffleLayer to (N, -1); a 1-D input becomes (N, 1)."""
    return [ctx.reshape(inputs[0], node.outputs[0].shape)]


@schema
class ConcatAttrs:
    num_args: int = attr()
    dim: int = 1


def _concat_ok(node: OpNode) -> str | None:
    """dim within the input's rank."""
    rank = node.inputs[0].ndim
    if not -rank <= node.attrs.dim < rank:
        return f"{node.where()}: dim {node.attrs.dim} is out of range for rank {rank}"
    return None


@converter("Concat", "concat", attrs=ConcatAttrs, validator=_concat_ok, compute=False)
def convert_concat(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Concat -> IConcatenationLayer with the axis set explicitly."""
    return [layers.concat(ctx, inputs, node.attrs.dim % len(node.inputs[0].shape))]


@schema
class DropoutAttrs:
    p: float = 0.5
    mode: Literal["always", "training"] = "training"
    axes: tuple[int, ...] = ()
    cudnn_off: Optional[bool] = attr(False, ignored=True)


def _dropout_ok(node: OpNode) -> str | None:
    """Refuses mode 'always' with p > 0 (it drops at inference too)."""
    if node.attrs.mode == "always" and node.attrs.p > 0:
        return f"{node.where()}: mode 'always' drops at inference too"
    return None


@converter("Dropout", attrs=DropoutAttrs, validator=_dropout_ok, compute=False)
def convert_dropout(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Dropout at inference -> identity (no layer unless the value leaves the engine)."""
    return [ctx.tensor(inputs[0])]


@converter("BlockGrad", "stop_gradient", "_copy", "identity", attrs=NoAttrs, compute=False)
def convert_identity(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """BlockGrad / stop_gradient / _copy / identity -> identity at inference."""
    return [ctx.tensor(inputs[0])]
