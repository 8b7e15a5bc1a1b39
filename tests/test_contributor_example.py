"""The README's "Adding a converter" example, run as written: the python block after the `contributor-example` marker
is read out of README.md and executed as a module, so the README cannot drift from working code.

The example converts `_contrib_quadratic`, an op MXNet has and mx2trt does not ship a converter for. Executing the
block registers it on the global registry (as a converter module in converters/ does); the fixture unregisters it
afterwards, so no other test sees it. The harness then checks it like any shipped converter, and a deliberately wrong
variant must fail the same check.
"""
from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import check_op, readme_block, rtol_for
from mx2trt import REGISTRY
from mx2trt._trt import trt

README = Path(__file__).resolve().parents[1] / "README.md"
OP = "_contrib_quadratic"
MODULE = "readme_contributor_example"


def readme_example() -> tuple[str, int]:
    """The source of the one python block following the marker, and the README line it starts on."""
    return readme_block("contributor-example")


@pytest.fixture(scope="module")
def example() -> Iterator[types.ModuleType]:
    """The README block executed as module `readme_contributor_example`; its registrations undone afterwards."""
    assert OP not in REGISTRY, (
        f"mx2trt now ships a converter for {OP}: give the README's contributor example an op it does not convert"
    )
    code, first = readme_example()
    before = set(REGISTRY)
    mod = types.ModuleType(MODULE)
    sys.modules[MODULE] = mod  # typing.get_type_hints resolves the schema's annotations through sys.modules
    try:
        # padded so that tracebacks name README.md and the line there
        exec(compile("\n" * (first - 1) + code, str(README), "exec"), mod.__dict__)
        added = set(REGISTRY) - before
        assert added == {OP}, f"the README example registered {sorted(added)}, expected [{OP!r}]"
        yield mod
    finally:
        for op in set(REGISTRY) - before:
            REGISTRY.unregister(op)
        del sys.modules[MODULE]


COEFFS = st.floats(-4, 4, width=32, allow_subnormal=False)  # MXNet refuses subnormal attributes


def test_example_registers_a_documented_converter(example: types.ModuleType) -> None:
    spec = REGISTRY.get(OP)
    assert spec.fn is example.convert_quadratic and spec.fn.__module__ == MODULE
    assert spec.attrs is example.QuadraticAttrs
    assert spec.compute and spec.validator is None
    assert spec.doc.startswith(f"{OP} -> "), "a converter's docstring starts with 'MXNet op -> TensorRT layers'"
    assert example.QuadraticAttrs() == example.QuadraticAttrs(a=0.0, b=0.0, c=0.0)  # MXNet's defaults


@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    a=COEFFS,
    b=COEFFS,
    c=COEFFS,
    seed=st.integers(0, 2**32 - 1),
    build=st.booleans(),
)
def test_example_matches_mxnet(
    example: types.ModuleType, shape: tuple[int, ...], a: float, b: float, c: float, seed: int, build: bool
) -> None:
    """fp32 engines: the converter mirrors MXNet's x * (a * x + b) + c, so the results are bit for bit MXNet's."""
    x = (np.random.default_rng(seed).standard_normal(shape) * 3).astype(np.float32)
    check_op(OP, [x], {"a": a, "b": b, "c": c}, rtol=0, build_engines=build)


def test_example_defaults_and_fp16(example: types.ModuleType) -> None:
    x = np.random.default_rng(0).uniform(0, 2, (2, 3, 4)).astype(np.float32)
    check_op(OP, [x], {}, rtol=0)  # a = b = c = 0
    x16 = x.astype(np.float16).astype(np.float32)
    check_op(OP, [x16], {"a": 0.5, "b": 1.0, "c": 2.0}, precision="fp16", rtol=rtol_for("fp16"))


def test_example_node_stays_in_mxnet_when_excluded(example: types.ModuleType) -> None:
    x = np.ones((2, 3), np.float32)
    c = check_op(OP, [x], {"a": 1.0}, expect_trt=False, exclude_ops=[OP])
    assert not c.engines


def test_a_wrong_converter_fails_the_same_check(example: types.ModuleType) -> None:
    """The check above can fail: the example with a and b swapped is caught (and the README's is restored)."""
    spec = REGISTRY.get(OP)
    E = trt.ElementWiseOperation

    def swapped(ctx: Any, node: Any, inputs: list[Any]) -> list[Any]:
        x, at = inputs[0], node.attrs
        inner = example.layers.elementwise(ctx, example.layers.elementwise(ctx, x, at.b, E.PROD), at.a, E.SUM)
        return [example.layers.elementwise(ctx, example.layers.elementwise(ctx, x, inner, E.PROD), at.c, E.SUM)]

    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    REGISTRY.register(dataclasses.replace(spec, fn=swapped), override=True)
    try:
        with pytest.raises(AssertionError, match="max relative error"):
            check_op(OP, [x], {"a": 1.5, "b": -0.5, "c": 0.25}, rtol=0, build_engines=False)
    finally:
        REGISTRY.register(spec, override=True)
    check_op(OP, [x], {"a": 1.5, "b": -0.5, "c": 0.25}, rtol=0, build_engines=False)
