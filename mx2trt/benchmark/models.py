"""The benchmark's models (random weights), written once as a checkpoint the measuring processes load."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import zoo
from .._mx import mx

DEFAULT_MODELS = ("resnet18_v1", "resnet50_v1", "mobilenetv2_1.0", "densenet121", "inceptionv3", "vgg16", "bert",
                  "gluonnlp_bert")
# Models that take a sequence length (--seq) rather than an image size.
SEQUENCE_MODELS = ("bert", "bert_tiny", "gluonnlp_bert")
# Small models with no image size of their own: tiny_cnn (the warm-up model) goes through the ONNX route, lenet does
# not (MXNet's exporter fails on it).
SMALL_MODELS = ("tiny_cnn", "lenet")

Shapes = dict[str, tuple[int, ...]]


def label(name: str, seq: int | None, size: int | None = None) -> str:
    """The model's name in tables (a vision model at a size other than image_size's: with it)."""
    if name == "bert":
        return f"BERT-base encoder, 12 layers, seq {seq}"
    if name == "bert_tiny":
        return f"BERT encoder, 1 layer, 64 wide, seq {seq}"
    if name == "gluonnlp_bert":
        return f"GluonNLP BERT, 2 layers, seq {seq}"
    return f"{name}, {size}×{size}" if size and size != image_size(name) else name


def image_size(name: str) -> int:
    """The input size the benchmark gives a vision model: 224 (Inception v3: 299)."""
    return 299 if name == "inceptionv3" else 224


def known_models() -> tuple[str, ...]:
    return (*SMALL_MODELS, *zoo.VISION_MODELS, *SEQUENCE_MODELS)


def tiny_cnn(batch: int = 1) -> tuple[Any, dict[str, Any], Shapes]:
    """Conv + BatchNorm + relu + flatten + fc on 3×8×8, which warms up both routes (MXNet's exporter needs the
    flatten)."""
    x = mx.sym.Convolution(mx.sym.var("data"), num_filter=8, kernel=(3, 3), pad=(1, 1), name="warm_conv")
    x = mx.sym.Activation(mx.sym.BatchNorm(x, name="warm_bn"), act_type="relu", name="warm_relu")
    sym = mx.sym.FullyConnected(mx.sym.Flatten(x, name="warm_flatten"), num_hidden=10, name="warm_fc")
    shapes = {"data": (batch, 3, 8, 8)}
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    rng = np.random.default_rng(0)
    params = {n: mx.nd.array(rng.uniform(0.5, 1.5, s).astype(np.float32))
              for n, s in [*zip(sym.list_arguments(), arg_shapes), *zip(sym.list_auxiliary_states(), aux_shapes)]
              if n not in shapes}
    return sym, params, shapes


def build_model(name: str, batch: int, seq: int, size: int | None = None) -> tuple[Any, dict[str, Any], Shapes]:
    """(symbol, params as NDArrays, data shapes) of a benchmark model with random weights; `size`: a vision model's
    input (default image_size)."""
    if name == "bert":
        return zoo.bert_encoder(batch=batch, seq=seq, layers=12)
    if name == "bert_tiny":
        return zoo.bert_encoder(batch=batch, seq=seq, hidden=64, heads=2, ffn=128, layers=1)
    if name == "gluonnlp_bert":
        sym, params, shapes = zoo.gluonnlp_bert(batch, seq)
        return sym, {k: mx.nd.array(v) for k, v in params.items()}, shapes
    if name == "tiny_cnn":
        return tiny_cnn(batch)
    if name == "lenet":
        return zoo.lenet(batch)
    return zoo.get(name, batch=batch, size=size or image_size(name))


def feeds(name: str, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Inputs for a forward pass (GPU latency)."""
    if name in ("bert", "bert_tiny"):
        return zoo.bert_inputs(dict(shapes))
    if name == "gluonnlp_bert":
        return zoo.gluonnlp_bert_inputs(dict(shapes))
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def write_model(work: Path, name: str, batch: int, seq: int, size: int | None = None) -> dict[str, Any]:
    """Write the model as a checkpoint (work/model-symbol.json, work/model-0000.params) and its description
    (work/model.json); returns the description."""
    sym, params, shapes = build_model(name, batch, seq, size)
    mx.nd.waitall()
    args, auxs = set(sym.list_arguments()), set(sym.list_auxiliary_states())
    mx.model.save_checkpoint(str(work / "model"), 0, sym, {k: v for k, v in params.items() if k in args},
                             {k: v for k, v in params.items() if k in auxs})
    weights = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in params.values())
    vision = name not in SEQUENCE_MODELS and name not in SMALL_MODELS
    desc = {"name": name, "batch": batch, "seq": seq if name in SEQUENCE_MODELS else None,
            "size": (size or image_size(name)) if vision else None,
            "shapes": {k: list(v) for k, v in shapes.items()},
            "inputs": [n for n in sym.list_inputs() if n in shapes],  # the ONNX exporter's order
            "weights_mib": weights / 2**20}
    (work / "model.json").write_text(json.dumps(desc))
    return desc


def load_model(work: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(symbol, params, description) of the model write_model wrote, its weights loaded (mx.nd.waitall)."""
    desc = json.loads((work / "model.json").read_text())
    sym, arg, aux = mx.model.load_checkpoint(str(work / "model"), 0)
    params = {**arg, **aux}
    mx.nd.waitall()
    return sym, params, desc


def shapes_of(desc: Mapping[str, Any]) -> Shapes:
    return {k: tuple(v) for k, v in desc["shapes"].items()}
