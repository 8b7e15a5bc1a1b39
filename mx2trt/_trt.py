"""TensorRT compat: picks `tensorrt` (10.x/11.x) if importable, else `tensorrt_rtx`; the only module that knows versions."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import ml_dtypes
import numpy as np

try:
    import tensorrt as trt  # type: ignore[import-not-found]

    FLAVOR = "tensorrt"
except ImportError:  # pragma: no cover - depends on the machine
    import tensorrt_rtx as trt  # type: ignore[import-not-found,no-redef]

    FLAVOR = "tensorrt_rtx"

VERSION: str = trt.__version__
log = logging.getLogger("mx2trt.trt")

_FLAVOR_NAMES = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT-RTX"}


@dataclass(frozen=True)
class Quirk:
    """A network one TensorRT flavour's builder cannot build although its API accepts it."""

    flavor: str  # the FLAVOR that has it
    cannot: str  # what that builder cannot build, for messages
    fixed_in: tuple[int, int] | None = None  # first major.minor that builds it; None: no known release does

    def releases(self) -> str:
        """The releases that have it, for docs: 'TensorRT-RTX' or, once fixed, 'TensorRT-RTX before 1.8'."""
        name = flavor_name(self.flavor)
        return name if self.fixed_in is None else f"{name} before {self.fixed_in[0]}.{self.fixed_in[1]}"


# Build limitations by name, asked through `quirk(name)` so converters never test the flavour themselves. Both fail
# in TensorRT-RTX 1.7.1's Myelin compiler, checked with its CPU-only build (1.7 is the newest TensorRT-RTX release,
# and no later one is known to fix them). Full TensorRT is taken to build both; that is unchecked here (no full
# TensorRT on these machines), and a bf16 deconvolution failing the same way was reported on TensorRT 11.0
# (NVIDIA/TensorRT#4829): if that holds, widen that entry to full TensorRT.
QUIRKS: Mapping[str, Quirk] = MappingProxyType({
    # "Strided & Dilated Deconv are currently not supported": any stride > 1 with any dilation > 1, even on other axes
    "strided_dilated_deconv": Quirk("tensorrt_rtx", "strided dilated deconvolution"),
    # "Could not infer output types for operation ... deconv" when the deconvolution's tensors are bfloat16
    "bf16_deconv": Quirk("tensorrt_rtx", "bf16 deconvolution"),
})


def flavor_name(flavor: str | None = None) -> str:
    """Product name of a FLAVOR (default: the one in use): 'TensorRT' or 'TensorRT-RTX'."""
    flavor = FLAVOR if flavor is None else flavor
    return _FLAVOR_NAMES.get(flavor, flavor)


def major_minor(version: str | None = None) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string (default: VERSION)."""
    parts = (VERSION if version is None else version).split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def quirk(name: str) -> str | None:
    """Why the TensorRT in use cannot build what QUIRKS[name] names ('TensorRT-RTX 1.7 cannot build ...'), or None."""
    q = QUIRKS[name]
    if FLAVOR != q.flavor:
        return None
    version = major_minor()
    if q.fixed_in is not None and version >= q.fixed_in:
        return None
    return f"{flavor_name()} {version[0]}.{version[1]} cannot build {q.cannot}"


_NP_OF_TRT = {
    trt.float32: np.dtype(np.float32),
    trt.float16: np.dtype(np.float16),
    trt.int32: np.dtype(np.int32),
    trt.int64: np.dtype(np.int64),
    trt.int8: np.dtype(np.int8),
    trt.uint8: np.dtype(np.uint8),
    trt.bool: np.dtype(np.bool_),
}
# NumPy has no bfloat16: BF16 is MXNet's stand-in dtype for it (a uint16 record), a sentinel only. Host arrays of bf16
# values are float32 arrays holding bf16-representable values (round_bf16); TensorRT gets their bit patterns.
BF16 = np.dtype([("bfloat16", np.uint16)])
FP8 = np.dtype(ml_dtypes.float8_e4m3fn)  # TensorRT's FP8 is e4m3 without infinities (OCP "fn")
if hasattr(trt, "fp8"):
    _NP_OF_TRT[trt.fp8] = FP8
if hasattr(trt, "bfloat16"):
    _NP_OF_TRT[trt.bfloat16] = BF16
_TRT_OF_NP = {v: k for k, v in _NP_OF_TRT.items()}

BF16_MAX = 3.3895313892515355e38  # largest finite bfloat16 (np.finfo cannot describe BF16)


def round_bf16(x: Any) -> np.ndarray:
    """float32 array of `x` rounded to the nearest bfloat16 (ties to even; NaN stays NaN, overflow gives inf)."""
    x = np.asarray(x, dtype=np.float32)
    u = np.atleast_1d(x).view(np.uint32)
    r = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    y = np.where(np.isnan(np.atleast_1d(x)), np.float32(np.nan), r.view(np.float32))
    return y.reshape(x.shape)


def bf16_bits(x: Any) -> np.ndarray:
    """uint16 bit patterns of `x` rounded to bfloat16 (what trt.Weights of type bfloat16 point at)."""
    return (round_bf16(x).view(np.uint32) >> np.uint32(16)).astype(np.uint16)


def np_dtype(dt: Any) -> np.dtype:
    """numpy dtype of a TensorRT DataType (bf16: the BF16 sentinel)."""
    try:
        return _NP_OF_TRT[dt]
    except KeyError:
        raise TypeError(f"TensorRT dtype {dt} has no numpy equivalent") from None


def trt_dtype(dt: Any) -> Any:
    """TensorRT DataType of a numpy dtype (or of the BF16 sentinel)."""
    try:
        return _TRT_OF_NP[np.dtype(dt)]
    except KeyError:
        raise TypeError(f"numpy dtype {np.dtype(dt)} has no TensorRT equivalent") from None


class ErrorRecorder(trt.IErrorRecorder):
    """Collects TensorRT errors so they can be raised with the MXNet node that caused them."""

    def __init__(self) -> None:
        trt.IErrorRecorder.__init__(self)
        self.errors: list[tuple[Any, str]] = []

    def report_error(self, code: Any, desc: str) -> bool:
        if "cudaError 35" not in desc:  # noise on machines without a GPU
            self.errors.append((code, desc))
        return False  # do not abort; we raise ourselves

    def num_errors(self) -> int:
        return len(self.errors)

    def get_error_code(self, i: int) -> Any:
        return self.errors[i][0]

    def get_error_desc(self, i: int) -> str:
        return self.errors[i][1]

    def clear(self) -> None:
        self.errors.clear()

    def has_overflowed(self) -> bool:
        return False

    def take(self) -> list[str]:
        """Return and clear the recorded messages."""
        out = [d for _, d in self.errors]
        self.errors.clear()
        return out


class Logger(trt.ILogger):
    """Routes TensorRT's log into Python logging."""

    _LEVELS = {
        trt.ILogger.Severity.INTERNAL_ERROR: logging.ERROR,
        trt.ILogger.Severity.ERROR: logging.ERROR,
        trt.ILogger.Severity.WARNING: logging.WARNING,
        trt.ILogger.Severity.INFO: logging.DEBUG,
        trt.ILogger.Severity.VERBOSE: logging.DEBUG,
    }

    def __init__(self) -> None:
        trt.ILogger.__init__(self)
        # TensorRT only WARNs when a network's shapes do not hold at a profile's min or max ("Profile kMAX values are
        # not self-consistent") and still returns a plan, which then fails at run time: builds collect these.
        self.inconsistent: list[str] = []

    # Noise: the CUDA-less CPU build's driver check, and reading IResizeLayer.scales back when a shape was set.
    _IGNORED = ("cudaError 35", "scale factors are not set")

    def log(self, severity: Any, msg: str) -> None:
        if "not self-consistent" in msg:
            self.inconsistent.append(msg)
        level = self._LEVELS.get(severity, logging.DEBUG)
        # A build sends thousands of VERBOSE/INFO messages: drop them here unless debug logging is on.
        if not log.isEnabledFor(level) or any(s in msg for s in self._IGNORED):
            return
        log.log(level, "%s", msg)


LOGGER = Logger()


def create_builder(recorder: ErrorRecorder) -> Any:
    """A Builder whose networks report errors to `recorder`."""
    builder = trt.Builder(LOGGER)
    builder.error_recorder = recorder
    return builder


def create_network(builder: Any) -> Any:
    """A strongly typed network (required on 10.x, implied on 11.x and RTX)."""
    return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))


# Every option mx2trt sets on a builder config: they are part of each engine's cache key (build.build_env).
BUILDER_OPTIONS: Mapping[str, Any] = MappingProxyType({})


def create_builder_config(builder: Any) -> Any:
    """A builder config with BUILDER_OPTIONS; on TensorRT-RTX the build is ahead-of-time and runs without a GPU."""
    config = builder.create_builder_config()
    for name, value in BUILDER_OPTIONS.items():
        setattr(config, name, value)
    return config


_target: str | None = None


def build_target() -> str:
    """What a plan is built for beyond the TensorRT version: TensorRT-RTX's default compute-capability targets (it
    builds ahead of time, for no particular GPU), or full TensorRT's GPU 0 compute capability (it builds for it)."""
    global _target
    if _target is None:
        if FLAVOR == "tensorrt_rtx":
            _target = "rtx-default-targets"
        else:
            _target = "no-gpu"
            try:
                from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]

                attr = cudart.cudaDeviceAttr
                err, major = cudart.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, 0)
                err2, minor = cudart.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, 0)
                if int(err) == 0 and int(err2) == 0:
                    _target = f"sm{major}{minor}"
            except Exception:  # pragma: no cover - no CUDA at all
                pass
    return _target


def layer_type(layer: Any) -> Any:
    """The LayerType of a layer, even after it was downcast (activation/pooling shadow `.type`)."""
    return trt.ILayer.type.fget(layer)


# LayerType -> concrete ILayer subclass; the naming rule has exceptions (notes: tensorrt-api.md §3).
_LAYER_CLASS_EXCEPTIONS = {
    "SOFTMAX": "ISoftMaxLayer",
    "ELEMENTWISE": "IElementWiseLayer",
    "MATRIX_MULTIPLY": "IMatrixMultiplyLayer",
    "PARAMETRIC_RELU": "IParametricReLULayer",
    "RAGGED_SOFTMAX": "IRaggedSoftMaxLayer",
    "NON_ZERO": "INonZeroLayer",
    "ONE_HOT": "IOneHotLayer",
    "REVERSE_SEQUENCE": "IReverseSequenceLayer",
    "GRID_SAMPLE": "IGridSampleLayer",
    "TOPK": "ITopKLayer",
    "NMS": "INMSLayer",
    "LRN": "ILRNLayer",
    "PLUGIN": "IPluginV2Layer",
    "CONDITIONAL_INPUT": "IIfConditionalInputLayer",
    "CONDITIONAL_OUTPUT": "IIfConditionalOutputLayer",
    "KV_CACHE_UPDATE": "IKVCacheUpdateLayer",
    "MOE": "IMoELayer",
}


def downcast(layer: Any) -> Any:
    """Give a layer read back from a network its concrete class, so its parameters can be read."""
    name = layer_type(layer).name
    cls_name = _LAYER_CLASS_EXCEPTIONS.get(name, "I" + "".join(p.capitalize() for p in name.split("_")) + "Layer")
    cls = getattr(trt, cls_name, None)
    if cls is None:
        raise TypeError(f"no layer class for LayerType.{name} in {FLAVOR} {VERSION}")
    layer.__class__ = cls
    return layer


def can_execute_engines() -> tuple[bool, str]:
    """Whether this process can deserialize and run engines here, and why not."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        return False, "cuda-python is not installed"
    try:
        err, count = cudart.cudaGetDeviceCount()
    except Exception as exc:  # driver library missing entirely
        return False, f"CUDA is unavailable ({exc})"
    if int(err) != 0 or count == 0:
        return False, "no CUDA GPU is visible"
    err, major = cudart.cudaDeviceGetAttribute(cudart.cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor, 0)
    err2, minor = cudart.cudaDeviceGetAttribute(cudart.cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor, 0)
    if FLAVOR == "tensorrt_rtx" and (major, minor) == (9, 0):
        return False, "TensorRT-RTX does not support compute capability 9.0 (H100/H200)"
    return True, f"GPU with compute capability {major}.{minor}"
