"""mx2trt: run Apache MXNet 1.9 models on NVIDIA TensorRT.

Pipeline: fold -> graph (typed NNVM view) -> registry (per-op converters) -> partition -> build (network + engine;
source, entry and cache keep built engines on disk; quant and calibration: int8/fp8 Q/DQ) -> rewrite (one Custom node per engine) -> runtime (TensorRT on a
GPU, or the NumPy reference interpreter); saved writes and reads whole optimized models.
"""
from __future__ import annotations

from ._trt import FLAVOR as TRT_FLAVOR
from ._trt import VERSION as TRT_VERSION
from . import debug  # debug.compare: layer-by-layer accuracy against MXNet (matplotlib only when plotting)
from .api import Conversion, convert, explain, optimize, optimize_block
from .calibration import CalibrationTable, calibrate
from .errors import AttributeParseError, BuildError, ConversionError, InputError, Mx2TrtError
from .registry import REGISTRY, RegistryError, converter
from .runtime import EngineNodeError
from .saved import SavedModelError, load, load_block, save

__version__ = "0.1.0"

__all__ = [
    "optimize", "convert", "explain", "optimize_block", "Conversion", "calibrate", "CalibrationTable", "debug", "save", "load", "load_block", "SavedModelError", "converter", "REGISTRY",
    "Mx2TrtError", "InputError", "ConversionError", "BuildError", "AttributeParseError", "RegistryError", "EngineNodeError", "TRT_FLAVOR", "TRT_VERSION",
]
