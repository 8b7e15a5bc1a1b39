"""Resizing converters: UpSampling (nearest, or bilinear as its depthwise Deconvolution) and BilinearResize2D."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional


from mx2trt import layers
from mx2trt._trt import trt
from mx2trt.attrs import attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import OpNode, TensorInfo, converter


def _resize(ctx: ConversionContext, x: Any, shape: tuple[int, ...], mode: Any, transform: Any) -> Any:
    """IResizeLayer to `shape`; an axis resized to length 1 takes its first element, as MXNet's kernels do."""
    x = ctx.tensor(x)
    layer = ctx.net.add_resize(x)
    copy = layers.same_axes(x, shape)
    if copy:  # sizes varying within the profiles: x's at run time
        layer.set_input(1, layers.shape_tensor(ctx, shape, copy, x))
    else:
        layer.shape = tuple(int(d) for d in shape)
    layer.resize_mode = mode
    layer.coordinate_transformation = transform
    layer.selector_for_single_pixel = trt.ResizeSelector.UPPER
    layer.nearest_rounding = trt.ResizeRoundMode.FLOOR
    return layer.get_output(0)


def _sized(ctx: ConversionContext, src: TensorInfo, dst: TensorInfo) -> tuple[int, ...]:
    """The resize's output shape: src's batch and channels (-1 where they vary within the profiles), dst's static
    spatial size; fails when the spatial size varies."""
    if any(j >= 2 for j in dst.dynamic):
        ctx.fail(f"resizing to a spatial size that varies within the profiles ({dst.dims}) is not supported")
    return tuple((src.dims or src.shape)[:2]) + tuple(dst.shape[2:])


# ---- UpSampling ----------------------------------------------------------------------------------------------------


@schema
class UpSamplingAttrs:
    scale: int = attr()
    sample_type: Literal["bilinear", "nearest"] = attr()
    num_args: int = attr()
    num_filter: int = 0
    multi_input_mode: Literal["concat", "sum"] = "concat"
    workspace: int = attr(512, ignored=True)


def _bilinear_kernel(scale: int) -> tuple[int, int]:
    """(kernel, pad) of the depthwise Deconvolution MXNet runs for bilinear UpSampling (stride = scale)."""
    return 2 * scale - scale % 2, math.ceil((scale - 1) / 2)


def _upsampling_ok(node: OpNode) -> str | None:
    """4-D; nearest: each input scales by one integer to the output; bilinear: a parameter weight, num_filter = C."""
    a = node.attrs
    out = node.outputs[0].shape
    if a.sample_type == "bilinear":
        if len(node.inputs) != 2 or not node.inputs[1].const:
            return f"{node.where()}: bilinear needs its weight (input 1) as a parameter"
        c, k = node.inputs[0].shape[1], _bilinear_kernel(a.scale)[0]
        if node.inputs[0].ndim != 4 or a.num_filter != c or node.inputs[1].shape != (c, 1, k, k):
            return f"{node.where()}: bilinear with num_filter {a.num_filter} over {c} channels is not depthwise"
        return None
    for i, t in enumerate(node.inputs):
        if t.ndim != 4:
            return f"{node.where()}: input {i} has rank {t.ndim} (4-D only)"
        h, w = t.shape[2:]
        if out[2] % h or w * (out[2] // h) != out[3]:
            return f"{node.where()}: input {i} of {h}x{w} does not scale by one integer to {out[2]}x{out[3]}"
    return None


@converter("UpSampling", attrs=UpSamplingAttrs, validator=_upsampling_ok)
def convert_upsampling(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """UpSampling -> nearest: IResizeLayer NEAREST per input (integer scales) + concat or sum; bilinear:
    IDeconvolutionLayer with the weight, groups = channels, stride = scale."""
    a = node.attrs
    if a.sample_type == "bilinear":
        k, p = _bilinear_kernel(a.scale)
        s = (a.scale, a.scale)
        c = node.inputs[0].shape[1]
        return [layers.deconvolution(ctx, inputs[0], inputs[1], None, c, (k, k), s, (1, 1), c, (p, p), (p, p))]
    nearest, asymmetric = trt.InterpolationMode.NEAREST, trt.ResizeCoordinateTransformation.ASYMMETRIC
    ups = [_resize(ctx, x, _sized(ctx, t, node.outputs[0]), nearest, asymmetric) for x, t in zip(inputs, node.inputs)]
    if a.multi_input_mode == "sum":
        y = ups[0]
        for u in ups[1:]:
            y = layers.elementwise(ctx, y, u, trt.ElementWiseOperation.SUM)
        return [y]
    return [layers.concat(ctx, ups, 1) if len(ups) > 1 else ups[0]]


# ---- BilinearResize2D ----------------------------------------------------------------------------------------------


@schema
class BilinearResize2DAttrs:
    height: int = 1
    width: int = 1
    scale_height: Optional[float] = None
    scale_width: Optional[float] = None
    mode: Literal["like", "odd_scale", "size", "to_even_down", "to_even_up", "to_odd_down", "to_odd_up"] = "size"
    align_corners: bool = True


def _bilinear_resize_ok(node: OpNode) -> str | None:
    """4-D input (every mode: MXNet maps coordinates from the input and output sizes alone)."""
    if node.inputs[0].ndim != 4:
        return f"{node.where()}: input rank {node.inputs[0].ndim} is not supported (4-D only)"
    return None


# mode 'like' takes its output size from a second input, whose values it never reads: not wired into the engine.
@converter("_contrib_BilinearResize2D", attrs=BilinearResize2DAttrs, validator=_bilinear_resize_ok, data_inputs=1)
def convert_bilinear_resize(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """_contrib_BilinearResize2D -> IResizeLayer LINEAR to the output size, ALIGN_CORNERS or HALF_PIXEL (source
    coordinates clamped at 0 like MXNet's); a length-1 output axis takes the first element."""
    C = trt.ResizeCoordinateTransformation
    transform = C.ALIGN_CORNERS if node.attrs.align_corners else C.HALF_PIXEL
    return [_resize(ctx, inputs[0], _sized(ctx, node.inputs[0], node.outputs[0]), trt.InterpolationMode.LINEAR,
                    transform)]
