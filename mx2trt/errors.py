"""Exceptions raised by mx2trt; each names the MXNet node, op and attribute involved where there is one."""
from __future__ import annotations


class Mx2TrtError(Exception):
    """Base class of mx2trt's errors."""


class InputError(Mx2TrtError, ValueError):
    """The symbol, params or shapes handed to mx2trt are inconsistent."""


class AttributeParseError(Mx2TrtError, ValueError):
    """An MXNet attribute string could not be parsed into its typed value."""

    def __init__(self, node: str, op: str, attr: str, raw: object, why: str) -> None:
        self.node, self.op, self.attr, self.raw = node, op, attr, raw
        super().__init__(f"{op} '{node}': attribute {attr}={raw!r}: {why}")


class ConversionError(Mx2TrtError):
    """A supported node could not be turned into TensorRT layers (or TensorRT rejected them)."""

    def __init__(
        self,
        node: str,
        op: str,
        message: str,
        attr: str | None = None,
        exact_inputs: tuple[int, ...] = (),
        needs_fp32: bool = False,
    ) -> None:
        self.node, self.op, self.attr = node, op, attr
        self.node_id: int | None = None  # set when the node's own converter failed (it alone then stays in MXNet)
        self.needs_fp32 = needs_fp32  # the node converts in float32 (an fp16/bf16 engine would round its indices)
        self.exact_inputs = exact_inputs  # inputs whose producers must run in float32 too
        where = f"{op} '{node}'" + (f" attribute {attr}" if attr else "")
        super().__init__(f"{where}: {message}")


class BuildError(Mx2TrtError):
    """TensorRT failed to build an engine for a subgraph."""


def mxnet_message(exc: BaseException) -> str:
    """The line of an MXNetError that says what failed (MXNet 1.9 starts its text with a traceback)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "Check failed" in ln or "error" in ln:
            return ln
    return lines[-1] if lines else type(exc).__name__
