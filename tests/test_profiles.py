"""Optimization profiles (mx2trt/profiles.py and the dynamic path through graph, fold, build, rewrite and runtime):
shapes given as [min, opt, max] ranges, one engine serving every shape within them, bad ranges and binds outside
them as clear errors, and the result cached and saved like any other."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mx2trt
import mx2trt.build
from mx2trt import profiles
from mx2trt._mx import mx
from mx2trt.runtime import EngineInputError

from harness import assert_close, last_json, run_python, run_symbol

TESTS = str(Path(__file__).parent)
RTOL = 1e-5  # fp32 reference engines against MXNet: the models here measure <= 1e-6


def _cnn() -> tuple[mx.sym.Symbol, dict[str, np.ndarray]]:
    """conv -> BN -> relu -> pool -> Flatten -> FC -> softmax, whose Flatten and FC see the batch vary."""
    x = mx.sym.var("data")
    y = mx.sym.Convolution(x, num_filter=8, kernel=(3, 3), pad=(1, 1), name="conv")
    y = mx.sym.Activation(mx.sym.BatchNorm(y, name="bn", fix_gamma=False), act_type="relu", name="relu")
    y = mx.sym.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool")
    y = mx.sym.softmax(mx.sym.FullyConnected(mx.sym.Flatten(y, name="flat"), num_hidden=5, name="fc"), name="prob")
    rng = np.random.default_rng(0)
    shapes = dict(zip(y.list_arguments(), y.infer_shape(data=(1, 3, 8, 8))[0]))
    params = {k: rng.standard_normal(s).astype(np.float32) * 0.3 for k, s in shapes.items() if k != "data"}
    _, _, aux = y.infer_shape(data=(1, 3, 8, 8))
    params.update({"bn_moving_mean": rng.standard_normal(aux[0]).astype(np.float32) * 0.1,
                   "bn_moving_var": rng.uniform(0.5, 2, aux[1]).astype(np.float32)})
    return y, params


def _nd(params: dict[str, np.ndarray]) -> dict[str, mx.nd.NDArray]:
    return {k: mx.nd.array(v) for k, v in params.items()}


def _data(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _run(sym2, params2, x: np.ndarray) -> np.ndarray:
    return run_symbol(sym2, {"data": x, **{k: v.asnumpy() for k, v in params2.items()}})[0]


BATCH = {"data": [(1, 3, 8, 8), (4, 3, 8, 8), (16, 3, 8, 8)]}


def test_one_engine_serves_every_batch_in_its_range_without_a_rebuild():
    sym, params = _cnn()
    c = mx2trt.convert(sym, _nd(params), BATCH, runtime="reference", cache=False)
    assert len(c.engines) == 1 and c.report.nodes_trt == c.report.nodes_total, c.report.op_table()
    assert c.engines[0].profiles == [[[[1, 3, 8, 8], [4, 3, 8, 8], [16, 3, 8, 8]]]]
    assert c.engines[0].in_shapes == [(-1, 3, 8, 8)] and c.engines[0].out_shapes == [(-1, 5)]
    builds = mx2trt.build.BUILDS
    for n in (1, 4, 16, 7, 2):  # min, opt, max and between, each bind a new executor of the same engine
        x = _data((n, 3, 8, 8), n)
        assert_close(_run(c.symbol, c.params, x), run_symbol(sym, {"data": x, **params})[0], RTOL, f"batch {n}")
    assert mx2trt.build.BUILDS == builds, "binding another shape rebuilt an engine"


def test_a_bind_outside_every_profile_is_an_input_error_naming_the_input_and_its_ranges():
    sym, params = _cnn()
    sym2, params2 = mx2trt.optimize(sym, _nd(params), BATCH, runtime="reference", cache=False)
    for shape in [(17, 3, 8, 8), (2, 3, 9, 8)]:
        with pytest.raises(EngineInputError, match=r"'data'.*shape \(%d, 3, %d, 8\), outside the engine's "
                           r"optimization profiles \(min \(1, 3, 8, 8\) \.\. max \(16, 3, 8, 8\)\)" % (shape[0], shape[2])):
            _run(sym2, params2, _data(shape))
    assert issubclass(EngineInputError, mx2trt.InputError)


def test_several_profiles_each_serve_their_own_range():
    sym, params = _cnn()
    two = [{"data": [(1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)]}, {"data": [(8, 3, 8, 8), (12, 3, 8, 8), (16, 3, 8, 8)]}]
    c = mx2trt.convert(sym, _nd(params), two, runtime="reference", cache=False)
    assert len(c.engines) == 1 and len(c.engines[0].profiles) == 2
    for n in (1, 4, 8, 16, 3, 11):
        x = _data((n, 3, 8, 8), n)
        assert_close(_run(c.symbol, c.params, x), run_symbol(sym, {"data": x, **params})[0], RTOL, f"batch {n}")
    with pytest.raises(EngineInputError, match=r"min \(1, 3, 8, 8\) \.\. max \(4, 3, 8, 8\); min \(8, 3, 8, 8\) "
                       r"\.\. max \(16, 3, 8, 8\)"):
        _run(c.symbol, c.params, _data((6, 3, 8, 8)))


@pytest.mark.parametrize("shapes, match", [
    ({"data": [(4, 3), (2, 3), (8, 3)]}, r"'data': min \(4, 3\) exceeds opt \(2, 3\) at dimension 0"),
    ({"data": [(1, 3), (8, 3), (4, 3)]}, r"'data': opt \(8, 3\) exceeds max \(4, 3\) at dimension 0"),
    ({"data": [(1, 3), (2, 3, 1), (4, 3)]}, r"'data': min \(1, 3\), opt \(2, 3, 1\) and max \(4, 3\) differ in rank"),
    ({"data": [(0, 3), (2, 3), (4, 3)]}, r"'data' min = \(0, 3\): dimension 0 must be between 1 and .*a profile's "
                                         r"min is at least 1"),
    ({"data": [(1, 3), (4, 3)]}, r"'data' has 2 shapes; a range is \[min, opt, max\]"),
    ([{"data": (1, 3)}, {"x": (1, 3)}], r"profile 1 names \['x'\], profile 0 names \['data'\]"),
    ([{"data": (1, 3)}, {"data": (1, 3, 1)}], r"'data' has rank \[2, 3\] in different profiles"),
])
def test_bad_ranges_are_input_errors_naming_the_input(shapes, match):
    with pytest.raises(mx2trt.InputError, match=match):
        profiles.parse(shapes)
    sym = mx.sym.relu(mx.sym.var("data"))
    with pytest.raises(mx2trt.InputError, match=match):
        mx2trt.optimize(sym, {}, shapes, runtime="reference", cache=False)


def test_explain_and_optimize_block_take_ranges():
    sym, params = _cnn()
    rep = mx2trt.explain(sym, BATCH, _nd(params))
    assert rep.nodes_trt == rep.nodes_total, rep.op_table()
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(4, in_units=6), mx.gluon.nn.Activation("relu"))
    net.initialize()
    fast = mx2trt.optimize_block(net, {"data": [(1, 6), (2, 6), (8, 6)]}, runtime="reference", cache=False)
    for n in (1, 5, 8):
        x = mx.nd.array(_data((n, 6), n))
        assert_close(fast(x).asnumpy(), net(x).asnumpy(), RTOL, f"batch {n}")
    with pytest.raises(mx2trt.InputError, match="static"):
        mx2trt.calibrate(sym, _nd(params), BATCH, [_data((4, 3, 8, 8))])


def test_a_static_range_is_a_static_engine_with_the_static_key():
    sym, params = _cnn()
    static = mx2trt.convert(sym, _nd(params), {"data": (4, 3, 8, 8)}, runtime="reference", cache=False)
    same = mx2trt.convert(sym, _nd(params), {"data": [(4, 3, 8, 8)] * 3}, runtime="reference", cache=False)
    ranged = mx2trt.convert(sym, _nd(params), BATCH, runtime="reference", cache=False)
    assert static.engines[0].key == same.engines[0].key and not same.engines[0].profiles
    assert ranged.engines[0].key != static.engines[0].key, "the engine key must cover the profiles"


def test_shape_only_chains_of_a_varying_input_are_not_folded():
    """shape_array of the batch is constant under static shapes (folded) but not under a range: y = x * batch."""
    x = mx.sym.var("data")
    batch = mx.sym.slice_axis(mx.sym.shape_array(x), axis=0, begin=0, end=1)
    sym = mx.sym.broadcast_mul(x, mx.sym.reshape(mx.sym.cast(batch, "float32"), shape=(1, 1)), name="scaled")
    static = mx2trt.convert(sym, {}, {"data": (2, 3)}, runtime="reference", cache=False)
    assert static.report.folded, "under static shapes the chain folds"
    c = mx2trt.convert(sym, {}, {"data": [(1, 3), (2, 3), (5, 3)]}, runtime="reference", cache=False)
    for n in (1, 2, 5, 3):
        v = _data((n, 3), n)
        got = run_symbol(c.symbol, {"data": v, **{k: p.asnumpy() for k, p in c.params.items()}})[0]
        assert_close(got, v * n, RTOL, f"batch {n}")


def test_a_cached_dynamic_engine_is_found_again(tmp_path):
    sym, params = _cnn()
    first = mx2trt.convert(sym, _nd(params), BATCH, runtime="reference", cache_dir=tmp_path)
    builds = mx2trt.build.BUILDS
    again = mx2trt.convert(sym, _nd(params), BATCH, runtime="reference", cache_dir=tmp_path)
    assert mx2trt.build.BUILDS == builds and again.engines[0].key == first.engines[0].key
    assert again.engines[0].profiles == first.engines[0].profiles


_LOAD = textwrap.dedent("""
    import json, sys, numpy as np
    import mx2trt, mx2trt.build
    sys.path.insert(0, {tests!r})
    import harness
    sym, params = mx2trt.load({prefix!r})
    errs = {{}}
    for n in {batches!r}:
        x = np.load({data!r})[:n]
        got = harness.run_symbol(sym, {{"data": x, **{{k: v.asnumpy() for k, v in params.items()}}}})[0]
        errs[n] = float(np.abs(got - np.load({want!r})[:n]).max())
    print(json.dumps({{"errs": errs, "builds": mx2trt.build.BUILDS}}))
""")


def _loaded_elsewhere(tmp_path, sym, params, shapes, x, batches) -> dict:
    """Optimize `sym` with `shapes`, save it, and in a fresh process with no engine cache load it and run the first
    `batches` rows of `x` (rows independent of the batch): each batch's max error against MXNet, and the builds."""
    sym2, params2 = mx2trt.optimize(sym, _nd(params), shapes, runtime="reference", cache_dir=tmp_path / "cache")
    prefix = str(tmp_path / "saved" / "model")
    mx2trt.save(prefix, sym2, params2)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", run_symbol(sym, {"data": x, **params})[0])
    out = run_python(_LOAD.format(tests=TESTS, prefix=prefix, data=str(tmp_path / "x.npy"), batches=tuple(batches),
                                  want=str(tmp_path / "want.npy")), env={"MX2TRT_CACHE_DIR": str(tmp_path / "none")})
    return last_json(out.stdout)


def test_a_saved_dynamic_model_serves_its_range_in_a_fresh_process(tmp_path):
    sym, params = _cnn()
    res = _loaded_elsewhere(tmp_path, sym, params, BATCH, _data((16, 3, 8, 8)), (1, 5, 16))
    assert res["builds"] == 0, "loading a saved model built an engine"
    assert max(res["errs"].values()) <= 1e-5, res


def test_the_engine_node_attrs_carry_the_profiles_and_a_shape_function():
    sym, params = _cnn()
    sym2, _ = mx2trt.optimize(sym, _nd(params), BATCH, runtime="reference", cache=False)
    node = next(n for n in json.loads(sym2.tojson())["nodes"] if n["op"] == "Custom")
    assert json.loads(node["attrs"]["profiles"]) == [[[[1, 3, 8, 8], [4, 3, 8, 8], [16, 3, 8, 8]]]]
    fn = mx.sym.load_json(node["attrs"]["shape_symbol"])
    assert fn.infer_shape_partial(in0=(7, 3, 8, 8))[1] == [(7, 5)]


def test_a_converter_that_cannot_follow_a_varying_dimension_refuses_it_with_the_reason():
    """slice_axis from the end of the batch axis (begin=-1) is static in its start only under static shapes."""
    x = mx.sym.var("data")
    sym = mx.sym.sigmoid(mx.sym.slice_axis(mx.sym.relu(x), axis=0, begin=-1, end=None, name="last"), name="out")
    static = mx2trt.convert(sym, {}, {"data": (4, 3)}, runtime="reference", cache=False)
    assert static.report.nodes_trt == static.report.nodes_total
    c = mx2trt.convert(sym, {}, {"data": [(1, 3), (4, 3), (8, 3)]}, runtime="reference", cache=False)
    row = next(r for r in c.report.rows if r.node == "last")
    assert row.placement == "mxnet" and "axis 0 varies within the profiles" in row.reason, row.reason
    for n in (1, 4, 8, 5):
        v = _data((n, 3), n)
        got = run_symbol(c.symbol, {"data": v, **{k: p.asnumpy() for k, p in c.params.items()}})[0]
        assert_close(got, run_symbol(sym, {"data": v})[0], RTOL, f"batch {n}")



def test_review_cases_under_profiles_match_mxnet():
    """Found in review: fp16 argmax along a varying axis past 2048 positions (indices must stay exact: float32),
    x[::-1] along the batch (its start is the end: refused), slice_like of an input as long as another whose range is
    the same (the size is like's), and several profiles each static (the dimension differs between them)."""
    S = mx.sym
    x = S.var("data")
    arg = S.argmax(S.relu(x), axis=1, name="arg")
    c = mx2trt.convert(arg, {}, {"data": [(1, 16), (1, 2100), (1, 3000)]}, precision="fp16", runtime="reference",
                       cache=False)
    for n in (2100, 3000, 2500):
        v = np.zeros((1, n), np.float32)
        v[0, 2049] = 1.0
        assert run_symbol(c.symbol, {"data": v})[0][0] == 2049.0, f"length {n}"

    rev = S.sigmoid(S.slice(S.relu(x), begin=(None,), end=(None,), step=(-1,), name="rev"))
    c = mx2trt.convert(rev, {}, {"data": [(1, 3), (4, 3), (8, 3)]}, runtime="reference", cache=False)
    assert {r.node: r.placement for r in c.report.rows}["rev"] == "mxnet"
    for n in (2, 8):
        v = _data((n, 3), n)
        assert_close(run_symbol(c.symbol, {"data": v})[0], run_symbol(rev, {"data": v})[0], RTOL, f"batch {n}")

    like = S.var("like")
    sl = S.sigmoid(S.slice_like(S.relu(x), S.relu(like), axes=(0,)))
    c = mx2trt.convert(sl, {}, {"data": [(1, 4), (4, 4), (8, 4)], "like": [(1, 4), (4, 4), (8, 4)]},
                       runtime="reference", cache=False)
    assert c.report.nodes_trt == c.report.nodes_total, c.report.op_table()
    v, w = _data((8, 4), 1), _data((3, 4), 2)
    assert_close(run_symbol(c.symbol, {"data": v, "like": w})[0], run_symbol(sl, {"data": v, "like": w})[0], RTOL)

    two = S.relu(x) * 2
    c = mx2trt.convert(two, {}, [{"data": (1, 4)}, {"data": (8, 4)}], runtime="reference", cache=False)
    assert len(c.engines) == 1 and c.engines[0].in_shapes == [(-1, 4)], c.report.summary()
    for n in (1, 8):
        v = _data((n, 4), n)
        assert_close(run_symbol(c.symbol, {"data": v})[0], run_symbol(two, {"data": v})[0], RTOL, f"batch {n}")
    with pytest.raises(EngineInputError, match="outside the engine's optimization profiles"):
        run_symbol(c.symbol, {"data": _data((4, 4))})


def test_a_saved_dynamic_model_whose_ops_read_only_shapes_defines_its_network_again(tmp_path):
    """zeros_like and arange_like read their input's shape only under profiles: the stored subgraph, defined again in
    a fresh process (the reference runtime's program of a loaded model), must know it is dynamic (it did not)."""
    S = mx.sym
    x = S.var("data")
    sym = S.broadcast_add(S.relu(x) + S.zeros_like(x), S.reshape(S.contrib.arange_like(x, axis=1), shape=(1, -1)))
    res = _loaded_elsewhere(tmp_path, sym, {}, {"data": [(1, 2), (2, 8), (4, 16)]}, _data((4, 11)), (1, 3, 4))
    assert res["builds"] == 0 and max(res["errs"].values()) <= 1e-6, res
