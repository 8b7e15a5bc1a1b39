"""Typed MXNet operator attributes: each op declares a frozen dataclass with MXNet's defaults; strings are parsed once."""
from __future__ import annotations

import ast
import dataclasses
import functools
import typing
from typing import Any, Literal, Mapping, TypeVar, get_args, get_origin

from .errors import AttributeParseError

T = TypeVar("T")

# Attribute keys MXNet attaches to nodes that are not operator parameters.
_META_PREFIX = "__"


def attr(default: Any = dataclasses.MISSING, *, ignored: bool = False) -> Any:
    """Declare an attribute field; `ignored=True` marks one that has no effect at inference (e.g. cudnn_tune)."""
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata={"ignored": ignored})
    return dataclasses.field(default=default, metadata={"ignored": ignored})


def schema(cls: type[T]) -> type[T]:
    """Make `cls` a frozen attribute schema."""
    return dataclasses.dataclass(frozen=True)(cls)


def _literal(raw: str) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def _parse_scalar(tp: Any, raw: Any) -> Any:
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        s = str(raw).strip().lower()  # MXNet parses booleans case-insensitively
        if s in ("true", "1"):
            return True
        if s in ("false", "0"):
            return False
        raise ValueError("expected a boolean")
    if tp is int:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        if isinstance(raw, int):
            return raw
        v = _literal(str(raw).strip())
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("expected an integer")
        return v
    if tp is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        s = str(raw).strip()
        try:
            return float(s)
        except ValueError:
            raise ValueError("expected a number") from None
    if tp is str:
        return str(raw)
    raise TypeError(f"unsupported attribute type {tp!r}")


def _parse(tp: Any, raw: Any) -> Any:
    origin = get_origin(tp)
    if origin is typing.Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.strip() in ("None", "")):
            return None
        last: Exception | None = None
        for a in args:
            try:
                return _parse(a, raw)
            except ValueError as exc:
                last = exc
        raise last or ValueError("no alternative matched")
    if origin is Literal:
        allowed = get_args(tp)
        v = str(raw).strip()
        if v not in allowed:
            raise ValueError(f"expected one of {', '.join(map(repr, allowed))}")
        return v
    if origin is tuple:
        (elem, *rest) = get_args(tp)
        v = _literal(raw.strip()) if isinstance(raw, str) else raw
        if isinstance(v, (int, float)) and not isinstance(v, bool) or v is None:
            v = (v,)  # MXNet accepts a bare scalar for a tuple attribute
        if not isinstance(v, (tuple, list)):
            raise ValueError("expected a tuple")
        return tuple(_parse(elem, x) if x is not None else _none_elem(elem) for x in v)
    return _parse_scalar(tp, raw)


def _none_elem(elem: Any) -> None:
    if get_origin(elem) is typing.Union and type(None) in get_args(elem):
        return None
    raise ValueError("None is not allowed here")


@functools.lru_cache(maxsize=8192)
def _parse_str(tp: Any, raw: str) -> Any:
    """`_parse` of an attribute string; models repeat the same few values on every node, so parse each once."""
    return _parse(tp, raw)


@functools.lru_cache(maxsize=None)
def _schema_fields(cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """A schema's type hints and fields, resolved once per class (every node of every model asks)."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def parse_attrs(cls: type[T], raw: Mapping[str, str], *, op: str, node: str) -> T:
    """Parse raw NNVM attribute strings into `cls`, filling MXNet's defaults; unknown attributes are errors."""
    hints, fields = _schema_fields(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(_META_PREFIX):
            continue
        if key not in fields:
            raise AttributeParseError(node, op, key, value, "unknown attribute (not in mx2trt's schema for this op)")
        try:
            values[key] = _parse_str(hints[key], value) if isinstance(value, str) else _parse(hints[key], value)
        except (ValueError, TypeError) as exc:
            raise AttributeParseError(node, op, key, value, str(exc)) from None
    for name, f in fields.items():
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise AttributeParseError(node, op, name, None, "required attribute is missing")
    return cls(**values)


@schema
class NoAttrs:
    """Schema of an op that takes no attributes."""
