"""BatchNorm (inference form), InstanceNorm, LayerNorm, GroupNorm, L2Normalization and LRN: selected nodes convert and
match MXNet CPU (the newer ops in fp32 and fp16 engines); output_mean_var and what TensorRT cannot express stay in
MXNet."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, currently_in_test_context, event, given
from hypothesis import strategies as st

from harness import check_op, check_property_tests, exact_in, precisions, rtol_for
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


# ---- engine precision ----------------------------------------------------------------------------------------------

# Every property test runs in fp32 and fp16 engines. MXNet is always the fp32 reference, fed the same values: in fp16
# those are fp16 numbers (see exact_in), so the boundary cast loses nothing and what remains is the engine's own
# rounding (statistics are computed in float32, the output rounded to fp16: 2^-11 = 4.9e-4 relative). Over 600
# examples per op the largest error was 4.8e-4; FP16_RTOL allows twice 2^-11.


def verdict(op: str, inputs: list[np.ndarray], attrs: dict[str, Any], params: tuple[int, ...] = ()) -> str | None:
    """The registry's verdict on the one-node graph check_op builds: None when selected, else the reason."""
    names = [f"x{i}" for i in range(len(inputs))]
    sym = getattr(mx.sym, op)(*[mx.sym.var(n) for n in names], name="node", **attrs)
    graph = Graph.from_symbol(sym, {n: mx.nd.array(inputs[i]) for i, n in enumerate(names) if i in params},
                              {n: inputs[i].shape for i, n in enumerate(names) if i not in params})
    return REGISTRY.check(graph, graph.by_name["node"])[1]


def check_either_way(op: str, inputs: list[np.ndarray], attrs: dict[str, Any], params: tuple[int, ...] = (),
                     **options: Any) -> str | None:
    """Selected -> converts and matches MXNet; refused -> stays in MXNet with that reason and still runs."""
    reason = verdict(op, inputs, attrs, params)
    if currently_in_test_context():
        event("selected" if reason is None else "refused")
    c = check_op(op, inputs, attrs, params=params, expect_trt=reason is None, **options)
    if reason is not None:
        assert {r[0]: r[3] for r in c.report.rows}["node"] == reason
    return reason


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


@precisions
@given(batch_norms())
def test_batch_norm_matches_mxnet(precision, case):
    shape, attrs, seed = case
    inputs = exact_in(precision, *_inputs(np.random.default_rng(seed), shape, attrs.get("axis", 1)))
    event(f"rank {len(shape)}, axis {attrs.get('axis', 1) % len(shape)}, fix_gamma={attrs.get('fix_gamma', True)}")
    assert _verdict(inputs, attrs) is None
    # Folded scale and shift are fp16 weights: their rounding, where x * scale and shift cancel, reached 1.8e-3 of the
    # largest output in 1000 examples.
    check_op("BatchNorm", inputs, attrs, params=PARAMS, precision=precision, rtol=rtol_for(precision, 4e-3))


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


def _data(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal data with a per-tensor scale and an offset a few times the spread, so the statistics matter. (An offset
    far above the spread makes fp16 inputs lose what tells the elements apart: a condition, not a converter error.)"""
    scale, offset = [(0.1, 0.0), (1.0, 0.0), (1.0, 3.0), (30.0, -60.0)][rng.integers(4)]
    return (offset + scale * rng.standard_normal(shape)).astype(np.float32)


def _affine_inputs(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> list[np.ndarray]:
    return [_data(rng, shape), rng.uniform(-2, 2, n).astype(np.float32), rng.standard_normal(n).astype(np.float32)]


PARAMS_OR_DATA = st.sampled_from([(1, 2), (1, 2), (), (1,)])  # gamma/beta as parameters, computed, or mixed


def _eps(draw) -> dict[str, Any]:
    eps = draw(st.sampled_from([None, 1e-5, 1e-3, 0.1]))
    return {} if eps is None else {"eps": eps}


@st.composite
def instance_norms(draw):
    rank = draw(st.integers(3, 5))
    shape = tuple(draw(st.integers(1, 4 if rank == 5 else 6)) for _ in range(rank))
    shape = shape[:2] + tuple(max(d, 2) for d in shape[2:])  # at least two elements to normalise over
    return shape, _eps(draw), draw(PARAMS_OR_DATA), draw(SEEDS)


@precisions
@given(instance_norms())
def test_instance_norm_matches_mxnet(precision, case):
    shape, attrs, params, seed = case
    inputs = exact_in(precision, *_affine_inputs(np.random.default_rng(seed), shape, shape[1]))
    check_op("InstanceNorm", inputs, attrs, params=params, precision=precision, rtol=rtol_for(precision))


@st.composite
def layer_norms(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(rank))
    axis = draw(st.sampled_from([-1, -1] + list(range(-rank, rank))))
    assume(shape[axis] > 1)
    attrs = {**_eps(draw), **({} if axis == -1 and draw(st.booleans()) else {"axis": axis})}
    if draw(st.booleans()):
        attrs["output_mean_var"] = False
    return shape, attrs, draw(PARAMS_OR_DATA), draw(SEEDS)


@precisions
@given(layer_norms())
def test_layer_norm_matches_mxnet(precision, case):
    shape, attrs, params, seed = case
    inputs = exact_in(precision, *_affine_inputs(np.random.default_rng(seed), shape, shape[attrs.get("axis", -1)]))
    check_op("LayerNorm", inputs, attrs, params=params, precision=precision, rtol=rtol_for(precision))


def test_layer_norm_output_mean_var_is_refused():
    inputs = _affine_inputs(np.random.default_rng(20), (2, 3, 4), 4)
    reason = check_either_way("LayerNorm", inputs, dict(output_mean_var=True), params=(1, 2))
    assert reason is not None and "output_mean_var" in reason


def test_layer_norm_bert_like():
    # gluonnlp's BERT: last axis, eps 1e-12, rows far from zero mean.
    inputs = _affine_inputs(np.random.default_rng(21), (2, 5, 32), 32)
    for precision in ("fp32", "fp16"):
        check_op("LayerNorm", exact_in(precision, *inputs), dict(eps=1e-12), params=(1, 2), precision=precision,
                 rtol=rtol_for(precision))


@st.composite
def group_norms(draw):
    rank = draw(st.integers(3, 5))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    shape = (draw(st.integers(1, 3)), groups * draw(st.integers(1, 3)))
    shape += tuple(draw(st.integers(1, 4)) for _ in range(rank - 2))
    assume(math.prod(shape[1:]) // groups > 1)
    attrs = {**_eps(draw), **({} if groups == 1 and draw(st.booleans()) else {"num_groups": groups})}
    return shape, attrs, draw(PARAMS_OR_DATA), draw(SEEDS)


@precisions
@given(group_norms())
def test_group_norm_matches_mxnet(precision, case):
    shape, attrs, params, seed = case
    # MXNet 1.9's gamma and beta hold one value per group, not per channel.
    inputs = exact_in(precision, *_affine_inputs(np.random.default_rng(seed), shape, attrs.get("num_groups", 1)))
    check_op("GroupNorm", inputs, attrs, params=params, precision=precision, rtol=rtol_for(precision))


def test_group_norm_output_mean_var_is_refused():
    inputs = _affine_inputs(np.random.default_rng(22), (2, 4, 3), 2)
    reason = check_either_way("GroupNorm", inputs, dict(num_groups=2, output_mean_var=True), params=(1, 2))
    assert reason is not None and "output_mean_var" in reason


@st.composite
def l2_normalizations(draw):
    mode = draw(st.sampled_from([None, "instance", "channel", "spatial"]))
    rank = draw(st.integers(2 if mode in (None, "instance") else 3, 4))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    attrs = {**_eps(draw), **({} if mode is None else {"mode": mode})}
    # Large values: their squares overflow fp16, so an fp16 engine must sum them in float32.
    return shape, attrs, draw(st.sampled_from([1.0, 1.0, 300.0, 1e-2])), draw(SEEDS)


@precisions
@given(l2_normalizations())
def test_l2_normalization_matches_mxnet(precision, case):
    shape, attrs, scale, seed = case
    x = (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    event(f"mode {attrs.get('mode', 'instance')}")
    check_op("L2Normalization", exact_in(precision, x), attrs, precision=precision, rtol=rtol_for(precision))


@st.composite
def lrns(draw):
    c = draw(st.sampled_from([1, 3, 5, 8, 17]))
    nsize = draw(st.sampled_from([n for n in (1, 3, 5, 7, 15, 17) if n <= c]))  # MXNet: odd, at most C
    attrs: dict[str, Any] = {"nsize": nsize}
    # Mostly within TensorRT's ranges; now and then outside them (refused).
    for key, values in (("alpha", [1e-4, 0.5, 2.0, -0.1]), ("beta", [0.75, 0.5, 1.0, 0.001]),
                        ("knorm", [2.0, 1.0, 0.5, 1e-6])):
        if draw(st.booleans()):
            attrs[key] = draw(st.sampled_from(values[:3] + values[3:] * draw(st.sampled_from([0, 0, 0, 1]))))
    shape = (draw(st.integers(1, 2)), c, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return shape, attrs, draw(SEEDS)


@precisions
@given(lrns())
def test_lrn_matches_mxnet(precision, case):
    shape, attrs, seed = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    check_either_way("LRN", exact_in(precision, x), attrs, precision=precision, rtol=rtol_for(precision))


@pytest.mark.parametrize(
    "shape, attrs, why",
    [
        ((1, 17, 2, 2), dict(nsize=17), "nsize 17"),
        ((1, 3, 2, 2), dict(nsize=3, knorm=1e-6), "knorm"),
        ((1, 3, 2, 2), dict(nsize=3, beta=0.0), "beta"),
    ],
)
def test_lrn_outside_tensorrt_ranges_is_refused(shape, attrs, why):
    x = np.random.default_rng(23).standard_normal(shape).astype(np.float32)
    reason = check_either_way("LRN", [x], attrs)
    assert reason is not None and why in reason, reason


def test_every_registered_op_has_a_property_test():
    check_property_tests("mx2trt.converters.norm", {
        "BatchNorm": test_batch_norm_matches_mxnet,
        "InstanceNorm": test_instance_norm_matches_mxnet,
        "LayerNorm": test_layer_norm_matches_mxnet,
        "GroupNorm": test_group_norm_matches_mxnet,
        "L2Normalization": test_l2_normalization_matches_mxnet,
        "LRN": test_lrn_matches_mxnet,
    })

