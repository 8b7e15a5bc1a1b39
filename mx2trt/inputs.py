"""Up-front checks of what users hand to `convert`/`optimize`/`explain`: each bad value gets one InputError naming it,
before MXNet sees it (MXNet truncates float dims, ignores aux shapes and fails with its own messages)."""
from __future__ import annotations

import os
from pathlib import Path

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import profiles
from ._mx import mx
from .errors import InputError

MAX_DIM = profiles.MAX_DIM
_PREFIXES = {"arg:": "arg", "aux:": "aux"}


def symbol(sym: Any) -> None:
    if not isinstance(sym, mx.sym.Symbol):
        raise InputError(f"expected an mxnet Symbol, got {type(sym).__name__}")


def _is_array(v: Any) -> bool:
    return isinstance(v, (mx.nd.NDArray, np.ndarray)) or getattr(v, "_mx2trt_placeholder", False)


def params(sym: Any, values: Any) -> dict[str, Any]:
    """`values` by the symbol's own names: `arg:`/`aux:` prefixes (MXNet's checkpoint convention) are stripped unless
    a variable really has the prefixed name; a name given twice, or a prefix of the wrong kind, is an error."""
    if not isinstance(values, Mapping):
        raise InputError(f"params must be a mapping of name -> NDArray or numpy array, got {type(values).__name__}")
    args, aux = set(sym.list_arguments()), set(sym.list_auxiliary_states())
    out: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, v in values.items():
        if not isinstance(key, str):
            raise InputError(f"params: key {key!r} is not a string")
        name = key
        if key not in args | aux and key[:4] in _PREFIXES:
            name, kind = key[4:], _PREFIXES[key[:4]]
            if name in args | aux and (name in aux) != (kind == "aux"):
                want = "aux:" if name in aux else "arg:"
                raise InputError(f"params: '{key}' names {'an aux state' if name in aux else 'an argument'}; "
                                 f"write '{want}{name}' or '{name}'")
        if name in out:
            raise InputError(f"params: '{name}' is given twice (as '{given_as[name]}' and '{key}'); give it once")
        if not _is_array(v):
            raise InputError(
                f"params: '{key}' must be an NDArray or numpy array, got {type(v).__name__}"
                + (" (convert lists with numpy.asarray)" if isinstance(v, (list, tuple)) else "")
            )
        if np.dtype(v.dtype).kind not in "fiub":
            raise InputError(f"params: '{key}' has dtype {np.dtype(v.dtype)}, which MXNet cannot hold")
        out[name], given_as[name] = v, key
    return out


def shapes(values: Any, where: str = "") -> dict[str, tuple[int, ...]]:
    """{input name: tuple of positive ints}; a bare int, a float or bool dim, 0, a negative or a dim of 2^31 or more
    is refused with the input's name, and so are ranges where `where` (the function's name) serves static shapes."""
    prof = profiles.parse(values)
    if prof.dynamic or len(prof.ranges) > 1:
        raise InputError(f"shapes: {where or 'this'} takes one static shape per input, not [min, opt, max] ranges "
                         "or several profiles")
    return prof.opt


def dtypes(values: Any, shape_names: Iterable[str]) -> dict[str, np.dtype]:
    """{data input: numpy dtype}, for inputs given in shapes."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InputError(f"dtypes must be a mapping of input name -> dtype, got {type(values).__name__}")
    names = set(shape_names)
    out = {}
    for name, dt in values.items():
        if name not in names:
            raise InputError(f"dtypes: '{name}' is not a data input given in shapes")
        try:
            out[name] = np.dtype(dt)
        except TypeError:
            raise InputError(f"dtypes: '{name}' = {dt!r} is not a dtype") from None
        if out[name].kind not in "fiub":
            raise InputError(f"dtypes: '{name}' = {out[name]} is not a dtype MXNet tensors have")
    return out


def names(option: str, value: Any) -> frozenset[str]:
    """A set of names from one name or an iterable of names (a string is one name, not its characters)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset([value])
    if not isinstance(value, Iterable):
        raise InputError(f"{option} must be a name or a list of names, got {type(value).__name__}")
    out = list(value)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise InputError(f"{option}: {bad[0]!r} is not a name (a string)")
    return frozenset(out)


def positive_int(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{option} must be an integer of at least 1, not {value!r}")
    return int(value)


def flag(option: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{option} must be True or False, not {value!r}")
    return bool(value)


def path(option: str, value: Any) -> Path:
    """A filesystem path option (str or os.PathLike)."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise InputError(f"{option} must be a path (str or os.PathLike), not {value!r}")
    return Path(value).expanduser()


def as_ndarrays(values: Mapping[str, Any]) -> dict[str, Any]:
    """Params as NDArrays (numpy arrays are copied into NDArrays of the same dtype), for binding."""
    return {k: v if isinstance(v, mx.nd.NDArray) else mx.nd.array(v, dtype=v.dtype) for k, v in values.items()}


__all__ = ["symbol", "params", "shapes", "dtypes", "names", "positive_int", "flag", "as_ndarrays", "MAX_DIM"]
