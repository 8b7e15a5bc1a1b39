"""BatchNorm (inference form): selected nodes convert and match MXNet CPU; output_mean_var stays in MXNet."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from harness import check_op, check_property_tests
from mx2trt import REGISTRY
from mx2trt._mx import mx
from mx2trt.graph import Graph

SEEDS = st.integers(0, 2**32 - 1)
PARAMS = (1, 2, 3, 4)  # gamma, beta (arguments) and moving_mean, moving_var (auxiliary states), all by name


def _inputs(rng: np.random.Generator, shape: tuple[int, ...], axis: int) -> list[np.ndarray]:
    c = shape[axis]
    return [
        rng.standard_normal(shape).astype(np.float32),
        rng.uniform(-2.0, 2.0, c).astype(np.float32),  # gamma (ignored by MXNet when fix_gamma)
        rng.standard_normal(c).astype(np.float32),  # beta
        rng.standard_normal(c).astype(np.float32),  # moving_mean
        rng.uniform(0.05, 3.0, c).astype(np.float32),  # moving_var > 0
    ]


def _verdict(inputs: list[np.ndarray], attrs: dict[str, Any]) -> str | None:
    names = [f"x{i}" for i in range(len(inputs))]
    sym = mx.sym.BatchNorm(*[mx.sym.var(n) for n in names], name="node", **attrs)
    graph = Graph.from_symbol(sym, {n: mx.nd.array(inputs[i]) for i, n in enumerate(names) if i in PARAMS},
                              {"x0": inputs[0].shape})
    return REGISTRY.check(graph, graph.by_name["node"])[1]


@st.composite
def batch_norms(draw):
    rank = draw(st.integers(2, 5))
    shape = (draw(st.integers(1, 3)),) + tuple(draw(st.integers(1, 8 if rank < 4 else 5)) for _ in range(rank - 1))
    axis = draw(st.sampled_from([1, 1, -1] + list(range(-rank, rank))))
    attrs: dict[str, Any] = {} if axis == 1 and draw(st.booleans()) else {"axis": axis}
    for key in ("fix_gamma", "use_global_stats"):
        v = draw(st.sampled_from([None, True, False]))  # None: absent (fix_gamma=True, use_global_stats=False)
        if v is not None:
            attrs[key] = v
    eps = draw(st.sampled_from([None, 1e-5, 1e-3, 0.1]) | st.floats(1e-5, 0.5))
    if eps is not None:
        attrs["eps"] = eps
    if draw(st.booleans()):
        attrs["momentum"] = draw(st.sampled_from([0.0, 0.1, 0.9, 0.99]))  # training only
    return shape, attrs, draw(SEEDS)


@given(batch_norms())
def test_batch_norm_matches_mxnet(case):
    shape, attrs, seed = case
    inputs = _inputs(np.random.default_rng(seed), shape, attrs.get("axis", 1))
    event(f"rank {len(shape)}, axis {attrs.get('axis', 1) % len(shape)}, fix_gamma={attrs.get('fix_gamma', True)}")
    assert _verdict(inputs, attrs) is None
    check_op("BatchNorm", inputs, attrs, params=PARAMS)


@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((2, 3, 4, 5), dict(fix_gamma=False, eps=1e-5)),  # Gluon's BatchNorm
        ((2, 3, 4, 5), dict()),  # mx.sym defaults: fix_gamma=True, eps=1e-3
        ((2, 4, 3, 5), dict(axis=3, fix_gamma=False)),
        ((2, 4, 3, 5), dict(axis=-1, fix_gamma=False, use_global_stats=True)),
        ((3, 6), dict(axis=0, fix_gamma=False)),
        ((1, 2, 3, 4, 5), dict(axis=-3, fix_gamma=False)),
    ],
)
def test_batch_norm_cases(shape, attrs):
    inputs = _inputs(np.random.default_rng(4), shape, attrs.get("axis", 1))
    check_op("BatchNorm", inputs, attrs, params=PARAMS)


def test_batch_norm_fix_gamma_ignores_gamma():
    # With fix_gamma MXNet uses gamma = 1 at inference too; a gamma far from 1 makes a mistake obvious.
    rng = np.random.default_rng(5)
    inputs = _inputs(rng, (2, 3, 4, 4), 1)
    inputs[1] = np.full(3, 7.0, np.float32)
    check_op("BatchNorm", inputs, dict(fix_gamma=True), params=PARAMS)


@pytest.mark.parametrize("fix_gamma", [True, False])
def test_batch_norm_output_mean_var_is_refused(fix_gamma):
    inputs = _inputs(np.random.default_rng(6), (2, 3, 4, 4), 1)
    attrs = dict(output_mean_var=True, fix_gamma=fix_gamma)
    reason = _verdict(inputs, attrs)
    assert reason is not None and "output_mean_var" in reason, reason
    c = check_op("BatchNorm", inputs, attrs, params=PARAMS, expect_trt=False)
    assert {r[0]: r[3] for r in c.report.rows}["node"] == reason
    assert not c.engines


def test_batch_norm_with_computed_gamma_stays_in_mxnet():
    # gamma fed as data (not a parameter) cannot become TensorRT weights.
    inputs = _inputs(np.random.default_rng(7), (2, 3, 4), 1)
    c = check_op("BatchNorm", inputs, dict(fix_gamma=False), params=(2, 3, 4), expect_trt=False)
    reason = {r[0]: r[3] for r in c.report.rows}["node"]
    assert "input 1" in reason and "not a parameter" in reason, reason


def test_batch_norm_with_moving_var_as_data_stays_in_mxnet():
    inputs = _inputs(np.random.default_rng(7), (2, 3, 4), 1)
    c = check_op("BatchNorm", inputs, dict(fix_gamma=False), params=(1, 2, 3), expect_trt=False)
    reason = {r[0]: r[3] for r in c.report.rows}["node"]
    assert "input 4" in reason and "not a parameter" in reason, reason


def test_every_registered_op_has_a_property_test():
    check_property_tests("mx2trt.converters.norm", {"BatchNorm": test_batch_norm_matches_mxnet})
