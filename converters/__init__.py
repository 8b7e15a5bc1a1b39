"""mx2trt's converter library (installed as `mx2trt.converters`): importing it registers every converter."""
from . import activation, contrib, elementwise, nn, norm, quantized, reduce, resize, shape

__all__ = ["activation", "contrib", "elementwise", "nn", "norm", "quantized", "reduce", "resize", "shape"]
