"""mx2trt's converter library (installed as `mx2trt.converters`): importing it registers every converter."""
from . import activation, contrib, detection, elementwise, indexing, nms, nn, norm, quantized, reduce, resize, shape

__all__ = ["activation", "contrib", "detection", "elementwise", "indexing", "nms", "nn", "norm", "quantized", "reduce",
           "resize", "shape"]
