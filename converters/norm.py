"""Normalisation converters: BatchNorm (inference form)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from mx2trt import layers
from mx2trt.attrs import attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, all_of, const_inputs, converter


@schema
class BatchNormAttrs:
    eps: float = 0.0010000000474974513
    fix_gamma: bool = True
    axis: int = 1
    output_mean_var: bool = False
    use_global_stats: bool = attr(False, ignored=True)  # inference always uses the moving statistics
    momentum: float = attr(0.9, ignored=True)
    cudnn_off: bool = attr(False, ignored=True)
    min_calib_range: Optional[float] = attr(None, ignored=True)
    max_calib_range: Optional[float] = attr(None, ignored=True)


def _bn_ok(node: OpNode) -> str | None:
    """Refuses output_mean_var=True (batch statistics) and an axis out of range."""
    a, rank = node.attrs, node.inputs[0].ndim
    if a.output_mean_var:
        return f"{node.where()}: output_mean_var=True is not supported (its extra outputs are batch statistics)"
    if rank < 2:
        return f"{node.where()}: input rank {rank} is not supported"
    if not -rank <= a.axis < rank:
        return f"{node.where()}: axis {a.axis} is out of range for rank {rank}"
    return None


@converter("BatchNorm", attrs=BatchNormAttrs, validator=all_of(_bn_ok, const_inputs(1, 2, 3, 4, what="gamma/beta/moving stats")))
def convert_batch_norm(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """BatchNorm -> one IScaleLayer (CHANNEL) with gamma/sqrt(var+eps) and beta-mean*scale folded in float64."""
    a = node.attrs
    x, gamma, beta, mean, var = ctx.tensor(inputs[0]), *(np.asarray(v, np.float64) for v in inputs[1:5])
    if a.fix_gamma:  # MXNet ignores gamma (uses 1) when fix_gamma, at inference too
        gamma = np.ones_like(gamma)
    scale = gamma / np.sqrt(var + a.eps)
    shift = beta - mean * scale
    return [layers.channel_affine(ctx, x, scale, shift, a.axis % len(x.shape))]
