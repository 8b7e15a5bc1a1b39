"""Input shapes as optimization profiles: a static shape per data input, or ranges [min, opt, max] that an engine
serves without a rebuild (one or several profiles). Parsed and checked once here, with errors naming the input;
TensorRT itself only reports a bad profile as a -1 return value."""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

Shape = tuple[int, ...]
Range = tuple[Shape, Shape, Shape]  # (min, opt, max)
MAX_DIM = 2**31 - 1  # MXNet 1.9.1 and TensorRT index dimensions with int32
_WHICH = ("min", "opt", "max")


@dataclass(frozen=True)
class Profiles:
    """Per optimization profile, each data input's (min, opt, max); static inputs have min == opt == max."""

    ranges: tuple[dict[str, Range], ...]

    @property
    def dynamic(self) -> bool:
        return any(r[0] != r[2] for p in self.ranges for r in p.values())

    @property
    def opt(self) -> dict[str, Shape]:
        """The shapes the graph is inferred at and engines are tuned for: the first profile's opt."""
        return {k: r[1] for k, r in self.ranges[0].items()}

    def points(self) -> list[dict[str, Shape]]:
        """Every profile's min, opt and max shapes (duplicates removed), the first profile's opt first."""
        out = [self.opt]
        for p in self.ranges:
            for j in range(3):
                pt = {k: r[j] for k, r in p.items()}
                if pt not in out:
                    out.append(pt)
        return out


def contains(r: Sequence[Sequence[int]], shape: Sequence[int]) -> bool:
    """`shape` lies within the range (min, opt, max) `r`, dimension by dimension."""
    lo, _, hi = r
    return len(shape) == len(lo) and all(a <= d <= b for a, d, b in zip(lo, shape, hi))


def holding(profiles: Sequence[Sequence[Sequence[Sequence[int]]]], shapes: Sequence[Sequence[int]]) -> int | None:
    """The first profile (each input's (min, opt, max)) that holds every one of `shapes`; None if none does."""
    return next((p for p, ranges in enumerate(profiles) if all(contains(r, s) for r, s in zip(ranges, shapes))), None)


def describe(ranges: Sequence[Sequence[Sequence[int]]]) -> str:
    """Ranges for a message: 'min (1, 3) .. max (8, 3)' per profile."""
    return "; ".join(f"min {tuple(r[0])} .. max {tuple(r[2])}" for r in ranges)


def _dims(name: str, shape: Any, what: str = "") -> Shape:
    where = f"shapes: '{name}'{what}"
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
        raise InputError(f"{where} must be a tuple of dimensions like (1, 3, 224, 224), got {shape!r}")
    dims = tuple(shape)  # () is MXNet's "unknown": inference fills it in (a label's shape, say)
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
            raise InputError(f"{where} = {shape!r}: dimension {d!r} is not an integer")
        if not 0 < int(d) <= MAX_DIM:
            raise InputError(f"{where} = {shape!r}: dimension {int(d)} must be between 1 and {MAX_DIM}"
                             + (" (a profile's min is at least 1)" if what.endswith("min") else ""))
    return tuple(int(d) for d in dims)


def _is_range(value: Any) -> bool:
    """[min, opt, max]: a sequence whose items are shapes, not dimensions."""
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(v, (list, tuple)) for v in value))


def _range(name: str, value: Any, where: str) -> Range:
    if not _is_range(value):
        s = _dims(name, value, where)
        return (s, s, s)
    if len(value) != 3:
        raise InputError(f"shapes: '{name}'{where} has {len(value)} shapes; a range is [min, opt, max]")
    lo, opt, hi = (_dims(name, v, f"{where} {w}") for v, w in zip(value, _WHICH))
    if not len(lo) == len(opt) == len(hi):
        raise InputError(f"shapes: '{name}'{where}: min {lo}, opt {opt} and max {hi} differ in rank")
    for a, b, (wa, wb) in ((lo, opt, ("min", "opt")), (opt, hi, ("opt", "max"))):
        bad = [i for i, (x, y) in enumerate(zip(a, b)) if x > y]
        if bad:
            raise InputError(f"shapes: '{name}'{where}: {wa} {a} exceeds {wb} {b} at dimension {bad[0]}; a range "
                             "is [min, opt, max] with min <= opt <= max in every dimension")
    return (lo, opt, hi)


def parse(values: Any) -> Profiles:
    """Shapes as given to optimize: {input: shape or [min, opt, max]} (one profile), or a list of such mappings
    (several profiles, each naming the same inputs)."""
    if isinstance(values, Mapping):
        many = [values]
    elif isinstance(values, (list, tuple)) and values and all(isinstance(v, Mapping) for v in values):
        many = list(values)
    else:
        raise InputError("shapes must be a mapping of input name -> shape tuple (or [min, opt, max] ranges), or a "
                         f"list of such mappings (one per optimization profile), got {type(values).__name__}")
    out = []
    for p, m in enumerate(many):
        where = f" (profile {p})" if len(many) > 1 else ""
        for name in m:
            if not isinstance(name, str):
                raise InputError(f"shapes: key {name!r} is not a string")
        if p and list(m) != list(many[0]) and set(m) != set(many[0]):
            raise InputError(f"shapes: profile {p} names {sorted(m)}, profile 0 names {sorted(many[0])}; every "
                             "profile gives the same inputs")
        out.append({name: _range(name, m[name], where) for name in many[0]})
    for name in out[0]:
        ranks = {len(p[name][0]) for p in out}
        if len(ranks) > 1:
            raise InputError(f"shapes: '{name}' has rank {sorted(ranks)} in different profiles; give one rank")
    return Profiles(tuple(out))


__all__ = ["Profiles", "Range", "parse", "contains", "holding", "describe", "MAX_DIM"]
