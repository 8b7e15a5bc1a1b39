"""Triton Inference Server model repository of an optimized model: `export_repository(sym, repo, name)`.

A model that converted into one engine, with nothing left in MXNet, is exported for Triton's TensorRT backend:
`REPO/NAME/config.pbtxt` (platform "tensorrt_plan", inputs and outputs named as the plan's tensors, typed and shaped)
and `REPO/NAME/VERSION/model.plan`, the engine's serialized plan. Triton's TensorRT backend deserializes plans with
the full TensorRT it was built against: the plan must come from that TensorRT version (a TensorRT-RTX plan, as built
here, is not one it loads). A static engine gives `max_batch_size: 0` and whole shapes as dims; an engine whose every
input and output varies in its leading (batch) axis from 1 (optimization profiles) gives `max_batch_size` the
profiles' largest batch and dims without the batch axis, -1 where another dimension varies.

A partly converted model (engines and MXNet nodes) is exported for Triton's Python backend instead: the saved model
(mx2trt.save) in `REPO/NAME/VERSION/model*`, a `model.py` that serves it with mx2trt.serving.ModelRunner (MXNet with
its engines, in the backend's process), and a config with `backend: "python"` whose MX2TRT_PYTHONPATH parameter
names where mxnet and mx2trt are installed (by default, this interpreter's).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import _trt, inputs
from .engine import STORE
from .errors import InputError, Mx2TrtError
from .runtime import OP_TYPE

# numpy dtype name -> Triton's model-config DataType
TRITON_DTYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
    "float16": "TYPE_FP16", "float32": "TYPE_FP32", "bfloat16": "TYPE_BF16",
}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class TritonExportError(Mx2TrtError):
    """A model that cannot be exported as a TensorRT-plan Triton model."""


def _engine_node(sym: Any) -> dict[str, Any]:
    """The one engine node of `sym`, which must be the whole model: heads are its outputs, inputs are variables."""
    js = json.loads(sym.tojson())
    nodes = js["nodes"]
    engines = [n for n in nodes if n["op"] == "Custom" and n.get("attrs", {}).get("op_type") == OP_TYPE]
    left = [f"{n['op']} '{n['name']}'" for n in nodes if n["op"] != "null" and not any(n is e for e in engines)]
    if len(engines) != 1 or left:
        raise TritonExportError(
            f"a TensorRT-plan Triton model needs the whole model in one engine; this one has {len(engines)} engine "
            f"node(s)" + (f" and {len(left)} node(s) left in MXNet: {', '.join(left[:6])}" if left else "")
            + " (a partly converted model exports as a Python-backend model)")
    node = engines[0]
    k = nodes.index(node)
    heads = js["heads"]
    if any(h[0] != k for h in heads) or [h[1] for h in heads] != list(range(len(heads))):
        raise TritonExportError(f"engine node '{node['name']}': the model's outputs must be exactly its outputs, "
                                "in order")
    return node


def config_text(sym: Any, name: str) -> str:
    """config.pbtxt of the TensorRT-plan model `name` for the one-engine optimized symbol `sym`."""
    node = _engine_node(sym)
    attrs = node["attrs"]
    spec = STORE.get(attrs["key"], node["name"])
    n_engine = int(attrs.get("n_engine") or attrs["n_in"])
    in_names = json.loads(attrs.get("in_names") or "[]") or [f"in{i}" for i in range(n_engine)]
    batch = max_batch(spec.profiles, spec.in_shapes[:n_engine], spec.out_shapes)
    lines = [
        f"# mx2trt engine {spec.name} ({spec.precision}); its plan was built by {_trt.FLAVOR} {_trt.VERSION}.",
        "# Triton's TensorRT backend loads only plans of the full TensorRT it was built with, at that version.",
        f'name: "{name}"',
        'platform: "tensorrt_plan"',
        f"max_batch_size: {batch}",
    ]
    cut = 1 if batch else 0  # with batching, Triton's dims leave the batch axis out
    sides = (("input", "in", [s[cut:] for s in spec.in_shapes[:n_engine]], spec.in_dtypes[:n_engine], in_names),
             ("output", "out", [s[cut:] for s in spec.out_shapes], spec.out_dtypes,
              [f"output {k}" for k in range(len(spec.out_shapes))]))
    for field, prefix, shapes, dtypes, what in sides:
        lines.append(f"{field} [")
        for i, (shape, dtype, mx_name) in enumerate(zip(shapes, dtypes, what)):
            if np.dtype(dtype).name not in TRITON_DTYPES:
                raise TritonExportError(f"engine {spec.name}: {field} {i} has dtype {dtype}, which Triton has no "
                                        "type for")
            sep = "," if i + 1 < len(shapes) else ""
            lines.append(f"  {{  # MXNet's {mx_name}")
            lines.append(f'    name: "{prefix}{i}"')
            lines.append(f"    data_type: {TRITON_DTYPES[np.dtype(dtype).name]}")
            lines.append(f"    {_dims(shape)}")
            lines.append(f"  }}{sep}")
        lines.append("]")
    return "\n".join(lines) + "\n"


def _dims(shape: tuple[int, ...]) -> str:
    """A tensor's dims in config.pbtxt; a batched tensor with no other axis is [1] reshaped to [] (Triton's form:
    empty dims are refused)."""
    if not shape:
        return "dims: [ 1 ] reshape: { shape: [ ] }"
    return f"dims: [ {', '.join(str(int(d)) for d in shape)} ]"


def max_batch(profiles: Any, in_shapes: list[tuple[int, ...]], out_shapes: list[tuple[int, ...]]) -> int:
    """Triton's max_batch_size for an engine: the largest batch its profiles take when every input and output varies
    in its leading axis and every profile starts at batch 1 (the smallest profile's largest batch, so that every
    batch up to it fits a profile whatever the other dimensions); else 0 (no batching: whole shapes)."""
    if not profiles or any(not s or s[0] != -1 for s in list(in_shapes) + list(out_shapes)):
        return 0
    if any(r[0][0] != 1 for p in profiles for r in p):
        return 0
    return min(p[i][2][0] for p in profiles for i in range(len(in_shapes)))


def export_repository(sym: Any, repo: str | Path, name: str = "model", version: int = 1,
                      params: Mapping[str, Any] | None = None, pythonpath: list[str] | None = None) -> Path:
    """Write the optimized symbol `sym` (from optimize or load) as Triton model `name` in model repository `repo`:
    one engine and nothing else, a TensorRT-plan model (`repo/name/config.pbtxt`, `repo/name/version/model.plan`);
    otherwise, with its `params`, a Python-backend model (see the module's doc; `pythonpath` overrides where the
    backend finds mxnet and mx2trt). Returns the model's directory."""
    inputs.symbol(sym)
    repo = inputs.path("repo", repo)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"name must be a Triton model name (letters, digits, _ . -), not {name!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"version must be an integer >= 1, not {version!r}")
    try:
        _engine_node(sym)
    except TritonExportError as exc:
        if params is None:
            raise TritonExportError(f"{exc}; give params= (mx2trt triton: a saved model) to export it as a "
                                    "Python-backend model") from None
        return _python_model(sym, params, repo / name, name, version, pythonpath)
    text = config_text(sym, name)
    node = _engine_node(sym)
    spec = STORE.get(node["attrs"]["key"], node["name"])
    if not spec.plan:
        raise TritonExportError(f"engine {spec.name} has no plan (optimized with build_engines=False?)")
    model = repo / name
    (model / str(version)).mkdir(parents=True, exist_ok=True)
    (model / str(version) / "model.plan").write_bytes(spec.plan)
    (model / "config.pbtxt").write_text(text)
    return model


_MODEL_PY = '''"""Triton Python-backend model written by mx2trt: serves the saved optimized model next to this file with
mx2trt.serving.ModelRunner (MXNet with its TensorRT engines), one request at a time."""
import json
import os
import sys

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        extra = config.get("parameters", {}).get("MX2TRT_PYTHONPATH", {}).get("string_value", "")
        for path in reversed([p for p in extra.split(os.pathsep) if p and p not in sys.path]):
            sys.path.insert(0, path)
        from mx2trt.serving import ModelRunner

        self.runner = ModelRunner(os.path.join(os.path.dirname(os.path.abspath(__file__)), "model"))

    def execute(self, requests):
        import numpy as np

        responses = []
        for request in requests:
            try:
                arrays = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.runner.shapes}
                out = self.runner(arrays)
                tensors = [pb_utils.Tensor(n, np.ascontiguousarray(out[n])) for n in self.runner.outputs]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # the client gets mx2trt's message (an input that does not fit, say)
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses
'''


def _python_model(sym: Any, params: Mapping[str, Any], model: Path, name: str, version: int,
                  pythonpath: list[str] | None) -> Path:
    """The Python-backend model of a partly converted optimized model: saved model, model.py, config.pbtxt."""
    import mx2trt

    from .serving import ModelRunner

    where = model / str(version)
    where.mkdir(parents=True, exist_ok=True)
    mx2trt.save(where / "model", sym, params)
    runner = ModelRunner(where / "model")
    batch = runner.max_batch
    paths = pythonpath if pythonpath is not None else [p for p in sys.path if p and Path(p).is_dir()]
    lines = ["# mx2trt: a partly converted model, served by MXNet with its engines in Triton's Python backend.",
             f'name: "{name}"', 'backend: "python"', f"max_batch_size: {batch}"]
    sides = (("input", list(runner.dims), [runner.dtypes[n] for n in runner.dims], list(runner.dims.values())),
             ("output", runner.outputs, runner.out_dtypes, runner.out_dims))
    for field, names, dtypes, dims in sides:
        lines.append(f"{field} [")
        for i, (n, dt, d) in enumerate(zip(names, dtypes, dims)):
            if np.dtype(dt).name not in TRITON_DTYPES:
                raise TritonExportError(f"{field} '{n}' has dtype {dt}, which Triton has no type for")
            d = d[1:] if batch else d
            lines += [f'  {{ name: "{n}" data_type: {TRITON_DTYPES[np.dtype(dt).name]} '
                      f"{_dims(d)} }}" + ("," if i + 1 < len(names) else "")]
        lines.append("]")
    if batch:
        lines.append("dynamic_batching { }")
    lines.append(f'parameters: {{ key: "MX2TRT_PYTHONPATH" value: {{ string_value: {json.dumps(":".join(paths))} }} }}')
    (model / "config.pbtxt").write_text("\n".join(lines) + "\n")
    (where / "model.py").write_text(_MODEL_PY)
    return model


__all__ = ["export_repository", "config_text", "max_batch", "TritonExportError", "TRITON_DTYPES"]
