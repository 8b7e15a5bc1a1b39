"""Triton Inference Server model repository of an optimized model: `export_repository(sym, repo, name)`.

A model that converted into one engine, with nothing left in MXNet, is exported for Triton's TensorRT backend:
`REPO/NAME/config.pbtxt` (platform "tensorrt_plan", inputs and outputs named as the plan's tensors, typed and shaped)
and `REPO/NAME/VERSION/model.plan`, the engine's serialized plan. Triton's TensorRT backend deserializes plans with
the full TensorRT it was built against: the plan must come from that TensorRT version (a TensorRT-RTX plan, as built
here, is not one it loads). A static engine gives `max_batch_size: 0` and whole shapes as dims; an engine whose every
input and output varies in its leading (batch) axis from 1 (optimization profiles) gives `max_batch_size` the
profiles' largest batch and dims without the batch axis, -1 where another dimension varies.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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
            + " (a Python-backend model for partly converted models is not built yet)")
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
            lines.append(f"    dims: [ {', '.join(str(int(d)) for d in shape)} ]")
            lines.append(f"  }}{sep}")
        lines.append("]")
    return "\n".join(lines) + "\n"


def max_batch(profiles: Any, in_shapes: list[tuple[int, ...]], out_shapes: list[tuple[int, ...]]) -> int:
    """Triton's max_batch_size for an engine: the largest batch its profiles take when every input and output varies
    in its leading axis and every profile starts at batch 1; else 0 (no batching: whole shapes)."""
    if not profiles or any(not s or s[0] != -1 for s in list(in_shapes) + list(out_shapes)):
        return 0
    if any(r[0][0] != 1 for p in profiles for r in p):
        return 0
    return min(max(p[i][2][0] for p in profiles) for i in range(len(in_shapes)))


def export_repository(sym: Any, repo: str | Path, name: str = "model", version: int = 1) -> Path:
    """Write the one-engine optimized symbol `sym` (from optimize or load) as Triton model `name` in model repository
    `repo`: `repo/name/config.pbtxt` and `repo/name/version/model.plan`. Returns the model's directory."""
    inputs.symbol(sym)
    repo = inputs.path("repo", repo)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"name must be a Triton model name (letters, digits, _ . -), not {name!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"version must be an integer >= 1, not {version!r}")
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


__all__ = ["export_repository", "config_text", "max_batch", "TritonExportError", "TRITON_DTYPES"]
