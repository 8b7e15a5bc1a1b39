"""NumPy reference interpreter of TensorRT networks: evaluates a defined INetworkDefinition layer by layer.

No TensorRT engine can execute on a machine without a supported GPU, so this is how converters are proven there and
how the `reference` runtime runs an engine's network. Every layer's parameters and weights are read back from the
network once (`ReferenceProgram.from_network`); the program does not keep the network alive.

Semantics follow TensorRT's documentation. Floating-point layers compute in float32 (TensorRT's fp16 kernels
accumulate in fp32 as well) and round each output to the tensor's declared dtype, so fp16 networks see fp16 rounding
between layers. BF16 tensors are float32 arrays holding bfloat16 values (rounded after every layer that makes one);
TensorRT reads bf16 weights back without their values, so their float32 copies come from the converter
(`ConversionContext.host_weights`).
"""
from __future__ import annotations

import math
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ._trt import BF16, downcast, layer_type, np_dtype, round_bf16, trt
from .errors import Mx2TrtError

LT = trt.LayerType
_FLT_MAX = float(np.finfo(np.float32).max)
# (layer name, attribute) -> float32 copy of bf16 weights, while from_network reads a network
_HOST_WEIGHTS: ContextVar[Mapping[tuple[str, str], np.ndarray]] = ContextVar("_HOST_WEIGHTS", default={})
# tensor -> the layer that produces it, while from_network reads a network (makers that fuse Q/DQ look back)
_PRODUCERS: ContextVar[Mapping[Any, Any]] = ContextVar("_PRODUCERS", default={})


class UnsupportedLayerError(Mx2TrtError):
    """A layer kind (or a mode of one) that the reference interpreter does not evaluate."""


@dataclass(frozen=True)
class Step:
    """One layer: its evaluation function over input arrays, and where its inputs come from / outputs go."""

    name: str
    kind: str
    fn: Callable[[list[Any]], list[np.ndarray]]
    inputs: tuple[int | None, ...]
    outputs: tuple[int, ...]
    out_dtypes: tuple[np.dtype, ...]


class ReferenceProgram:
    """A network read back into NumPy steps; `run(feeds)` gives the outputs, `trace(feeds)` every layer's outputs."""

    def __init__(
        self,
        steps: list[Step],
        inputs: dict[str, tuple[int, tuple[int, ...], np.dtype]],
        outputs: dict[str, int],
        num_slots: int,
    ) -> None:
        self.steps = steps
        self.inputs = inputs
        self.outputs = outputs
        self.num_slots = num_slots
        self._nbytes: int | None = None
        self._warned = False  # of an fp16/bf16 overflow (once per program)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the steps hold (weights and constants), for the engine store's bound."""
        if self._nbytes is None:
            arrays: dict[int, int] = {}
            for step in self.steps:
                for cell in step.fn.__closure__ or ():
                    try:
                        v = cell.cell_contents
                    except ValueError:  # an empty cell
                        continue
                    if isinstance(v, np.ndarray):
                        arrays[id(v)] = v.nbytes
            self._nbytes = sum(arrays.values())
        return self._nbytes

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    @classmethod
    def from_network(
        cls, network: Any, host_weights: Mapping[tuple[str, str], np.ndarray] | None = None
    ) -> "ReferenceProgram":
        """Read every layer of `network` (in topological order) into a step; `host_weights` holds float32 copies of
        bf16 weights by (layer name, attribute), which TensorRT cannot give back."""
        token = _HOST_WEIGHTS.set(host_weights or {})
        producers = {}
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            for j in range(layer.num_outputs):
                producers[layer.get_output(j)] = layer
        token2 = _PRODUCERS.set(producers)
        try:
            return cls._from_network(network)
        finally:
            _PRODUCERS.reset(token2)
            _HOST_WEIGHTS.reset(token)

    @classmethod
    def _from_network(cls, network: Any) -> "ReferenceProgram":
        slots: dict[Any, int] = {}

        def slot(t: Any) -> int:
            if t not in slots:
                slots[t] = len(slots)
            return slots[t]

        inputs = {}
        for i in range(network.num_inputs):
            t = network.get_input(i)
            inputs[t.name] = (slot(t), tuple(t.shape), np_dtype(t.dtype))
        steps = []
        for item in reference_loop.fold(_topological_layers(network)):  # each loop's layers make one step
            name, kind, fn, reads, outs = (item.compile(_layer_fn) if isinstance(item, reference_loop.Loop)
                                           else _layer_fn(item))
            steps.append(
                Step(
                    name=name,
                    kind=kind,
                    fn=fn,
                    inputs=tuple(None if t is None else slot(t) for t in reads),
                    outputs=tuple(slot(t) for t in outs),
                    out_dtypes=tuple(np_dtype(t.dtype) for t in outs),
                )
            )
        outputs = {}
        for i in range(network.num_outputs):
            t = network.get_output(i)
            outputs[t.name] = slot(t)
        return cls(steps, inputs, outputs, len(slots))

    def _execute(self, feeds: Mapping[str, Any], on_step: Callable[[Step, list[np.ndarray]], None] | None) -> list:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise Mx2TrtError(f"reference program: missing inputs {sorted(missing)}")
        values: list[Any] = [None] * self.num_slots
        for name, (s, shape, dtype) in self.inputs.items():
            x = np.asarray(feeds[name])
            if len(x.shape) != len(shape) or any(d >= 0 and d != g for d, g in zip(shape, x.shape)):
                raise Mx2TrtError(f"reference program: input '{name}' has shape {x.shape}, the network {shape}")
            values[s] = _store(x, dtype)
        for step in self.steps:
            args = [None if s is None else values[s] for s in step.inputs]
            try:
                outs = step.fn(args)
            except Mx2TrtError:
                raise
            except Exception as exc:  # report which layer failed, not a bare NumPy error
                raise Mx2TrtError(f"reference program: layer '{step.name}' ({step.kind}) failed: {exc}") from exc
            for s, y, dt in zip(step.outputs, outs, step.out_dtypes):
                values[s] = _store(y, dt)
                if dt in _REDUCED and not self._warned and _overflowed(values[s], y):
                    self._warned = True
                    node = step.name.rsplit("/", 1)[0]
                    warnings.warn(f"mx2trt: layer '{step.name}' ({step.kind}) of MXNet node '{node}' overflows "
                                  f"{'bfloat16' if dt == BF16 else dt}: its float32 result is finite, its "
                                  f"{'bf16' if dt == BF16 else 'fp16'} value is not; keep the node in float32 with "
                                  f"fp32_nodes=['{node}'] (or its op in fp32_ops)", RuntimeWarning, stacklevel=3)
            if on_step is not None:
                on_step(step, [values[s] for s in step.outputs])
        return values

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Evaluate the network on `feeds` (input name -> array); returns output name -> array."""
        values = self._execute(feeds, None)
        return {name: values[s] for name, s in self.outputs.items()}

    def trace(self, feeds: Mapping[str, Any]) -> list[tuple[str, str, list[np.ndarray]]]:
        """Evaluate and return (layer name, layer kind, outputs) for every layer, for layer-by-layer debugging."""
        rows: list[tuple[str, str, list[np.ndarray]]] = []
        self._execute(feeds, lambda step, outs: rows.append((step.name, step.kind, outs)))
        return rows


def _layer_fn(layer: Any) -> tuple[str, str, Callable, list, list]:
    """(name, kind, evaluation function, tensors it reads, output tensors) of one layer."""
    kind = layer_type(layer)
    downcast(layer)
    make = _MAKERS.get(kind)
    if make is None:
        raise UnsupportedLayerError(f"layer '{layer.name}': {kind.name} layers are not supported")
    ins = [layer.get_input(j) for j in range(layer.num_inputs)]
    outs = [layer.get_output(j) for j in range(layer.num_outputs)]
    try:
        fn = make(layer, ins, outs)
    except UnsupportedLayerError as exc:
        raise UnsupportedLayerError(f"layer '{layer.name}' ({kind.name}): {exc}") from None
    reads = getattr(fn, "reads", ins)  # a fused step reads other tensors than its layer's inputs
    return layer.name, kind.name, fn, reads, outs


def _topological_layers(network: Any) -> list[Any]:
    """Layers so that each comes after the producers of its inputs (insertion order is not always that:
    `set_input` may wire in a layer created later); a recurrence's back edge is no dependency."""
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    producer = {layer.get_output(j): i for i, layer in enumerate(layers) for j in range(layer.num_outputs)}

    def deps(i: int) -> list[int | None]:
        return [None if reference_loop.back_edge(layers[i], j) else producer.get(layers[i].get_input(j))
                for j in range(layers[i].num_inputs)]

    order = depth_first(len(layers), deps, lambda i: f"layer '{layers[i].name}' is part of a cycle")
    return [layers[i] for i in order]


def depth_first(count: int, deps: Callable[[int], Sequence[int | None]], cycle: Callable[[int], str]) -> list[int]:
    """0..count-1 ordered so that each comes after its `deps` (None entries ignored); `cycle(i)` words the error
    when i depends on itself."""
    order: list[int] = []
    state = [0] * count  # 0 new, 1 on the stack, 2 done
    for root in range(count):
        stack = [(root, False)]
        while stack:
            i, expanded = stack.pop()
            if expanded:
                state[i] = 2
                order.append(i)
                continue
            if state[i]:
                continue
            state[i] = 1
            stack.append((i, True))
            for p in deps(i):
                if p is not None and state[p] == 0:
                    stack.append((p, False))
                elif p is not None and state[p] == 1:
                    raise UnsupportedLayerError(cycle(i))
    return order


# ---- helpers ------------------------------------------------------------------------------------------------------


_REDUCED = (np.dtype(np.float16), BF16)


def _overflowed(stored: np.ndarray, computed: Any) -> bool:
    """A value rounded to fp16/bf16 is inf/NaN where its float32 computation was finite."""
    return not np.isfinite(stored).all() and bool(np.isfinite(np.asarray(computed)).all())


def _f32(x: np.ndarray) -> np.ndarray:
    """Floating inputs compute in float32 (fp16 included); other dtypes are left alone."""
    return x.astype(np.float32) if x.dtype.kind == "f" and x.dtype != np.float32 else x


def _store(x: Any, dtype: np.dtype) -> np.ndarray:
    """`x` as a value of a tensor of `dtype`: BF16 values are float32 arrays rounded to bfloat16."""
    with np.errstate(over="ignore"):  # a float too large for the dtype becomes inf, as on the GPU
        if dtype == BF16:
            return round_bf16(np.asarray(x, dtype=np.float32))
        return np.asarray(x).astype(dtype, copy=False)


def _weights(layer: Any, attr: str) -> np.ndarray:
    """Copy of a layer's weights `attr` (TensorRT returns views of the caller's buffers; bf16 weights come back
    without values, their float32 copies from from_network's `host_weights`)."""
    w = getattr(layer, attr)
    if w is None:
        return np.zeros(0, np.float32)
    if isinstance(w, trt.Weights):
        if w.size == 0:
            return np.zeros(0, np.float32)
        if w.dtype == getattr(trt, "bfloat16", None):
            host = _HOST_WEIGHTS.get().get((layer.name, attr))
            if host is None:
                raise UnsupportedLayerError(f"bf16 {attr} cannot be read back (no host copy given)")
            return np.array(host, dtype=np.float32, copy=True).ravel()
        try:
            return np.array(w.numpy(), copy=True)
        except Exception:  # types NumPy has no dtype for
            raise UnsupportedLayerError(f"weights of type {w.dtype} cannot be read") from None
    return np.array(w, copy=True)


def _dims(d: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in d)


def _axes(mask: int, rank: int) -> tuple[int, ...]:
    return tuple(a for a in range(rank) if mask >> a & 1)


def _window_geometry(size: int, k: int, s: int, d: int, pre: int, post: int, mode: Any) -> tuple[int, int, int]:
    """(pre padding, post padding, output size) of one spatial dim under TensorRT's padding modes."""
    eff = d * (k - 1) + 1
    PM = trt.PaddingMode
    if mode in (PM.SAME_UPPER, PM.SAME_LOWER):
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
        lo = total // 2 if mode == PM.SAME_UPPER else total - total // 2
        return lo, total - lo, out
    span = size + pre + post - eff
    if mode == PM.EXPLICIT_ROUND_UP or mode == getattr(PM, "CAFFE_ROUND_UP", None):
        out = -(-span // s) + 1
    else:
        out = span // s + 1
    return pre, post, out


def _windows(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
             geo: Sequence[tuple[int, int, int]], fill: float) -> np.ndarray:
    """Sliding windows over the trailing len(kernel) dims: (..., out_1..out_n, k_1..k_n), padded with `fill`.

    Windows that overhang the padded input (round-up modes) see `fill` there too.
    """
    n = len(kernel)
    lead = x.ndim - n
    pads = [(0, 0)] * lead
    for i in range(n):
        pre, post, out = geo[i]
        need = (out - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        extra = max(need - (x.shape[lead + i] + pre + post), 0)
        pads.append((pre, post + extra))
    xp = np.pad(x, pads, mode="constant", constant_values=fill)
    eff = [dilation[i] * (kernel[i] - 1) + 1 for i in range(n)]
    w = np.lib.stride_tricks.sliding_window_view(xp, eff, axis=tuple(range(lead, x.ndim)))
    sl = [slice(None)] * lead
    sl += [slice(0, (geo[i][2] - 1) * stride[i] + 1, stride[i]) for i in range(n)]
    sl += [slice(None, None, dilation[i]) for i in range(n)]
    return w[tuple(sl)]


def _same_padding_mode(mode: Any) -> bool:
    return mode in (trt.PaddingMode.SAME_UPPER, trt.PaddingMode.SAME_LOWER)


# ---- layer makers: (layer, input tensors, output tensors) -> fn(list of arrays) -> list of arrays ----------------

Maker = Callable[[Any, list, list], Callable[[list], list]]
_MAKERS: dict[Any, Maker] = {}


def _maker(*kinds: Any) -> Callable[[Maker], Maker]:
    def register(fn: Maker) -> Maker:
        for k in kinds:
            _MAKERS[k] = fn
        return fn

    return register


@_maker(LT.CONSTANT)
def _constant(layer: Any, ins: list, outs: list) -> Callable:
    value = _store(_weights(layer, "weights").reshape(_dims(layer.shape)), np_dtype(outs[0].dtype))
    return lambda args: [value]


@_maker(LT.IDENTITY, LT.CAST)
def _cast(layer: Any, ins: list, outs: list) -> Callable:
    dtype = np_dtype(outs[0].dtype)

    def run(args: list) -> list:
        x = args[0]
        if dtype.kind in "iu" and x.dtype.kind == "f":
            return [_store(np.trunc(x), dtype)]  # float -> int casts truncate toward zero
        return [x]  # stored (rounded) as the output dtype by the program, which sees a float value overflow

    return run


@_maker(LT.SHAPE)
def _shape(layer: Any, ins: list, outs: list) -> Callable:
    return lambda args: [np.array(args[0].shape, dtype=np.int64)]


@_maker(LT.CONVOLUTION)
def _convolution(layer: Any, ins: list, outs: list) -> Callable:
    if len(ins) > 2 and ins[2] is not None:
        raise UnsupportedLayerError("bias given as a tensor")
    kernel_size = _dims(layer.kernel_size_nd)
    n = len(kernel_size)
    groups = int(layer.num_groups)
    k_out = int(layer.num_output_maps)
    c_in = int(ins[0].shape[1])
    wshape = (groups, k_out // groups, c_in // groups) + kernel_size
    kernel_tensor = len(ins) > 1 and ins[1] is not None
    w_const = None if kernel_tensor else _weights(layer, "kernel").astype(np.float32).reshape(wshape)
    b = _weights(layer, "bias").astype(np.float32)
    stride, dil = _dims(layer.stride_nd), _dims(layer.dilation_nd)
    pre, post, mode = _dims(layer.pre_padding), _dims(layer.post_padding), layer.padding_mode

    def conv(x: np.ndarray, wg: np.ndarray) -> np.ndarray:
        spatial = x.shape[2:]
        geo = [_window_geometry(spatial[i], kernel_size[i], stride[i], dil[i], pre[i], post[i], mode) for i in range(n)]
        win = _windows(x, kernel_size, stride, dil, geo, 0.0)  # (N, C, o..., k...)
        nb, cg = x.shape[0], c_in // groups
        kaxes = list(range(2 + n, 2 + 2 * n))
        if cg >= 4:  # im2col + one GEMM per group
            parts = [
                np.tensordot(win[:, g * cg:(g + 1) * cg], wg[g], axes=([1] + kaxes, [1] + list(range(2, 2 + n))))
                for g in range(groups)
            ]  # each (N, o..., K/G)
            return np.moveaxis(np.concatenate(parts, axis=-1), -1, 1)
        win = win.reshape((nb, groups, cg) + win.shape[2:])  # depthwise-like: few input channels per group
        o, k = "hijlmn"[:n], "pqrstu"[:n]  # (N,G,C/G,o...,k...) x (G,K/G,C/G,k...) -> (N,G,K/G,o...)
        y = np.einsum(f"ngc{o}{k},gdc{k}->ngd{o}", win, wg, optimize=True)
        return y.reshape((nb, k_out) + y.shape[3:])

    def finish(y: np.ndarray) -> list:
        if b.size:
            y = y + b.reshape((1, k_out) + (1,) * n)
        return [y]

    fused = reference_quant.fused_qdq(ins[0], 0 if kernel_tensor else None, ins[1] if kernel_tensor else None)
    if fused is not None:
        (xq, xs, _), (wq, ws, w_axis), acc = fused

        def run_quantized(args: list) -> list:
            sx, sw = args[1].astype(np.float32), args[3].astype(np.float32)
            y = conv(args[0].astype(acc), args[2].astype(acc).reshape(wshape))
            scale = sx * (sw.reshape((1, k_out) + (1,) * n) if sw.ndim else sw)
            return finish(y.astype(np.float32) * scale)

        run_quantized.reads = [xq, xs, wq, ws]  # type: ignore[attr-defined]
        return run_quantized

    def run(args: list) -> list:
        wg = w_const if w_const is not None else _f32(args[1]).reshape(wshape)
        return finish(conv(_f32(args[0]), wg))

    return run


@_maker(LT.POOLING)
def _pooling(layer: Any, ins: list, outs: list) -> Callable:
    PT = trt.PoolingType
    ptype = layer.type  # after downcasting, `.type` is the PoolingType
    window = _dims(layer.window_size_nd)
    n = len(window)
    stride = _dims(layer.stride_nd)
    pre, post, mode = _dims(layer.pre_padding), _dims(layer.post_padding), layer.padding_mode
    exclude = bool(layer.average_count_excludes_padding)
    blend = float(layer.blend_factor)
    ones = (1,) * n

    def run(args: list) -> list:
        x = _f32(args[0])
        spatial = x.shape[-n:]
        geo = [_window_geometry(spatial[i], window[i], stride[i], 1, pre[i], post[i], mode) for i in range(n)]
        kaxes = tuple(range(-n, 0))
        mx = _windows(x, window, stride, ones, geo, -np.inf).max(axis=kaxes) if ptype != PT.AVERAGE else None
        if ptype == PT.MAX:
            return [mx]
        total = _windows(x, window, stride, ones, geo, 0.0).sum(axis=kaxes)
        # Divisor: real elements only (padding excluded), or every element inside the padded input. Windows that
        # overhang the padded input in round-up modes never count the overhang (as ONNX/PyTorch ceil_mode).
        real = np.ones(spatial, np.float32)
        if exclude:
            count = _windows(real, window, stride, ones, geo, 0.0).sum(axis=kaxes)
        else:
            padded = np.pad(real, [(g[0], g[1]) for g in geo], constant_values=1.0)
            count = _windows(padded, window, stride, ones, [(0, 0, g[2]) for g in geo], 0.0).sum(axis=kaxes)
        avg = total / np.maximum(count, 1.0)
        if ptype == PT.AVERAGE:
            return [avg]
        return [(1.0 - blend) * mx + blend * avg]  # TensorRT: (1 - blendFactor) * max + blendFactor * avg

    return run


_erf_scalar = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x: np.ndarray) -> np.ndarray:
    """erf elementwise (NumPy has none), any rank including 0-d."""
    return np.asarray(_erf_scalar(x), dtype=np.float32)


def _activation_fn(kind: Any, a: float, b: float) -> Callable[[np.ndarray], np.ndarray]:
    A = trt.ActivationType
    table: dict[Any, Callable[[np.ndarray], np.ndarray]] = {
        A.RELU: lambda x: np.maximum(x, 0),
        A.SIGMOID: lambda x: 1 / (1 + np.exp(-x)),
        A.TANH: np.tanh,
        A.LEAKY_RELU: lambda x: np.where(x >= 0, x, a * x),
        A.ELU: lambda x: np.where(x >= 0, x, a * (np.exp(np.minimum(x, 0)) - 1)),
        A.SELU: lambda x: b * np.where(x > 0, x, a * (np.exp(np.minimum(x, 0)) - 1)),
        A.SOFTSIGN: lambda x: x / (1 + np.abs(x)),
        A.SOFTPLUS: lambda x: a * np.logaddexp(0, b * x),
        A.CLIP: lambda x: np.maximum(a, np.minimum(b, x)),
        A.HARD_SIGMOID: lambda x: np.clip(a * x + b, 0, 1),
        A.SCALED_TANH: lambda x: a * np.tanh(b * x),
        A.THRESHOLDED_RELU: lambda x: np.where(x > a, x, 0),
        A.GELU_ERF: lambda x: 0.5 * x * (1 + _erf(x / np.float32(math.sqrt(2)))),
        A.GELU_TANH: lambda x: 0.5 * x * (1 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + 0.044715 * x**3))),
    }
    if kind not in table:
        raise UnsupportedLayerError(f"activation {kind.name}")
    return table[kind]


@_maker(LT.ACTIVATION)
def _activation(layer: Any, ins: list, outs: list) -> Callable:
    fn = _activation_fn(layer.type, float(layer.alpha), float(layer.beta))

    def run(args: list) -> list:
        with np.errstate(over="ignore"):  # exp overflow gives inf, as on the GPU
            return [fn(_f32(args[0]))]

    return run


def _unary_fn(op: Any) -> Callable[[np.ndarray], np.ndarray]:
    U = trt.UnaryOperation
    table: dict[Any, Callable[[np.ndarray], np.ndarray]] = {
        U.EXP: np.exp, U.LOG: np.log, U.SQRT: np.sqrt, U.RECIP: lambda x: 1 / x, U.ABS: np.abs, U.NEG: np.negative,
        U.SIN: np.sin, U.COS: np.cos, U.TAN: np.tan, U.SINH: np.sinh, U.COSH: np.cosh, U.ASIN: np.arcsin,
        U.ACOS: np.arccos, U.ATAN: np.arctan, U.ASINH: np.arcsinh, U.ACOSH: np.arccosh, U.ATANH: np.arctanh,
        U.CEIL: np.ceil, U.FLOOR: np.floor, U.ROUND: np.round,  # np.round: half to even, as TensorRT
        U.ERF: _erf, U.NOT: np.logical_not, U.SIGN: np.sign,
        U.ISINF: np.isinf, U.ISNAN: np.isnan,
    }
    if op not in table:
        raise UnsupportedLayerError(f"unary {op.name}")
    return table[op]


@_maker(LT.UNARY)
def _unary(layer: Any, ins: list, outs: list) -> Callable:
    fn = _unary_fn(layer.op)

    def run(args: list) -> list:
        with np.errstate(all="ignore"):  # log(0), sqrt(-1)... give inf/nan as on the GPU
            return [fn(_f32(args[0]))]

    return run


@_maker(LT.ELEMENTWISE)
def _elementwise(layer: Any, ins: list, outs: list) -> Callable:
    E = trt.ElementWiseOperation
    if len(ins[0].shape) != len(ins[1].shape):
        raise UnsupportedLayerError("inputs of different rank (TensorRT rejects them)")

    def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.dtype.kind in "iu":
            return np.trunc(a / b).astype(a.dtype)  # integer division truncates toward zero
        return a / b

    table = {
        E.SUM: np.add, E.PROD: np.multiply, E.MAX: np.maximum, E.MIN: np.minimum, E.SUB: np.subtract, E.DIV: div,
        E.POW: np.power, E.FLOOR_DIV: lambda a, b: np.floor_divide(a, b), E.AND: np.logical_and,
        E.OR: np.logical_or, E.XOR: np.logical_xor, E.EQUAL: np.equal, E.GREATER: np.greater, E.LESS: np.less,
    }
    if layer.op not in table:
        raise UnsupportedLayerError(f"elementwise {layer.op.name}")
    fn = table[layer.op]

    def run(args: list) -> list:
        with np.errstate(all="ignore"):
            return [fn(_f32(args[0]), _f32(args[1]))]

    return run


@_maker(LT.SCALE)
def _scale(layer: Any, ins: list, outs: list) -> Callable:
    M = trt.ScaleMode
    shift, scale, power = (_weights(layer, w).astype(np.float32) for w in ("shift", "scale", "power"))
    mode, axis = layer.mode, int(layer.channel_axis)
    r = len(ins[0].shape)
    axis %= r

    def shaped(w: np.ndarray, x: np.ndarray) -> np.ndarray:
        if mode == M.UNIFORM:
            return w.reshape(())
        if mode == M.CHANNEL:
            return w.reshape((x.shape[axis],) + (1,) * (r - axis - 1))
        return w.reshape(x.shape[axis:])

    def run(args: list) -> list:
        y = _f32(args[0])
        if scale.size:
            y = y * shaped(scale, y)
        if shift.size:
            y = y + shaped(shift, y)
        if power.size:
            y = y ** shaped(power, y)
        return [y]

    return run


@_maker(LT.SOFTMAX)
def _softmax(layer: Any, ins: list, outs: list) -> Callable:
    axes = _axes(int(layer.axes), len(ins[0].shape))

    def run(args: list) -> list:
        x = _f32(args[0])
        e = np.exp(x - x.max(axis=axes, keepdims=True))
        return [e / e.sum(axis=axes, keepdims=True)]

    return run


@_maker(LT.REDUCE)
def _reduce(layer: Any, ins: list, outs: list) -> Callable:
    R = trt.ReduceOperation
    table = {R.SUM: np.sum, R.PROD: np.prod, R.MAX: np.max, R.MIN: np.min, R.AVG: np.mean}
    if layer.op not in table:
        raise UnsupportedLayerError(f"reduce {layer.op.name}")
    fn, axes, keep = table[layer.op], _axes(int(layer.axes), len(ins[0].shape)), bool(layer.keep_dims)
    return lambda args: [fn(_f32(args[0]), axis=axes, keepdims=keep)]


@_maker(LT.MATRIX_MULTIPLY)
def _matrix_multiply(layer: Any, ins: list, outs: list) -> Callable:
    MO = trt.MatrixOperation
    op0, op1 = layer.op0, layer.op1

    def mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if op0 == MO.TRANSPOSE:
            a = np.swapaxes(a, -1, -2)
        if op1 == MO.TRANSPOSE:
            b = np.swapaxes(b, -1, -2)
        if op0 == MO.VECTOR:
            a = a[..., None, :]
        if op1 == MO.VECTOR:
            b = b[..., :, None]
        y = np.matmul(a, b)
        if op1 == MO.VECTOR:
            y = y[..., 0]
        if op0 == MO.VECTOR:
            y = y[..., 0, :] if op1 != MO.VECTOR else y[..., 0]
        return y

    # b's columns (the output's last axis) may have a scale each: its axis -1, or -2 when transposed
    rank_b = len(ins[1].shape)
    b_axis = rank_b - (2 if op1 == MO.TRANSPOSE else 1)
    fused = None if MO.VECTOR in (op0, op1) else reference_quant.fused_qdq(ins[0], b_axis, ins[1])
    if fused is not None:
        (aq, a_s, _), (bq, b_s, _), acc = fused

        def run_quantized(args: list) -> list:
            y = mm(args[0].astype(acc), args[2].astype(acc))
            return [y.astype(np.float32) * (args[1].astype(np.float32) * args[3].astype(np.float32).ravel())]

        run_quantized.reads = [aq, a_s, bq, b_s]  # type: ignore[attr-defined]
        return run_quantized

    return lambda args: [mm(_f32(args[0]), _f32(args[1]))]


@_maker(LT.NORMALIZATION)
def _normalization(layer: Any, ins: list, outs: list) -> Callable:
    axes_all = _axes(int(layer.axes), len(ins[0].shape))
    eps, groups = float(layer.epsilon), int(layer.num_groups)

    def run(args: list) -> list:
        x, scale, bias = (_f32(a) for a in args[:3])
        if groups == 1:
            mean = x.mean(axis=axes_all, keepdims=True)
            var = ((x - mean) ** 2).mean(axis=axes_all, keepdims=True)
            return [(x - mean) / np.sqrt(var + eps) * scale + bias]
        # Group normalization: channels split into groups, each normalized over (its channels, spatial dims).
        n, c = x.shape[:2]
        xg = x.reshape((n, groups, c // groups) + x.shape[2:])
        red = tuple(range(2, xg.ndim))
        mean = xg.mean(axis=red, keepdims=True)
        var = ((xg - mean) ** 2).mean(axis=red, keepdims=True)
        y = ((xg - mean) / np.sqrt(var + eps)).reshape(x.shape)
        if scale.shape[1] == groups and groups != c:  # the v1 layer takes per-group scale and bias
            y = y.reshape(xg.shape) * scale.reshape(scale.shape[:2] + (1,) * (xg.ndim - 2))
            y = (y + bias.reshape(bias.shape[:2] + (1,) * (xg.ndim - 2))).reshape(x.shape)
            return [y]
        return [y * scale + bias]

    return run


@_maker(LT.DECONVOLUTION)
def _deconvolution(layer: Any, ins: list, outs: list) -> Callable:
    if len(ins) > 1 and any(t is not None for t in ins[1:]):
        raise UnsupportedLayerError("kernel or bias given as tensors")
    if _same_padding_mode(layer.padding_mode):
        raise UnsupportedLayerError(f"padding mode {layer.padding_mode.name}")
    kernel_size = _dims(layer.kernel_size_nd)
    n = len(kernel_size)
    groups, k_out, c_in = int(layer.num_groups), int(layer.num_output_maps), int(ins[0].shape[1])
    w = _weights(layer, "kernel").astype(np.float32).reshape((c_in, k_out // groups) + kernel_size)
    b = _weights(layer, "bias").astype(np.float32)
    stride, dil = _dims(layer.stride_nd), _dims(layer.dilation_nd)
    pre, post = _dims(layer.pre_padding), _dims(layer.post_padding)
    cg, kg = c_in // groups, k_out // groups

    def run(args: list) -> list:
        x = _f32(args[0])
        nb, spatial = x.shape[0], x.shape[2:]
        full = [(spatial[i] - 1) * stride[i] + dil[i] * (kernel_size[i] - 1) + 1 for i in range(n)]
        y = np.zeros((nb, k_out) + tuple(full), np.float32)
        # Each kernel tap scatters the whole input, strided, into the full (uncropped) output.
        for tap in np.ndindex(*kernel_size):
            region = (slice(None), slice(None)) + tuple(
                slice(tap[i] * dil[i], tap[i] * dil[i] + (spatial[i] - 1) * stride[i] + 1, stride[i]) for i in range(n)
            )
            for g in range(groups):
                xg = x[:, g * cg:(g + 1) * cg]  # (N, C/G, s...)
                wg = w[(slice(g * cg, (g + 1) * cg), slice(None)) + tap]  # (C/G, K/G)
                contrib = np.moveaxis(np.tensordot(xg, wg, axes=([1], [0])), -1, 1)  # (N, K/G, s...)
                y[(slice(None), slice(g * kg, (g + 1) * kg)) + region[2:]] += contrib
        crop = (slice(None), slice(None)) + tuple(slice(pre[i], full[i] - post[i]) for i in range(n))
        y = y[crop]
        if b.size:
            y = y + b.reshape((1, k_out) + (1,) * n)
        return [y]

    return run


def _resize_source(out: int, size: int, scale: float, transform: Any, selector: Any) -> np.ndarray:
    """Input coordinate of every output index along one axis."""
    C = trt.ResizeCoordinateTransformation
    o = np.arange(out, dtype=np.float64)
    if out == 1 and selector == trt.ResizeSelector.UPPER:
        return np.zeros(1)
    if transform == C.ALIGN_CORNERS:
        return o * ((size - 1) / (out - 1)) if out > 1 else np.zeros(1)
    if transform == C.ASYMMETRIC:
        return o / scale
    return (o + 0.5) / scale - 0.5  # HALF_PIXEL


@_maker(LT.RESIZE)
def _resize(layer: Any, ins: list, outs: list) -> Callable:
    I, R = trt.InterpolationMode, trt.ResizeRoundMode
    dynamic = len(ins) > 1 and ins[1] is not None  # the output shape as a tensor, known at run time
    mode = layer.resize_mode
    if mode not in (I.NEAREST, I.LINEAR):
        raise UnsupportedLayerError(f"interpolation {mode.name}")
    out_shape = None if dynamic else _dims(outs[0].shape)
    scales = [float(v) for v in layer.scales] if not dynamic and layer.scales else None
    transform, selector, rounding = layer.coordinate_transformation, layer.selector_for_single_pixel, layer.nearest_rounding
    rnd = {R.FLOOR: np.floor, R.CEIL: np.ceil, R.HALF_DOWN: lambda v: np.ceil(v - 0.5),
           R.HALF_UP: lambda v: np.floor(v + 0.5)}[rounding]

    def run(args: list) -> list:
        y = _f32(args[0])
        for ax, (size, out) in enumerate(zip(args[0].shape, tuple(int(v) for v in args[1]) if dynamic else out_shape)):
            scale = scales[ax] if scales else out / size
            if out == size and scale == 1.0:
                continue
            src = _resize_source(out, size, scale, transform, selector)
            if mode == I.NEAREST:
                y = np.take(y, np.clip(rnd(src), 0, size - 1).astype(np.int64), axis=ax)
                continue
            src = np.clip(src, 0, size - 1)
            lo = np.floor(src).astype(np.int64)
            hi = np.minimum(lo + 1, size - 1)
            frac = (src - lo).astype(np.float32).reshape((1,) * ax + (-1,) + (1,) * (y.ndim - ax - 1))
            y = np.take(y, lo, axis=ax) * (1 - frac) + np.take(y, hi, axis=ax) * frac
        return [y]

    return run


@_maker(LT.LRN)
def _lrn(layer: Any, ins: list, outs: list) -> Callable:
    window, alpha, beta, k = int(layer.window_size), float(layer.alpha), float(layer.beta), float(layer.k)

    def run(args: list) -> list:
        x = _f32(args[0])
        sq = np.square(x)
        c = x.shape[1]
        half = window // 2
        padded = np.pad(sq, [(0, 0), (half, window - 1 - half)] + [(0, 0)] * (x.ndim - 2))
        total = sum(padded[:, i:i + c] for i in range(window))  # across channels, centred on each channel
        return [x / np.power(k + alpha / window * total, beta)]

    return run


def supported_layer_kinds() -> list[str]:
    """Names of the TensorRT layer kinds the interpreter evaluates."""
    return sorted({k.name for k in _MAKERS} | reference_loop.KINDS)


__all__ = ["ReferenceProgram", "Step", "UnsupportedLayerError", "supported_layer_kinds"]


from . import reference_quant  # noqa: E402  (Q/DQ layers and fused int8/fp8 kernels; registers makers)
from . import reference_loop  # noqa: E402  (ILoop: trip limit, recurrence, iterator and loop output layers)
from . import reference_movement  # noqa: E402, F401  (concatenation, shuffle, slice, padding, select, gather, top-k)
