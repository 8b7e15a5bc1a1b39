"""TensorRT build limitations (mx2trt._trt.QUIRKS) apply only to the flavour that has them: under TensorRT-RTX a
strided dilated Deconvolution stays in MXNet and a bf16 engine deconvolves in float32; under full TensorRT (simulated
here by patching _trt.FLAVOR/VERSION, the one place that knows them) both convert as they are. A simulated flavour
cannot build engines with the installed library, so those tests define the network and check it numerically through
the reference interpreter (build_engines=False)."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import pytest

import mx2trt
from harness import BF16_RTOL, check_op, exact_in
from mx2trt import REGISTRY, _trt
from mx2trt._mx import mx
from mx2trt._trt import BF16, ErrorRecorder, Quirk, bf16_bits, create_builder, create_builder_config, create_network
from mx2trt._trt import quirk, trt
from mx2trt.graph import Graph
from tests.converters.test_nn import check_deconvolution_by_reference, mxnet_cpu_gets_wrong

F32 = np.dtype(np.float32)
INSTALLED = (_trt.FLAVOR, _trt.VERSION, _trt.QUIRKS)
on_installed_rtx = pytest.mark.skipif(_trt.FLAVOR != "tensorrt_rtx", reason="needs TensorRT-RTX installed")

STRIDED_DILATED = [  # (input shape, attrs): stride > 1 and dilate > 1 on the same axes, on other axes, in 1-D
    ((1, 2, 5, 4), dict(kernel=(3, 3), num_filter=3, stride=(2, 2), dilate=(2, 2), pad=(1, 1), no_bias=False)),
    ((1, 2, 5, 4), dict(kernel=(3, 3), num_filter=3, stride=(1, 2), dilate=(2, 1))),
    ((2, 4, 4, 3), dict(kernel=(2, 3), num_filter=4, num_group=2, stride=(3, 2), dilate=(2, 3), adj=(1, 1))),
    ((1, 2, 6), dict(kernel=(3,), num_filter=2, stride=(2,), dilate=(2,), pad=(2,), no_bias=False)),
]


@pytest.fixture(autouse=True)
def _flavour_restored() -> Iterator[None]:
    """Every patch of the flavour is undone by the end of the test (set up before monkeypatch, so torn down after)."""
    yield
    assert (_trt.FLAVOR, _trt.VERSION, _trt.QUIRKS) == INSTALLED, "a patched TensorRT flavour leaked out of a test"


@pytest.fixture
def full_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated full TensorRT: what the converters see when `tensorrt` is the library mx2trt imported."""
    monkeypatch.setattr(_trt, "FLAVOR", "tensorrt")
    monkeypatch.setattr(_trt, "VERSION", "10.13.0.35")


@pytest.fixture
def rtx(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT-RTX 1.7, installed or simulated (on a machine with full TensorRT)."""
    if _trt.FLAVOR != "tensorrt_rtx":
        monkeypatch.setattr(_trt, "FLAVOR", "tensorrt_rtx")
        monkeypatch.setattr(_trt, "VERSION", "1.7.1.116")


def _inputs(shape: tuple[int, ...], attrs: dict[str, Any], precision: str = "fp32", seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = attrs.get("num_group", 1)
    weight = (shape[1], attrs["num_filter"] // groups) + attrs["kernel"]
    arrays = [rng.standard_normal(shape), rng.standard_normal(weight)]
    if not attrs.get("no_bias", True):
        arrays.append(rng.standard_normal(attrs["num_filter"]))
    return exact_in(precision, *[a.astype(np.float32) for a in arrays])


def _verdict(inputs: Sequence[np.ndarray], attrs: dict[str, Any]) -> str | None:
    """The registry's verdict on a one-node Deconvolution graph (input 0 data, the rest parameters)."""
    names = [f"x{i}" for i in range(len(inputs))]
    sym = mx.sym.Deconvolution(*[mx.sym.var(n) for n in names], name="node", **attrs)
    graph = Graph.from_symbol(sym, {n: mx.nd.array(a) for n, a in zip(names[1:], inputs[1:])}, {"x0": inputs[0].shape})
    return REGISTRY.check(graph, graph.by_name["node"])[1]


def _deconv_dtypes(c: mx2trt.Conversion) -> list[np.dtype]:
    return [s.out_dtypes[0] for e in c.engines for s in e.program.steps if s.kind == "DECONVOLUTION"]


# ---- the table ------------------------------------------------------------------------------------------------------


def test_quirk_reasons_name_the_flavour_and_version(rtx: None) -> None:
    major, minor = _trt.major_minor()
    assert quirk("strided_dilated_deconv") == f"TensorRT-RTX {major}.{minor} cannot build strided dilated deconvolution"
    assert quirk("bf16_deconv") == f"TensorRT-RTX {major}.{minor} cannot build bf16 deconvolution"


def test_full_tensorrt_has_none_of_them(full_tensorrt: None) -> None:
    assert [name for name in _trt.QUIRKS if quirk(name)] == []


def test_a_fixed_release_drops_its_quirk(rtx: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_trt, "QUIRKS", {"q": Quirk("tensorrt_rtx", "q layers", fixed_in=(1, 8))})
    assert _trt.QUIRKS["q"].releases() == "TensorRT-RTX before 1.8"
    for version, has in [("1.7.1.116", True), ("1.8.0.1", False), ("1.10.2", False), ("2.0", False)]:
        monkeypatch.setattr(_trt, "VERSION", version)
        assert bool(quirk("q")) == has, version
    assert _trt.major_minor("1.10.2") == (1, 10) and _trt.major_minor("11") == (11, 0)


def _network(dtype: Any, stride: tuple[int, int], dilation: tuple[int, int]) -> tuple[Any, Any, ErrorRecorder, Any]:
    """(builder, one-deconvolution network in `dtype` with float32 at the boundary, its recorder, its weight array)."""
    recorder = ErrorRecorder()
    builder = create_builder(recorder)
    net = create_network(builder)
    x = net.add_cast(net.add_input("x", trt.float32, (1, 2, 5, 4)), dtype).get_output(0)
    w = np.random.default_rng(0).standard_normal((2, 3, 3, 3)).astype(np.float32)
    keep = bf16_bits(w) if dtype == trt.bfloat16 else w
    kernel = trt.Weights(trt.bfloat16, keep.ctypes.data, keep.size) if dtype == trt.bfloat16 else trt.Weights(keep)
    layer = net.add_deconvolution_nd(x, 3, (3, 3), kernel, trt.Weights(dtype))
    layer.stride_nd, layer.dilation_nd = stride, dilation
    y = net.add_cast(layer.get_output(0), trt.float32).get_output(0)
    y.name = "y"
    net.mark_output(y)
    return builder, net, recorder, keep


@on_installed_rtx
@pytest.mark.parametrize("name, dtype, stride, dilation", [
    ("strided_dilated_deconv", "float32", (2, 2), (2, 2)),
    ("strided_dilated_deconv", "float32", (1, 2), (2, 1)),
    ("bf16_deconv", "bfloat16", (1, 1), (1, 1)),
])
def test_the_installed_rtx_still_has_them(name: str, dtype: str, stride: Any, dilation: Any) -> None:
    """Each quirk is a real build failure of the installed TensorRT-RTX: when this fails, a release fixed it (set
    its `fixed_in` in _trt.QUIRKS). The same network without the quirk builds."""
    assert quirk(name)
    for dt, s, d, builds in [(getattr(trt, dtype), stride, dilation, False), (trt.float32, (2, 2), (1, 1), True)]:
        builder, net, recorder, _keep = _network(dt, s, d)
        plan = builder.build_serialized_network(net, create_builder_config(builder))
        errors = recorder.take()
        assert (plan is not None) == builds, (dt, s, d, errors)


# ---- strided dilated Deconvolution ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, attrs", STRIDED_DILATED)
def test_strided_dilated_deconvolution_stays_in_mxnet_on_rtx(rtx: None, shape: Any, attrs: dict[str, Any]) -> None:
    inputs = _inputs(shape, attrs)
    reason = _verdict(inputs, attrs)
    major, minor = _trt.major_minor()
    want = (f"Deconvolution 'node': stride {attrs['stride']} with dilate {attrs['dilate']} "
            f"(TensorRT-RTX {major}.{minor} cannot build strided dilated deconvolution)")
    assert reason == want
    c = check_op("Deconvolution", inputs, attrs, params=tuple(range(1, len(inputs))), expect_trt=False)
    assert c.report.row("node").reason == want


@pytest.mark.parametrize("shape, attrs", STRIDED_DILATED)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_strided_dilated_deconvolution_converts_on_full_tensorrt(
    full_tensorrt: None, precision: str, shape: Any, attrs: dict[str, Any]
) -> None:
    """Checked against MXNet's definition (the gradient of Convolution) where its CPU kernel without MKLDNN is wrong."""
    inputs = _inputs(shape, attrs, precision)
    assert _verdict(inputs, attrs) is None
    options = dict(precision=precision, build_engines=False, rtol=1e-5 if precision == "fp32" else 1e-3)
    if mxnet_cpu_gets_wrong(attrs):
        c = check_deconvolution_by_reference(inputs, attrs, **options)
    else:
        c = check_op("Deconvolution", inputs, attrs, params=tuple(range(1, len(inputs))), **options)
    assert len(_deconv_dtypes(c)) == 1 and not c.engines[0].plan


def test_other_deconvolutions_convert_on_rtx(rtx: None) -> None:
    for attrs in (dict(kernel=(3, 3), num_filter=3, stride=(2, 2)), dict(kernel=(3, 3), num_filter=3, dilate=(2, 2))):
        assert _verdict(_inputs((1, 2, 5, 4), attrs), attrs) is None, attrs


# ---- bf16 Deconvolution ---------------------------------------------------------------------------------------------

BF16_CASES = [
    ((1, 2, 5, 4), dict(kernel=(3, 3), num_filter=3, stride=(2, 2), pad=(1, 1), no_bias=False)),
    ((1, 2, 5), dict(kernel=(3,), num_filter=3, stride=(3,), adj=(2,), no_bias=False)),  # 1-D, zero-extended output
]


@pytest.mark.parametrize("shape, attrs", BF16_CASES)
def test_bf16_deconvolution_runs_in_float32_on_rtx(rtx: None, shape: Any, attrs: dict[str, Any]) -> None:
    inputs = _inputs(shape, attrs, "bf16")
    options: dict[str, Any] = {} if _trt.FLAVOR == INSTALLED[0] else {"build_engines": False}  # simulated: no build
    c = check_op("Deconvolution", inputs, attrs, params=tuple(range(1, len(inputs))), precision="bf16",
                 rtol=BF16_RTOL, **options)
    assert _deconv_dtypes(c) == [F32]
    assert c.engines[0].precision == "bf16"


@pytest.mark.parametrize("shape, attrs", BF16_CASES)
def test_bf16_deconvolution_stays_bf16_on_full_tensorrt(full_tensorrt: None, shape: Any, attrs: dict[str, Any]) -> None:
    inputs = _inputs(shape, attrs, "bf16")
    c = check_op("Deconvolution", inputs, attrs, params=tuple(range(1, len(inputs))), precision="bf16",
                 build_engines=False, rtol=BF16_RTOL)
    assert _deconv_dtypes(c) == [BF16]
    kinds = [s.kind for s in c.engines[0].program.steps]
    assert kinds.count("CAST") == 2, kinds  # only the engine's boundary: float32 in, float32 out


def test_bf16_upsampling_follows_the_same_quirk(full_tensorrt: None) -> None:
    """Bilinear UpSampling deconvolves through the same helper, so it is not promoted either."""
    x = exact_in("bf16", np.random.default_rng(3).standard_normal((1, 2, 3, 4)).astype(np.float32))[0]
    w = exact_in("bf16", np.random.default_rng(4).random((2, 1, 4, 4)).astype(np.float32))[0]
    c = check_op("UpSampling", [x, w], dict(scale=2, sample_type="bilinear", num_args=2, num_filter=2), params=(1,),
                 precision="bf16", build_engines=False, rtol=BF16_RTOL)
    assert _deconv_dtypes(c) == [BF16]
