"""mx2trt's converter library (installed as `mx2trt.converters`): importing it registers every converter."""
from . import activation, elementwise, nn, norm, shape

__all__ = ["activation", "elementwise", "nn", "norm", "shape"]
