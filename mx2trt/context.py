"""ConversionContext: what a converter gets first — the network (auto-naming layers), weights, precision, errors."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ._trt import ErrorRecorder, layer_type, trt
from .errors import ConversionError
from .registry import OpNode

PRECISIONS = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16)}


class _NamingNetwork:
    """Wraps INetworkDefinition: every `add_*` layer is named after the MXNet node being converted and checked."""

    def __init__(self, ctx: "ConversionContext") -> None:
        self._ctx = ctx

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
        self.precision = precision
        self.dtype = PRECISIONS[precision]  # dtype of weights and activations inside the engine
        self.node: OpNode | None = None
        self._keep: list[np.ndarray] = []  # TensorRT holds weights by reference until the build returns
        self._layer_count = 0

    # ---- naming and errors -------------------------------------------------------------------------------------
    def name_layer(self, layer: Any) -> None:
        """Name a layer `<node>/<type>_<k>` so errors and profiles map back to the MXNet node."""
        node = self.node.name if self.node else "mx2trt"
        layer.name = f"{node}/{layer_type(layer).name.lower()}_{self._layer_count}"
        self._layer_count += 1

    def fail(self, message: str, attr: str | None = None) -> None:
        """Raise a ConversionError naming the current node, its op and `attr`."""
        node = self.node
        raise ConversionError(node.name if node else "?", node.op if node else "?", message, attr)

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
        a = self.keep(np.ascontiguousarray(np.asarray(arr, dtype=dtype or self.dtype)))
        return trt.Weights(a)

    def no_weights(self) -> Any:
        """Empty trt.Weights of the engine dtype (e.g. a convolution without bias)."""
        from ._trt import trt_dtype

        return trt.Weights(trt_dtype(self.dtype))

    def constant(self, value: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
        """A constant tensor of `value` in `dtype`; by default an int32 array keeps its dtype and anything else takes
        the engine dtype."""
        if dtype is None:
            dtype = np.int32 if isinstance(value, np.ndarray) and value.dtype == np.int32 else self.dtype
        a = np.asarray(value, dtype=dtype)
        if shape is not None:
            a = a.reshape(tuple(shape))
        a = self.keep(np.array(a, copy=True, order="C"))
        layer = self.net.add_constant(tuple(a.shape), trt.Weights(a) if a.ndim else trt.Weights(a.reshape(1)))
        return layer.get_output(0)

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
        """Cast to numpy dtype `dtype`, if it differs."""
        from ._trt import trt_dtype

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
