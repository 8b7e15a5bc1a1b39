"""Real models with random weights for the demo, the benchmarks and the tests: the Gluon vision zoo and LeNet."""
from __future__ import annotations

from typing import Any

import numpy as np

from ._mx import mx

# Every model `gluon.model_zoo.vision.get_model(name, pretrained=False)` builds offline.
VISION_MODELS = (
    [f"resnet{d}_v{v}" for v in (1, 2) for d in (18, 34, 50, 101, 152)]
    + [f"vgg{d}{bn}" for bn in ("", "_bn") for d in (11, 13, 16, 19)]
    + ["alexnet"]
    + [f"densenet{d}" for d in (121, 161, 169, 201)]
    + ["squeezenet1.0", "squeezenet1.1", "inceptionv3"]
    + [f"mobilenet{w}" for w in ("1.0", "0.75", "0.5", "0.25")]
    + [f"mobilenetv2_{w}" for w in ("1.0", "0.75", "0.5", "0.25")]
)


def min_size(name: str) -> int:
    """Smallest square input the model accepts (its pooling stack needs at least this)."""
    if name == "inceptionv3":
        return 299
    if name.startswith(("densenet", "squeezenet")):
        return 224
    if name == "alexnet":
        return 64
    return 32


def _randomize(name: str, value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """BatchNorm statistics and affine terms drawn at random so that folding them is actually exercised."""
    if name.endswith("running_var"):
        return rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
    if name.endswith("running_mean"):
        return rng.normal(0.0, 0.5, value.shape).astype(np.float32)
    if name.endswith("gamma"):
        return rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
    if name.endswith("beta"):
        return rng.normal(0.0, 0.2, value.shape).astype(np.float32)
    return value


def vision_model(name: str, batch: int = 1, size: int | None = None, seed: int = 0) -> tuple[Any, dict, dict]:
    """(symbol, params as NDArrays, {"data": shape}) of a zoo model with Xavier weights and random BatchNorm stats."""
    from mxnet.gluon.model_zoo import vision

    if name not in VISION_MODELS:
        raise ValueError(f"unknown vision model {name!r}; choose from {', '.join(VISION_MODELS)}")
    shape = (batch, 3, size or min_size(name), size or min_size(name))
    mx.random.seed(seed)
    net = vision.get_model(name, pretrained=False)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros(shape))  # finishes Gluon's deferred initialisation
    sym = net(mx.sym.var("data"))
    rng = np.random.default_rng(seed)
    params = {k: mx.nd.array(_randomize(k, p.data().asnumpy(), rng)) for k, p in net.collect_params().items()}
    return sym, params, {"data": shape}


def lenet(batch: int = 1, seed: int = 0) -> tuple[Any, dict, dict]:
    """The classic MNIST LeNet written with `mx.sym`, ending in SoftmaxOutput (its label is ignored at inference)."""
    data = mx.sym.var("data")
    x = mx.sym.Convolution(data, kernel=(5, 5), num_filter=20, name="conv1")
    x = mx.sym.Activation(x, act_type="tanh", name="tanh1")
    x = mx.sym.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2), name="pool1")
    x = mx.sym.Convolution(x, kernel=(5, 5), num_filter=50, name="conv2")
    x = mx.sym.Activation(x, act_type="tanh", name="tanh2")
    x = mx.sym.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2), name="pool2")
    x = mx.sym.Flatten(x, name="flatten")
    x = mx.sym.FullyConnected(x, num_hidden=500, name="fc1")
    x = mx.sym.Activation(x, act_type="tanh", name="tanh3")
    x = mx.sym.FullyConnected(x, num_hidden=10, name="fc2")
    sym = mx.sym.SoftmaxOutput(x, name="softmax")
    shapes = {"data": (batch, 1, 28, 28)}
    arg_shapes, _, _ = sym.infer_shape(**shapes)
    rng = np.random.default_rng(seed)
    params = {
        n: mx.nd.array(rng.normal(0.0, 0.1, s).astype(np.float32))
        for n, s in zip(sym.list_arguments(), arg_shapes)
        if n not in ("data", "softmax_label")
    }
    return sym, params, shapes


def get(name: str, batch: int = 1, size: int | None = None, seed: int = 0) -> tuple[Any, dict, dict]:
    """`lenet` or any name of VISION_MODELS."""
    return lenet(batch, seed) if name == "lenet" else vision_model(name, batch, size, seed)


__all__ = ["VISION_MODELS", "min_size", "vision_model", "lenet", "get"]
