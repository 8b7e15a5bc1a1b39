"""Serving a saved optimized model with Triton Inference Server through PyTriton: `serve(prefix)` or `mx2trt serve`.

The model (mx2trt.load: its engines registered, nothing built) is bound into one MXNet executor; PyTriton's Triton
server answers HTTP/gRPC requests by running it, engines and MXNet nodes alike. Engines have static shapes, so
requests carry whole tensors of the shapes the model was optimized for (batching off). Triton's Python-backend stub
loads the first libpython it finds, so the server starts with this interpreter's own library directory first on
LD_LIBRARY_PATH (Debian's libpython 3.11 of another patch level fails there).
"""
from __future__ import annotations

import os
import sysconfig
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import inputs
from ._mx import mx
from .errors import InputError, Mx2TrtError


class ServingError(Mx2TrtError):
    """A saved model that cannot be served as it is."""


def python_library_path(env: Mapping[str, str] | None = None) -> str:
    """LD_LIBRARY_PATH with this interpreter's LIBDIR first (once), for Triton's Python-backend stub."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    rest = [p for p in (env if env is not None else os.environ).get("LD_LIBRARY_PATH", "").split(":")
            if p and p != libdir]
    return ":".join([libdir, *rest] if libdir else rest)


class ModelRunner:
    """One bound executor of a saved model: `__call__({input: array}) -> {output: array}`, one request at a time."""

    def __init__(self, prefix: str | Path, shapes: Mapping[str, Any] | None = None, ctx: Any = None) -> None:
        import mx2trt

        self.sym, params = mx2trt.load(prefix)
        names = [n for n in self.sym.list_arguments() if n not in params]
        given = inputs.shapes(shapes) if shapes else {}
        arg_shapes, out_shapes, _ = self.sym.infer_shape_partial(**given)
        known = dict(zip(self.sym.list_arguments(), arg_shapes or []))
        missing = [n for n in names if n not in given and not all(d > 0 for d in known.get(n) or (0,))]
        if missing:
            raise ServingError(f"the shapes of input(s) {missing} are not known from the model: give shapes=")
        self.shapes = {n: tuple(given.get(n) or known[n]) for n in names}
        arg_types, out_types, _ = self.sym.infer_type_partial()
        types = dict(zip(self.sym.list_arguments(), arg_types or []))
        self.dtypes = {n: np.dtype(types.get(n) or np.float32) for n in names}
        self.outputs = self.sym.list_outputs()
        self.out_dtypes = [np.dtype(t or np.float32) for t in out_types or [None] * len(self.outputs)]
        self.out_shapes = [tuple(s) for s in self.sym.infer_shape(**self.shapes)[1]]
        ctx = ctx or mx.cpu()
        self.exe = self.sym.simple_bind(ctx, grad_req="null", type_dict=self.dtypes, **self.shapes)
        for k, v in params.items():
            target = self.exe.arg_dict.get(k, self.exe.aux_dict.get(k))
            if target is not None:
                v.copyto(target)
        self._lock = threading.Lock()

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, shape in self.shapes.items():
            if name not in batch:
                raise InputError(f"request has no input '{name}' (the model takes {list(self.shapes)})")
            a = np.asarray(batch[name])
            if tuple(a.shape) != shape:
                raise InputError(f"input '{name}' has shape {tuple(a.shape)}; the model was optimized for {shape}")
        with self._lock:
            for name in self.shapes:
                self.exe.arg_dict[name][:] = np.asarray(batch[name], dtype=self.dtypes[name])
            outs = self.exe.forward(is_train=False)
            return {name: o.asnumpy() for name, o in zip(self.outputs, outs)}


def bind(triton: Any, runner: ModelRunner, name: str = "model") -> None:
    """Bind `runner` as model `name` of a PyTriton `Triton` (batching off: engines have static shapes)."""
    from pytriton.model_config import ModelConfig, Tensor

    def infer(requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return [runner(r) for r in requests]

    triton.bind(
        model_name=name, infer_func=infer,
        inputs=[Tensor(name=n, dtype=runner.dtypes[n], shape=runner.shapes[n]) for n in runner.shapes],
        outputs=[Tensor(name=n, dtype=d, shape=s) for n, d, s in zip(runner.outputs, runner.out_dtypes,
                                                                      runner.out_shapes)],
        config=ModelConfig(batching=False))


def triton_server(http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002) -> Any:
    """A PyTriton `Triton` (not started) whose Python-backend stub loads this interpreter's libpython."""
    from pytriton.triton import Triton, TritonConfig

    os.environ["LD_LIBRARY_PATH"] = python_library_path()  # the server and its stubs inherit it
    return Triton(config=TritonConfig(http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                                      exit_timeout_secs=5, allow_gpu_metrics=False))


def serve(prefix: str | Path, name: str = "model", shapes: Mapping[str, Any] | None = None, http_port: int = 8000,
          grpc_port: int = 8001, metrics_port: int = 8002) -> None:
    """Serve the saved model `prefix` as Triton model `name` over HTTP and gRPC until interrupted."""
    runner = ModelRunner(prefix, shapes)
    triton = triton_server(http_port, grpc_port, metrics_port)
    with triton:
        bind(triton, runner, name)
        triton.serve()


__all__ = ["serve", "bind", "triton_server", "ModelRunner", "ServingError", "python_library_path"]
