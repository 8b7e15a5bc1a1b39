"""Serving a saved optimized model with Triton Inference Server through PyTriton: `serve(prefix)` or `mx2trt serve`.

The model (mx2trt.load: its engines registered, nothing built) is bound into one MXNet executor; PyTriton's Triton
server answers HTTP/gRPC requests by running it, engines and MXNet nodes alike. A model optimized with static shapes
takes requests of exactly those shapes (batching off); one optimized with a varying batch (optimization profiles)
is served with Triton's dynamic batcher up to the profile's largest batch, one executor per shape bound on first use
(MXNet's Executor.reshape, sharing the weights). Triton's Python-backend stub
loads the first libpython it finds, so the server starts with this interpreter's own library directory first on
LD_LIBRARY_PATH (Debian's libpython 3.11 of another patch level fails there).
"""
from __future__ import annotations

import json
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


def input_ranges(sym: Any) -> dict[str, list[tuple[tuple[int, ...], ...]]]:
    """Per data input of an optimized symbol that an engine reads directly: its (min, opt, max) in each optimization
    profile of that engine (empty for static engines)."""
    nodes = json.loads(sym.tojson())["nodes"]
    out: dict[str, list[tuple[tuple[int, ...], ...]]] = {}
    for n in nodes:
        profiles = json.loads(n.get("attrs", {}).get("profiles") or "null")
        if n["op"] != "Custom" or not profiles:
            continue
        for i, entry in enumerate(n["inputs"][:len(profiles[0])]):
            src = nodes[entry[0]]
            if src["op"] == "null":
                out.setdefault(src["name"], [tuple(tuple(s) for s in p[i]) for p in profiles])
    return out


class ModelRunner:
    """Bound executors of a saved model: `__call__({input: array}) -> {output: array}`, one request at a time. A model
    whose engines vary in batch takes any batch up to `max_batch` (default: the profiles' largest)."""

    def __init__(self, prefix: str | Path, shapes: Mapping[str, Any] | None = None, ctx: Any = None,
                 max_batch: int | None = None) -> None:
        import mx2trt

        self.sym, params = mx2trt.load(prefix)
        names = [n for n in self.sym.list_arguments() if n not in params]
        ranges = input_ranges(self.sym)
        given = {n: r[0][1] for n, r in ranges.items() if n in names}  # the first profile's opt
        given.update(inputs.shapes(shapes) if shapes else {})
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
        # Where the profiles let a dimension vary, a request may too: -1 in `dims`; outputs vary where MXNet infers
        # them differently at the profiles' min and max
        self.dims = {n: tuple(-1 if n in ranges and any(p[0][i] != p[2][i] for p in ranges[n]) else d
                              for i, d in enumerate(s)) for n, s in self.shapes.items()}
        corners = [{n: ranges[n][p][j] if n in ranges else s for n, s in self.shapes.items()}
                   for p in range(len(next(iter(ranges.values()), []))) for j in (0, 2)]
        outs = [self.out_shapes] + [[tuple(s) for s in self.sym.infer_shape(**c)[1]] for c in corners]
        self.out_dims = [tuple(-1 if any(o[k][i] != d for o in outs) else d for i, d in enumerate(s))
                         for k, s in enumerate(self.out_shapes)]
        # Triton batches along axis 0 when every input and output varies there and every profile starts at 1; the
        # largest batch is the smallest profile's largest, so that every batch fits a profile whatever the rest
        batched = bool(self.dims) and all(d[0] == -1 for d in [*self.dims.values(), *self.out_dims]) and all(
            p[0][0] == 1 for n in self.dims for p in ranges[n])
        largest = min(p[2][0] for n in self.dims for p in ranges[n]) if batched else 0
        if max_batch is not None and not 1 <= int(max_batch) <= largest:
            raise ServingError(f"max_batch {max_batch}: the model's engines serve batches of at most {largest}"
                               if largest else f"max_batch {max_batch}: the model's engines have a static batch; "
                               "optimize it with a [min, opt, max] range for the batch")
        self.max_batch = int(max_batch) if max_batch is not None else largest
        ctx = ctx or mx.cpu()
        self.exe = self.sym.simple_bind(ctx, grad_req="null", type_dict=self.dtypes, **self.shapes)
        for k, v in params.items():
            target = self.exe.arg_dict.get(k, self.exe.aux_dict.get(k))
            if target is not None:
                v.copyto(target)
        self._exes = {tuple(self.shapes.values()): self.exe}
        self._lock = threading.Lock()

    def _executor(self, shapes: dict[str, tuple[int, ...]]) -> Any:
        """The executor bound for `shapes`: reshaped from the first on first use (weights shared, nothing built)."""
        key = tuple(shapes.values())
        if key not in self._exes:
            try:
                self._exes[key] = self.exe.reshape(allow_up_sizing=True, **shapes)
            except Exception as exc:  # MXNet wraps the engine node's EngineInputError
                raise InputError(f"inputs of shapes {shapes}: {str(exc).strip().splitlines()[-1]}") from None
        return self._exes[key]

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        shapes = {}
        for name, dims in self.dims.items():
            if name not in batch:
                raise InputError(f"request has no input '{name}' (the model takes {list(self.shapes)})")
            shape = tuple(np.asarray(batch[name]).shape)
            if len(shape) != len(dims) or any(d not in (-1, g) for d, g in zip(dims, shape)):
                raise InputError(f"input '{name}' has shape {shape}; the model was optimized for "
                                 f"{dims if -1 in dims else self.shapes[name]}" + (" (-1: varies)" if -1 in dims else ""))
            if self.max_batch and shape[0] > self.max_batch:
                raise InputError(f"input '{name}' has a batch of {shape[0]}; the model serves at most {self.max_batch}")
            shapes[name] = shape
        with self._lock:
            exe = self._executor(shapes)
            for name in self.shapes:
                exe.arg_dict[name][:] = np.asarray(batch[name], dtype=self.dtypes[name])
            outs = exe.forward(is_train=False)
            return {name: o.asnumpy() for name, o in zip(self.outputs, outs)}


def bind(triton: Any, runner: ModelRunner, name: str = "model", queue_delay_us: int = 2000) -> None:
    """Bind `runner` as model `name` of a PyTriton `Triton`: with a varying batch, behind Triton's dynamic batcher
    (requests queued up to `queue_delay_us` are concatenated by PyTriton's @batch, up to the runner's max_batch, when
    no other dimension varies); with static engines, batching off and whole tensors per request."""
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    def infer(requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return [runner(r) for r in requests]

    if not runner.max_batch:  # whole tensors, -1 where the profiles let a dimension vary
        config, fn = ModelConfig(batching=False), infer
        ins = [Tensor(name=n, dtype=runner.dtypes[n], shape=runner.dims[n]) for n in runner.dims]
        outs = [Tensor(name=n, dtype=d, shape=s) for n, d, s in zip(runner.outputs, runner.out_dtypes, runner.out_dims)]
    else:  # Triton's shapes leave the batch axis out
        config = ModelConfig(max_batch_size=runner.max_batch,
                             batcher=DynamicBatcher(max_queue_delay_microseconds=int(queue_delay_us)))
        whole = all(-1 not in d[1:] for d in runner.dims.values())
        fn = batch(lambda **arrays: runner(arrays)) if whole else infer
        ins = [Tensor(name=n, dtype=runner.dtypes[n], shape=runner.dims[n][1:]) for n in runner.dims]
        outs = [Tensor(name=n, dtype=d, shape=s[1:]) for n, d, s in zip(runner.outputs, runner.out_dtypes,
                                                                        runner.out_dims)]
    triton.bind(model_name=name, infer_func=fn, inputs=ins, outputs=outs, config=config)


def triton_server(http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002) -> Any:
    """A PyTriton `Triton` (not started) whose Python-backend stub loads this interpreter's libpython."""
    from pytriton.triton import Triton, TritonConfig

    os.environ["LD_LIBRARY_PATH"] = python_library_path()  # the server and its stubs inherit it
    return Triton(config=TritonConfig(http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                                      exit_timeout_secs=5, allow_gpu_metrics=False))


def serve(prefix: str | Path, name: str = "model", shapes: Mapping[str, Any] | None = None, http_port: int = 8000,
          grpc_port: int = 8001, metrics_port: int = 8002, max_batch: int | None = None) -> None:
    """Serve the saved model `prefix` as Triton model `name` over HTTP and gRPC until interrupted (a varying batch:
    dynamic batching up to `max_batch`, by default the profiles' largest)."""
    runner = ModelRunner(prefix, shapes, max_batch=max_batch)
    triton = triton_server(http_port, grpc_port, metrics_port)
    with triton:
        bind(triton, runner, name)
        triton.serve()


__all__ = ["serve", "bind", "triton_server", "ModelRunner", "ServingError", "python_library_path", "input_ranges"]
