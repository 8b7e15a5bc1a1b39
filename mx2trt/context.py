"""ConversionContext: what a converter gets first — the network (auto-naming layers), weights, precision, errors."""
from __future__ import annotations

import weakref
from typing import Any, Callable, Sequence

import numpy as np

from ._trt import BF16, BF16_MAX, ErrorRecorder, bf16_bits, layer_type, round_bf16, trt, trt_dtype
from .errors import ConversionError
from .quant import NodeQuant
from .registry import OpNode

# Engine dtype per precision; bf16 is the BF16 sentinel (NumPy has no bfloat16), host copies of its values are float32.
PRECISIONS = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16), "bf16": BF16}

# Per precision: the lowest finite value of the engine dtype, and the largest N such that every integer 0..N is exact
# in it (None: float32, which is no worse than MXNet's own float32 tensors).
_LOWEST = {"fp32": float(np.finfo(np.float32).min), "fp16": float(np.finfo(np.float16).min), "bf16": -BF16_MAX}
_EXACT_INT = {"fp32": None, "fp16": 2048, "bf16": 256}

# add_* methods taking trt.Weights: (argument position, the layer attribute that reads them back).
_WEIGHT_ARGS = {
    "add_constant": ((1, "weights"),),
    "add_convolution_nd": ((3, "kernel"), (4, "bias")),
    "add_deconvolution_nd": ((3, "kernel"), (4, "bias")),
    "add_scale": ((2, "shift"), (3, "scale"), (4, "power")),
    "add_scale_nd": ((2, "shift"), (3, "scale"), (4, "power")),
}


class _NamingNetwork:
    """Wraps INetworkDefinition: every `add_*` layer is named after the MXNet node being converted and checked."""

    def __init__(self, ctx: "ConversionContext") -> None:
        self._ctx = weakref.proxy(ctx)  # no reference cycle: a context and its weight copies go when dropped

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ctx.network, name)
        if not name.startswith("add_"):
            return attr

        def add(*args: Any, **kwargs: Any) -> Any:
            layer = attr(*args, **kwargs)
            ctx = self._ctx
            if layer is None:
                ctx.fail(f"TensorRT refused {name}: {'; '.join(ctx.recorder.take()) or 'no reason given'}")
            ctx.name_layer(layer)
            for pos, attr_name in _WEIGHT_ARGS.get(name, ()):
                ctx._claim_host_weights(layer, attr_name, args[pos] if pos < len(args) else kwargs.get(attr_name))
            return layer

        return add


class ConversionContext:
    """State shared by the converters of one subgraph; anything a converter may need later goes here."""

    def __init__(self, network: Any, recorder: ErrorRecorder, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
        self.network = network
        self.net = _NamingNetwork(self)
        self.recorder = recorder
        self.use_precision(precision)
        self.node: OpNode | None = None
        self.dynamic = False  # some input dimension varies within optimization profiles: -1 in the network
        self.quant: NodeQuant | None = None  # how the node being converted is quantized (int8/fp8), if it is
        self._keep: list[np.ndarray] = []  # TensorRT holds weights by reference until the build returns
        # TensorRT reads bf16 weights back without their values: float32 copies by (layer name, attribute), for the
        # reference interpreter; _pending holds those of Weights not yet given to a layer, by id.
        self.host_weights: dict[tuple[str, str], np.ndarray] = {}
        self._pending: dict[int, tuple[Any, np.ndarray]] = {}
        # Names of fp16/bf16 constant layers that hold the float32 values they were given exactly (index checks).
        self.exact_constants: set[str] = set()
        # Values of constant tensors by tensor name (value_of), e.g. the min/max ranges MXNet's int8 ops pass on.
        self._known: dict[str, np.ndarray] = {}
        # Tensor name -> how to turn it into MXNet's representation where it leaves the engine (leaving()).
        self._leaving: dict[str, Callable[[Any], Any]] = {}
        self._layer_count = 0

    def use_precision(self, precision: str) -> None:
        """Precision of the node being converted: the engine's, or fp32 for a node kept in float32 inside an fp16/bf16
        engine (it computes indices or lengths that must stay exact)."""
        self.precision = precision
        self.dtype = PRECISIONS[precision]  # dtype of weights and float activations of this node
        self.lowest = _LOWEST[precision]  # lowest finite value of that dtype (masking)
        self.exact_int = _EXACT_INT[precision]  # every integer up to this is exact in that dtype

    # ---- naming and errors -------------------------------------------------------------------------------------
    def name_layer(self, layer: Any) -> None:
        """Name a layer `<node>/<type>_<k>` so errors and profiles map back to the MXNet node."""
        node = self.node.name if self.node else "mx2trt"
        layer.name = f"{node}/{layer_type(layer).name.lower()}_{self._layer_count}"
        self._layer_count += 1

    def fail(
        self, message: str, attr: str | None = None, exact_inputs: Sequence[int] = (), needs_fp32: bool = False
    ) -> None:
        """Raise a ConversionError naming the current node, its op and `attr`. `needs_fp32`: the node would be right
        in float32 (indices or lengths an fp16/bf16 engine would round); `exact_inputs`: so would the nodes computing
        those inputs. convert() then runs them in float32 inside the engine and tries again."""
        node = self.node
        raise ConversionError(node.name if node else "?", node.op if node else "?", message, attr, tuple(exact_inputs),
                              needs_fp32 or bool(exact_inputs))

    def check(self, outputs: Sequence[Any]) -> None:
        """Raise on any TensorRT error recorded while converting the current node (shape errors are deferred)."""
        for t in outputs:
            try:
                tuple(t.shape)
            except RuntimeError:
                pass  # the recorder holds the reason
        errors = self.recorder.take()
        if errors:
            self.fail("; ".join(errors))

    # ---- weights and constants ---------------------------------------------------------------------------------
    def keep(self, arr: np.ndarray) -> np.ndarray:
        """Keep `arr` alive until the engine is built."""
        self._keep.append(arr)
        return arr

    def weights(self, arr: Any, dtype: Any = None) -> Any:
        """trt.Weights holding `arr` in the engine dtype (or `dtype`), kept alive until the build."""
        dt = np.dtype(dtype or self.dtype)
        if dt == BF16:  # trt.Weights takes no uint16 array: point it at the bit patterns
            host = round_bf16(np.asarray(arr, dtype=np.float32)).ravel()
            bits = self.keep(bf16_bits(host))
            w = trt.Weights(trt.bfloat16, bits.ctypes.data, bits.size)
            self._pending[id(w)] = (w, host)
            return w
        a = self.keep(np.ascontiguousarray(np.asarray(arr, dtype=dt)))
        return trt.Weights(a)

    def _claim_host_weights(self, layer: Any, attr_name: str, w: Any) -> None:
        entry = self._pending.pop(id(w), None) if w is not None else None
        if entry is not None and entry[0] is w:
            self.host_weights[(layer.name, attr_name)] = entry[1]

    def no_weights(self, dtype: Any = None) -> Any:
        """Empty trt.Weights of the engine dtype (or `dtype`), e.g. a convolution without bias."""
        return trt.Weights(trt_dtype(dtype or self.dtype))

    def constant(self, value: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
        """A constant tensor of `value` in `dtype`; by default an int32/int64 array keeps its dtype and anything else
        takes the engine dtype."""
        if dtype is None:
            int_array = isinstance(value, np.ndarray) and value.dtype in (np.int32, np.int64)
            dtype = value.dtype if int_array else self.dtype
        dtype = np.dtype(dtype)
        if dtype == BF16:
            a = np.asarray(value, dtype=np.float32)
            a = a.reshape(tuple(shape)) if shape is not None else a
            layer = self.net.add_constant(tuple(a.shape), self.weights(a, BF16))
            if np.array_equal(self.host_weights[(layer.name, "weights")], a.ravel()):
                self.exact_constants.add(layer.name)
            return layer.get_output(0)
        a = np.asarray(value, dtype=dtype)
        if shape is not None:
            a = a.reshape(tuple(shape))
        a = self.keep(np.ascontiguousarray(a))  # no copy: weights come in read-only or freshly computed
        layer = self.net.add_constant(tuple(a.shape), trt.Weights(a) if a.ndim else trt.Weights(a.reshape(1)))
        if dtype == np.float16 and np.array_equal(a.astype(np.float32), np.asarray(value, np.float32).reshape(a.shape)):
            self.exact_constants.add(layer.name)
        out = layer.get_output(0)
        self._known[out.name] = a
        return out

    def value_of(self, x: Any) -> np.ndarray | None:
        """The value of `x` if it is known at conversion: a parameter, or a tensor made by `constant`."""
        if not isinstance(x, trt.ITensor):
            return None if x is None else np.asarray(x)
        return self._known.get(x.name)

    def represent(self, x: Any, to_mxnet: Callable[[Any], Any]) -> Any:
        """Mark `x` as held in another form than MXNet's (e.g. an int32 accumulator kept as its real value):
        `to_mxnet(ctx, x)` gives MXNet's form where x leaves the engine. Returns x."""
        self._leaving[x.name] = to_mxnet
        return x

    def leaving(self, x: Any) -> Any:
        """`x` in MXNet's representation, for an engine output."""
        fn = self._leaving.get(x.name)
        return x if fn is None else fn(self, x)

    def tensor(self, x: Any, rank: int | None = None, dtype: Any = None) -> Any:
        """`x` as a tensor: parameters become constants (in `dtype` if given); with `rank`, size-1 dims are prepended
        to reach it."""
        t = x if isinstance(x, trt.ITensor) else self.constant(x, dtype=dtype)
        if rank is not None and len(t.shape) < rank:
            t = self.reshape(t, (1,) * (rank - len(t.shape)) + tuple(t.shape))
        return t

    # ---- small helpers every family uses -------------------------------------------------------------------------
    def reshape(self, x: Any, shape: Sequence[int]) -> Any:
        s = self.net.add_shuffle(self.tensor(x))
        s.reshape_dims = tuple(int(d) for d in shape)
        s.zero_is_placeholder = False
        return s.get_output(0)

    def cast(self, x: Any, dtype: Any) -> Any:
        """Cast to numpy dtype `dtype` (or BF16), if it differs."""
        target = trt_dtype(dtype)
        x = self.tensor(x)
        if x.dtype == target:
            return x
        return self.net.add_cast(x, target).get_output(0)

    def out_dtype(self, node: OpNode, k: int = 0) -> np.dtype:
        """The dtype output `k` of `node` has inside the engine: the engine dtype for floats, MXNet's otherwise."""
        dt = node.outputs[k].dtype
        return self.dtype if dt.kind == "f" else dt

    def identity(self, x: Any) -> Any:
        return self.net.add_identity(self.tensor(x)).get_output(0)

    def run(self, node: OpNode, fn: Callable[..., Sequence[Any]], inputs: list[Any]) -> list[Any]:
        """Convert one node with `fn` and check what TensorRT recorded."""
        self.node = node
        self.recorder.take()
        outs = list(fn(self, node, inputs))
        self.check(outs)
        return outs
