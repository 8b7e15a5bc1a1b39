"""Data-movement converters: Flatten, Concat, Reshape and its kin, transpose and SwapAxis, slicing and Crop, tiling,
reversing (SequenceReverse too), Pad, Cast, the constant-valued *_like ops, and ops that are the identity at
inference (Dropout, BlockGrad...)."""
from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np

from mx2trt import layers
from mx2trt._trt import np_dtype, trt
from mx2trt.attrs import NoAttrs, attr, schema
from mx2trt.context import ConversionContext
from mx2trt.registry import DATA_DTYPES, INT32, INT_DTYPES, OpNode, all_of, converter, rank_in

EW = trt.ElementWiseOperation
FLOAT32 = frozenset({np.dtype(np.float32)})


@converter("Flatten", "flatten", attrs=NoAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_flatten(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Flatten -> IShuffleLayer to (N, -1); a 1-D input becomes (N, 1)."""
    return [layers.reshape_as(ctx, inputs[0], node.inputs[0], node.outputs[0])]


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


@converter("Concat", "concat", attrs=ConcatAttrs, validator=_concat_ok, compute=False, dtypes=DATA_DTYPES)
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


@converter("Dropout", attrs=DropoutAttrs, validator=_dropout_ok, compute=False, dtypes=DATA_DTYPES)
def convert_dropout(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Dropout at inference -> identity (no layer unless the value leaves the engine)."""
    return [ctx.tensor(inputs[0])]


@converter("BlockGrad", "stop_gradient", "_copy", "identity", attrs=NoAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_identity(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """BlockGrad / stop_gradient / _copy / identity -> identity at inference."""
    return [ctx.tensor(inputs[0])]


# ---- shared validators ---------------------------------------------------------------------------------------------


# ---- Reshape, expand_dims, squeeze ---------------------------------------------------------------------------------


@schema
class ReshapeAttrs:
    shape: tuple[int, ...] = ()
    reverse: bool = False
    target_shape: tuple[int, ...] = ()  # deprecated
    keep_highest: bool = False  # deprecated


def _reshape_ok(node: OpNode) -> str | None:
    """Refuses the deprecated target_shape/keep_highest, and shapes MXNet infers with another element count."""
    a = node.attrs
    if a.target_shape or a.keep_highest:
        return f"{node.where()}: the deprecated attributes target_shape/keep_highest are not supported (use shape)"
    src, dst = node.inputs[0].shape, node.outputs[0].shape
    if np.prod(src, dtype=np.int64) != np.prod(dst, dtype=np.int64):
        # MXNet 1.9.1 places an inferred -1 by its index in `shape`, so a -1 after a -4 lands on the wrong dim
        return f"{node.where()}: MXNet infers shape {dst} for input {src}, a different number of elements"
    return None


@converter("Reshape", "reshape", attrs=ReshapeAttrs, validator=_reshape_ok, compute=False, dtypes=DATA_DTYPES)
def convert_reshape(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Reshape -> IShuffleLayer to the output shape MXNet inferred (special codes 0/-1/-2/-3/-4, reverse)."""
    return [layers.reshape_as(ctx, inputs[0], node.inputs[0], node.outputs[0])]


@schema
class ReshapeLikeAttrs:
    lhs_begin: Optional[int] = None
    lhs_end: Optional[int] = None
    rhs_begin: Optional[int] = None
    rhs_end: Optional[int] = None


# rhs is wired in although only its shape is read, as slice_like's second input (see there).
@converter("reshape_like", attrs=ReshapeLikeAttrs, compute=False, dtypes=DATA_DTYPES, shape_inputs=(1,))
def convert_reshape_like(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """reshape_like -> IShuffleLayer to the output shape MXNet inferred (the values of rhs are not read)."""
    return [layers.reshape_as(ctx, inputs[0], node.inputs[0], node.outputs[0])]


@schema
class ExpandDimsAttrs:
    axis: int = attr()


@converter("expand_dims", attrs=ExpandDimsAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_expand_dims(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """expand_dims -> IShuffleLayer to the output shape."""
    return [layers.reshape_as(ctx, inputs[0], node.inputs[0], node.outputs[0])]


@schema
class SqueezeAttrs:
    axis: Optional[tuple[int, ...]] = None


@converter("squeeze", attrs=SqueezeAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_squeeze(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """squeeze -> IShuffleLayer to the output shape (MXNet keeps (1,) when every dim is squeezed)."""
    return [layers.reshape_as(ctx, inputs[0], node.inputs[0], node.outputs[0])]


# ---- transpose, reverse --------------------------------------------------------------------------------------------


@schema
class TransposeAttrs:
    axes: tuple[int, ...] = ()


def _transpose_ok(node: OpNode) -> str | None:
    """axes, when given, a permutation of the input's axes (MXNet accepts others and returns garbage)."""
    axes, rank = node.attrs.axes, node.inputs[0].ndim
    if axes and sorted(axes) != list(range(rank)):
        return f"{node.where()}: axes {axes} is not a permutation of the {rank} input axes"
    return None


@converter("transpose", attrs=TransposeAttrs, validator=_transpose_ok, compute=False, dtypes=DATA_DTYPES)
def convert_transpose(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """transpose -> IShuffleLayer first_transpose (no axes: all axes reversed)."""
    rank = node.inputs[0].ndim
    axes = node.attrs.axes or tuple(reversed(range(rank)))
    return [layers.transpose(ctx, inputs[0], axes)]


@schema
class SwapAxisAttrs:
    dim1: int = 0
    dim2: int = 0


@converter("SwapAxis", "swapaxes", attrs=SwapAxisAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_swap_axis(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """SwapAxis / swapaxes -> IShuffleLayer first_transpose exchanging dim1 and dim2 (MXNet's shape inference has
    checked both are in [-rank, rank))."""
    rank = node.inputs[0].ndim
    a, b = node.attrs.dim1 % rank, node.attrs.dim2 % rank
    perm = list(range(rank))
    perm[a], perm[b] = b, a
    return [layers.transpose(ctx, inputs[0], perm)]


@schema
class ReverseAttrs:
    axis: tuple[int, ...] = attr()


def _reverse_ok(node: OpNode) -> str | None:
    """axis entries within [0, rank) (MXNet fails at run time on others, negative ones included)."""
    rank = node.inputs[0].ndim
    bad = [a for a in node.attrs.axis if not 0 <= a < rank]
    if bad:
        return f"{node.where()}: axis {node.attrs.axis} has entries outside [0, {rank})"
    return None


@converter("reverse", "flip", attrs=ReverseAttrs, validator=_reverse_ok, compute=False, dtypes=DATA_DTYPES)
def convert_reverse(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """reverse / flip -> ISliceLayer with stride -1 on each axis listed an odd number of times."""
    shape = layers.varying(ctx, node.inputs[0], node.outputs[0])
    flipped = {a for a in node.attrs.axis if node.attrs.axis.count(a) % 2}  # listed twice: reversed back
    if flipped & set(node.inputs[0].dynamic):
        ctx.fail(f"reversing axes {sorted(flipped)} of {shape}: an axis varying within the profiles is not supported")
    start = [d - 1 if i in flipped else 0 for i, d in enumerate(shape)]
    stride = [-1 if i in flipped else 1 for i in range(len(shape))]
    return [layers.slice_nd(ctx, inputs[0], start, shape, stride)]


@schema
class SequenceReverseAttrs:
    use_sequence_length: bool = False
    axis: int = 0  # MXNet 1.9.1's shape inference takes 0 only


def _sequence_lengths(ctx: ConversionContext, x: Any, steps: int) -> Any:
    """sequence_length as int32 (1, B): floats truncated toward zero as MXNet's static_cast does, then clamped to
    [0, steps]. A computed float length an fp16/bf16 engine would round (2.9999 -> 3) fails asking for float32."""
    if not isinstance(x, trt.ITensor):  # a parameter: exact in NumPy
        v = np.clip(np.trunc(np.asarray(x, np.float64)), 0, steps).astype(np.int32)
        return _ints(ctx, v.reshape(1, -1))
    if x.dtype not in (trt.int32, trt.int64):
        x, exact = layers.exact_source(ctx, x)
        if exact is not None:
            ctx.fail(f"{ctx.precision} rounds computed float lengths, which MXNet truncates", exact_inputs=(1,))
        x = ctx.cast(layers.trunc(ctx, x), INT32)
    bounds = (np.array([0], np_dtype(x.dtype)), np.array([steps], np_dtype(x.dtype)))
    x = layers.elementwise(ctx, layers.elementwise(ctx, x, bounds[0], EW.MAX), bounds[1], EW.MIN)
    return ctx.reshape(ctx.cast(x, INT32), (1, -1))


def _ints(ctx: ConversionContext, value: Any) -> Any:
    return ctx.constant(np.asarray(value, np.int32), dtype=np.int32)


@converter("SequenceReverse", attrs=SequenceReverseAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_sequence_reverse(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """SequenceReverse -> ISliceLayer with stride -1 on axis 0; with sequence_length, IGatherLayer of the (T*B, rest)
    view at rows (t < len[b] ? len[b] - 1 - t : t) * B + b, lengths clamped to [0, T] (outside it MXNet reads and
    writes out of bounds)."""
    shape = node.inputs[0].shape
    rank, steps, batch = len(shape), shape[0], shape[1]
    if not node.attrs.use_sequence_length:
        return [layers.slice_nd(ctx, inputs[0], (steps - 1,) + (0,) * (rank - 1), shape, (-1,) + (1,) * (rank - 1))]
    lengths = _sequence_lengths(ctx, inputs[1], steps)
    t = _ints(ctx, np.arange(steps).reshape(steps, 1))
    back = layers.elementwise(ctx, layers.elementwise(ctx, lengths, _ints(ctx, [[1]]), EW.SUB), t, EW.SUB)
    step = layers.select(ctx, layers.elementwise(ctx, t, lengths, EW.LESS), back, t)  # (T, B): the step read
    rows = layers.elementwise(ctx, layers.elementwise(ctx, step, _ints(ctx, [[batch]]), EW.PROD),
                              _ints(ctx, np.arange(batch).reshape(1, batch)), EW.SUM)
    x = ctx.reshape(inputs[0], (steps * batch, int(np.prod(shape[2:], dtype=np.int64))))
    return [ctx.reshape(ctx.net.add_gather(x, rows, 0).get_output(0), shape)]


# ---- stack, SliceChannel -------------------------------------------------------------------------------------------


@schema
class StackAttrs:
    num_args: int = attr()
    axis: int = 0


@converter("stack", attrs=StackAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_stack(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """stack -> IShuffleLayer inserting the new axis on each input + IConcatenationLayer along it."""
    dims = node.inputs[0].dims or node.inputs[0].shape
    axis = node.attrs.axis % (len(dims) + 1)
    piece = tuple(dims[:axis]) + (1,) + tuple(dims[axis:])
    copy = {j: j - (j > axis) for j, d in enumerate(piece) if d < 0}  # varying axes, from the input's
    return [layers.concat(ctx, [layers.reshape(ctx, x, piece, copy) for x in inputs], axis)]


@schema
class SliceChannelAttrs:
    num_outputs: int = attr()
    axis: int = 1
    squeeze_axis: bool = False


@converter("SliceChannel", "split", attrs=SliceChannelAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_slice_channel(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """SliceChannel / split -> one ISliceLayer per output (+ IShuffleLayer dropping the axis with squeeze_axis)."""
    shape = node.inputs[0].dims or node.inputs[0].shape
    axis = node.attrs.axis % len(shape)
    if shape[axis] < 0:
        ctx.fail(f"splitting axis {axis} of {shape}: an axis varying within the profiles is not supported")
    size = shape[axis] // node.attrs.num_outputs
    piece = shape[:axis] + (size,) + shape[axis + 1:]
    outs = []
    for k, info in enumerate(node.outputs):
        start = [k * size if i == axis else 0 for i in range(len(shape))]
        y = layers.slice_nd(ctx, inputs[0], start, piece)
        piece_info = layers.kept(node.inputs[0], [axis], size)
        outs.append(layers.reshape_as(ctx, y, piece_info, info) if len(info.shape) != len(piece) else y)
    return outs


# ---- slice, slice_axis, slice_like ---------------------------------------------------------------------------------


@schema
class SliceAttrs:
    begin: tuple[Optional[int], ...] = attr()
    end: tuple[Optional[int], ...] = attr()
    step: tuple[Optional[int], ...] = ()


def _slice_start(dim: int, begin: Optional[int], step: int) -> int:
    """First index MXNet's slice reads on an axis of size `dim` (its GetIndexRange); the count comes from MXNet's
    shape inference."""
    b = (dim - 1 if step < 0 else 0) if begin is None else begin
    if b < 0:
        b += dim
    if step > 0:
        return max(b, 0)
    return min(b, dim - 1)


@converter("slice", "crop", attrs=SliceAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_slice(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """slice / crop -> ISliceLayer (None entries and negative begin/end/step as MXNet resolves them)."""
    a, shape = node.attrs, node.inputs[0].shape
    start, stride = [], []
    for i, dim in enumerate(shape):
        if i < len(a.begin):
            s = a.step[i] if i < len(a.step) and a.step[i] is not None else 1
            start.append(_slice_start(dim, a.begin[i], s))
            stride.append(s)
            if i in node.inputs[0].dynamic and not (a.begin[i] is None and s > 0 or a.begin[i] is not None and
                                                    0 <= a.begin[i] < layers.smallest(node.inputs[0], i)):
                _varying_start(ctx, node, i)
        else:  # axes past `begin` stay whole
            start.append(0)
            stride.append(1)
    return [layers.slice_nd(ctx, inputs[0], start, layers.varying(ctx, node.inputs[0], node.outputs[0]), stride)]


@schema
class SliceAxisAttrs:
    axis: int = attr()
    begin: int = attr()
    end: Optional[int] = attr()


@converter("slice_axis", attrs=SliceAxisAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_slice_axis(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """slice_axis -> ISliceLayer on one axis."""
    shape = node.inputs[0].shape
    axis = node.attrs.axis % len(shape)
    begin = node.attrs.begin + shape[axis] if node.attrs.begin < 0 else node.attrs.begin
    if axis in node.inputs[0].dynamic and not 0 <= node.attrs.begin < layers.smallest(node.inputs[0], axis):
        _varying_start(ctx, node, axis)
    start = [begin if i == axis else 0 for i in range(len(shape))]
    return [layers.slice_nd(ctx, inputs[0], start, layers.varying(ctx, node.inputs[0], node.outputs[0]))]


def _varying_start(ctx: ConversionContext, node: OpNode, axis: int) -> None:
    ctx.fail(f"axis {axis} varies within the profiles ({node.inputs[0].dims}) and the slice starts from its end "
             "(a negative or clamped begin, or a negative step)")


@schema
class SliceLikeAttrs:
    axes: tuple[int, ...] = ()


# The second input is wired in although only its shape is used: its shape then keys the engine (a subgraph's key
# covers the shapes of its inputs, not of inputs a converter leaves unread), so one engine never serves two shapes.
@converter("slice_like", attrs=SliceLikeAttrs, compute=False, dtypes=DATA_DTYPES, shape_inputs=(1,))
def convert_slice_like(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """slice_like -> ISliceLayer from 0 to the output shape (the second input's values are not read; under profiles,
    sizes varying with it are its own at run time)."""
    out = node.outputs[0]
    if out.dynamic:
        axes = [a % out.ndim for a in node.attrs.axes] if node.attrs.axes else list(range(out.ndim))
        size = _like_sizes(ctx, node, inputs, {a: a for a in axes})
        return [layers.slice_nd(ctx, inputs[0], (0,) * out.ndim, out.dims, size=size)]
    return [layers.slice_nd(ctx, inputs[0], (0,) * out.ndim, out.shape)]


@schema
class CropAttrs:
    num_args: int = attr()
    offset: tuple[int, ...] = (0, 0)  # (y, x)
    h_w: tuple[int, ...] = (0, 0)
    center_crop: bool = False


def _crop_offset(node: OpNode) -> tuple[int, int]:
    """(y, x) of the crop window: MXNet's InferCropOfferset (centred: the spare room halved, rounded down)."""
    (_, _, h, w), (_, _, oh, ow) = node.inputs[0].shape, node.outputs[0].shape
    if node.attrs.center_crop:
        return (h - oh) // 2, (w - ow) // 2
    return node.attrs.offset[0], node.attrs.offset[1]


def _crop_ok(node: OpNode) -> str | None:
    """The crop window inside the input (MXNet fails at run time otherwise): a crop_like no larger than it, offset
    two values within the spare room."""
    (_, _, h, w), (_, _, oh, ow) = node.inputs[0].shape, node.outputs[0].shape
    if oh > h or ow > w:
        return f"{node.where()}: crop size {(oh, ow)} is larger than the input's {(h, w)} (MXNet fails)"
    if not node.attrs.center_crop:
        if len(node.attrs.offset) != 2:
            return f"{node.where()}: offset {node.attrs.offset} is not two values (y, x) (MXNet fails)"
        y, x = _crop_offset(node)
        if not (0 <= y <= h - oh and 0 <= x <= w - ow):
            return f"{node.where()}: offset {node.attrs.offset} puts the {(oh, ow)} crop outside the input's " \
                   f"{(h, w)} (MXNet fails)"
    return None


# The crop_like input is wired in although only its shape is read, as slice_like's second input (see there).
@converter("Crop", attrs=CropAttrs, validator=_crop_ok, compute=False, dtypes=FLOAT32, shape_inputs=(1,))
def convert_crop(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Crop -> ISliceLayer on the two spatial axes of NCHW at offset (y, x) or centred (the second input, with
    num_args=2, gives only the size)."""
    if {2, 3} & set(node.inputs[0].dynamic):
        ctx.fail(f"cropping spatial axes that vary within the profiles ({node.inputs[0].dims}) is not supported")
    y, x = _crop_offset(node)
    return [layers.slice_nd(ctx, inputs[0], (0, 0, y, x), layers.varying(ctx, node.inputs[0], node.outputs[0]))]


# ---- tile, repeat --------------------------------------------------------------------------------------------------


@schema
class TileAttrs:
    reps: tuple[int, ...] = attr()


@converter("tile", attrs=TileAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_tile(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """tile -> IShuffleLayer to the output rank (leading 1s) + ISliceLayer in WRAP mode."""
    out = layers.varying(ctx, node.inputs[0], node.outputs[0])
    x = ctx.tensor(inputs[0], len(out))
    return [layers.slice_nd(ctx, x, (0,) * len(out), out, mode=trt.SampleMode.WRAP)]


@schema
class BroadcastAxisAttrs:
    axis: tuple[int, ...] = ()
    size: tuple[int, ...] = ()


@schema
class BroadcastToAttrs:
    shape: tuple[int, ...] = ()


@schema
class BroadcastLikeAttrs:
    lhs_axes: Optional[tuple[int, ...]] = None
    rhs_axes: Optional[tuple[int, ...]] = None


@converter("broadcast_axis", "broadcast_axes", attrs=BroadcastAxisAttrs, compute=False, dtypes=DATA_DTYPES)
@converter("broadcast_to", attrs=BroadcastToAttrs, compute=False, dtypes=DATA_DTYPES)
# broadcast_like's second input is wired in although only its shape is read, as slice_like's (see there): a data input
# read by it alone stays an argument of the optimized symbol, so Module.bind(data_shapes=...) takes it as before.
@converter("broadcast_like", attrs=BroadcastLikeAttrs, compute=False, dtypes=DATA_DTYPES, shape_inputs=(1,))
def convert_broadcast(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """broadcast_axis/_to/_like -> ISliceLayer in WRAP mode to the output shape (size-1 axes repeat; broadcast_like
    reads only the shape of its second input; under profiles, the sizes varying with it are its own at run time)."""
    if node.op == "broadcast_like" and node.outputs[0].dynamic:
        x, like = node.inputs
        lhs = [a % x.ndim for a in node.attrs.lhs_axes] if node.attrs.lhs_axes else list(range(x.ndim))
        rhs = [a % like.ndim for a in node.attrs.rhs_axes] if node.attrs.rhs_axes else list(range(like.ndim))
        dims = node.outputs[0].dims
        size = _like_sizes(ctx, node, inputs, dict(zip(lhs, rhs)))
        return [layers.slice_nd(ctx, inputs[0], (0,) * len(dims), dims, mode=trt.SampleMode.WRAP, size=size)]
    out = layers.varying(ctx, node.inputs[0], node.outputs[0])
    return [layers.slice_nd(ctx, inputs[0], (0,) * len(out), out, mode=trt.SampleMode.WRAP)]


def _like_sizes(ctx: ConversionContext, node: OpNode, inputs: list[Any], pairs: dict[int, int]) -> Any:
    """The output shape of a *_like op (x, like) whose output varies within the profiles, as a shape tensor: each
    varying axis j copied at run time from like's axis pairs[j] where the op takes that axis from like, else from
    x's own."""
    x, like, out = node.inputs[0], node.inputs[1], node.outputs[0]
    copy: dict[int, Any] = {}
    for j in out.dynamic:
        want = [p[j] for p in out.points]
        if j in pairs and [p[pairs[j]] for p in like.points] == want:  # the like input's size, by definition
            copy[j] = (inputs[1], pairs[j])
        elif j not in pairs and j in x.dynamic and [p[j] for p in x.points] == want:
            copy[j] = (inputs[0], j)
        else:
            ctx.fail(f"output axis {j} varies within the profiles ({out.dims}) unlike either input's")
    return layers.shape_tensor(ctx, out.dims, copy, inputs[0])


@schema
class RepeatAttrs:
    repeats: int = attr()
    axis: Optional[int] = None


@converter("repeat", attrs=RepeatAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_repeat(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """repeat -> IGatherLayer with indices i // repeats along the axis (no axis: of the flattened input)."""
    x, shape = ctx.tensor(inputs[0]), node.inputs[0].shape
    if node.attrs.axis is None:
        x, shape = ctx.reshape(x, (-1,)), (int(np.prod(shape)),)
    axis = 0 if node.attrs.axis is None else node.attrs.axis % len(shape)
    if node.inputs[0].dynamic:
        return [_repeat_dynamic(ctx, x, axis, node.attrs.repeats)]
    index = np.arange(shape[axis] * node.attrs.repeats, dtype=np.int32) // node.attrs.repeats
    return [ctx.net.add_gather(x, ctx.constant(index, dtype=np.int32), axis).get_output(0)]


def _repeat_dynamic(ctx: ConversionContext, x: Any, axis: int, repeats: int) -> Any:
    """repeat under profiles: a unit axis after `axis`, tiled `repeats` times (ISliceLayer WRAP), merged back; the
    varying sizes are copied from x at run time."""
    dims = tuple(int(d) for d in x.shape)
    exp = dims[:axis + 1] + (1,) + dims[axis + 1:]
    y = layers.reshape(ctx, x, exp, {j: j - (j > axis) for j, d in enumerate(exp) if d < 0})
    tiled = exp[:axis + 1] + (repeats,) + exp[axis + 2:]
    y = layers.slice_nd(ctx, y, (0,) * len(tiled), tiled, mode=trt.SampleMode.WRAP)
    out = dims[:axis] + (dims[axis] * repeats if dims[axis] >= 0 else -1,) + dims[axis + 1:]
    return layers.reshape(ctx, y, out, {j: j + (j > axis) for j, d in enumerate(out) if d < 0 and j != axis})


# ---- Pad -----------------------------------------------------------------------------------------------------------


@schema
class PadAttrs:
    mode: Literal["constant", "edge", "reflect"] = attr()
    pad_width: tuple[int, ...] = attr()
    constant_value: float = 0.0


def _pad_ok(node: OpNode) -> str | None:
    """pad_width: a non-negative (before, after) pair per axis, zero on the first two; reflect pads < the dim."""
    a, shape = node.attrs, node.inputs[0].shape
    if len(a.pad_width) != 2 * len(shape):
        return f"{node.where()}: pad_width {a.pad_width} does not give two values per axis of rank {len(shape)}"
    if any(p < 0 for p in a.pad_width) or any(a.pad_width[:4]):
        return f"{node.where()}: pad_width {a.pad_width} must be non-negative and zero on the first two axes"
    if a.mode == "reflect":
        for i, dim in enumerate(shape):
            if max(a.pad_width[2 * i:2 * i + 2]) >= dim:
                return f"{node.where()}: reflect padding {a.pad_width[2 * i:2 * i + 2]} of axis {i} is not smaller " \
                       f"than its size {dim} (MXNet refuses it)"
    return None


_PAD_MODES = {"constant": trt.SampleMode.FILL, "edge": trt.SampleMode.CLAMP, "reflect": trt.SampleMode.REFLECT}


@converter("Pad", "pad", attrs=PadAttrs, validator=all_of(rank_in(4, 5), _pad_ok), compute=False)
def convert_pad(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Pad -> ISliceLayer from -before in FILL (constant), CLAMP (edge) or REFLECT (reflect) mode."""
    a = node.attrs
    start = [-p for p in a.pad_width[::2]]
    fill = a.constant_value if a.mode == "constant" else None
    out = layers.varying(ctx, node.inputs[0], node.outputs[0])
    return [layers.slice_nd(ctx, inputs[0], start, out, mode=_PAD_MODES[a.mode], fill=fill)]


# ---- Cast ----------------------------------------------------------------------------------------------------------


@schema
class CastAttrs:
    dtype: Literal["bfloat16", "bool", "float16", "float32", "float64", "int32", "int64", "int8", "uint8"] = attr()


@converter("Cast", "cast", attrs=CastAttrs, compute=False, dtypes=DATA_DTYPES)
def convert_cast(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """Cast / cast among float32, float16, int32 and int64 -> ICastLayer. Floats are the engine dtype inside; to
    float16 in an fp32 engine goes through float16 and back (the values round as MXNet's do); float to an integer
    truncates toward zero first, as MXNet's static_cast does, so TensorRT's own float-to-int rounding never matters
    (in fp16/bf16 engines a computed value is cast in float32, with the nodes computing it)."""
    x = ctx.tensor(inputs[0])
    target = np.dtype(node.attrs.dtype)
    if target in INT_DTYPES:
        if node.inputs[0].dtype.kind == "f":
            x, exact = layers.exact_source(ctx, x)
            if exact is not None:  # an fp16/bf16 engine would truncate a rounded value
                ctx.fail(f"{ctx.precision} holds integers exactly only up to {exact}, so a computed float cast to "
                         f"{target.name} could change", exact_inputs=(0,))
            x = layers.trunc(ctx, x)
        return [ctx.cast(x, target)]
    if target == np.float16 and ctx.dtype != np.float16:
        x = ctx.cast(x, np.float16)
    return [ctx.cast(x, ctx.dtype)]


# ---- shape-valued ops: shape_array, size_array; zeros_like, ones_like -------------------------------------------


# Under static shapes these are folded into constants before partitioning (fold.py); a converter sees them only when
# their input's shape varies within the optimization profiles.
@converter("shape_array", "size_array", attrs=NoAttrs, compute=False, dtypes=DATA_DTYPES, shape_inputs=(0,))
def convert_shape_array(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """shape_array -> IShapeLayer (int64, MXNet's dtype); size_array -> its IReduceLayer PROD, as (1,)."""
    shape = layers.shape_of(ctx, inputs[0])
    if node.op == "size_array":
        shape = layers.reduce(ctx, shape, trt.ReduceOperation.PROD, [0])
    return [ctx.cast(shape, ctx.out_dtype(node))]


@schema
class FillLikeAttrs:
    # gluoncv passes dtype= (CenterNet: 'int64'); MXNet 1.9.1 records it and ignores it: the output takes x's dtype.
    dtype: Optional[str] = attr(None, ignored=True)


# The input is wired in only under optimization profiles, where it gives the varying sizes at run time.
@converter("zeros_like", "ones_like", attrs=FillLikeAttrs, compute=False, dtypes=DATA_DTYPES, data_inputs=0,
           shape_inputs=(0,))
def convert_fill_like(ctx: ConversionContext, node: OpNode, inputs: list[Any]) -> list[Any]:
    """zeros_like / ones_like -> a one-element IConstantLayer broadcast to the output shape by an ISliceLayer in WRAP
    mode (the input is not read: no NaN or inf leaks, and nothing upstream is needed)."""
    shape = layers.varying(ctx, node.inputs[0], node.outputs[0])
    one = ctx.constant(np.full((1,) * len(shape), 1 if node.op == "ones_like" else 0), dtype=ctx.out_dtype(node))
    return [layers.slice_nd(ctx, one, (0,) * len(shape), shape, mode=trt.SampleMode.WRAP, like=inputs[0])]
