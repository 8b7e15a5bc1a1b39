"""Real models with random weights for the demo, the benchmarks and the tests: the Gluon vision zoo, LeNet and a
BERT-base-shaped encoder written with `mx.sym`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ._mx import gluoncv, mx

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


def digits_data(seed: int = 0, test: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits (shipped with it, offline) as (x_train, y_train, x_test, y_test): images
    (N, 1, 8, 8) in [0, 1], a fixed shuffled split with `test` test images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    y = d.target.astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    return x[test:], y[test:], x[:test], y[:test]


def digits_cnn(epochs: int = 12, seed: int = 0) -> tuple[Any, dict, dict]:
    """A small CNN trained (seconds, on CPU) on `digits_data`: a real classifier for measuring int8/fp8 accuracy,
    where random weights would say nothing. Returns (symbol ending in softmax, params, {"data": (1, 1, 8, 8)})."""
    from mxnet import autograd, gluon

    x_train, y_train, _, _ = digits_data(seed)
    mx.random.seed(seed)
    net = gluon.nn.HybridSequential(prefix="digits_")
    with net.name_scope():
        net.add(gluon.nn.Conv2D(16, 3, padding=1, activation="relu"), gluon.nn.Conv2D(32, 3, padding=1),
                gluon.nn.BatchNorm(), gluon.nn.Activation("relu"), gluon.nn.MaxPool2D(2),
                gluon.nn.Conv2D(64, 3, padding=1, activation="relu"), gluon.nn.GlobalAvgPool2D(),
                gluon.nn.Dense(64, activation="relu"), gluon.nn.Dense(10))
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 3e-3})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(y_train))
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            xb, yb = mx.nd.array(x_train[idx]), mx.nd.array(y_train[idx])
            with autograd.record():
                loss = loss_fn(net(xb), yb)
            loss.backward()
            trainer.step(len(idx))
    sym = mx.sym.softmax(net(mx.sym.var("data")), name="prob")
    params = {k: mx.nd.array(p.data().asnumpy()) for k, p in net.collect_params().items()}
    return sym, params, {"data": (1, 1, 8, 8)}


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


# GluonNLP 0.10's BERT symbol, exported offline by tools/export_gluonnlp_bert.py (in a source checkout).
GLUONNLP_BERT = Path(__file__).resolve().parents[1] / "tests" / "data" / "gluonnlp_bert_2layers-symbol.json"


def gluonnlp_bert(batch: int = 2, seq: int = 16, seed: int = 0) -> tuple[Any, dict, dict]:
    """(symbol, float32 numpy params, shapes) of GluonNLP 0.10's real BERT symbol (2 layers, BERT-base widths, vocab
    1000, pooler): inputs data0 (tokens), data1 (token types), data2 (valid lengths). Weights N(0, 0.02), LayerNorm
    gammas U(0.8, 1.2), aux states 1."""
    if not GLUONNLP_BERT.is_file():
        raise FileNotFoundError(f"{GLUONNLP_BERT} is missing: the GluonNLP BERT symbol ships with mx2trt's sources")
    rng = np.random.default_rng(seed)
    sym = mx.sym.load(str(GLUONNLP_BERT))
    shapes = {"data0": (batch, seq), "data1": (batch, seq), "data2": (batch,)}
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    params = {n: (rng.standard_normal(s) * 0.02).astype(np.float32)
              for n, s in zip(sym.list_arguments(), arg_shapes) if n not in shapes}
    params.update({n: np.ones(s, np.float32) for n, s in zip(sym.list_auxiliary_states(), aux_shapes)})
    for n in params:
        if n.endswith("gamma"):
            params[n] = rng.uniform(0.8, 1.2, params[n].shape).astype(np.float32)
    return sym, params, shapes


def gluonnlp_bert_inputs(shapes: dict, seed: int = 1) -> dict[str, np.ndarray]:
    """Random tokens and token types, and valid lengths between half and all of the sequence."""
    rng = np.random.default_rng(seed)
    b, t = shapes["data0"]
    return {"data0": rng.integers(0, 1000, (b, t)).astype(np.float32),
            "data1": rng.integers(0, 2, (b, t)).astype(np.float32),
            "data2": rng.integers(t // 2, t + 1, b).astype(np.float32)}


# gluoncv 0.11 models, one or more per family: name -> (family, input shape, get_model kwargs). The inputs are the
# smallest each accepts (segmentation models fix their pooling sizes from crop_size/height/width; Mask-RCNN's RPN
# keeps 1000 proposals, so it needs more than 1000 anchors).
_SEG = lambda s: {"crop_size": s, "base_size": s, "height": s, "width": s}  # noqa: E731
_RCNN = {"proposals": (256, 32)}  # RPN: the best 256 anchors, 32 proposals after NMS (gluoncv: 6000, 300/1000)
GLUONCV_MODELS: dict[str, tuple[str, tuple[int, ...], dict[str, Any]]] = {
    "resnet18_v1b": ("ResNet v1b", (1, 3, 64, 64), {}),
    "resnet50_v1c": ("ResNet v1c", (1, 3, 64, 64), {}),
    "resnet50_v1d": ("ResNet v1d", (1, 3, 64, 64), {}),
    "resnet50_v1s": ("ResNet v1s", (1, 3, 64, 64), {}),
    "resnext50_32x4d": ("ResNeXt", (1, 3, 64, 64), {}),
    "se_resnext50_32x4d": ("SE-ResNeXt", (1, 3, 64, 64), {}),
    "resnest14": ("ResNeSt", (1, 3, 64, 64), {}),
    "mobilenetv3_small": ("MobileNetV3", (1, 3, 64, 64), {}),
    "shufflenet_v1": ("ShuffleNet v1", (1, 3, 64, 64), {}),
    "shufflenet_v2": ("ShuffleNet v2", (1, 3, 64, 64), {}),
    "xception": ("Xception", (1, 3, 96, 96), {}),
    "dla34": ("DLA", (1, 3, 64, 64), {}),
    "hrnet_w18_small_v1_c": ("HRNet", (1, 3, 64, 64), {}),
    "nasnet_4_1056": ("NASNet", (1, 3, 224, 224), {}),
    "residualattentionnet56": ("ResidualAttention", (1, 3, 224, 224), {}),
    "cifar_resnet20_v1": ("CIFAR", (1, 3, 32, 32), {}),
    "ssd_300_vgg16_atrous_voc": ("SSD (VGG)", (1, 3, 300, 300), {}),
    "ssd_512_mobilenet1.0_voc": ("SSD (MobileNet)", (1, 3, 128, 128), {}),
    "yolo3_mobilenet1.0_voc": ("YOLOv3", (1, 3, 128, 128), {}),
    "center_net_resnet18_v1b_voc": ("CenterNet", (1, 3, 128, 128), {}),
    "faster_rcnn_resnet50_v1b_voc": ("Faster-RCNN", (1, 3, 128, 128), _RCNN),
    "faster_rcnn_fpn_resnet50_v1b_coco": ("Faster-RCNN FPN", (1, 3, 128, 128), _RCNN),
    "mask_rcnn_resnet18_v1b_coco": ("Mask-RCNN", (1, 3, 160, 160), _RCNN),
    "fcn_resnet50_voc": ("FCN", (1, 3, 64, 64), {}),
    "psp_resnet101_voc": ("PSPNet", (1, 3, 120, 120), _SEG(120)),
    "deeplab_resnet50_citys": ("DeepLab v3", (1, 3, 64, 64), _SEG(64)),
    "deeplab_v3b_plus_wideresnet_citys": ("DeepLab v3b+", (1, 3, 64, 64), _SEG(64)),
    "icnet_resnet50_citys": ("ICNet", (1, 3, 96, 96), _SEG(96)),
    "fastscnn_citys": ("FastSCNN", (1, 3, 128, 128), _SEG(128)),
    "danet_resnet50_citys": ("DANet", (1, 3, 64, 64), {}),
    "simple_pose_resnet18_v1b": ("SimplePose", (1, 3, 64, 64), {}),
    "mobile_pose_mobilenetv3_small": ("MobilePose", (1, 3, 64, 64), {}),
    "alpha_pose_resnet101_v1b_coco": ("AlphaPose", (1, 3, 64, 64), {}),
    "c3d_kinetics400": ("C3D", (1, 3, 16, 112, 112), {}),
    "i3d_resnet50_v1_kinetics400": ("I3D", (1, 3, 8, 64, 64), {}),
    "r2plus1d_resnet18_kinetics400": ("R(2+1)D", (1, 3, 8, 64, 64), {}),
    "p3d_resnet50_kinetics400": ("P3D", (1, 3, 16, 64, 64), {}),
    "slowfast_4x16_resnet50_kinetics400": ("SlowFast", (1, 3, 36, 64, 64), {}),
    "monodepth2_resnet18_kitti_stereo_640x192": ("Monodepth2", (1, 3, 64, 64), {}),
}


# Parameters scaled down (a regular expression over the name without the model's prefix -> factor). Random He weights
# saturate CenterNet's heatmap sigmoid at exactly 1.0, where its top-k of tied scores has no defined order (MXNet's
# is its sort's, not the index's); random BatchNorm gains (up to 2.1 with the running variance) compound through
# Xception's and NASNet's depth to activations past fp16's range in MXNet's fp32 itself. Monodepth2's random disparity
# convolutions put its sigmoids' inputs near -20, where sigmoid(x) ~ exp(x) turns x's absolute rounding into relative
# error (fp16: 8.6e-2 unscaled, 7e-3 at 0.1).
GLUONCV_SCALED: dict[str, dict[str, float]] = {
    "center_net_resnet18_v1b_voc": {"conv1_weight": 0.05},
    # The R-CNNs' RPN box offsets (conv2): random ones decode to boxes clipped to nothing or the whole image, which
    # would leave ROIAlign and the box head only degenerate rois; scaled, all 32 proposals are real boxes.
    "faster_rcnn_resnet50_v1b_voc": {"rpn0_conv2_(weight|bias)": 1e-3},
    "mask_rcnn_resnet18_v1b_coco": {"dense0_weight": 0.02, "rpn0_conv2_(weight|bias)": 1e-2},  # dense0: class scores
    "faster_rcnn_fpn_resnet50_v1b_coco": {"dense0_weight": 0.02, "rpn0_rpnhead0_conv2_(weight|bias)": 1e-4},
    "xception": {".*gamma": 0.6},
    "nasnet_4_1056": {".*gamma": 0.6},
    "psp_resnet101_voc": {".*gamma": 0.6},
    "alpha_pose_resnet101_v1b_coco": {".*gamma": 0.6},
    "ssd_300_vgg16_atrous_voc": {"vggatrousextractor0_init_scale": 1 / 255},  # 0-255 pixels without BatchNorm
    "monodepth2_resnet18_kitti_stereo_640x192": {r"depthdecoder0_conv3x3\d_conv0_(weight|bias)": 0.1},
}


def gluoncv_model(name: str, shape: tuple[int, ...], seed: int = 0, **kwargs: Any) -> tuple[Any, dict, dict]:
    """(symbol, params as NDArrays, {"data": shape}) of gluoncv's model `name`, built offline (no pretrained
    weights) with He-normal weights and random BatchNorm statistics; constant parameters (YOLO's anchors and
    offsets...) keep gluoncv's values. `kwargs` go to get_model (segmentation models take crop_size, height...),
    except `proposals`."""
    zoo = gluoncv().model_zoo
    proposals = kwargs.pop("proposals", None)  # (pre-NMS, post-NMS) RPN proposals of an R-CNN
    mx.random.seed(seed)
    try:
        net = zoo.get_model(name, pretrained=False, pretrained_base=False, **kwargs)
    except TypeError as exc:  # classification models have no backbone to leave untrained
        if "pretrained_base" not in str(exc):
            raise
        net = zoo.get_model(name, pretrained=False, **kwargs)
    if proposals is not None:  # the model functions fix these arguments: set what __init__ derived from them
        net.rpn._test_pre_nms, net.rpn._test_post_nms = proposals
        net._rpn_test_post_nms = proposals[1]
        if hasattr(net, "_rcnn_max_dets"):
            net._rcnn_max_dets = min(net._rcnn_max_dets, *proposals)
    net.initialize()
    net(mx.nd.zeros(shape))  # finishes Gluon's deferred initialisation
    out = net(mx.sym.var("data"))
    sym = out if isinstance(out, mx.sym.Symbol) else mx.sym.Group(list(out))
    used = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
    const = {p.name: p.data().asnumpy() for p in net.collect_params().values() if p.name in used
             and p.grad_req == "null" and not p.name.endswith(("running_mean", "running_var"))}
    params = _random_params(sym, {"data": shape}, np.random.default_rng(seed), const)
    for pattern, factor in GLUONCV_SCALED.get(name, {}).items():
        for k in [k for k in params if re.fullmatch(pattern, k.split("_", 1)[-1])]:
            params[k] = params[k] * factor
    return sym, params, {"data": tuple(shape)}


def get(name: str, batch: int = 1, size: int | None = None, seed: int = 0) -> tuple[Any, dict, dict]:
    """`lenet`, any name of VISION_MODELS, or of HEAD_MODELS (detection, segmentation, pose; defined below)."""
    if name in HEAD_MODELS:
        return head_model(name, batch, size, seed)
    return lenet(batch, seed) if name == "lenet" else vision_model(name, batch, size, seed)




# ---------------------------------------------------------------------------------------------------------------
# Detection, segmentation and pose networks with their heads and decoders, written with `mx.sym` after gluoncv's
# SSD, YOLOv3, DeepLabV3 and SimplePoseResNet (gluoncv is not installed here), at small widths and input sizes.
# Each builder returns (symbol, params as NDArrays, {"data": shape}) with random weights and BatchNorm stats.
# ---------------------------------------------------------------------------------------------------------------


def _random_params(sym: Any, shapes: dict, rng: np.random.Generator, given: dict | None = None) -> dict:
    """He-normal weights, small biases and random BatchNorm stats for every argument and aux state of `sym` that is
    neither a data input nor already in `given` (constants such as anchors)."""
    given = dict(given or {})
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    params = {}
    for n, s in [*zip(sym.list_arguments(), arg_shapes), *zip(sym.list_auxiliary_states(), aux_shapes)]:
        if n in shapes:
            continue
        if n in given:
            params[n] = mx.nd.array(np.asarray(given[n], np.float32))
            continue
        if n.endswith(("running_var", "running_mean", "moving_var", "moving_mean", "gamma", "beta")):
            v = _randomize(n.replace("moving_", "running_"), np.zeros(s, np.float32), rng)
        elif n.endswith("bias"):
            v = rng.normal(0.0, 0.1, s)
        else:  # convolution / deconvolution weight: fan-in of a convolution, fan-out-per-position of a deconvolution
            fan = int(np.prod(s[1:])) if "deconv" not in n else int(s[1] * np.prod(s[2:]))
            v = rng.normal(0.0, np.sqrt(2.0 / max(fan, 1)), s)
            if n.startswith("yolo_output"):  # trained YOLO outputs stay small: exp(raw scale) of He-scale logits
                v *= 0.2                     # would give boxes e^10 times the anchors
        params[n] = mx.nd.array(np.asarray(v, np.float32))
    return params


def _conv_bn(x: Any, ch: int, name: str, kernel: int = 3, stride: int = 1, dilate: int = 1, act: str = "relu") -> Any:
    """Conv (no bias) + BatchNorm + activation: 'relu', 'leaky' (LeakyReLU 0.1, Darknet) or None."""
    pad = dilate * (kernel - 1) // 2
    x = mx.sym.Convolution(x, kernel=(kernel, kernel), stride=(stride, stride), dilate=(dilate, dilate),
                           pad=(pad, pad), num_filter=ch, no_bias=True, name=f"{name}_conv")
    x = mx.sym.BatchNorm(x, fix_gamma=False, eps=1e-5, name=f"{name}_bn")
    if act == "relu":
        x = mx.sym.Activation(x, act_type="relu", name=f"{name}_relu")
    elif act == "leaky":
        x = mx.sym.LeakyReLU(x, act_type="leaky", slope=0.1, name=f"{name}_leaky")
    return x


def _cxcywh_anchors(feat: int, size: int, scales: tuple[float, float], ratios: tuple[float, ...],
                    alloc: int) -> np.ndarray:
    """gluoncv's SSDAnchorGenerator: (1, 1, alloc, alloc, 4 * anchors) center-format anchors in pixels for a square
    input of `size` and a feature map of `feat` cells (step size / feat), allocated larger and sliced to the map."""
    step = size / feat
    sizes = (scales[0] * size, np.sqrt(scales[0] * scales[1]) * size)
    out = []
    for i in range(alloc):
        for j in range(alloc):
            cy, cx = (i + 0.5) * step, (j + 0.5) * step
            row = [[cx, cy, sizes[0], sizes[0]], [cx, cy, sizes[1], sizes[1]]]
            for r in ratios[1:]:
                sr = np.sqrt(r)
                row.append([cx, cy, sizes[0] * sr, sizes[0] / sr])
            out.append(row)
    return np.asarray(out, np.float32).reshape(1, 1, alloc, alloc, -1)


def ssd(batch: int = 1, size: int = 64, classes: int = 3, width: int = 16, pre_nms: int = 64, post_nms: int = 20,
        postprocess: bool = True, anchors: str = "param", seed: int = 0) -> tuple[Any, dict, dict]:
    """SSD (gluoncv `SSD` + `SSDAnchorGenerator` + `NormalizedBoxCenterDecoder` + `MultiPerClassDecoder`) on a small
    VGG-like backbone with three feature scales (size/8, /16, /32). Outputs ids, scores, bboxes (B, post_nms, 1|1|4)
    after a score threshold (`where`), a pre-NMS top-k (topk + take) and `_contrib_box_nms`. postprocess=False stops
    at the dense predictions: class probabilities (B, anchors, classes + 1) and decoded boxes (B, anchors, 4).

    Anchors per image times `classes` is the row count of the per-class candidates; with the defaults (336 anchors,
    3 classes) the batch-offset row indices of a batch of 2 stay <= 2048, exact in an fp16 engine.

    anchors="param": gluoncv's constant anchors (center format, pixels) sliced to each map with slice_like;
    anchors="prior": MXNet's own `_contrib_MultiBoxPrior` per map (corner format, normalized; the same boxes),
    turned into center format in pixels before decoding, as in MXNet's example SSD."""
    ratios = (1.0, 2.0, 0.5)
    anchors_per_cell = 1 + len(ratios)
    data = mx.sym.var("data")
    x = _conv_bn(data, width, "ssd_stem")
    x = _conv_bn(x, width * 2, "ssd_c1", stride=2)
    x = _conv_bn(x, width * 2, "ssd_c2", stride=2)
    feats = [_conv_bn(x, width * 4, "ssd_c3", stride=2)]  # size/8
    for k in range(2):  # gluoncv's extra layers: 1x1 reduce then 3x3 stride 2
        y = _conv_bn(feats[-1], width * 2, f"ssd_extra{k}_reduce", kernel=1)
        feats.append(_conv_bn(y, width * 4, f"ssd_extra{k}", stride=2))
    cls_preds, box_preds, anchors_, consts = [], [], [], {}
    sizes = np.linspace(0.2, 0.9, len(feats) + 1)
    for i, f in enumerate(feats):
        cp = mx.sym.Convolution(f, kernel=(3, 3), pad=(1, 1), num_filter=anchors_per_cell * (classes + 1),
                                name=f"ssd_class_pred{i}")
        bp = mx.sym.Convolution(f, kernel=(3, 3), pad=(1, 1), num_filter=anchors_per_cell * 4, name=f"ssd_box_pred{i}")
        cls_preds.append(mx.sym.flatten(mx.sym.transpose(cp, axes=(0, 2, 3, 1)), name=f"ssd_cls_flat{i}"))
        box_preds.append(mx.sym.flatten(mx.sym.transpose(bp, axes=(0, 2, 3, 1)), name=f"ssd_box_flat{i}"))
        feat = size // 2 ** (3 + i)
        name = f"ssd_anchor{i}"
        if anchors == "prior":
            prior = mx.sym.contrib.MultiBoxPrior(f, sizes=(float(sizes[i]), float(np.sqrt(sizes[i] * sizes[i + 1]))),
                                                 ratios=ratios, name=f"ssd_prior{i}")  # (1, H*W*A, 4)
            anchors_.append(mx.sym.reshape(prior, shape=(1, -1), name=f"{name}_flat"))
            continue
        consts[name] = _cxcywh_anchors(feat, size, (sizes[i], sizes[i + 1]), ratios, alloc=feat + 2)
        a = mx.sym.var(name, shape=consts[name].shape)
        a = mx.sym.slice_like(a, mx.sym._internal._mul_scalar(f, scalar=0.0), axes=(2, 3), name=f"{name}_slice")
        anchors_.append(mx.sym.reshape(a, shape=(1, -1), name=f"{name}_flat"))
    cls = mx.sym.reshape(mx.sym.concat(*cls_preds, dim=1), shape=(0, -1, classes + 1), name="ssd_cls_preds")
    box = mx.sym.reshape(mx.sym.concat(*box_preds, dim=1), shape=(0, -1, 4), name="ssd_box_preds")
    anc = mx.sym.reshape(mx.sym.concat(*anchors_, dim=1), shape=(1, -1, 4), name="ssd_anchors")
    if anchors == "prior":  # corners in [0, 1] -> center, size in pixels
        c = mx.sym.split(anc, axis=-1, num_outputs=4, name="ssd_prior_split")
        anc = mx.sym.concat((c[0] + c[2]) * (size / 2), (c[1] + c[3]) * (size / 2), (c[2] - c[0]) * size,
                            (c[3] - c[1]) * size, dim=-1, name="ssd_prior_center")
    # NormalizedBoxCenterDecoder(stds=(0.1, 0.1, 0.2, 0.2)), corner output.
    p = mx.sym.split(box, axis=-1, num_outputs=4, name="ssd_box_split")
    a = mx.sym.split(anc, axis=-1, num_outputs=4, name="ssd_anchor_split")
    ox = mx.sym.broadcast_add(mx.sym.broadcast_mul(p[0] * 0.1, a[2]), a[0], name="ssd_ox")
    oy = mx.sym.broadcast_add(mx.sym.broadcast_mul(p[1] * 0.1, a[3]), a[1], name="ssd_oy")
    ow = mx.sym.broadcast_mul(mx.sym.exp(p[2] * 0.2, name="ssd_tw"), a[2], name="ssd_ow") / 2
    oh = mx.sym.broadcast_mul(mx.sym.exp(p[3] * 0.2, name="ssd_th"), a[3], name="ssd_oh") / 2
    bboxes = mx.sym.concat(ox - ow, oy - oh, ox + ow, oy + oh, dim=-1, name="ssd_bboxes")
    # MultiPerClassDecoder(num_classes + 1, thresh=0.01): class ids and scores of the foreground classes.
    probs = mx.sym.softmax(cls, axis=-1, name="ssd_softmax")
    shapes = {"data": (batch, 3, size, size)}
    if not postprocess:
        out = mx.sym.Group([probs, bboxes])
        return out, _random_params(out, shapes, np.random.default_rng(seed), consts), shapes
    scores = mx.sym.slice_axis(probs, axis=-1, begin=1, end=None, name="ssd_fg_scores")
    template = mx.sym.zeros_like(mx.sym.slice_axis(probs, axis=-1, begin=0, end=1), name="ssd_template")
    cls_id = mx.sym.concat(*[template + i for i in range(classes)], dim=-1, name="ssd_cls_ids")
    mask = mx.sym._internal._greater_scalar(scores, scalar=0.01, name="ssd_mask")
    cls_id = mx.sym.where(mask, cls_id, mx.sym.ones_like(cls_id) * -1, name="ssd_ids_thresh")
    scores = mx.sym.where(mask, scores, mx.sym.zeros_like(scores), name="ssd_scores_thresh")
    per_class = [mx.sym.concat(mx.sym.slice_axis(cls_id, axis=-1, begin=i, end=i + 1),
                               mx.sym.slice_axis(scores, axis=-1, begin=i, end=i + 1), bboxes, dim=-1)
                 for i in range(classes)]
    result = mx.sym.concat(*per_class, dim=1, name="ssd_candidates")  # (B, N * classes, 6)
    # Pre-NMS top-k by score, gathered per image: flat row = index + b * rows (a batch-offset constant).
    rows = sum(anchors_per_cell * (size // 2 ** (3 + i)) ** 2 for i in range(len(feats))) * classes
    order = mx.sym.topk(mx.sym.slice_axis(result, axis=-1, begin=1, end=2), axis=1, k=pre_nms, ret_typ="indices",
                        name="ssd_topk")  # (B, pre_nms, 1)
    consts["ssd_batch_offset"] = (np.arange(batch, dtype=np.float32) * rows).reshape(batch, 1, 1)
    flat_idx = mx.sym.broadcast_add(order, mx.sym.var("ssd_batch_offset", shape=(batch, 1, 1)), name="ssd_flat_idx")
    top = mx.sym.take(mx.sym.reshape(result, shape=(-3, 0), name="ssd_rows"),
                      mx.sym.reshape(flat_idx, shape=(-1,)), axis=0, name="ssd_gather")
    top = mx.sym.reshape(top, shape=(batch, pre_nms, 6), name="ssd_top")
    nms = mx.sym.contrib.box_nms(top, overlap_thresh=0.45, topk=-1, valid_thresh=0.01, id_index=0, score_index=1,
                                 coord_start=2, force_suppress=False, name="ssd_nms")
    nms = mx.sym.slice_axis(nms, axis=1, begin=0, end=post_nms, name="ssd_post_nms")
    out = mx.sym.Group([mx.sym.slice_axis(nms, axis=2, begin=0, end=1, name="ssd_out_ids"),
                        mx.sym.slice_axis(nms, axis=2, begin=1, end=2, name="ssd_out_scores"),
                        mx.sym.slice_axis(nms, axis=2, begin=2, end=6, name="ssd_out_bboxes")])
    return out, _random_params(out, shapes, np.random.default_rng(seed), consts), shapes


def _yolo_output(x: Any, k: int, classes: int, anchors: np.ndarray, stride: int, alloc: int, consts: dict) -> Any:
    """gluoncv's YOLOOutputV3 at inference: (B, H*W*A*classes, 6) rows of (class id, score, x0, y0, x1, y1)."""
    a, pred_len = len(anchors), 5 + classes
    name = f"yolo_output{k}"
    pred = mx.sym.Convolution(x, kernel=(1, 1), num_filter=a * pred_len, name=f"{name}_conv")
    pred = mx.sym.reshape(pred, shape=(0, a * pred_len, -1), name=f"{name}_pred_flat")
    pred = mx.sym.reshape(mx.sym.transpose(pred, axes=(0, 2, 1)), shape=(0, -1, a, pred_len), name=f"{name}_pred")
    raw_centers = mx.sym.slice_axis(pred, axis=-1, begin=0, end=2, name=f"{name}_raw_centers")
    raw_scales = mx.sym.slice_axis(pred, axis=-1, begin=2, end=4, name=f"{name}_raw_scales")
    objness = mx.sym.slice_axis(pred, axis=-1, begin=4, end=5, name=f"{name}_objness")
    class_pred = mx.sym.slice_axis(pred, axis=-1, begin=5, end=None, name=f"{name}_class_pred")
    # Constant grid offsets (1, 1, alloc, alloc, 2) sliced to the feature map, and the anchors (1, 1, A, 2).
    grid_y, grid_x = np.meshgrid(np.arange(alloc), np.arange(alloc), indexing="ij")
    consts[f"{name}_offsets"] = np.stack([grid_x, grid_y], -1).reshape(1, 1, alloc, alloc, 2).astype(np.float32)
    consts[f"{name}_anchors"] = anchors.reshape(1, 1, a, 2).astype(np.float32)
    offsets = mx.sym.var(f"{name}_offsets", shape=(1, 1, alloc, alloc, 2))
    offsets = mx.sym.slice_like(offsets, mx.sym._internal._mul_scalar(x, scalar=0.0), axes=(2, 3), name=f"{name}_grid")
    offsets = mx.sym.reshape(offsets, shape=(1, -1, 1, 2), name=f"{name}_grid_flat")
    centers = mx.sym.broadcast_add(mx.sym.sigmoid(raw_centers), offsets, name=f"{name}_centers") * stride
    scales = mx.sym.broadcast_mul(mx.sym.exp(raw_scales), mx.sym.var(f"{name}_anchors", shape=(1, 1, a, 2)),
                                  name=f"{name}_scales")
    confidence = mx.sym.sigmoid(objness, name=f"{name}_confidence")
    class_score = mx.sym.broadcast_mul(mx.sym.sigmoid(class_pred), confidence, name=f"{name}_class_score")
    wh = scales / 2.0
    bbox = mx.sym.concat(centers - wh, centers + wh, dim=-1, name=f"{name}_bbox")  # (B, HW, A, 4)
    bboxes = mx.sym.tile(bbox, reps=(classes, 1, 1, 1, 1), name=f"{name}_bboxes")  # (C, B, HW, A, 4)
    scores = mx.sym.expand_dims(mx.sym.transpose(class_score, axes=(3, 0, 1, 2)), axis=-1, name=f"{name}_scores")
    ids = mx.sym.broadcast_add(scores * 0, mx.sym.reshape(mx.sym.arange(0, classes), shape=(0, 1, 1, 1, 1)),
                               name=f"{name}_ids")
    det = mx.sym.concat(ids, scores, bboxes, dim=-1, name=f"{name}_det")
    return mx.sym.reshape(mx.sym.transpose(det, axes=(1, 0, 2, 3, 4)), shape=(0, -1, 6), name=f"{name}_detections")


def yolo3(batch: int = 1, size: int = 64, classes: int = 3, width: int = 8, post_nms: int = 20,
          postprocess: bool = True, seed: int = 0) -> tuple[Any, dict, dict]:
    """YOLOv3 (gluoncv `YOLOV3`): a Darknet-style backbone (conv + BN + LeakyReLU 0.1, stride-2 convs, residual
    blocks) giving strides 8/16/32, YOLODetectionBlockV3 per scale, transitions of 1x1 conv + nearest x2 upsampling
    (UpSampling, then gluoncv's two `repeat`s) concatenated with the shallower route, YOLOOutputV3 decoding
    (sigmoid/exp on slices, broadcast grid offsets and anchors, tile/transpose per class), then `_contrib_box_nms`. Outputs ids, scores, bboxes (B, post_nms, 1|1|4);
    postprocess=False returns the concatenated detections (B, rows, 6) before NMS."""
    data = mx.sym.var("data")
    x = _conv_bn(data, width, "yolo_stem", act="leaky")
    routes = []
    for stage, ch in enumerate((2, 4, 8, 16, 16)):  # strides 2, 4, 8, 16, 32
        x = _conv_bn(x, width * ch, f"yolo_down{stage}", stride=2, act="leaky")
        if stage < 4:  # Darknet residual block: 1x1 halve, 3x3 restore, add
            y = _conv_bn(x, width * ch // 2, f"yolo_res{stage}_a", kernel=1, act="leaky")
            y = _conv_bn(y, width * ch, f"yolo_res{stage}_b", act="leaky")
            x = mx.sym.elemwise_add(x, y, name=f"yolo_res{stage}_add")
        if stage >= 2:
            routes.append(x)
    anchors = np.array([[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198],
                        [373, 326]], np.float32) * (size / 416.0)
    consts: dict = {}
    outputs, x, body = [], routes[-1], None
    for k, (route, stride) in enumerate(zip(routes[::-1], (32, 16, 8))):
        if k > 0:  # transition: 1x1 conv, nearest upsampling x2, concat with the shallower route
            t = _conv_bn(body, width * 4 // k, f"yolo_trans{k}", kernel=1, act="leaky")
            if k == 1:
                t = mx.sym.UpSampling(t, scale=2, sample_type="nearest", num_args=1, name=f"yolo_upsample{k}")
            else:  # gluoncv's own `_upsample`: nearest x2 as two repeats
                t = mx.sym.repeat(mx.sym.repeat(t, repeats=2, axis=-1), repeats=2, axis=-2, name=f"yolo_upsample{k}")
            x = mx.sym.concat(t, route, dim=1, name=f"yolo_route{k}")
        ch = width * 8 // 2 ** k
        body = x
        for j in range(5):  # YOLODetectionBlockV3 body: 1x1 / 3x3 alternating
            body = _conv_bn(body, ch if j % 2 == 0 else ch * 2, f"yolo_block{k}_body{j}", kernel=1 if j % 2 == 0 else 3,
                            act="leaky")
        tip = _conv_bn(body, ch * 2, f"yolo_block{k}_tip", act="leaky")
        feat = size // stride
        outputs.append(_yolo_output(tip, k, classes, anchors[6 - 3 * k: 9 - 3 * k], stride, feat + 2, consts))
    result = mx.sym.concat(*outputs, dim=1, name="yolo_detections")
    shapes = {"data": (batch, 3, size, size)}
    if postprocess:
        nms = mx.sym.contrib.box_nms(result, overlap_thresh=0.45, topk=100, valid_thresh=0.01, id_index=0,
                                     score_index=1, coord_start=2, force_suppress=False, name="yolo_nms")
        nms = mx.sym.slice_axis(nms, axis=1, begin=0, end=post_nms, name="yolo_post_nms")
        result = mx.sym.Group([mx.sym.slice_axis(nms, axis=-1, begin=0, end=1, name="yolo_out_ids"),
                               mx.sym.slice_axis(nms, axis=-1, begin=1, end=2, name="yolo_out_scores"),
                               mx.sym.slice_axis(nms, axis=-1, begin=2, end=None, name="yolo_out_bboxes")])
    return result, _random_params(result, shapes, np.random.default_rng(seed), consts), shapes


def deeplab(batch: int = 1, size: int = 64, classes: int = 5, width: int = 8, seed: int = 0) -> tuple[Any, dict, dict]:
    """DeepLabV3 (gluoncv `DeepLabV3` + `_DeepLabHead` + `_ASPP`) on a dilated ResNet-style backbone of output stride
    8 (its last two stages dilated 2 and 4 instead of strided). ASPP: a 1x1 branch, three 3x3 branches dilated
    12/24/36 divided by 4 (the rates scale with the feature map), and image pooling (global average pool, 1x1 conv,
    BN, ReLU, BilinearResize2D back to the map); concat, 1x1 projection, dropout; 3x3 head, 1x1 classifier,
    BilinearResize2D to the input size. Outputs the logits (B, classes, size, size) and their argmax over channels."""
    data = mx.sym.var("data")
    x = _conv_bn(data, width, "seg_stem", stride=2)
    x = _conv_bn(x, width * 2, "seg_layer1", stride=2)
    x = _conv_bn(x, width * 4, "seg_layer2", stride=2)  # output stride 8
    for k, dilate in enumerate((2, 4)):  # layer3/layer4: dilated residual blocks
        y = _conv_bn(x, width * 4, f"seg_layer{k + 3}_a", dilate=dilate)
        y = _conv_bn(y, width * 4, f"seg_layer{k + 3}_b", dilate=dilate, act=None)
        x = mx.sym.Activation(mx.sym.elemwise_add(x, y, name=f"seg_layer{k + 3}_add"), act_type="relu",
                              name=f"seg_layer{k + 3}_relu")
    feat = size // 8
    branches = [_conv_bn(x, width * 2, "seg_aspp_b0", kernel=1)]
    branches += [_conv_bn(x, width * 2, f"seg_aspp_b{k + 1}", dilate=rate) for k, rate in enumerate((3, 6, 9))]
    pool = mx.sym.Pooling(x, kernel=(1, 1), global_pool=True, pool_type="avg", name="seg_aspp_pool")
    pool = _conv_bn(pool, width * 2, "seg_aspp_pool", kernel=1)
    branches.append(mx.sym.contrib.BilinearResize2D(pool, height=feat, width=feat, name="seg_aspp_pool_up"))
    x = mx.sym.concat(*branches, dim=1, name="seg_aspp_concat")
    x = _conv_bn(x, width * 2, "seg_aspp_project", kernel=1)
    x = mx.sym.Dropout(x, p=0.5, name="seg_aspp_dropout")
    x = _conv_bn(x, width * 2, "seg_head")
    x = mx.sym.Dropout(x, p=0.1, name="seg_head_dropout")
    x = mx.sym.Convolution(x, kernel=(1, 1), num_filter=classes, name="seg_classifier")
    logits = mx.sym.contrib.BilinearResize2D(x, height=size, width=size, name="seg_upsample")
    out = mx.sym.Group([logits, mx.sym.argmax(logits, axis=1, name="seg_pred")])
    shapes = {"data": (batch, 3, size, size)}
    return out, _random_params(out, shapes, np.random.default_rng(seed)), shapes


def simple_pose(batch: int = 1, height: int = 128, width_px: int = 96, joints: int = 17, width: int = 8,
                seed: int = 0) -> tuple[Any, dict, dict]:
    """SimplePoseResNet (gluoncv): a ResNet-style backbone of stride 32, three Deconvolution(stride 2) + BN + ReLU
    stages back to stride 4 (kernels 4/3/2 with gluoncv's pads and adj: (1, 0), (1, 1), (0, 0)), a 1x1 conv to one
    heatmap per joint, then gluoncv's `get_max_pred` decode: reshape to (B, J, H*W), argmax and max, x = idx % W
    (`_mod_scalar`), y = floor(idx / W), zeroed where the max is <= 0.
    Outputs heatmaps (B, J, H/4, W/4), coords (B, J, 2) and maxvals (B, J, 1)."""
    data = mx.sym.var("data")
    x = _conv_bn(data, width, "pose_stem", stride=2)
    for stage, ch in enumerate((2, 4, 8, 16)):  # strides 4, 8, 16, 32
        x = _conv_bn(x, width * ch, f"pose_down{stage}", stride=2)
        y = _conv_bn(x, width * ch, f"pose_res{stage}_a")
        y = _conv_bn(y, width * ch, f"pose_res{stage}_b", act=None)
        x = mx.sym.Activation(mx.sym.elemwise_add(x, y, name=f"pose_res{stage}_add"), act_type="relu",
                              name=f"pose_res{stage}_relu")
    for k, (kernel, pad, adj) in enumerate(((4, 1, 0), (3, 1, 1), (2, 0, 0))):
        x = mx.sym.Deconvolution(x, kernel=(kernel, kernel), stride=(2, 2), pad=(pad, pad), adj=(adj, adj),
                                 num_filter=width * 4, no_bias=True, name=f"pose_deconv{k}")
        x = mx.sym.BatchNorm(x, fix_gamma=False, name=f"pose_deconv{k}_bn")
        x = mx.sym.Activation(x, act_type="relu", name=f"pose_deconv{k}_relu")
    heatmaps = mx.sym.Convolution(x, kernel=(1, 1), num_filter=joints, name="pose_final")
    hm_w = width_px // 4
    flat = mx.sym.reshape(heatmaps, shape=(0, 0, -1), name="pose_heatmaps_flat")
    idx = mx.sym.argmax(flat, axis=2, keepdims=True, name="pose_argmax")  # (B, J, 1)
    maxvals = mx.sym.max(flat, axis=2, keepdims=True, name="pose_maxvals")
    x = mx.sym._internal._mod_scalar(idx, scalar=hm_w, name="pose_x")
    y = mx.sym.floor(idx / hm_w, name="pose_y")
    mask = mx.sym.tile(mx.sym._internal._greater_scalar(maxvals, scalar=0.0), reps=(1, 1, 2), name="pose_mask")
    coords = mx.sym.elemwise_mul(mx.sym.concat(x, y, dim=2, name="pose_xy"), mask, name="pose_coords")
    out = mx.sym.Group([heatmaps, coords, maxvals])
    shapes = {"data": (batch, 3, height, width_px)}
    return out, _random_params(out, shapes, np.random.default_rng(seed)), shapes


# Names `get` (and so tools/demo.py and tools/bench_optimize.py) accept for the models above.
HEAD_MODELS = ("ssd", "yolo3", "deeplab", "simple_pose")


def head_model(name: str, batch: int = 1, size: int | None = None, seed: int = 0) -> tuple[Any, dict, dict]:
    """A model of HEAD_MODELS at its default widths; `size`: the input height (SSD/YOLOv3: a multiple of 32,
    DeepLab: of 8, SimplePose: of 128, its width being 3/4 of it)."""
    if name == "simple_pose":
        return simple_pose(batch, *((size, size * 3 // 4) if size else ()), seed=seed)
    if name not in HEAD_MODELS:
        raise ValueError(f"unknown head model {name!r}; choose from {', '.join(HEAD_MODELS)}")
    builder = {"ssd": ssd, "yolo3": yolo3, "deeplab": deeplab}[name]
    return builder(batch, size, seed=seed) if size else builder(batch, seed=seed)


__all__ = ["VISION_MODELS", "HEAD_MODELS", "min_size", "vision_model", "lenet", "bert_encoder", "bert_inputs", "get",
           "head_model", "ssd", "yolo3", "deeplab", "simple_pose"]
