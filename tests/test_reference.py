"""The NumPy reference interpreter against independent NumPy expectations, one tiny real TensorRT network per test.

Each test defines a network with the real TensorRT API and checks that (a) the interpreter's output shape and dtype
equal what TensorRT itself inferred for the layer's output, and (b) the values equal an expectation written here
directly (explicit loops or plain NumPy formulas from TensorRT's documented semantics; nothing from reference.py).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mx2trt._trt import ErrorRecorder, create_builder, create_network, trt
from mx2trt.errors import Mx2TrtError
from mx2trt.reference import ReferenceProgram, UnsupportedLayerError

FLT_MAX = float(np.finfo(np.float32).max)
A = trt.ActivationType
U = trt.UnaryOperation
E = trt.ElementWiseOperation
R = trt.ReduceOperation
MO = trt.MatrixOperation
PM = trt.PaddingMode
PT = trt.PoolingType
SM = trt.SampleMode

_NP = {  # written out here rather than taken from mx2trt._trt
    trt.float32: np.float32,
    trt.float16: np.float16,
    trt.int32: np.int32,
    trt.int64: np.int64,
    trt.bool: np.bool_,
    trt.int8: np.int8,
}


class Net:
    """A strongly typed network under construction, keeping every weight array alive until the test ends."""

    def __init__(self) -> None:
        self.recorder = ErrorRecorder()
        self.builder = create_builder(self.recorder)
        self.net = create_network(self.builder)
        self.keep: list[np.ndarray] = []

    def input(self, name: str, shape, dtype=trt.float32):
        return self.net.add_input(name, dtype, tuple(shape))

    def w(self, arr) -> trt.Weights:
        a = np.array(arr, copy=True, order="C")
        self.keep.append(a)
        return trt.Weights(a)

    def const(self, arr):
        a = np.array(arr, copy=True, order="C")  # np.ascontiguousarray would turn a 0-d array into shape (1,)
        self.keep.append(a)
        return self.net.add_constant(a.shape, trt.Weights(a)).get_output(0)

    def program(self, *outputs) -> ReferenceProgram:
        for t in outputs:
            self.net.mark_output(t)
        assert self.recorder.take() == [], "TensorRT rejected the network"
        return ReferenceProgram.from_network(self.net)

    def run(self, layer, feeds, index: int = 0) -> np.ndarray:
        """Mark `layer`'s output, interpret, and check shape and dtype against TensorRT's inference."""
        out = layer.get_output(index)
        prog = self.program(out)
        trt_shape = tuple(out.shape)
        assert all(d >= 0 for d in trt_shape), trt_shape
        got = prog.run(feeds)[out.name]
        assert got.shape == trt_shape, f"interpreter shape {got.shape}, TensorRT {trt_shape}"
        assert got.dtype == np.dtype(_NP[out.dtype]), f"interpreter dtype {got.dtype}, TensorRT {out.dtype}"
        return got


def close(got, want, rtol=1e-5, atol=1e-5) -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)


def rand(shape, lo=-2.0, hi=2.0, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


# ---- window geometry from TensorRT's PaddingMode documentation --------------------------------------------------


def geometry(size, k, s, d, pre, post, mode):
    """(output size, effective pre padding) of one spatial dim."""
    eff = d * (k - 1) + 1
    if mode in (PM.SAME_UPPER, PM.SAME_LOWER):
        out = math.ceil(size / s)
        total = max((out - 1) * s + eff - size, 0)
        # SAME_UPPER: pre <= post (the odd element goes at the end); SAME_LOWER: pre >= post.
        lo = total // 2 if mode == PM.SAME_UPPER else total - total // 2
        return out, lo
    span = size + pre + post - eff
    out = (math.ceil(span / s) if mode == PM.EXPLICIT_ROUND_UP else math.floor(span / s)) + 1
    return out, pre


def conv_expect(x, w, b, groups, stride, dil, pre_eff, out_sizes):
    """Naive convolution: y[n, k, o] = sum over the group's channels and kernel taps of x * w (+ bias)."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    nb, c = x.shape[:2]
    kout = w.shape[0]
    cg, kg = c // groups, kout // groups
    spatial = x.shape[2:]
    ksize = w.shape[2:]
    nd = len(spatial)
    y = np.zeros((nb, kout) + tuple(out_sizes))
    for o in itertools.product(*[range(v) for v in out_sizes]):
        for kp in itertools.product(*[range(v) for v in ksize]):
            pos = [o[i] * stride[i] - pre_eff[i] + kp[i] * dil[i] for i in range(nd)]
            if not all(0 <= pos[i] < spatial[i] for i in range(nd)):
                continue  # zero padding
            for g in range(groups):
                patch = x[(slice(None), slice(g * cg, (g + 1) * cg)) + tuple(pos)]  # (N, C/G)
                taps = w[(slice(g * kg, (g + 1) * kg), slice(None)) + tuple(kp)]  # (K/G, C/G)
                y[(slice(None), slice(g * kg, (g + 1) * kg)) + tuple(o)] += patch @ taps.T
    if b is not None:
        y += b.astype(np.float64).reshape((1, kout) + (1,) * nd)
    return y


# ---- convolution ------------------------------------------------------------------------------------------------

CONV_MODES = [PM.EXPLICIT_ROUND_DOWN, PM.EXPLICIT_ROUND_UP, PM.SAME_UPPER, PM.SAME_LOWER]


@given(st.data())
def test_convolution_2d(data):
    d = data.draw
    groups = d(st.integers(1, 3))
    cg = d(st.sampled_from([1, 2, 3, 4, 5]))  # both the einsum (<4) and the GEMM (>=4) paths of the interpreter
    kg = d(st.integers(1, 3))
    nb = d(st.integers(1, 2))
    c, kout = groups * cg, groups * kg
    ks = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    stride = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    dil = (d(st.integers(1, 2)), d(st.integers(1, 2)))
    mode = d(st.sampled_from(CONV_MODES))
    pre = (d(st.integers(0, 2)), d(st.integers(0, 2)))
    post = (d(st.integers(0, 2)), d(st.integers(0, 2)))
    eff = [dil[i] * (ks[i] - 1) + 1 for i in range(2)]
    lo = [max(1, eff[i] - pre[i] - post[i]) for i in range(2)]  # at least one output position
    hw = tuple(d(st.integers(lo[i], lo[i] + 5)) for i in range(2))
    bias = d(st.booleans())
    seed = d(st.integers(0, 1000))

    x = rand((nb, c) + hw, seed=seed)
    w = rand((kout, cg) + ks, seed=seed + 1)
    b = rand((kout,), seed=seed + 2) if bias else None
    n = Net()
    xin = n.input("x", x.shape)
    if bias:
        layer = n.net.add_convolution_nd(xin, kout, ks, n.w(w), n.w(b))
    else:
        layer = n.net.add_convolution_nd(xin, kout, ks, n.w(w))
    layer.stride_nd = stride
    layer.dilation_nd = dil
    layer.num_groups = groups
    layer.pre_padding = pre
    layer.post_padding = post
    layer.padding_mode = mode
    geo = [geometry(hw[i], ks[i], stride[i], dil[i], pre[i], post[i], mode) for i in range(2)]
    got = n.run(layer, {"x": x})
    assert got.shape == (nb, kout, geo[0][0], geo[1][0])
    close(got, conv_expect(x, w, b, groups, stride, dil, [g[1] for g in geo], [g[0] for g in geo]))


@pytest.mark.parametrize("mode", CONV_MODES)
def test_convolution_symmetric_padding_nd(mode):
    x = rand((1, 4, 7, 6), seed=3)
    w = rand((6, 2, 3, 2), seed=4)
    n = Net()
    layer = n.net.add_convolution_nd(n.input("x", x.shape), 6, (3, 2), n.w(w), trt.Weights())  # empty bias
    layer.padding_nd = (1, 1)
    layer.stride_nd = (2, 2)
    layer.num_groups = 2
    layer.padding_mode = mode
    geo = [geometry(x.shape[2 + i], (3, 2)[i], 2, 1, 1, 1, mode) for i in range(2)]
    got = n.run(layer, {"x": x})
    close(got, conv_expect(x, w, None, 2, (2, 2), (1, 1), [g[1] for g in geo], [g[0] for g in geo]))


def test_convolution_3d():
    x = rand((2, 2, 4, 5, 5), seed=5)
    w = rand((3, 2, 2, 3, 3), seed=6)
    b = rand((3,), seed=7)
    n = Net()
    layer = n.net.add_convolution_nd(n.input("x", x.shape), 3, (2, 3, 3), n.w(w), n.w(b))
    layer.stride_nd = (1, 2, 1)
    layer.pre_padding = (0, 1, 1)
    layer.post_padding = (1, 0, 2)
    layer.dilation_nd = (1, 1, 2)
    geo = [geometry(x.shape[2 + i], w.shape[2 + i], (1, 2, 1)[i], (1, 1, 2)[i], (0, 1, 1)[i], (1, 0, 2)[i],
                    PM.EXPLICIT_ROUND_DOWN) for i in range(3)]
    got = n.run(layer, {"x": x})
    close(got, conv_expect(x, w, b, 1, (1, 2, 1), (1, 1, 2), [g[1] for g in geo], [g[0] for g in geo]))


# ---- pooling ----------------------------------------------------------------------------------------------------


def pool_expect(x, ptype, window, stride, pre, post, mode, exclude, blend=0.0):
    """Loops over output positions; averages divide by the window's overlap with the (un)padded input."""
    h, w = x.shape[-2:]
    (oh, ph), (ow, pw) = (geometry(h, window[0], stride[0], 1, pre[0], post[0], mode),
                          geometry(w, window[1], stride[1], 1, pre[1], post[1], mode))
    # for the padded extent, SAME modes use their computed total padding
    tot = []
    for size, k, s, o, p, pr, po in ((h, window[0], stride[0], oh, ph, pre[0], post[0]),
                                     (w, window[1], stride[1], ow, pw, pre[1], post[1])):
        if mode in (PM.SAME_UPPER, PM.SAME_LOWER):
            tot.append((p, max((o - 1) * s + k - size, 0) - p))
        else:
            tot.append((pr, po))
    y = np.zeros(x.shape[:-2] + (oh, ow))
    xd = x.astype(np.float64)
    for i in range(oh):
        for j in range(ow):
            rows = range(i * stride[0] - ph, i * stride[0] - ph + window[0])
            cols = range(j * stride[1] - pw, j * stride[1] - pw + window[1])
            real_r = [r for r in rows if 0 <= r < h]
            real_c = [c for c in cols if 0 <= c < w]
            assert real_r and real_c, "test set-up: window without real elements"
            patch = xd[..., real_r, :][..., real_c]
            mx = patch.max(axis=(-2, -1))
            if exclude:
                count = len(real_r) * len(real_c)
            else:
                pad_r = [r for r in rows if -tot[0][0] <= r < h + tot[0][1]]
                pad_c = [c for c in cols if -tot[1][0] <= c < w + tot[1][1]]
                count = len(pad_r) * len(pad_c)
            avg = patch.sum(axis=(-2, -1)) / count
            if ptype == PT.MAX:
                y[..., i, j] = mx
            elif ptype == PT.AVERAGE:
                y[..., i, j] = avg
            else:  # TensorRT: max_average_blendPool = (1 - blendFactor) * maxPool + blendFactor * avgPool
                y[..., i, j] = (1 - blend) * mx + blend * avg
    return y


def windows_have_real_elements(size, k, s, pre, post, mode):
    out, p = geometry(size, k, s, 1, pre, post, mode)
    return all(any(0 <= r < size for r in range(o * s - p, o * s - p + k)) for o in range(out))


@given(st.data())
def test_pooling(data):
    d = data.draw
    ptype = d(st.sampled_from([PT.MAX, PT.AVERAGE]))
    window = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    stride = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    pre = tuple(d(st.integers(0, window[i] - 1)) for i in range(2))
    post = tuple(d(st.integers(0, window[i] - 1)) for i in range(2))
    mode = d(st.sampled_from(CONV_MODES))
    exclude = d(st.booleans())
    hw = (d(st.integers(3, 8)), d(st.integers(3, 8)))
    assume(all(windows_have_real_elements(hw[i], window[i], stride[i], pre[i], post[i], mode) for i in range(2)))
    x = rand((2, 3) + hw, seed=d(st.integers(0, 1000)))
    n = Net()
    p = n.net.add_pooling_nd(n.input("x", x.shape), ptype, window)
    p.stride_nd = stride
    p.pre_padding = pre
    p.post_padding = post
    p.padding_mode = mode
    p.average_count_excludes_padding = exclude
    got = n.run(p, {"x": x})
    close(got, pool_expect(x, ptype, window, stride, pre, post, mode, exclude))


@pytest.mark.parametrize("mode, size", [(PM.EXPLICIT_ROUND_DOWN, 5), (PM.EXPLICIT_ROUND_UP, 6)])
@pytest.mark.parametrize("ptype", [PT.MAX, PT.AVERAGE])
@pytest.mark.parametrize("exclude", [True, False])
def test_pooling_round_down_vs_up(mode, size, ptype, exclude):
    x = rand((1, 2, 10, 10), seed=11)
    n = Net()
    p = n.net.add_pooling_nd(n.input("x", x.shape), ptype, (3, 3))
    assert p.average_count_excludes_padding is True  # TensorRT's default
    p.stride_nd = (2, 2)
    p.padding_nd = (1, 1)
    p.padding_mode = mode
    p.average_count_excludes_padding = exclude
    assert tuple(p.get_output(0).shape) == (1, 2, size, size)
    got = n.run(p, {"x": x})
    close(got, pool_expect(x, ptype, (3, 3), (2, 2), (1, 1), (1, 1), mode, exclude))


def test_pooling_average_default_excludes_padding():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4) + 1
    n = Net()
    p = n.net.add_pooling_nd(n.input("x", x.shape), PT.AVERAGE, (2, 2))
    p.padding_nd = (1, 1)
    p.stride_nd = (2, 2)
    got = n.run(p, {"x": x})
    # corner window covers one real element (x[0,0]=1) and three padding cells: excluded -> 1, not 1/4
    assert got[0, 0, 0, 0] == 1.0
    close(got, pool_expect(x, PT.AVERAGE, (2, 2), (2, 2), (1, 1), (1, 1), PM.EXPLICIT_ROUND_DOWN, True))


@pytest.mark.parametrize("mode", [PM.SAME_UPPER, PM.SAME_LOWER])
@pytest.mark.parametrize("exclude", [True, False])
def test_pooling_same(mode, exclude):
    x = rand((1, 2, 5, 6), seed=12)
    n = Net()
    p = n.net.add_pooling_nd(n.input("x", x.shape), PT.AVERAGE, (2, 3))
    p.stride_nd = (2, 2)
    p.padding_mode = mode
    p.average_count_excludes_padding = exclude
    got = n.run(p, {"x": x})
    assert got.shape == (1, 2, 3, 3)
    close(got, pool_expect(x, PT.AVERAGE, (2, 3), (2, 2), (0, 0), (0, 0), mode, exclude))


@pytest.mark.parametrize("blend", [0.0, 0.25, 1.0])
def test_pooling_max_average_blend(blend):
    x = rand((1, 2, 6, 6), seed=13)
    n = Net()
    p = n.net.add_pooling_nd(n.input("x", x.shape), PT.MAX_AVERAGE_BLEND, (2, 2))
    assert p.blend_factor == 0.0  # TensorRT's default
    p.stride_nd = (2, 2)
    p.blend_factor = blend
    got = n.run(p, {"x": x})
    close(got, pool_expect(x, PT.MAX_AVERAGE_BLEND, (2, 2), (2, 2), (0, 0), (0, 0), PM.EXPLICIT_ROUND_DOWN, True,
                           blend))


def test_pooling_max_average_blend_half():
    """blend 0.5 weighs max and average equally, so it holds whichever way the weights are assigned."""
    x = rand((1, 2, 6, 6), seed=13)
    n = Net()
    p = n.net.add_pooling_nd(n.input("x", x.shape), PT.MAX_AVERAGE_BLEND, (2, 2))
    p.stride_nd = (2, 2)
    p.blend_factor = 0.5
    got = n.run(p, {"x": x})
    close(got, pool_expect(x, PT.MAX_AVERAGE_BLEND, (2, 2), (2, 2), (0, 0), (0, 0), PM.EXPLICIT_ROUND_DOWN, True, 0.5))


# ---- activation -------------------------------------------------------------------------------------------------


def activation_expect(kind, x, a, b):
    x = x.astype(np.float64)
    erf = np.vectorize(math.erf)
    with np.errstate(over="ignore"):  # exp(1e30) in branches np.where discards
        return _activation_table(x, a, b, erf)[kind]()


def _activation_table(x, a, b, erf):
    return {
        A.RELU: lambda: np.where(x > 0, x, 0.0),
        A.SIGMOID: lambda: 1 / (1 + np.exp(-x)),
        A.TANH: lambda: np.tanh(x),
        A.LEAKY_RELU: lambda: np.where(x >= 0, x, a * x),
        A.ELU: lambda: np.where(x >= 0, x, a * (np.exp(x) - 1)),
        A.SELU: lambda: np.where(x > 0, b * x, b * (a * np.exp(x) - a)),
        A.SOFTSIGN: lambda: x / (1 + np.abs(x)),
        A.SOFTPLUS: lambda: a * np.log(np.exp(b * x) + 1),
        A.CLIP: lambda: np.maximum(a, np.minimum(b, x)),
        A.HARD_SIGMOID: lambda: np.maximum(0, np.minimum(1, a * x + b)),
        A.SCALED_TANH: lambda: a * np.tanh(b * x),
        A.THRESHOLDED_RELU: lambda: np.where(x > a, x, 0.0),
        A.GELU_ERF: lambda: 0.5 * x * (1 + erf(math.sqrt(0.5) * x)),
        A.GELU_TANH: lambda: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (0.044715 * x**3 + x))),
    }


DEFAULT_ALPHA_BETA = {  # TensorRT's documented defaults (notes §2)
    A.LEAKY_RELU: (0.01, 0.0),
    A.ELU: (1.0, 0.0),
    A.SELU: (1.6732632, 1.0507010),
    A.SOFTPLUS: (1.0, 1.0),
    A.CLIP: (-FLT_MAX, FLT_MAX),
    A.HARD_SIGMOID: (0.2, 0.5),
    A.SCALED_TANH: (1.0, 1.0),
    A.THRESHOLDED_RELU: (1.0, 0.0),
}
ACT_X = np.concatenate([np.linspace(-4, 4, 33), [-1e30, 1e30, -0.3, 0.3, 1.0, 1.5]]).astype(np.float32).reshape(3, 13)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the interpreter's exp(1e30): inf, as on GPU
@pytest.mark.parametrize("kind", list(A.__members__.values()), ids=lambda k: k.name)
def test_activation_defaults(kind):
    assert len(A.__members__) == 14
    n = Net()
    layer = n.net.add_activation(n.input("x", ACT_X.shape), kind)
    a, b = DEFAULT_ALPHA_BETA.get(kind, (0.0, 0.0))
    assert layer.alpha == pytest.approx(a, rel=1e-6) and layer.beta == pytest.approx(b, rel=1e-6)
    x = np.clip(ACT_X, -30, 30) if kind == A.SOFTPLUS else ACT_X  # float64 exp(1e30) overflows in the expectation
    got = n.run(layer, {"x": x})
    close(got, activation_expect(kind, x, layer.alpha, layer.beta))


@pytest.mark.parametrize("kind", list(A.__members__.values()), ids=lambda k: k.name)
def test_activation_alpha_beta(kind):
    a, b = (-0.5, 0.8) if kind == A.CLIP else (0.3, 0.7)
    x = np.clip(ACT_X, -30, 30)
    n = Net()
    layer = n.net.add_activation(n.input("x", x.shape), kind)
    layer.alpha, layer.beta = a, b
    got = n.run(layer, {"x": x})
    close(got, activation_expect(kind, x, np.float32(a), np.float32(b)))


# ---- unary ------------------------------------------------------------------------------------------------------

_ERF = np.vectorize(math.erf)
_SPECIAL = np.array([[np.inf, -np.inf, np.nan, 0.0, 1e38]], np.float32)
UNARY = {  # op: (input, expectation)
    U.EXP: (rand((2, 5), seed=20), np.exp),
    U.LOG: (rand((2, 5), 0.1, 3, seed=21), np.log),
    U.SQRT: (rand((2, 5), 0.0, 3, seed=22), np.sqrt),
    U.RECIP: (rand((2, 5), 0.5, 3, seed=23) * np.array([1, -1, 1, -1, 1], np.float32), lambda x: 1.0 / x),
    U.ABS: (rand((2, 5), seed=24), np.abs),
    U.NEG: (rand((2, 5), seed=25), lambda x: -x),
    U.SIN: (rand((2, 5), -4, 4, seed=26), np.sin),
    U.COS: (rand((2, 5), -4, 4, seed=27), np.cos),
    U.TAN: (rand((2, 5), -1.4, 1.4, seed=28), np.tan),
    U.SINH: (rand((2, 5), seed=29), np.sinh),
    U.COSH: (rand((2, 5), seed=30), np.cosh),
    U.ASIN: (rand((2, 5), -0.99, 0.99, seed=31), np.arcsin),
    U.ACOS: (rand((2, 5), -0.99, 0.99, seed=32), np.arccos),
    U.ATAN: (rand((2, 5), -5, 5, seed=33), np.arctan),
    U.ASINH: (rand((2, 5), -5, 5, seed=34), np.arcsinh),
    U.ACOSH: (rand((2, 5), 1.0, 5, seed=35), np.arccosh),
    U.ATANH: (rand((2, 5), -0.95, 0.95, seed=36), np.arctanh),
    U.CEIL: (np.array([[-2.5, -1.0, -0.2, 0.0, 0.2], [1.0, 1.5, 2.7, -3.9, 7.01]], np.float32), np.ceil),
    U.FLOOR: (np.array([[-2.5, -1.0, -0.2, 0.0, 0.2], [1.0, 1.5, 2.7, -3.9, 7.01]], np.float32), np.floor),
    U.ERF: (rand((2, 5), -3, 3, seed=37), _ERF),
    U.NOT: (np.array([[True, False, True, True, False]]), lambda x: ~x),
    U.SIGN: (np.array([[-2.5, -0.0, 0.0, 3.0, 1e-20]], np.float32), lambda x: (x > 0).astype(np.float32) - (x < 0)),
    U.ROUND: (
        np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5], [0.49, 0.51, -0.51, 1.2, -1.7, 2.4999, 4.5]], np.float32),
        lambda x: np.array([[-2, -2, -0, 0, 2, 2, 4], [0, 1, -1, 1, -2, 2, 4]], np.float64),  # half to even
    ),
    U.ISINF: (_SPECIAL, lambda x: np.array([[1, 1, 0, 0, 0]], bool)),
    U.ISNAN: (_SPECIAL, lambda x: np.array([[0, 0, 1, 0, 0]], bool)),
}


@pytest.mark.parametrize("op", list(U.__members__.values()), ids=lambda o: o.name)
def test_unary(op):
    assert set(UNARY) == set(U.__members__.values())
    x, fn = UNARY[op]
    dtype = trt.bool if x.dtype == np.bool_ else trt.float32
    n = Net()
    layer = n.net.add_unary(n.input("x", x.shape, dtype), op)
    got = n.run(layer, {"x": x})
    want = fn(x.astype(np.float64) if x.dtype != np.bool_ else x)
    if got.dtype == np.bool_:
        np.testing.assert_array_equal(got, want)
    else:
        close(got, want)


@pytest.mark.parametrize("op", list(U.__members__.values()) + list(A.__members__.values()),
                         ids=lambda o: f"{type(o).__name__}.{o.name}")
def test_unary_and_activation_0d(op):
    """A 0-d tensor (e.g. a full reduction) through every unary op and activation keeps shape ()."""
    is_not = op == U.NOT
    v = 1.25 if op == U.ACOSH else 0.75  # inside every op's domain
    x = np.array(True) if is_not else np.array(v, np.float32)
    n = Net()
    xin = n.input("x", (), trt.bool if is_not else trt.float32)
    layer = n.net.add_unary(xin, op) if isinstance(op, U) else n.net.add_activation(xin, op)
    got = n.run(layer, {"x": x})
    if is_not:
        assert got == np.False_
    elif isinstance(op, U) and op in UNARY:
        want = UNARY[op][1](np.array([[v]]))
        if op not in (U.ROUND, U.ISINF, U.ISNAN):  # those expectations are tables for their own inputs
            close(got, np.asarray(want).reshape(()))
    else:
        close(got, activation_expect(op, np.array(v), np.float32(layer.alpha), np.float32(layer.beta)))


def test_unary_abs_int32():
    x = np.array([[-3, 0, 5, -2147483647]], np.int32)
    n = Net()
    got = n.run(n.net.add_unary(n.input("x", x.shape, trt.int32), U.ABS), {"x": x})
    np.testing.assert_array_equal(got, np.array([[3, 0, 5, 2147483647]], np.int32))


# ---- elementwise ------------------------------------------------------------------------------------------------

EW_FLOAT = {
    E.SUM: lambda a, b: a + b,
    E.PROD: lambda a, b: a * b,
    E.MAX: max,
    E.MIN: min,
    E.SUB: lambda a, b: a - b,
    E.DIV: lambda a, b: a / b,
    E.POW: lambda a, b: a**b,
    E.FLOOR_DIV: lambda a, b: math.floor(a / b),
    E.EQUAL: lambda a, b: a == b,
    E.GREATER: lambda a, b: a > b,
    E.LESS: lambda a, b: a < b,
}
EW_BOOL = {E.AND: lambda a, b: a and b, E.OR: lambda a, b: a or b, E.XOR: lambda a, b: a != b}


def broadcast_expect(fn, a, b, dtype):
    """out[i,j,k] = fn(a[i or 0, j or 0, k or 0], b[...]) with explicit size-1 index clamping."""
    shape = tuple(max(p, q) for p, q in zip(a.shape, b.shape))
    out = np.zeros(shape, dtype)
    for idx in itertools.product(*[range(s) for s in shape]):
        ia = tuple(i if s > 1 else 0 for i, s in zip(idx, a.shape))
        ib = tuple(i if s > 1 else 0 for i, s in zip(idx, b.shape))
        out[idx] = fn(a[ia].item(), b[ib].item())
    return out


@pytest.mark.parametrize("swap", [False, True], ids=["a-2x1x4", "a-1x3x1"])
@pytest.mark.parametrize("op", list(E.__members__.values()), ids=lambda o: o.name)
def test_elementwise(op, swap):
    assert set(EW_FLOAT) | set(EW_BOOL) == set(E.__members__.values())
    sa, sb = ((2, 1, 4), (1, 3, 1)) if not swap else ((1, 3, 1), (2, 1, 4))
    if op in EW_BOOL:
        rng = np.random.default_rng(40)
        a, b = rng.random(sa) > 0.5, rng.random(sb) > 0.5
        dtype, fn = trt.bool, EW_BOOL[op]
    else:
        lo = 0.2 if op == E.POW else -3.0
        a, b = rand(sa, lo, 3.0, seed=41), rand(sb, lo, 3.0, seed=42)
        if op in (E.DIV, E.FLOOR_DIV):
            b = np.where(np.abs(b) < 0.3, 0.7, b).astype(np.float32)
        if op == E.EQUAL:
            a.flat[:3] = b.flat[:3]  # some equal pairs
        dtype, fn = trt.float32, EW_FLOAT[op]
    n = Net()
    layer = n.net.add_elementwise(n.input("a", a.shape, dtype), n.input("b", b.shape, dtype), op)
    got = n.run(layer, {"a": a, "b": b})
    if op in EW_BOOL or op in (E.EQUAL, E.GREATER, E.LESS):
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, broadcast_expect(fn, a, b, bool))
    else:
        close(got, broadcast_expect(fn, a, b, np.float64))


def test_elementwise_int32_div_truncates_and_floor_div_floors():
    a = np.array([[-7, 7, -7, 7, -1, 0, 9, -9]], np.int32)
    b = np.array([[2, -2, -2, 2, 3, 5, 3, 4]], np.int32)
    want = {
        E.DIV: np.array([[-3, -3, 3, 3, 0, 0, 3, -2]], np.int32),
        E.FLOOR_DIV: np.array([[-4, -4, 3, 3, -1, 0, 3, -3]], np.int32),
        E.SUM: a + b,
        E.PROD: a * b,
    }
    for op, w in want.items():
        n = Net()
        layer = n.net.add_elementwise(n.input("a", a.shape, trt.int32), n.input("b", b.shape, trt.int32), op)
        got = n.run(layer, {"a": a, "b": b})
        np.testing.assert_array_equal(got, w, err_msg=op.name)


# ---- concatenation, softmax --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, default_axis", [((2, 3), 0), ((3,), 0), ((2, 3, 4), 0), ((2, 3, 4, 5), 1),
                                                 ((1, 2, 3, 4, 2), 2)])
def test_concatenation_default_axis(shape, default_axis):
    a, b = rand(shape, seed=50), rand(shape, seed=51) + 10
    n = Net()
    layer = n.net.add_concatenation([n.input("a", shape), n.input("b", shape)])
    assert layer.axis == max(len(shape) - 3, 0)  # TensorRT's default: rank-3, or 0 when rank < 3
    assert layer.axis == default_axis
    got = n.run(layer, {"a": a, "b": b})
    want_shape = list(shape)
    want_shape[default_axis] *= 2
    assert got.shape == tuple(want_shape)
    half = shape[default_axis]
    idx = [slice(None)] * len(shape)
    idx[default_axis] = slice(0, half)
    np.testing.assert_array_equal(got[tuple(idx)], a)
    idx[default_axis] = slice(half, None)
    np.testing.assert_array_equal(got[tuple(idx)], b)


@pytest.mark.parametrize("axis", [2, 1])
def test_concatenation_set_axis(axis):
    shapes = [tuple(s if i != axis else s + k for i, s in enumerate((2, 3, 4))) for k in range(3)]
    arrs = [rand(s, seed=52 + k) for k, s in enumerate(shapes)]
    n = Net()
    layer = n.net.add_concatenation([n.input(f"x{k}", s) for k, s in enumerate(shapes)])
    layer.axis = axis
    got = n.run(layer, {f"x{k}": a for k, a in enumerate(arrs)})
    offset = 0
    for a in arrs:  # each input lands at its offset along the axis
        idx = [slice(None)] * 3
        idx[axis] = slice(offset, offset + a.shape[axis])
        np.testing.assert_array_equal(got[tuple(idx)], a)
        offset += a.shape[axis]
    assert offset == got.shape[axis]


@pytest.mark.parametrize("axis", [-1, -3])
def test_concatenation_negative_axis_is_refused_by_tensorrt(axis):
    """TensorRT-RTX 1.7 refuses a negative axis (`axis >= 0 && axis < MAX_DIMS`) and keeps the default, rank-3 = 0.

    The interpreter must then follow the axis TensorRT kept, which the shape check proves.
    """
    a, b = rand((2, 3, 4), seed=56), rand((2, 3, 4), seed=57)
    n = Net()
    layer = n.net.add_concatenation([n.input("a", a.shape), n.input("b", b.shape)])
    layer.axis = axis
    errors = n.recorder.take()
    assert len(errors) == 1 and "setAxis" in errors[0]
    assert layer.axis == 0
    got = n.run(layer, {"a": a, "b": b})
    assert got.shape == (4, 3, 4)
    np.testing.assert_array_equal(got[:2], a)
    np.testing.assert_array_equal(got[2:], b)


def softmax_expect(x, axis):
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape[:-1]):
        e = [math.exp(v) for v in x[idx]]
        out[idx] = [v / sum(e) for v in e]
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (2, 3, 4, 2), (1, 2, 3, 2, 2)])  # TensorRT needs rank >= 2
def test_softmax_default_axis(shape):
    x = rand(shape, -3, 3, seed=60)
    n = Net()
    layer = n.net.add_softmax(n.input("x", shape))
    axis = max(len(shape) - 3, 0)
    assert layer.axes == 1 << axis
    close(n.run(layer, {"x": x}), softmax_expect(x, axis))


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_softmax_set_axis(axis):
    x = rand((2, 3, 4, 2), -3, 3, seed=61)
    n = Net()
    layer = n.net.add_softmax(n.input("x", x.shape))
    layer.axes = 1 << axis
    close(n.run(layer, {"x": x}), softmax_expect(x, axis))


# ---- reduce -----------------------------------------------------------------------------------------------------

REDUCE = {
    R.SUM: sum,
    R.PROD: math.prod,
    R.MAX: max,
    R.MIN: min,
    R.AVG: lambda v: sum(v) / len(v),
}


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("mask", [0b001, 0b010, 0b100, 0b101, 0b110, 0b111])
@pytest.mark.parametrize("op", list(REDUCE), ids=lambda o: o.name)
def test_reduce(op, mask, keep):
    x = rand((2, 3, 4), 0.5, 1.5, seed=70) * np.where(rand((2, 3, 4), seed=71) > 0, 1, -1).astype(np.float32)
    n = Net()
    layer = n.net.add_reduce(n.input("x", x.shape), op, mask, keep)
    got = n.run(layer, {"x": x})
    axes = [a for a in range(3) if mask >> a & 1]
    kept = [a for a in range(3) if a not in axes]
    out_shape = tuple(1 if a in axes else x.shape[a] for a in range(3)) if keep else tuple(x.shape[a] for a in kept)
    want = np.zeros(out_shape)
    for idx in itertools.product(*[range(x.shape[a]) for a in kept]):
        vals = []
        for red in itertools.product(*[range(x.shape[a]) for a in axes]):
            full = [0, 0, 0]
            for a, i in zip(kept, idx):
                full[a] = i
            for a, i in zip(axes, red):
                full[a] = i
            vals.append(float(x[tuple(full)]))
        key = tuple(0 if a in axes else idx[kept.index(a)] for a in range(3)) if keep else idx
        want[key] = REDUCE[op](vals)
    close(got, want)


# ---- matrix multiply --------------------------------------------------------------------------------------------


def matmul_expect(a, b, op0, op1):
    """Explicit loops: per broadcast batch index, transpose/vectors handled by index mapping."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    va, vb = op0 == MO.VECTOR, op1 == MO.VECTOR
    ab, bb = a.shape[: a.ndim - (1 if va else 2)], b.shape[: b.ndim - (1 if vb else 2)]
    batch = tuple(max(p, q) for p, q in zip(ab, bb))
    am = a.reshape(ab + (1, a.shape[-1])) if va else a
    bm = b.reshape(bb + (b.shape[-1], 1)) if vb else b
    if op0 == MO.TRANSPOSE:
        m, k = am.shape[-1], am.shape[-2]
    else:
        m, k = am.shape[-2], am.shape[-1]
    nn = bm.shape[-2] if op1 == MO.TRANSPOSE else bm.shape[-1]
    out = np.zeros(batch + (m, nn))
    for bi in itertools.product(*[range(s) for s in batch]):
        ia = tuple(i if s > 1 else 0 for i, s in zip(bi, ab))
        ib = tuple(i if s > 1 else 0 for i, s in zip(bi, bb))
        for i in range(m):
            for j in range(nn):
                acc = 0.0
                for t in range(k):
                    av = am[ia + ((t, i) if op0 == MO.TRANSPOSE else (i, t))]
                    bv = bm[ib + ((j, t) if op1 == MO.TRANSPOSE else (t, j))]
                    acc += av * bv
                out[bi + (i, j)] = acc
    if vb:
        out = out[..., 0]
    if va:
        out = out[..., 0, :] if not vb else out[..., 0]
    return out


MATMUL_CASES = [
    ((3, 4), MO.NONE, (4, 5), MO.NONE),
    ((4, 3), MO.TRANSPOSE, (4, 5), MO.NONE),
    ((3, 4), MO.NONE, (5, 4), MO.TRANSPOSE),
    ((2, 4, 3), MO.TRANSPOSE, (2, 5, 4), MO.TRANSPOSE),
    ((1, 3, 4), MO.NONE, (2, 4, 5), MO.NONE),
    ((2, 1, 3, 4), MO.NONE, (1, 3, 4, 2), MO.NONE),
    ((2, 1, 4, 3), MO.TRANSPOSE, (1, 3, 4, 2), MO.NONE),
    ((4,), MO.VECTOR, (4, 5), MO.NONE),
    ((2, 4), MO.VECTOR, (2, 4, 5), MO.NONE),
    ((2, 4), MO.VECTOR, (1, 5, 4), MO.TRANSPOSE),
    ((3, 4), MO.NONE, (4,), MO.VECTOR),
    ((2, 3, 4), MO.NONE, (1, 4), MO.VECTOR),
    ((2, 4, 3), MO.TRANSPOSE, (2, 4), MO.VECTOR),
    ((4,), MO.VECTOR, (4,), MO.VECTOR),
    ((2, 4), MO.VECTOR, (2, 4), MO.VECTOR),
]


@pytest.mark.parametrize("sa, op0, sb, op1", MATMUL_CASES, ids=[str(i) for i in range(len(MATMUL_CASES))])
def test_matrix_multiply(sa, op0, sb, op1):
    a, b = rand(sa, seed=80), rand(sb, seed=81)
    n = Net()
    layer = n.net.add_matrix_multiply(n.input("a", sa), op0, n.input("b", sb), op1)
    got = n.run(layer, {"a": a, "b": b})
    close(got, matmul_expect(a, b, op0, op1))


# ---- shuffle ----------------------------------------------------------------------------------------------------


def test_shuffle_first_transpose_placeholder_reshape_second_transpose():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    n = Net()
    layer = n.net.add_shuffle(n.input("x", x.shape))
    assert layer.zero_is_placeholder is True  # TensorRT's default
    layer.first_transpose = (2, 0, 1)  # (4, 2, 3)
    layer.reshape_dims = (0, -1, 3)  # 0 copies dim 0 of the transposed tensor: (4, 2, 3)
    layer.second_transpose = (1, 2, 0)  # (2, 3, 4)
    got = n.run(layer, {"x": x})
    t = np.zeros((4, 2, 3), np.float32)
    for i, j, k in itertools.product(range(2), range(3), range(4)):
        t[k, i, j] = x[i, j, k]
    want = np.zeros((2, 3, 4), np.float32)
    for a, b, c in itertools.product(range(4), range(2), range(3)):
        want[b, c, a] = t[a, b, c]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dims, want_shape", [((0, -1), (2, 12)), ((-1,), (24,)), ((0, 0, 2, 2), (2, 3, 2, 2)),
                                              ((4, 0, 2), (4, 3, 2)), ((6, -1), (6, 4))])
def test_shuffle_reshape(dims, want_shape):
    x = rand((2, 3, 4), seed=90)
    n = Net()
    layer = n.net.add_shuffle(n.input("x", x.shape))
    layer.reshape_dims = dims
    got = n.run(layer, {"x": x})
    assert got.shape == want_shape
    np.testing.assert_array_equal(got.ravel(), x.ravel())  # row-major order is kept


def test_shuffle_transpose_then_flatten():
    x = rand((2, 3, 4), seed=91)
    n = Net()
    layer = n.net.add_shuffle(n.input("x", x.shape))
    layer.first_transpose = (0, 2, 1)
    layer.reshape_dims = (0, -1)
    got = n.run(layer, {"x": x})
    want = np.array([[x[b, c, h] for h in range(4) for c in range(3)] for b in range(2)], np.float32)
    np.testing.assert_array_equal(got, want)


def test_shuffle_to_0d():
    x = np.array([3.5], np.float32)
    n = Net()
    layer = n.net.add_shuffle(n.input("x", (1,)))
    layer.reshape_dims = ()
    got = n.run(layer, {"x": x})
    assert got.shape == () and float(got) == 3.5


# ---- scale ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [1, 3, -1])
@pytest.mark.parametrize("mode", [trt.ScaleMode.UNIFORM, trt.ScaleMode.CHANNEL, trt.ScaleMode.ELEMENTWISE])
@pytest.mark.parametrize("which", ["all", "scale", "shift", "power", "none"])
def test_scale(mode, axis, which):
    x = rand((2, 3, 2, 4), 0.5, 2.0, seed=100)
    ax = axis % 4
    wshape = {trt.ScaleMode.UNIFORM: (1,), trt.ScaleMode.CHANNEL: (x.shape[ax],),
              trt.ScaleMode.ELEMENTWISE: x.shape[ax:]}[mode]
    shift = rand(wshape, 0.1, 1.0, seed=101)
    scale = rand(wshape, 0.5, 1.5, seed=102)
    power = rand(wshape, 0.5, 2.0, seed=103)
    use = {"all": "scale shift power", "none": ""}.get(which, which)
    n = Net()
    ws = [n.w(v) if name in use else trt.Weights() for name, v in (("shift", shift), ("scale", scale),
                                                                      ("power", power))]
    layer = n.net.add_scale_nd(n.input("x", x.shape), mode, *ws, axis)
    got = n.run(layer, {"x": x})
    want = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        if mode == trt.ScaleMode.UNIFORM:
            widx = (0,)
        elif mode == trt.ScaleMode.CHANNEL:
            widx = (idx[ax],)
        else:
            widx = idx[ax:]
        s = float(scale[widx]) if "scale" in use else 1.0
        t = float(shift[widx]) if "shift" in use else 0.0
        p = float(power[widx]) if "power" in use else 1.0
        want[idx] = (float(x[idx]) * s + t) ** p
    close(got, want)


# ---- constant, cast, identity, shape, select, gather, padding -----------------------------------------------------


@pytest.mark.parametrize("value", [rand((2, 3), seed=110), np.arange(6, dtype=np.int32).reshape(3, 2) - 2,
                                   np.array(2.5, np.float32), np.array([[True, False]]),
                                   np.arange(4, dtype=np.int64)], ids=["f32", "i32", "0d", "bool", "i64"])
def test_constant(value):
    n = Net()
    t = n.const(value)
    prog = n.program(t)
    assert tuple(t.shape) == value.shape
    got = prog.run({})[t.name]
    assert got.shape == value.shape and got.dtype == value.dtype
    np.testing.assert_array_equal(got, value)


def test_cast_float_to_int32_truncates():
    x = np.array([[-2.7, -2.5, -0.5, 0.5, 1.5, 2.7, 3.0, -3.0]], np.float32)
    n = Net()
    got = n.run(n.net.add_cast(n.input("x", x.shape), trt.int32), {"x": x})
    np.testing.assert_array_equal(got, np.array([[-2, -2, 0, 0, 1, 2, 3, -3]], np.int32))


def test_cast_float_to_float16_and_back_and_bool_int():
    x = np.array([[1.0, 1.0 + 2**-12, 65504.0, 1e-8, -3.14159, 0.0]], np.float32)
    n = Net()
    xin = n.input("x", x.shape)
    h = n.net.add_cast(xin, trt.float16)
    got = n.run(h, {"x": x})
    # fp16 nearest-even rounding: 1 + 2^-12 rounds to 1; 1e-8 underflows to 0; pi loses precision
    want = np.array([[1.0, 1.0, 65504.0, 0.0, -3.140625, 0.0]], np.float16)
    np.testing.assert_array_equal(got, want)

    i = np.array([[0, 3, -2]], np.int32)
    n = Net()
    b = n.net.add_cast(n.input("i", i.shape, trt.int32), trt.bool)
    np.testing.assert_array_equal(n.run(b, {"i": i}), np.array([[False, True, True]]))
    n = Net()
    f = n.net.add_cast(n.input("i", i.shape, trt.int32), trt.float32)
    np.testing.assert_array_equal(n.run(f, {"i": i}), np.array([[0.0, 3.0, -2.0]], np.float32))


@pytest.mark.parametrize("dtype", [trt.float32, trt.int32, trt.float16])
def test_identity(dtype):
    x = (rand((2, 3), -5, 5, seed=111) * 3).astype(_NP[dtype])
    n = Net()
    got = n.run(n.net.add_identity(n.input("x", x.shape, dtype)), {"x": x})
    np.testing.assert_array_equal(got, x)


def test_shape():
    x = rand((2, 3, 5), seed=112)
    n = Net()
    got = n.run(n.net.add_shape(n.input("x", x.shape)), {"x": x})
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [2, 3, 5])


def test_select_broadcasts():
    rng = np.random.default_rng(113)
    c = rng.random((2, 1, 4)) > 0.5
    a, b = rand((1, 3, 4), seed=114), rand((2, 3, 1), seed=115)
    n = Net()
    layer = n.net.add_select(n.input("c", c.shape, trt.bool), n.input("a", a.shape), n.input("b", b.shape))
    got = n.run(layer, {"c": c, "a": a, "b": b})
    want = np.zeros((2, 3, 4), np.float32)
    for i, j, k in itertools.product(range(2), range(3), range(4)):
        want[i, j, k] = a[0, j, k] if c[i, 0, k] else b[i, j, 0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_gather_default(axis):
    x = rand((3, 4, 5), seed=116)
    ax = axis % 3
    rng = np.random.default_rng(117)
    idx = rng.integers(0, x.shape[ax], (2, 2)).astype(np.int32)
    n = Net()
    layer = n.net.add_gather(n.input("x", x.shape), n.input("i", idx.shape, trt.int32), ax)
    got = n.run(layer, {"x": x, "i": idx})
    out_shape = x.shape[:ax] + idx.shape + x.shape[ax + 1:]
    want = np.zeros(out_shape, np.float32)
    for o in np.ndindex(*out_shape):
        src = o[:ax] + (int(idx[o[ax], o[ax + 1]]),) + o[ax + 2:]
        want[o] = x[src]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("batch, k", [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 1)])
def test_gather_nd(batch, k):
    x = rand((2, 3, 4, 5), seed=119)
    rng = np.random.default_rng(120 + 3 * batch + k)
    lead = x.shape[:batch] + (2, 3)[: 2 - batch] if batch < 2 else x.shape[:2]
    idx = np.stack([rng.integers(0, x.shape[batch + j], lead) for j in range(k)], -1)
    n = Net()
    layer = n.net.add_gather_v2(n.input("x", x.shape), n.input("i", idx.shape, trt.int32), trt.GatherMode.ND)
    layer.num_elementwise_dims = batch
    got = n.run(layer, {"x": x, "i": idx.astype(np.int32)})
    want = np.zeros(lead + x.shape[batch + k:], np.float32)
    for o in np.ndindex(*lead):
        src = o[:batch] + tuple(int(idx[o + (j,)]) for j in range(k))
        want[o] = x[src]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("pre, post", [((1, 2), (0, 1)), ((0, 0), (2, 0)), ((-1, 0), (0, -2)), ((-1, 2), (1, -1))])
def test_padding(pre, post):
    x = rand((1, 2, 3, 4), seed=118)
    n = Net()
    layer = n.net.add_padding_nd(n.input("x", x.shape), pre, post)
    got = n.run(layer, {"x": x})
    oh, ow = 3 + pre[0] + post[0], 4 + pre[1] + post[1]
    want = np.zeros((1, 2, oh, ow), np.float32)
    for i, j in itertools.product(range(oh), range(ow)):
        si, sj = i - pre[0], j - pre[1]
        if 0 <= si < 3 and 0 <= sj < 4:
            want[:, :, i, j] = x[:, :, si, sj]
    np.testing.assert_array_equal(got, want)


# ---- slice ------------------------------------------------------------------------------------------------------


def slice_source(i, size, mode):
    """Source index of coordinate i under a SampleMode, or None for FILL outside the input."""
    if 0 <= i < size:
        return i
    if mode == SM.WRAP:
        return i % size
    if mode == SM.CLAMP:
        return 0 if i < 0 else size - 1
    if mode == SM.FILL:
        return None
    if mode == SM.REFLECT:  # mirror about the edge elements, repeatedly
        if size == 1:
            return 0
        while not 0 <= i < size:
            i = -i if i < 0 else 2 * (size - 1) - i
        return i
    raise AssertionError("out of bounds in STRICT_BOUNDS")


SLICE_CASES = [  # (mode, start, shape, stride)
    (SM.STRICT_BOUNDS, (0, 1, 0), (2, 2, 3), (1, 1, 2)),
    (SM.STRICT_BOUNDS, (1, 2, 4), (2, 3, 3), (-1, -1, -2)),
    (SM.WRAP, (-2, 1, 3), (3, 5, 4), (1, 1, 2)),
    (SM.WRAP, (1, 4, -1), (2, 4, 5), (-1, -2, -1)),
    (SM.CLAMP, (-2, -1, 3), (3, 5, 6), (1, 1, 1)),
    (SM.CLAMP, (1, 5, 2), (2, 4, 4), (-1, -2, 1)),
    (SM.FILL, (-1, 1, -2), (3, 4, 8), (1, 1, 1)),
    (SM.FILL, (1, 3, 6), (2, 5, 4), (-1, -1, -2)),
    (SM.REFLECT, (-2, -3, -6), (4, 8, 9), (1, 1, 2)),
    (SM.REFLECT, (3, 5, 1), (4, 6, 5), (-1, -1, -3)),
]


@pytest.mark.parametrize("mode, start, shape, stride", SLICE_CASES, ids=[f"{c[0].name}-{i}" for i, c in
                                                                        enumerate(SLICE_CASES)])
def test_slice(mode, start, shape, stride):
    x = rand((2, 4, 5), seed=120) + 5  # nonzero, so FILL's zeros are visible
    n = Net()
    layer = n.net.add_slice(n.input("x", x.shape), start, shape, stride)
    layer.mode = mode
    got = n.run(layer, {"x": x})
    want = np.zeros(shape, np.float32)
    for o in np.ndindex(*shape):
        src = [slice_source(start[a] + o[a] * stride[a], x.shape[a], mode) for a in range(3)]
        want[o] = 0.0 if any(s is None for s in src) else x[tuple(src)]
    np.testing.assert_array_equal(got, want)


def test_slice_size_one_axis_reflect_wrap_clamp():
    x = np.array([[1.0, 2.0, 3.0]], np.float32)  # axis 0 has a single element
    for mode in (SM.REFLECT, SM.WRAP, SM.CLAMP):
        n = Net()
        layer = n.net.add_slice(n.input("x", x.shape), (-2, -1), (4, 5), (1, 1))
        layer.mode = mode
        got = n.run(layer, {"x": x})
        want = np.array([[x[0, slice_source(j - 1, 3, mode)] for j in range(5)]] * 4, np.float32)
        np.testing.assert_array_equal(got, want, err_msg=mode.name)


@pytest.mark.parametrize("const_first", [
    True,
    False,  # attached with set_input(4, ...) from a layer created later: insertion order is not topological
], ids=["constant-added-first", "constant-added-after"])
def test_slice_fill_value(const_first):
    x = rand((3, 4), seed=121)
    n = Net()
    xin = n.input("x", x.shape)
    fill = n.const(np.array(-7.0, np.float32)) if const_first else None
    layer = n.net.add_slice(xin, (-1, 2), (5, 3), (1, 1))
    layer.mode = SM.FILL
    if fill is None:
        fill = n.const(np.array(-7.0, np.float32))
    layer.set_input(4, fill)
    got = n.run(layer, {"x": x})
    want = np.full((5, 3), -7.0, np.float32)
    for i, j in itertools.product(range(5), range(3)):
        if 0 <= i - 1 < 3 and 0 <= j + 2 < 4:
            want[i, j] = x[i - 1, j + 2]
    np.testing.assert_array_equal(got, want)


# ---- normalization ----------------------------------------------------------------------------------------------


def normalize_expect(x, groups_of_indices, eps):
    """Each group (a list of index tuples) normalized by its own population mean and variance."""
    y = np.zeros(x.shape)
    for group in groups_of_indices:
        vals = [float(x[i]) for i in group]
        mean = sum(vals) / len(vals)
        var = sum((v - mean) ** 2 for v in vals) / len(vals)
        for i, v in zip(group, vals):
            y[i] = (v - mean) / math.sqrt(var + eps)
    return y


@pytest.mark.parametrize("eps", [None, 1e-2])
def test_layer_norm_last_axis(eps):
    x = rand((2, 3, 6), seed=130)
    scale, bias = rand((1, 1, 6), seed=131), rand((1, 1, 6), seed=132)
    n = Net()
    layer = n.net.add_normalization(n.input("x", x.shape), n.const(scale), n.const(bias), 1 << 2)
    assert layer.epsilon == pytest.approx(1e-5)  # TensorRT's default
    if eps is not None:
        layer.epsilon = eps
    got = n.run(layer, {"x": x})
    groups = [[(i, j, k) for k in range(6)] for i in range(2) for j in range(3)]
    want = normalize_expect(x, groups, layer.epsilon)
    want = want * scale.astype(np.float64) + bias  # (1,1,D) broadcast over rows
    close(got, want, atol=1e-4)


def test_instance_norm():
    x = rand((2, 3, 4, 5), seed=133) * np.array([1, 5, 0.1], np.float32).reshape(1, 3, 1, 1)
    scale, bias = rand((1, 3, 1, 1), seed=134), rand((1, 3, 1, 1), seed=135)
    n = Net()
    layer = n.net.add_normalization(n.input("x", x.shape), n.const(scale), n.const(bias), 0b1100)
    got = n.run(layer, {"x": x})
    groups = [[(b, c, h, w) for h in range(4) for w in range(5)] for b in range(2) for c in range(3)]
    want = normalize_expect(x, groups, layer.epsilon)
    for b, c in itertools.product(range(2), range(3)):
        want[b, c] = want[b, c] * float(scale[0, c, 0, 0]) + float(bias[0, c, 0, 0])
    close(got, want, atol=1e-4)


# ---- fp16, chains, trace ----------------------------------------------------------------------------------------


def test_fp16_convolution_network():
    x = rand((1, 2, 5, 5), seed=140).astype(np.float16)
    w = rand((3, 2, 3, 3), seed=141).astype(np.float16)
    b = rand((3,), seed=142).astype(np.float16)
    n = Net()
    conv = n.net.add_convolution_nd(n.input("x", x.shape, trt.float16), 3, (3, 3), n.w(w), n.w(b))
    conv.padding_nd = (1, 1)
    conv.name = "conv16"
    assert conv.get_output(0).dtype == trt.float16
    cast = n.net.add_cast(conv.get_output(0), trt.float32)
    cast.name = "to32"
    got = n.run(cast, {"x": x})
    assert got.dtype == np.float32
    want = conv_expect(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), 1, (1, 1), (1, 1), (1, 1),
                       (5, 5))
    close(got, want, rtol=2e-3, atol=2e-3)
    # the fp16 intermediate is rounded to fp16: converting it to fp32 gives exactly the final output
    rows = ReferenceProgram.from_network(n.net).trace({"x": x})
    by_name = {name: (kind, outs) for name, kind, outs in rows}
    kind, (mid,) = by_name["conv16"]
    assert kind == "CONVOLUTION" and mid.dtype == np.float16 and mid.shape == (1, 3, 5, 5)
    np.testing.assert_array_equal(mid.astype(np.float32), got)
    assert by_name["to32"][0] == "CAST"


def test_chained_network_and_trace():
    x = rand((2, 3, 4), seed=150)
    n = Net()
    xin = n.input("x", x.shape)
    act = n.net.add_activation(xin, A.RELU)
    act.name = "relu"
    red = n.net.add_reduce(act.get_output(0), R.SUM, 0b100, False)
    red.name = "sum"
    k = n.const(np.full((1, 1), 2.0, np.float32))
    mul = n.net.add_elementwise(red.get_output(0), k, E.PROD)
    mul.name = "double"
    got = n.run(mul, {"x": x})
    want = np.array([[2 * sum(max(float(v), 0.0) for v in x[i, j]) for j in range(3)] for i in range(2)])
    close(got, want)
    rows = ReferenceProgram.from_network(n.net).trace({"x": x})
    assert [r[1] for r in rows] == ["ACTIVATION", "REDUCE", "CONSTANT", "ELEMENTWISE"]
    names = [r[0] for r in rows]
    assert names[:2] == ["relu", "sum"] and names[3] == "double"
    relu_out = rows[0][2][0]
    np.testing.assert_array_equal(relu_out, np.maximum(x, 0))
    close(rows[1][2][0], want / 2)
    close(rows[3][2][0], got)


# ---- errors -----------------------------------------------------------------------------------------------------


def test_unsupported_layer_kind():
    n = Net()
    layer = n.net.add_einsum([n.input("a", (2, 3)), n.input("b", (3, 4))], "ij,jk->ik")
    layer.name = "my_einsum"
    n.net.mark_output(layer.get_output(0))
    with pytest.raises(UnsupportedLayerError, match="my_einsum") as info:
        ReferenceProgram.from_network(n.net)
    assert "EINSUM" in str(info.value)
    assert isinstance(info.value, Mx2TrtError)


def test_unsupported_layer_resize():
    n = Net()
    r = n.net.add_resize(n.input("x", (1, 1, 2, 2)))
    r.scales = [1.0, 1.0, 2.0, 2.0]
    r.resize_mode = trt.InterpolationMode.CUBIC  # a mode the interpreter does not evaluate
    r.name = "upsample"
    n.net.mark_output(r.get_output(0))
    with pytest.raises(UnsupportedLayerError, match="upsample"):
        ReferenceProgram.from_network(n.net)


def test_missing_feed_and_wrong_shape():
    n = Net()
    layer = n.net.add_elementwise(n.input("a", (2, 3)), n.input("b", (2, 3)), E.SUM)
    prog = n.program(layer.get_output(0))
    a = rand((2, 3), seed=160)
    with pytest.raises(Mx2TrtError, match="missing inputs.*'b'"):
        prog.run({"a": a})
    with pytest.raises(Mx2TrtError, match=r"input 'b' has shape \(3, 2\)"):
        prog.run({"a": a, "b": a.T.copy()})
    with pytest.raises(Mx2TrtError, match="input 'b'"):
        prog.run({"a": a, "b": a[None]})
    np.testing.assert_array_equal(prog.run({"a": a, "b": a})[layer.get_output(0).name], a + a)


# ---- deconvolution, resize, top-k, LRN -------------------------------------------------------------------------------


def deconv_expect(x, w, b, groups, stride, dil, pre, post):
    """Naive transposed convolution: every input element scatters input * kernel into the output."""
    n, c = x.shape[:2]
    k_out = w.shape[1] * groups
    ks = w.shape[2:]
    full = [(x.shape[2 + i] - 1) * stride[i] + dil[i] * (ks[i] - 1) + 1 for i in range(len(ks))]
    y = np.zeros((n, k_out, *full))
    cg, kg = c // groups, k_out // groups
    for ni, ci, *pos in np.ndindex(*x.shape):
        g = ci // cg
        for tap in np.ndindex(*ks):
            o = tuple(pos[i] * stride[i] + tap[i] * dil[i] for i in range(len(ks)))
            for ko in range(kg):
                y[(ni, g * kg + ko) + o] += x[(ni, ci, *pos)] * w[(ci, ko) + tap]
    y = y[(slice(None), slice(None)) + tuple(slice(pre[i], full[i] - post[i]) for i in range(len(ks)))]
    return y + (b.reshape((1, -1) + (1,) * len(ks)) if b is not None else 0)


@given(
    st.integers(1, 2), st.sampled_from([1, 2]), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
    st.integers(1, 2), st.integers(1, 2), st.integers(0, 1), st.integers(0, 1), st.booleans(), st.integers(0, 9),
)
def test_deconvolution(n, groups, cpg, kpg, k, s, d, pre, post, bias, seed):
    c, kout = cpg * groups, kpg * groups
    x = rand((n, c, 4, 5), seed=seed)
    w = rand((c, kpg, k, k + 1), seed=seed + 1)
    b = rand((kout,), seed=seed + 2) if bias else None
    net = Net()
    layer = net.net.add_deconvolution_nd(net.input("x", x.shape), kout, (k, k + 1), net.w(w),
                                         net.w(b) if bias else trt.Weights())
    layer.stride_nd, layer.dilation_nd, layer.num_groups = (s, s), (d, d), groups
    layer.pre_padding, layer.post_padding = (pre, pre), (post, 0)
    got = net.run(layer, {"x": x})
    close(got, deconv_expect(x, w, b, groups, (s, s), (d, d), (pre, pre), (post, 0)), rtol=1e-5, atol=1e-4)


def test_deconvolution_3d():
    x, w = rand((1, 2, 2, 3, 2), seed=5), rand((2, 3, 2, 2, 2), seed=6)
    net = Net()
    layer = net.net.add_deconvolution_nd(net.input("x", x.shape), 3, (2, 2, 2), net.w(w), trt.Weights())
    layer.stride_nd = (2, 1, 2)
    close(net.run(layer, {"x": x}), deconv_expect(x, w, None, 1, (2, 1, 2), (1, 1, 1), (0,) * 3, (0,) * 3), atol=1e-4)


def resize_expect(x, out_shape, mode, transform, rounding="FLOOR", scales=None):
    """Per-axis loops: nearest picks one source index, linear mixes the two neighbours. Given scales (not an
    output shape) are what the coordinate transformation divides by, as in ONNX Resize."""
    y = x.astype(np.float64)
    for ax, (size, out) in enumerate(zip(x.shape, out_shape)):
        if size == out:
            continue
        cols = []
        for o in range(out):
            if transform == "ALIGN_CORNERS":
                src = o * (size - 1) / (out - 1) if out > 1 else 0.0
            elif transform == "ASYMMETRIC":
                src = o / (scales[ax] if scales else out / size)
            else:
                src = (o + 0.5) / (scales[ax] if scales else out / size) - 0.5
            if mode == "NEAREST":
                i = {"FLOOR": math.floor(src), "CEIL": math.ceil(src), "HALF_UP": math.floor(src + 0.5),
                     "HALF_DOWN": math.ceil(src - 0.5)}[rounding]
                cols.append(np.take(y, [min(max(i, 0), size - 1)], axis=ax))
            else:
                src = min(max(src, 0.0), size - 1.0)
                lo = int(math.floor(src))
                hi, f = min(lo + 1, size - 1), src - math.floor(src)
                cols.append(np.take(y, [lo], axis=ax) * (1 - f) + np.take(y, [hi], axis=ax) * f)
        y = np.concatenate(cols, axis=ax)
    return y


@pytest.mark.parametrize("mode", ["NEAREST", "LINEAR"])
@pytest.mark.parametrize("transform", ["ASYMMETRIC", "ALIGN_CORNERS", "HALF_PIXEL"])
@pytest.mark.parametrize("out_hw", [(8, 10), (3, 2), (5, 5)])
def test_resize(mode, transform, out_hw):
    x = rand((1, 2, 4, 5), seed=31)
    net = Net()
    layer = net.net.add_resize(net.input("x", x.shape))
    layer.shape = (1, 2) + out_hw
    layer.resize_mode = getattr(trt.InterpolationMode, mode)
    layer.coordinate_transformation = getattr(trt.ResizeCoordinateTransformation, transform)
    close(net.run(layer, {"x": x}), resize_expect(x, (1, 2) + out_hw, mode, transform))


@pytest.mark.parametrize("rounding", ["FLOOR", "CEIL", "HALF_UP", "HALF_DOWN"])
def test_resize_nearest_rounding_and_default_is_floor(rounding):
    x = rand((1, 1, 3, 4), seed=32)
    net = Net()
    layer = net.net.add_resize(net.input("x", x.shape))
    assert layer.nearest_rounding == trt.ResizeRoundMode.FLOOR
    layer.scales = [1.0, 1.0, 2.5, 1.5]
    layer.coordinate_transformation = trt.ResizeCoordinateTransformation.HALF_PIXEL
    layer.nearest_rounding = getattr(trt.ResizeRoundMode, rounding)
    got = net.run(layer, {"x": x})
    close(got, resize_expect(x, got.shape, "NEAREST", "HALF_PIXEL", rounding, scales=[1.0, 1.0, 2.5, 1.5]))


@pytest.mark.parametrize("op", ["MAX", "MIN"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_topk_values_and_indices(op, axis):
    x = np.round(rand((3, 4, 5), seed=33), 1)  # rounding makes ties: the lower index comes first
    k = 2
    net = Net()
    layer = net.net.add_topk(net.input("x", x.shape), getattr(trt.TopKOperation, op), k, 1 << axis)
    prog = net.program(layer.get_output(0), layer.get_output(1))
    out = prog.run({"x": x})
    values, indices = out[layer.get_output(0).name], out[layer.get_output(1).name]
    assert values.shape == tuple(layer.get_output(0).shape) and indices.dtype == np.int32
    key = -x if op == "MAX" else x
    want_idx = np.take(np.argsort(key, axis=axis, kind="stable"), range(k), axis=axis)
    np.testing.assert_array_equal(indices, want_idx)
    np.testing.assert_array_equal(values, np.take_along_axis(x, want_idx, axis=axis))


@pytest.mark.parametrize("window", [1, 3, 5])
def test_lrn(window):
    x = rand((2, 6, 3, 3), seed=34)
    alpha, beta, k = 0.3, 0.75, 2.0
    net = Net()
    layer = net.net.add_lrn(net.input("x", x.shape), window, alpha, beta, k)
    want = np.empty_like(x, dtype=np.float64)
    for c in range(6):
        lo, hi = max(0, c - window // 2), min(6, c + window // 2 + 1)
        want[:, c] = x[:, c] / (k + alpha / window * (x[:, lo:hi] ** 2).sum(axis=1)) ** beta
    close(net.run(layer, {"x": x}), want)


# ---- Q/DQ: symmetric quantization, and the fused int8/fp8 convolution and matrix multiply ----------------------


def q_expect(x, scale, lo=-128, hi=127):
    """TensorRT's Q to int8: x / scale, rounded half to even (np.rint), saturated."""
    return np.clip(np.rint(x.astype(np.float32) / np.float32(scale)), lo, hi).astype(np.int8)


def qdq(n, x, scale, to=trt.int8, out=trt.float32, axis=None):
    s = n.const(np.asarray(scale, np.float32))
    q = n.net.add_quantize(x, s, to)
    dq = n.net.add_dequantize(q.get_output(0), s, out)
    if axis is not None:
        q.axis = dq.axis = axis
    return q, dq


def test_quantize_rounds_half_to_even_and_saturates():
    n = Net()
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, 126.6, 127.5, 300.0, -128.4, -129.0, -1e9], np.float32)
    q, _ = qdq(n, n.input("x", x.shape), 1.0)
    got = n.run(q, {"x": x})
    assert got.tolist() == [0, 2, 2, 0, -2, 0, 127, 127, 127, -128, -128, -128]


def test_quantize_dequantize_per_tensor():
    n = Net()
    x = rand((3, 5), -4, 4, seed=3)
    _, dq = qdq(n, n.input("x", x.shape), 0.03)
    close(n.run(dq, {"x": x}), q_expect(x, 0.03).astype(np.float64) * np.float32(0.03), rtol=1e-7, atol=0)


def test_quantize_dequantize_per_channel_axis():
    n = Net()
    x = rand((2, 3, 4), -1, 1, seed=4)
    s = np.array([0.01, 0.002, 0.05], np.float32)
    _, dq = qdq(n, n.input("x", x.shape), s, axis=1)
    want = np.stack([q_expect(x[:, c], s[c]).astype(np.float64) * s[c] for c in range(3)], axis=1)
    close(n.run(dq, {"x": x}), want, rtol=1e-7, atol=0)


def test_quantize_fp8_e4m3():
    """Nearest e4m3 value (3 mantissa bits), ties to even, saturating at 448 (no infinities)."""
    n = Net()
    x = np.array([0.3, 1.0, 1.0625, 1.1875, 17.0, 448.0, 460.0, 1e6, -1e6, 0.0], np.float32)
    _, dq = qdq(n, n.input("x", x.shape), 1.0, to=trt.fp8)
    want = [0.3125, 1.0, 1.0, 1.25, 16.0, 448.0, 448.0, 448.0, -448.0, 0.0]
    assert n.run(dq, {"x": x}).tolist() == want  # 1.0625 ties to 1.0 (even), 1.1875 ties to 1.25, 17 to 16


def test_quantize_zero_point_is_unsupported():
    n = Net()
    x = n.input("x", (4,))
    layer = n.net.add_quantize(x, n.const(np.float32(0.1)), trt.int8)
    layer.set_input(2, n.const(np.int8(0)))
    n.net.mark_output(layer.get_output(0))
    with pytest.raises(UnsupportedLayerError, match="zero points"):
        ReferenceProgram.from_network(n.net)


def int8_conv_net(x_shape, w, b, sx, sw, out=trt.float32):
    """DQ(Q(x)) -> convolution <- DQ(Q(w)) per output channel: what the converters write for an int8 node."""
    n = Net()
    x = n.input("x", x_shape)
    if out == trt.float16:
        x = n.net.add_cast(x, trt.float16).get_output(0)
    _, dx = qdq(n, x, sx, out=out)
    _, dw = qdq(n, n.const(w), sw, out=out, axis=0)
    empty = trt.Weights(out)
    layer = n.net.add_convolution_nd(dx.get_output(0), w.shape[0], w.shape[2:], empty, n.w(b.astype(_NP[out])))
    layer.set_input(1, dw.get_output(0))
    layer.padding_nd = (1, 1)
    return n, layer


@pytest.mark.parametrize("out", [trt.float32, trt.float16], ids=["fp32", "fp16"])
def test_int8_convolution_accumulates_integers(out):
    """TensorRT runs DQ -> conv <- DQ as one int8 kernel: integer products summed exactly (int32), scaled once,
    plus the bias; in fp16 the dequantized operands are never rounded to fp16 on the way."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
    w = (rng.standard_normal((4, 6, 3, 3)) * 0.2).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    sx = np.float32(np.abs(x).max() / 127)
    sw = (np.abs(w).reshape(4, -1).max(1) / 127).astype(np.float32)
    n, layer = int8_conv_net(x.shape, w, b, sx, sw, out)
    prog = n.program(layer.get_output(0))
    fused = [s for s in prog.steps if s.kind == "CONVOLUTION"][0]
    assert len(fused.inputs) == 4  # it reads the int8 tensors and their scales, not the DQ outputs
    qx = q_expect(x, sx).astype(np.int64)
    qw = np.stack([q_expect(w[k], sw[k]) for k in range(4)]).astype(np.int64)
    acc = conv_expect(qx, qw, None, 1, (1, 1), (1, 1), (1, 1), (5, 5))  # float64 sums of small integers: exact
    want = acc * (sx * sw).reshape(1, 4, 1, 1).astype(np.float64) + b.astype(_NP[out]).reshape(1, 4, 1, 1)
    got = prog.run({"x": x})[layer.get_output(0).name]
    assert got.dtype == _NP[out]
    close(got, want, rtol=1e-6 if out == trt.float32 else 1e-3, atol=1e-6 if out == trt.float32 else 2e-3)


@pytest.mark.parametrize("op1", [MO.NONE, MO.TRANSPOSE])
def test_int8_matrix_multiply_per_column_scales(op1):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((3, 4, 16)).astype(np.float32)
    w = rng.standard_normal((16, 5) if op1 == MO.NONE else (5, 16)).astype(np.float32)
    axis = 1 if op1 == MO.NONE else 0
    sa = np.float32(np.abs(a).max() / 127)
    sw = (np.abs(w).max(axis=1 - axis) / 127).astype(np.float32)
    n = Net()
    _, da = qdq(n, n.input("a", a.shape), sa)
    _, dw = qdq(n, n.const(w[None]), sw, axis=axis + 1)
    layer = n.net.add_matrix_multiply(da.get_output(0), MO.NONE, dw.get_output(0), op1)
    prog = n.program(layer.get_output(0))
    assert len([s for s in prog.steps if s.kind == "MATRIX_MULTIPLY"][0].inputs) == 4
    qa = q_expect(a, sa).astype(np.int64)
    qw = np.stack([q_expect(np.take(w, j, axis), sw[j]) for j in range(5)], axis=axis).astype(np.int64)
    acc = qa @ (qw if op1 == MO.NONE else qw.T)  # exact integers
    close(prog.run({"a": a})[layer.get_output(0).name], acc * (np.float64(sa) * sw), rtol=1e-6, atol=1e-6)


def test_int8_matrix_multiply_scale_on_the_contracted_axis_is_not_fused():
    """A weight scale per contracted row cannot be applied once after the sum: the layer computes on the DQ outputs."""
    rng = np.random.default_rng(7)
    a, w = rng.standard_normal((4, 16)).astype(np.float32), rng.standard_normal((16, 5)).astype(np.float32)
    sw = (np.abs(w).max(axis=1) / 127).astype(np.float32)  # one per row of w: the contracted axis
    n = Net()
    _, da = qdq(n, n.input("a", a.shape), 0.02)
    _, dw = qdq(n, n.const(w), sw, axis=0)
    layer = n.net.add_matrix_multiply(da.get_output(0), MO.NONE, dw.get_output(0), MO.NONE)
    prog = n.program(layer.get_output(0))
    assert len([s for s in prog.steps if s.kind == "MATRIX_MULTIPLY"][0].inputs) == 2
    wd = np.stack([q_expect(w[r], sw[r]).astype(np.float64) * sw[r] for r in range(16)])
    want = (q_expect(a, 0.02).astype(np.float64) * np.float32(0.02)) @ wd
    close(prog.run({"a": a})[layer.get_output(0).name], want, rtol=1e-5, atol=1e-5)


def test_fp8_convolution_is_fused():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 4, 4, 4)).astype(np.float32)
    w = (rng.standard_normal((2, 4, 3, 3)) * 0.3).astype(np.float32)
    n = Net()
    _, dx = qdq(n, n.input("x", x.shape), 0.01, to=trt.fp8)
    _, dw = qdq(n, n.const(w), np.array([0.001, 0.002], np.float32), to=trt.fp8, axis=0)
    layer = n.net.add_convolution_nd(dx.get_output(0), 2, (3, 3), trt.Weights(trt.float32), trt.Weights(trt.float32))
    layer.set_input(1, dw.get_output(0))
    prog = n.program(layer.get_output(0))
    assert len([s for s in prog.steps if s.kind == "CONVOLUTION"][0].inputs) == 4
    import ml_dtypes

    e4m3 = ml_dtypes.float8_e4m3fn  # an independent rounding of the operands: fp8 values are exact in float64
    qx = np.clip(x / np.float32(0.01), -448, 448).astype(e4m3).astype(np.float64)
    sw = np.array([0.001, 0.002], np.float32)
    qw = np.clip(w / sw.reshape(2, 1, 1, 1), -448, 448).astype(e4m3).astype(np.float64)
    want = conv_expect(qx, qw, None, 1, (1, 1), (1, 1), (0, 0), (2, 2)) * (np.float32(0.01) * sw).reshape(1, 2, 1, 1)
    close(prog.run({"x": x})[layer.get_output(0).name], want, rtol=1e-5, atol=1e-6)
