"""Real models with random weights for the demo, the benchmarks and the tests: the Gluon vision zoo, LeNet and a
BERT-base-shaped encoder written with `mx.sym`."""
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


def _dense(x: Any, units: int, name: str) -> Any:
    return mx.sym.FullyConnected(x, num_hidden=units, flatten=False, name=name)


def _layer_norm(x: Any, name: str) -> Any:
    return mx.sym.LayerNorm(x, axis=-1, eps=1e-12, name=name)


def encoder_layer(x: Any, mask_bias: Any, hidden: int, heads: int, ffn: int, seq: int, name: str) -> Any:
    """One post-LN transformer layer on x (B, T, H); mask_bias (B, 1, 1, T) is 0 for tokens, -1e4 for padding."""
    d = hidden // heads

    def split_heads(t: Any, tag: str) -> Any:  # (B, T, H) -> (B*heads, T, d)
        t = mx.sym.reshape(t, shape=(0, 0, heads, d), name=f"{name}_{tag}_split")
        t = mx.sym.transpose(t, axes=(0, 2, 1, 3), name=f"{name}_{tag}_heads")
        return mx.sym.reshape(t, shape=(-3, 0, 0), name=f"{name}_{tag}_merge")

    q = split_heads(_dense(x, hidden, f"{name}_query"), "q")
    k = split_heads(_dense(x, hidden, f"{name}_key"), "k")
    v = split_heads(_dense(x, hidden, f"{name}_value"), "v")
    scores = mx.sym.batch_dot(q, k, transpose_b=True, name=f"{name}_scores")  # (B*heads, T, T)
    scores = mx.sym._internal._mul_scalar(scores, scalar=1.0 / float(np.sqrt(d)), name=f"{name}_scale")
    scores = mx.sym.reshape(scores, shape=(-4, -1, heads, 0, 0), name=f"{name}_scores4")  # (B, heads, T, T)
    scores = mx.sym.broadcast_add(scores, mask_bias, name=f"{name}_masked")
    probs = mx.sym.softmax(scores, axis=-1, name=f"{name}_softmax")
    probs = mx.sym.reshape(probs, shape=(-3, 0, 0), name=f"{name}_probs3")
    ctx = mx.sym.batch_dot(probs, v, name=f"{name}_context")  # (B*heads, T, d)
    ctx = mx.sym.reshape(ctx, shape=(-4, -1, heads, 0, 0), name=f"{name}_ctx4")
    ctx = mx.sym.transpose(ctx, axes=(0, 2, 1, 3), name=f"{name}_ctx_t")
    ctx = mx.sym.reshape(ctx, shape=(0, 0, -3), name=f"{name}_ctx3")
    attn = _dense(ctx, hidden, f"{name}_proj")
    x = _layer_norm(mx.sym.elemwise_add(x, attn, name=f"{name}_res1"), f"{name}_ln1")
    h = mx.sym.LeakyReLU(_dense(x, ffn, f"{name}_ffn1"), act_type="gelu", name=f"{name}_gelu")
    return _layer_norm(mx.sym.elemwise_add(x, _dense(h, hidden, f"{name}_ffn2"), name=f"{name}_res2"),
                       f"{name}_ln2")


def bert_encoder(
    batch: int = 2, seq: int = 16, hidden: int = 768, heads: int = 12, ffn: int = 3072, layers: int = 1,
    vocab: int = 1000, seed: int = 0,
) -> tuple[Any, dict, dict]:
    """(symbol, params, shapes) of a BERT-shaped encoder: inputs `tokens` (B, T) and `valid` (B, T) of 1/0."""
    tokens, valid = mx.sym.var("tokens"), mx.sym.var("valid")
    x = mx.sym.Embedding(tokens, input_dim=vocab, output_dim=hidden, name="word_embed")
    pos = mx.sym.var("position_embed_weight", shape=(1, seq, hidden))
    x = _layer_norm(mx.sym.broadcast_add(x, pos, name="add_position"), "embed_ln")
    # 0 where a token is valid, -1e4 where it is padding; shaped (B, 1, 1, T) to broadcast over heads and queries.
    mask_bias = mx.sym._internal._mul_scalar(mx.sym._internal._rminus_scalar(valid, scalar=1.0, name="pad"), scalar=-1e4, name="pad_bias")
    mask_bias = mx.sym.reshape(mask_bias, shape=(0, 1, 1, -1), name="mask_bias")
    for i in range(layers):
        x = encoder_layer(x, mask_bias, hidden, heads, ffn, seq, f"layer{i}")
    shapes = {"tokens": (batch, seq), "valid": (batch, seq)}
    arg_shapes, _, aux_shapes = x.infer_shape(**shapes)
    rng = np.random.default_rng(seed)
    params = {}
    for n, s in zip(x.list_arguments(), arg_shapes):
        if n in shapes:
            continue
        if n.endswith("gamma"):
            v = rng.uniform(0.8, 1.2, s)
        elif n.endswith(("beta", "bias")):
            v = rng.normal(0.0, 0.02, s)
        else:
            v = rng.normal(0.0, 0.02 if "embed" in n else 1.0 / np.sqrt(s[-1]), s)
        params[n] = mx.nd.array(v.astype(np.float32))
    return x, params, shapes


def bert_inputs(shapes: dict, vocab: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """Random token ids and a validity mask with some padding at the end of each sequence."""
    rng = np.random.default_rng(seed)
    b, t = shapes["tokens"]
    tokens = rng.integers(0, vocab, (b, t)).astype(np.float32)
    lengths = rng.integers(t // 2, t + 1, b)
    valid = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
    return {"tokens": tokens, "valid": valid}


def get(name: str, batch: int = 1, size: int | None = None, seed: int = 0) -> tuple[Any, dict, dict]:
    """`lenet` or any name of VISION_MODELS."""
    return lenet(batch, seed) if name == "lenet" else vision_model(name, batch, size, seed)


__all__ = ["VISION_MODELS", "min_size", "vision_model", "lenet", "bert_encoder", "bert_inputs", "get"]
