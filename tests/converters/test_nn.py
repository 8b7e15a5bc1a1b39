"""Convolution, Deconvolution, FullyConnected, Pooling, _contrib_AdaptiveAvgPooling2D, dot and batch_dot: a node the
registry selects converts and matches MXNet CPU (in fp32 and fp16 engines); a node it refuses stays in MXNet with a
reason, and the graph still gives MXNet's output."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import assume, currently_in_test_context, event, given
from hypothesis import strategies as st

import mx2trt
from harness import (
    check_op, check_property_tests, check_quantized, exact_in, max_rel_error, precisions, quantizations, rtol_for,
    run_symbol, sym_fn,
)
from mx2trt import REGISTRY
from mx2trt._mx import mx
from mx2trt._trt import quirk
from mx2trt.attrs import parse_attrs
from mx2trt.graph import Graph
from mx2trt.registry import OpNode, TensorInfo

SEEDS = st.integers(0, 2**32 - 1)
F32 = np.dtype(np.float32)


def _normal(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.standard_normal(tuple(shape)).astype(np.float32)


def verdict(op: str, inputs: Sequence[np.ndarray], attrs: dict[str, Any], params: Sequence[int] = ()) -> str | None:
    """The registry's verdict on the one-node graph check_op builds: None when selected, else the reason."""
    names = [f"x{i}" for i in range(len(inputs))]
    sym = sym_fn(op)(*[mx.sym.var(n) for n in names], name="node", **attrs)
    prm = {n: mx.nd.array(a) for i, (n, a) in enumerate(zip(names, inputs)) if i in params}
    shapes = {n: a.shape for i, (n, a) in enumerate(zip(names, inputs)) if i not in params}
    graph = Graph.from_symbol(sym, prm, shapes)
    return REGISTRY.check(graph, graph.by_name["node"])[1]


def check_either_way(
    op: str, inputs: Sequence[np.ndarray], attrs: dict[str, Any], params: Sequence[int] = (), **options: Any
) -> str | None:
    """Selected -> converts and matches MXNet; refused -> stays in MXNet with that reason and still runs."""
    reason = verdict(op, inputs, attrs, params)
    if currently_in_test_context():  # statistics for --hypothesis-show-statistics
        event("selected" if reason is None else "refused")
    c = check_op(op, inputs, attrs, params=params, expect_trt=reason is None, **options)
    if reason is not None:
        row = {r.node: r for r in c.report.rows}["node"]
        assert row.reason == reason, f"report gives {row.reason!r}, the registry {reason!r}"
        assert reason.startswith(f"{op} 'node': ")
    return reason


# ---- engine precision ----------------------------------------------------------------------------------------------

# Every property test runs in fp32 and fp16 engines. MXNet is always the fp32 reference, fed the same values: in fp16
# those are fp16 numbers (see exact_in), so the boundary cast loses nothing and what remains is the engine's own
# rounding of each layer's output to fp16, 2^-11 = 4.9e-4 relative. Over 600 examples per op the largest error of a
# one-layer op was 5.3e-4 (Deconvolution); FP16_RTOL allows twice 2^-11. Gathers and selections are exact in both.
EXACT = 1e-6


# ---- Convolution ---------------------------------------------------------------------------------------------------


@st.composite
def convolutions(draw):
    n = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 1, 2, 4]))
    c_in = groups * draw(st.integers(1, 8 // groups))
    num_filter = groups * draw(st.integers(1, 8 // groups))
    max_dim = 12 if n < 3 else 6
    kernel, stride, dilate, pad, dims = [], [], [], [], []
    use = {k: draw(st.booleans()) for k in ("stride", "dilate", "pad")}  # absent -> MXNet's default (1, 1, 0)
    for _ in range(n):
        k = draw(st.integers(1, 3))
        s = draw(st.integers(1, 3)) if use["stride"] else 1
        dl = draw(st.integers(1, 2)) if use["dilate"] else 1
        p = draw(st.integers(0, k)) if use["pad"] else 0
        span = dl * (k - 1) + 1
        dims.append(draw(st.integers(max(1, span - 2 * p), max(max_dim, span))))
        kernel.append(k), stride.append(s), dilate.append(dl), pad.append(p)
    attrs: dict[str, Any] = {"kernel": tuple(kernel), "num_filter": num_filter}
    if groups > 1 or draw(st.booleans()):
        attrs["num_group"] = groups
    for key, v in (("stride", stride), ("dilate", dilate), ("pad", pad)):
        if use[key]:
            attrs[key] = tuple(v)
    no_bias = draw(st.sampled_from([None, True, False]))
    if no_bias is not None:
        attrs["no_bias"] = no_bias
    batch = draw(st.integers(1, 3))
    return (batch, c_in) + tuple(dims), attrs, draw(SEEDS)


@precisions
@given(convolutions())
def test_convolution_matches_mxnet(precision, case):
    shape, attrs, seed = case
    rng = np.random.default_rng(seed)
    k = attrs["kernel"]
    groups = attrs.get("num_group", 1)
    w = _normal(rng, (attrs["num_filter"], shape[1] // groups) + k)
    inputs = [_normal(rng, shape), w]
    if not attrs.get("no_bias", False):
        inputs.append(_normal(rng, (attrs["num_filter"],)))
    event(f"{len(k)}-D")
    check_op("Convolution", exact_in(precision, *inputs), attrs, params=tuple(range(1, len(inputs))),
             precision=precision, rtol=rtol_for(precision))


@quantizations
@given(convolutions())
def test_convolution_quantized_matches_mxnet_on_quantized_inputs(quant, case):
    shape, attrs, seed = case
    rng = np.random.default_rng(seed)
    groups = attrs.get("num_group", 1)
    inputs = [_normal(rng, shape), _normal(rng, (attrs["num_filter"], shape[1] // groups) + attrs["kernel"])]
    if not attrs.get("no_bias", False):
        inputs.append(_normal(rng, (attrs["num_filter"],)))
    check_quantized("Convolution", inputs, attrs, quant, params=tuple(range(1, len(inputs))), weight_axis={1: 0})


def test_convolution_depthwise_dilated_1d():
    rng = np.random.default_rng(0)
    x, w, b = _normal(rng, (2, 4, 11)), _normal(rng, (4, 1, 3)), _normal(rng, (4,))
    check_op("Convolution", [x, w, b], dict(kernel=(3,), num_filter=4, num_group=4, dilate=(2,), pad=(2,), stride=(2,)),
             params=(1, 2))


def test_convolution_with_computed_weight_stays_in_mxnet():
    rng = np.random.default_rng(0)
    x, w = _normal(rng, (1, 2, 5, 5)), _normal(rng, (3, 2, 3, 3))
    reason = verdict("Convolution", [x, w], dict(kernel=(3, 3), num_filter=3, no_bias=True))
    assert reason and "weight" in reason and "parameter" in reason
    check_op("Convolution", [x, w], dict(kernel=(3, 3), num_filter=3, no_bias=True), expect_trt=False)


# ---- FullyConnected ------------------------------------------------------------------------------------------------


@st.composite
def fully_connected(draw):
    rank = draw(st.integers(2, 4))
    shape = (draw(st.integers(1, 3)),) + tuple(draw(st.integers(1, 6)) for _ in range(rank - 1))
    attrs: dict[str, Any] = {"num_hidden": draw(st.integers(1, 8))}
    for key in ("flatten", "no_bias"):
        v = draw(st.sampled_from([None, True, False]))  # None: attribute absent (flatten=True, no_bias=False)
        if v is not None:
            attrs[key] = v
    return shape, attrs, draw(SEEDS)


@precisions
@given(fully_connected())
def test_fully_connected_matches_mxnet(precision, case):
    shape, attrs, seed = case
    rng = np.random.default_rng(seed)
    h = attrs["num_hidden"]
    flatten = attrs.get("flatten", True)
    inputs = [_normal(rng, shape), _normal(rng, (h, math.prod(shape[1:]) if flatten else shape[-1]))]
    if not attrs.get("no_bias", False):
        inputs.append(_normal(rng, (h,)))
    event(f"rank {len(shape)}, flatten={flatten}")
    # The product is rounded to fp16 before the bias is added (two layers); where the bias cancels it, that rounding
    # is large against the output: up to 3.5e-3 of the largest output in 1000 examples.
    check_op("FullyConnected", exact_in(precision, *inputs), attrs, params=tuple(range(1, len(inputs))),
             precision=precision, rtol=rtol_for(precision, 8e-3))


@quantizations
@given(fully_connected())
def test_fully_connected_quantized_matches_mxnet_on_quantized_inputs(quant, case):
    shape, attrs, seed = case
    rng = np.random.default_rng(seed)
    k = math.prod(shape[1:]) if attrs.get("flatten", True) else shape[-1]
    inputs = [_normal(rng, shape), _normal(rng, (attrs["num_hidden"], k))]
    if not attrs.get("no_bias", False):
        inputs.append(_normal(rng, (attrs["num_hidden"],)))
    check_quantized("FullyConnected", inputs, attrs, quant, params=tuple(range(1, len(inputs))), weight_axis={1: 0},
                    rtol=rtol_for(quant[1], 8e-3))  # fp16: as for float FullyConnected (the bias after rounding)


# ---- Pooling -------------------------------------------------------------------------------------------------------


@st.composite
def poolings(draw):
    # 1-D (rank-3 input) is valid MXNet that the registry refuses, so the refusal branch is drawn too.
    n = draw(st.sampled_from([1, 2, 2, 2, 3, 3]))
    pool_type = draw(st.sampled_from(["max", "avg"]))
    attrs: dict[str, Any] = {"pool_type": pool_type} if pool_type != "max" or draw(st.booleans()) else {}
    global_pool = draw(st.sampled_from([False, False, False, True]))
    max_dim = 12 if n < 3 else 6
    use_stride, use_pad = draw(st.booleans()), draw(st.booleans())
    # Mostly pad < kernel; now and then up to kernel + 1, which MXNet accepts too (windows of padding alone).
    big_pad = use_pad and draw(st.sampled_from([False, False, False, False, True]))
    kernel, stride, pad, dims = [], [], [], []
    for _ in range(n):
        k = draw(st.integers(1, 4 if n < 3 else 3))
        p = draw(st.integers(0, k + 1 if big_pad else k - 1)) if use_pad else 0
        kernel.append(k), pad.append(p)
        stride.append(draw(st.integers(1, 3)) if use_stride else 1)
        dims.append(draw(st.integers(max(1, k - 2 * p), max_dim)))
    if not global_pool or draw(st.booleans()):
        attrs["kernel"] = tuple(kernel)
        if use_stride:
            attrs["stride"] = tuple(stride)
        if use_pad:
            attrs["pad"] = tuple(pad)
    if global_pool:
        attrs["global_pool"] = True
    convention = draw(st.sampled_from([None, "valid", "full", "full"]))
    if convention is not None:
        attrs["pooling_convention"] = convention
    include_pad = draw(st.sampled_from([None, True, False]))
    if include_pad is not None:
        attrs["count_include_pad"] = include_pad
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4))) + tuple(dims)
    return shape, attrs, draw(SEEDS)


@precisions
@given(poolings())
def test_pooling_selected_matches_refused_stays(precision, case):
    shape, attrs, seed = case
    x = exact_in(precision, _normal(np.random.default_rng(seed), shape))[0]
    # MXNet's own 3-D average over a window of padding alone is 0/0 = NaN (even when the node stays in MXNet the
    # harness cannot compare NaN with NaN): nothing to match.
    assume(np.isfinite(run_symbol(mx.sym.Pooling(mx.sym.var("x0"), **attrs), {"x0": x})[0]).all())
    reason = check_either_way("Pooling", [x], attrs, precision=precision, rtol=rtol_for(precision))
    if reason is None:
        event(f"selected {len(shape) - 2}-D {attrs.get('pool_type', 'max')} {attrs.get('pooling_convention', 'valid')}")


@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((2, 3, 7, 7), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full")),
        ((2, 3, 7, 7), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full",
                            count_include_pad=False)),
        ((1, 2, 13, 13), dict(kernel=(3, 3), stride=(2, 2), pooling_convention="full")),  # squeezenet
        ((1, 2, 5, 6, 7), dict(kernel=(2, 3, 2), stride=(2, 1, 2), pad=(1, 1, 0), pool_type="avg")),
        ((1, 2, 5, 6, 7), dict(kernel=(2, 3, 3), stride=(2, 2, 2), pool_type="max", pooling_convention="full")),
        ((2, 3, 4, 5), dict(global_pool=True, pool_type="avg")),
        ((2, 3, 4, 5, 3), dict(kernel=(1, 1, 1), global_pool=True, pool_type="max")),
    ],
)
def test_pooling_cases_convert(shape, attrs):
    check_op("Pooling", [_normal(np.random.default_rng(1), shape)], attrs)


@pytest.mark.parametrize(
    "shape, attrs, why",
    [
        ((1, 2, 6, 6), dict(kernel=(2, 2), pool_type="sum"), "pool_type 'sum'"),
        ((1, 2, 6, 6), dict(kernel=(2, 2), pool_type="lp", p_value=2), "pool_type 'lp'"),
        ((1, 6, 6, 2), dict(kernel=(2, 2), layout="NHWC"), "layout NHWC"),
        ((1, 2, 6), dict(kernel=(2,), stride=(2,)), "input rank 3"),
        # 3-D average, 'full', partial last window (7 - 2 = 5 is not a multiple of 2).
        ((1, 2, 7, 4, 4), dict(kernel=(2, 2, 2), stride=(2, 2, 2), pool_type="avg", pooling_convention="full"),
         "partial last window"),
        # 'full' with pad: the last window (start (4-1)*2-1 = 5 >= 5) lies in the right padding.
        ((1, 2, 5, 5), dict(kernel=(2, 2), stride=(2, 2), pad=(1, 1), pooling_convention="full"), "only padding"),
    ],
)
def test_pooling_refusals(shape, attrs, why):
    x = _normal(np.random.default_rng(2), shape)
    reason = verdict("Pooling", [x], attrs)
    assert reason is not None and why in reason, reason
    c = check_op("Pooling", [x], attrs, expect_trt=False)
    assert not c.engines


def test_pooling_convention_same_is_refused():
    # MXNet accepts 'same' only on 1-D input (which the registry refuses by rank) and its CPU kernel then crashes, so
    # no graph can carry it through check_op: ask the validator about a 2-D node directly.
    spec = REGISTRY.get("Pooling")
    raw = {"kernel": "(2, 2)", "stride": "(2, 2)", "pooling_convention": "same"}
    node = OpNode("p", "Pooling", parse_attrs(spec.attrs, raw, op="Pooling", node="p"),
                  (TensorInfo((1, 2, 5, 5), F32),), (TensorInfo((1, 2, 3, 3), F32),))
    reason = spec.validator(node)
    assert reason is not None and "pooling_convention 'same'" in reason, reason


# ---- pad >= kernel: valid MXNet (shape inference and the CPU kernel accept it) that the validator half-handles ----


def test_pooling_pad_ge_kernel_avg_including_pad_converts():
    # Windows wholly in the padding average to 0 on both sides when padding is counted.
    x = _normal(np.random.default_rng(3), (1, 2, 5, 5))
    check_either_way("Pooling", [x], dict(kernel=(2, 2), pad=(2, 2), stride=(3, 3), pool_type="avg"))


def test_pooling_max_window_of_only_left_padding():
    x = _normal(np.random.default_rng(3), (1, 2, 5, 5))
    check_either_way("Pooling", [x], dict(kernel=(2, 2), pad=(2, 2), stride=(3, 3), pool_type="max"))


def test_pooling_avg_excluding_pad_ge_kernel():
    x = _normal(np.random.default_rng(3), (1, 2, 5, 5))
    check_either_way("Pooling", [x], dict(kernel=(2, 2), pad=(2, 2), stride=(3, 3), pool_type="avg",
                                          count_include_pad=False))


# ---- _contrib_AdaptiveAvgPooling2D ---------------------------------------------------------------------------------


def _adaptive_path(hw: tuple[int, int], out: tuple[int, int]) -> str:
    """Which layers the converter uses: 1 x 1 reduce, pooling where the output divides the input, else matmul."""
    if out == (1, 1):
        return "reduce"
    return "pooling" if hw[0] % out[0] == 0 and hw[1] % out[1] == 0 else "matmul"


@st.composite
def adaptive_poolings(draw):
    h, w = draw(st.integers(1, 14)), draw(st.integers(1, 14))

    def size(n: int) -> int:  # often a divisor > 1 (pooling), else anything up to past the input (overlapping bins)
        return draw(st.sampled_from([d for d in range(2, n + 1) if n % d == 0] or [1]) | st.integers(1, n + 3))

    oh, ow = size(h), size(w)
    form = draw(st.sampled_from(["absent", "int", "one"] + ["two"] * 5))  # absent: 1; int or (int,): square
    attrs = {"absent": {}, "int": {"output_size": oh}, "one": {"output_size": (oh,)},
             "two": {"output_size": (oh, ow)}}[form]
    out = {"absent": (1, 1), "int": (oh, oh), "one": (oh, oh), "two": (oh, ow)}[form]
    return (draw(st.integers(1, 2)), draw(st.integers(1, 4)), h, w), attrs, out, draw(SEEDS)


@precisions
@given(adaptive_poolings())
def test_adaptive_avg_pooling_matches_mxnet(precision, case):
    shape, attrs, out, seed = case
    event(_adaptive_path(shape[2:], out))
    x = exact_in(precision, _normal(np.random.default_rng(seed), shape))[0]
    check_op("_contrib_AdaptiveAvgPooling2D", [x], attrs, precision=precision, rtol=rtol_for(precision))


@pytest.mark.parametrize("shape, output_size", [
    ((2, 8, 7, 7), None), ((1, 4, 14, 14), 1), ((1, 3, 56, 40), (1, 1)),  # squeeze-and-excitation
    *[((1, 3, 13, 13), s) for s in (1, 2, 3, 6)], *[((1, 2, 15, 9), (s, s)) for s in (2, 3, 6)],  # pyramid pooling
    ((1, 2, 60, 60), 6), ((1, 2, 7, 5), (7, 5)), ((1, 2, 3, 4), (8, 9)),  # dividing, identity, upsampling
])
@precisions
def test_adaptive_avg_pooling_cases(precision, shape, output_size):
    x = exact_in(precision, _normal(np.random.default_rng(4), shape))[0]
    check_op("_contrib_AdaptiveAvgPooling2D", [x], {} if output_size is None else {"output_size": output_size},
             precision=precision, rtol=rtol_for(precision))


def test_adaptive_avg_pooling_needs_nchw():
    # MXNet's shape inference writes dims 2 and 3 of any rank and its kernel then fails: ask the validator directly.
    spec = REGISTRY.get("_contrib_AdaptiveAvgPooling2D")
    node = OpNode("a", "_contrib_AdaptiveAvgPooling2D", parse_attrs(spec.attrs, {"output_size": "2"}, op="x", node="a"),
                  (TensorInfo((1, 2, 5, 5, 5), F32),), (TensorInfo((1, 2, 2, 2, 5), F32),))
    reason = spec.validator(node)
    assert reason is not None and "input rank 5" in reason, reason


# ---- Deconvolution -------------------------------------------------------------------------------------------------


@st.composite
def deconvolutions(draw):
    n = draw(st.sampled_from([1, 2, 2, 3]))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in = groups * draw(st.integers(1, 3))
    num_filter = groups * draw(st.integers(1, 3))
    # stride > 1 with dilate > 1 is refused on TensorRT-RTX (it cannot build it): drawn now and then. MXNet has no 3-D
    # dilation.
    combo = draw(st.sampled_from(["plain", "stride", "stride"] + (["dilate", "both"] if n < 3 else [])))
    use_pad, use_adj = draw(st.booleans()), combo in ("stride", "both") and draw(st.booleans())
    use_target = not use_adj and draw(st.sampled_from([False, False, True]))
    kernel, stride, dilate, pad, adj, target, dims = [], [], [], [], [], [], []
    for _ in range(n):
        k = draw(st.integers(1, 4 if n < 3 else 3))
        s = draw(st.integers(1, 3)) if combo in ("stride", "both") else 1
        dl = draw(st.integers(1, 2)) if combo in ("dilate", "both") else 1
        d = draw(st.integers(1, 6 if n < 3 else 4))
        full = (d - 1) * s + dl * (k - 1) + 1
        j = draw(st.integers(0, s - 1)) if use_adj else 0  # MXNet requires adj < stride
        pad.append(draw(st.integers(0, (full - 1 + j) // 2)) if use_pad else 0)  # at least one output element
        kernel.append(k), stride.append(s), dilate.append(dl), adj.append(j), dims.append(d)
        # target_shape drops (full - target) // 2 after and the rest before: MXNet's adj, which must be < stride
        target.append(draw(st.integers(1, full).filter(lambda t, full=full, s=s: (full - t) % 2 < s)))
    attrs: dict[str, Any] = {"kernel": tuple(kernel), "num_filter": num_filter}
    if groups > 1 or draw(st.booleans()):
        attrs["num_group"] = groups
    used = {"stride": combo in ("stride", "both"), "dilate": combo in ("dilate", "both"), "pad": use_pad,
            "adj": use_adj, "target_shape": use_target}
    for key, v in (("stride", stride), ("dilate", dilate), ("pad", pad), ("adj", adj), ("target_shape", target)):
        if used[key]:
            attrs[key] = tuple(v)
    no_bias = draw(st.sampled_from([None, True, False]))  # None: absent, MXNet's default no_bias=True
    if no_bias is not None:
        attrs["no_bias"] = no_bias
    return (draw(st.integers(1, 2)), c_in) + tuple(dims), attrs, draw(SEEDS)


def _deconv_inputs(rng: np.random.Generator, shape: tuple[int, ...], attrs: dict[str, Any]) -> list[np.ndarray]:
    groups = attrs.get("num_group", 1)
    inputs = [_normal(rng, shape), _normal(rng, (shape[1], attrs["num_filter"] // groups) + attrs["kernel"])]
    if not attrs.get("no_bias", True):
        inputs.append(_normal(rng, (attrs["num_filter"],)))
    return inputs


def deconvolution_reference(inputs: Sequence[np.ndarray], attrs: dict[str, Any]) -> np.ndarray:
    """MXNet's Deconvolution without its Deconvolution kernel (the CPU build has no 3-D one): the uncropped output is
    the gradient of Convolution with respect to its input, then cropped by pad (pad - adj after) or to target_shape
    (odd element dropped at the start), zero-extended where adj > pad, plus the bias."""
    x, w = inputs[0], inputs[1]
    n, groups = len(attrs["kernel"]), attrs.get("num_group", 1)
    stride, dilate = attrs.get("stride", (1,) * n), attrs.get("dilate", (1,) * n)
    full = tuple((d - 1) * s + dl * (k - 1) + 1 for d, s, dl, k in zip(x.shape[2:], stride, dilate, attrs["kernel"]))
    z = mx.nd.zeros((x.shape[0], attrs["num_filter"]) + full)
    z.attach_grad()
    with mx.autograd.record():
        y = mx.nd.Convolution(z, mx.nd.array(w), kernel=attrs["kernel"], stride=stride, dilate=dilate,
                              num_filter=x.shape[1], num_group=groups, no_bias=True)
    y.backward(mx.nd.array(x))
    out = z.grad.asnumpy()
    target = attrs.get("target_shape", ())
    for i in range(n):
        if any(target):
            pre, size = (full[i] - target[i] + 1) // 2, target[i]
        else:
            p, j = attrs.get("pad", (0,) * n)[i], attrs.get("adj", (0,) * n)[i]
            pre, size = p, full[i] - 2 * p + j
        out = np.take(np.pad(out, [(0, 0)] * (2 + i) + [(0, max(pre + size - full[i], 0))] + [(0, 0)] * (n - i - 1)),
                      np.arange(pre, pre + size), axis=2 + i)
    if len(inputs) > 2:
        out = out + inputs[2].reshape((1, -1) + (1,) * n)
    return out.astype(np.float32)


def mxnet_cpu_gets_wrong(attrs: dict[str, Any]) -> bool:
    """Whether MXNet's CPU Deconvolution as the tests run it (without MKLDNN) is wrong: stride > 1 and dilate > 1 on one
    axis (MKLDNN's kernel and `deconvolution_reference` agree there)."""
    n = len(attrs["kernel"])
    return any(s > 1 and d > 1 for s, d in zip(attrs.get("stride", (1,) * n), attrs.get("dilate", (1,) * n)))


def check_deconvolution_by_reference(
    inputs: Sequence[np.ndarray], attrs: dict[str, Any], **options: Any
) -> mx2trt.Conversion:
    """check_op for a Deconvolution MXNet's CPU kernel cannot run (3-D) or gets wrong (`mxnet_cpu_gets_wrong`), against
    `deconvolution_reference`."""
    names = [f"x{i}" for i in range(len(inputs))]
    sym = mx.sym.Deconvolution(*[mx.sym.var(v) for v in names], name="node", **attrs)
    params = {v: mx.nd.array(a) for v, a in zip(names[1:], inputs[1:])}
    rtol = options.pop("rtol", 1e-5)
    c = mx2trt.convert(sym, params, {"x0": inputs[0].shape}, runtime="reference", min_subgraph_size=1, **options)
    row = {r.node: r for r in c.report.rows}["node"]
    assert row.placement != "mxnet", row.reason
    got = run_symbol(c.symbol, {"x0": inputs[0], **{k: v.asnumpy() for k, v in c.params.items()}})[0]
    want = deconvolution_reference(inputs, attrs)
    assert got.shape == want.shape
    err = max_rel_error(got, want)
    assert err <= rtol, f"max relative error {err:.3g} > {rtol:g}"
    return c


@precisions
@given(deconvolutions())
def test_deconvolution_matches_mxnet(precision, case):
    shape, attrs, seed = case
    inputs = exact_in(precision, *_deconv_inputs(np.random.default_rng(seed), shape, attrs))
    options = dict(params=tuple(range(1, len(inputs))), precision=precision, rtol=rtol_for(precision))
    event(f"{len(attrs['kernel'])}-D")
    by_reference = len(shape) == 5 or (
        mxnet_cpu_gets_wrong(attrs) and verdict("Deconvolution", inputs, attrs, options["params"]) is None
    )
    if by_reference:
        check_deconvolution_by_reference(inputs, attrs, precision=precision, rtol=options["rtol"])
    else:
        check_either_way("Deconvolution", inputs, attrs, **options)


def test_deconvolution_reference_agrees_with_mxnet_in_2d():
    # The 3-D reference is the 1-D/2-D reference too, where MXNet can check it: adj > pad, target_shape, groups.
    rng = np.random.default_rng(5)
    for shape, attrs in [
        ((2, 4, 5, 4), dict(kernel=(3, 2), num_filter=6, num_group=2, stride=(3, 2), pad=(1, 0), adj=(2, 1),
                            no_bias=False)),
        ((1, 2, 5, 3), dict(kernel=(3, 3), num_filter=3, stride=(2, 2), target_shape=(10, 6))),
        ((1, 2, 7), dict(kernel=(2,), num_filter=2, dilate=(3,), pad=(2,), no_bias=False)),
    ]:
        inputs = _deconv_inputs(rng, shape, attrs)
        want = run_symbol(mx.sym.Deconvolution(*[mx.sym.var(f"x{i}") for i in range(len(inputs))], **attrs),
                          {f"x{i}": a for i, a in enumerate(inputs)})[0]
        assert max_rel_error(deconvolution_reference(inputs, attrs), want) < 1e-5


@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((1, 2, 5), dict(kernel=(3,), num_filter=3, stride=(3,), adj=(2,), no_bias=False)),  # extends past the output
        ((1, 4, 5, 4), dict(kernel=(3, 3), num_filter=6, num_group=2, stride=(3, 2), adj=(2, 1), pad=(1, 0),
                            no_bias=False)),
        ((2, 3, 5, 4), dict(kernel=(4, 4), num_filter=3, stride=(2, 2), pad=(1, 1), num_group=3)),  # FCN-style 2x
        ((1, 2, 5, 4), dict(kernel=(3, 3), num_filter=3, stride=(2, 2), pad=(3, 3))),  # pad >= kernel
        ((1, 2, 5, 3), dict(kernel=(3, 3), num_filter=3, stride=(2, 2), pad=(1, 1), adj=(1, 1), target_shape=(10, 6))),
    ],
)
@precisions
def test_deconvolution_cases(precision, shape, attrs):
    inputs = _deconv_inputs(np.random.default_rng(6), shape, attrs)
    check_op("Deconvolution", inputs, attrs, params=tuple(range(1, len(inputs))), precision=precision,
             rtol=rtol_for(precision))


def test_deconvolution_3d_with_adj_and_target_shape():
    rng = np.random.default_rng(7)
    for attrs in (dict(kernel=(3, 2, 2), num_filter=4, stride=(2, 3, 2), adj=(1, 2, 1), no_bias=False),
                  dict(kernel=(3, 2, 2), num_filter=4, stride=(2, 1, 2), pad=(1, 1, 0), target_shape=(6, 3, 5))):
        check_deconvolution_by_reference(_deconv_inputs(rng, (1, 2, 3, 4, 3), attrs), attrs)


def test_deconvolution_strided_and_dilated_is_refused_where_tensorrt_cannot_build_it():
    # Even on different axes: TensorRT-RTX's builder fails on any stride > 1 together with any dilation > 1 (both
    # flavours: tests/test_trt_quirks.py).
    inputs = _deconv_inputs(np.random.default_rng(8), (1, 2, 5, 4), dict(kernel=(3, 3), num_filter=3))
    attrs = dict(kernel=(3, 3), num_filter=3, stride=(1, 2), dilate=(2, 1))
    reason = check_either_way("Deconvolution", inputs, attrs, params=(1,))
    cannot = quirk("strided_dilated_deconv")
    assert reason == (f"Deconvolution 'node': stride (1, 2) with dilate (2, 1) ({cannot})" if cannot else None)


def test_deconvolution_with_computed_weight_stays_in_mxnet():
    inputs = _deconv_inputs(np.random.default_rng(9), (1, 2, 5, 4), dict(kernel=(3, 3), num_filter=3))
    reason = check_either_way("Deconvolution", inputs, dict(kernel=(3, 3), num_filter=3, stride=(2, 2)))
    assert reason is not None and "not a parameter" in reason


# ---- dot, batch_dot ------------------------------------------------------------------------------------------------


@st.composite
def dots(draw):
    ra, rb = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ta = ra > 1 and draw(st.booleans())  # MXNet rejects transpose_a on a vector (and transpose_b likewise)
    tb = rb > 1 and draw(st.booleans())
    k = draw(st.integers(1, 6))
    rest_a = tuple(draw(st.integers(1, 4)) for _ in range(ra - 1))
    rest_b = tuple(draw(st.integers(1, 4)) for _ in range(rb - 1))
    sa = (k,) + rest_a if ta else rest_a + (k,)
    sb = rest_b + (k,) if tb else (k,) + rest_b
    attrs = {key: True for key, v in (("transpose_a", ta), ("transpose_b", tb)) if v}
    if draw(st.booleans()):
        attrs.update({key: False for key in ("transpose_a", "transpose_b") if key not in attrs})
    params = draw(st.sampled_from([(), (), (1,), (0,)]))
    return sa, sb, attrs, params, draw(SEEDS)


@precisions
@given(dots())
def test_dot_matches_mxnet(precision, case):
    sa, sb, attrs, params, seed = case
    rng = np.random.default_rng(seed)
    event(f"ranks {len(sa)}x{len(sb)}")
    check_op("dot", exact_in(precision, _normal(rng, sa), _normal(rng, sb)), attrs, params=params, precision=precision,
             rtol=rtol_for(precision))


@st.composite
def batch_dots(draw):
    batch = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(1, 2))))
    m, k, n = (draw(st.integers(1, 6)) for _ in range(3))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    sa = batch + ((k, m) if ta else (m, k))
    sb = batch + ((n, k) if tb else (k, n))
    attrs = {key: v for key, v in (("transpose_a", ta), ("transpose_b", tb)) if v or draw(st.booleans())}
    return sa, sb, attrs, draw(st.sampled_from([(), (), (1,)])), draw(SEEDS)


@precisions
@given(batch_dots())
def test_batch_dot_matches_mxnet(precision, case):
    sa, sb, attrs, params, seed = case
    rng = np.random.default_rng(seed)
    check_op("batch_dot", exact_in(precision, _normal(rng, sa), _normal(rng, sb)), attrs, params=params,
             precision=precision, rtol=rtol_for(precision))


@quantizations
@pytest.mark.parametrize("op, cases", [("dot", dots()), ("batch_dot", batch_dots())], ids=["dot", "batch_dot"])
@given(data=st.data())
def test_dot_and_batch_dot_quantized_match_mxnet_on_quantized_inputs(quant, op, cases, data):
    sa, sb, attrs, params, seed = data.draw(cases)
    rng = np.random.default_rng(seed)
    check_quantized(op, [_normal(rng, sa), _normal(rng, sb)], attrs, quant, params=params,
                    weight_axis={k: None for k in params})


def test_dot_sparse_output_is_refused():
    # A dense graph cannot carry forward_stype='csr' through MXNet's CPU kernel: ask the validator directly.
    spec = REGISTRY.get("dot")
    node = OpNode("d", "dot", parse_attrs(spec.attrs, {"forward_stype": "csr"}, op="dot", node="d"),
                  (TensorInfo((2, 3), F32), TensorInfo((3, 4), F32)), (TensorInfo((2, 4), F32),))
    reason = spec.validator(node)
    assert reason is not None and "forward_stype 'csr'" in reason


PROPERTY_TESTS = {
    "Convolution": test_convolution_matches_mxnet,
    "FullyConnected": test_fully_connected_matches_mxnet,
    "Pooling": test_pooling_selected_matches_refused_stays,
    "_contrib_AdaptiveAvgPooling2D": test_adaptive_avg_pooling_matches_mxnet,
    "Deconvolution": test_deconvolution_matches_mxnet,
    "dot": test_dot_matches_mxnet,
    "batch_dot": test_batch_dot_matches_mxnet,
}


def test_every_registered_op_has_a_property_test():
    check_property_tests("mx2trt.converters.nn", PROPERTY_TESTS)
