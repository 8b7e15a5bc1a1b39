"""mx2trt.debug.compare: node-by-node errors against MXNet, and the first divergence pinpointed."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mx2trt
from mx2trt import debug, zoo
from mx2trt._mx import mx
from mx2trt._trt import trt
from mx2trt.errors import InputError
from mx2trt.registry import REGISTRY, Registry

from harness import mxnet_only

SHAPE = (2, 3, 6, 6)


def _params(sym: Any, shapes: dict[str, tuple[int, ...]], seed: int = 0, scale: float = 0.5) -> dict[str, Any]:
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    rng = np.random.default_rng(seed)
    out = {n: mx.nd.array(rng.standard_normal(s).astype("f4") * scale)
           for n, s in zip(sym.list_arguments(), arg_shapes) if n not in shapes}
    out.update({n: mx.nd.array(rng.uniform(0.5, 1.5, s).astype("f4"))
                for n, s in zip(sym.list_auxiliary_states(), aux_shapes)})
    return out


def _data(shape: tuple[int, ...] = SHAPE, seed: int = 1) -> dict[str, np.ndarray]:
    return {"data": np.random.default_rng(seed).standard_normal(shape).astype("f4")}


def _net(mid: Any = None) -> Any:
    """conv0 -> relu0 -> add0 = conv0 + relu0 -> [mid] -> fc0 -> sig0; `mid(x)` may put a node in between."""
    x = mx.sym.Convolution(mx.sym.var("data"), num_filter=4, kernel=(3, 3), pad=(1, 1), name="conv0")
    x = mx.sym.elemwise_add(x, mx.sym.relu(x, name="relu0"), name="add0")
    if mid is not None:
        x = mid(x)
    return mx.sym.sigmoid(mx.sym.FullyConnected(x, num_hidden=5, name="fc0"), name="sig0")


def _broken(op: str, delta: float = 0.5) -> Registry:
    """A copy of mx2trt's registry whose `op` converter adds `delta` to the right result."""
    reg = Registry()
    for spec in REGISTRY.specs.values():
        reg.register(spec)
    good = REGISTRY.get(op)

    def add_delta(ctx: Any, node: Any, inputs: list) -> list:
        (y,) = good.fn(ctx, node, inputs)
        c = ctx.constant(np.full((1,) * len(y.shape), delta, np.float32))
        return [ctx.net.add_elementwise(y, c, trt.ElementWiseOperation.SUM).get_output(0)]

    reg.register(dataclasses.replace(good, fn=add_delta), override=True)
    return reg


def _before(rep: debug.DebugReport, key: str) -> list[debug.Row]:
    keys = [r.key for r in rep.rows]
    return rep.rows[: keys.index(key)]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_broken_converter_is_pinpointed(precision: str) -> None:
    sym = _net()
    params, data = _params(sym, {"data": SHAPE}), _data()
    clean = debug.compare(sym, params, data, precision=precision)
    assert clean.first_bad is None, str(clean)

    rep = debug.compare(sym, params, data, precision=precision, registry=_broken("elemwise_add"))
    assert rep.first_bad is not None and rep.first_bad.key == "add0", str(rep)
    assert rep.first_bad.engine == "trt_engine0" and rep.first_bad.nonfinite == 0
    assert rep.first_bad.max_rel > rep.tolerance and rep.first_bad.max_abs == pytest.approx(0.5, rel=0.05)
    before = _before(rep, "add0")
    assert [r.key for r in before] == ["conv0", "relu0"]
    assert all(r.compared and r.max_rel <= rep.tolerance for r in before), str(rep)
    assert rep.tolerance == debug.TOLERANCES[precision]
    text = rep.divergence()
    assert text.startswith(f"first divergence at node add0 (op elemwise_add, engine trt_engine0): rel err ")
    assert f"> tol {rep.tolerance:g}" in text and "conv0 (Convolution): rel err" in text, text
    assert "relu0 (relu): rel err" in text and "first divergence" in str(rep)


def test_a_model_with_folded_weights_is_compared_with_the_folded_values() -> None:
    """A weight computed from parameters (here transposed) is folded into a parameter; its consumer is compared."""
    w = mx.sym.transpose(mx.sym.var("w_t"), name="w")
    sym = mx.sym.FullyConnected(mx.sym.var("data"), weight=w, num_hidden=4, no_bias=True, name="fc")
    sym = mx.sym.relu(sym, name="act")
    params = {"w_t": mx.nd.array(np.random.default_rng(0).standard_normal((6, 4)).astype("f4"))}
    data = {"data": np.random.default_rng(1).standard_normal((3, 6)).astype("f4")}
    rep = debug.compare(sym, params, data)
    assert rep.first_bad is None and [r.key for r in rep.rows] == ["fc", "act"], str(rep)
    bad = debug.compare(sym, params, data, registry=_broken("FullyConnected"))
    assert bad.first_bad is not None and bad.first_bad.key == "fc", str(bad)


def test_engines_are_compared_in_isolation_fed_mxnets_values() -> None:
    """A node left in MXNet splits the graph into two engines; the second gets MXNet's values of its inputs, so the
    first engine's broken node does not show as errors in the second."""
    sym = _net(lambda x: mxnet_only(x, "mid"))
    params, data = _params(sym, {"data": SHAPE}), _data()
    rep = debug.compare(sym, params, data, registry=_broken("elemwise_add"))
    where = {r.key: (r.engine, r.status) for r in rep.rows}
    assert where == {"conv0": ("trt_engine0", "engine"), "relu0": ("trt_engine0", "engine"),
                     "add0": ("trt_engine0", "engine"), "mid": (None, "mxnet"),
                     "fc0": ("trt_engine1", "engine"), "sig0": ("trt_engine1", "engine")}
    assert rep.first_bad.key == "add0"
    assert [r.key for r in rep.rows if rep.bad(r)] == ["add0"], str(rep)
    mid = rep.row("mid")
    assert not mid.compared and "no converter" in mid.reason
    assert "mid (Custom): in MXNet, fed to trt_engine1 as MXNet's value" in rep._describe_input("mid", rep.row("fc0"))


def test_an_fp16_overflow_is_pinpointed_where_it_starts() -> None:
    x = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=16, name="fc0")
    x = mx.sym.relu(x, name="relu0")
    big = mx.sym.broadcast_mul(x, mx.sym.var("gain", shape=(1,)), name="big")  # gain 3e4 is finite in fp16; big is not
    y = mx.sym.broadcast_mul(big, mx.sym.var("shrink", shape=(1,)), name="back")  # back to ~1 in float32
    sym = mx.sym.sum(y, axis=1, name="total")
    params = _params(sym, {"data": (4, 8)}, scale=1.0)
    params["gain"], params["shrink"] = mx.nd.array([3e4]), mx.nd.array([1e-4])
    data = _data((4, 8))
    fp32 = debug.compare(sym, params, data)
    assert fp32.first_bad is None and all(r.nonfinite == 0 for r in fp32.rows), str(fp32)
    assert max(r.max_rel for r in fp32.rows) < 1e-5

    rep = debug.compare(sym, params, data, precision="fp16")
    first = rep.first_bad
    assert first is not None and first.key == "big" and first.nonfinite > 0, str(rep)
    assert all(not rep.bad(r) for r in _before(rep, "big")), str(rep)
    assert [r.key for r in _before(rep, "big")] == ["fc0", "relu0"]
    assert f"{first.nonfinite} inf/NaN value(s) where MXNet is finite" in rep.divergence()
    assert rep.to_dict()["first_bad"]["nonfinite"] == first.nonfinite


def test_a_correct_zoo_model_is_clean_and_every_converted_node_has_a_row(tmp_path: Path) -> None:
    sym, params, shapes = zoo.get("resnet18_v1", batch=1, size=32)
    data = _data(shapes["data"])
    rep = debug.compare(sym, params, data)
    assert rep.first_bad is None, rep.divergence()
    assert all(r.compared and r.max_rel <= rep.tolerance and r.nonfinite == 0 for r in rep.rows), str(rep)
    converted = [(r.node, r.op) for r in mx2trt.explain(sym, shapes, params).rows if r.placement != "mxnet"]
    assert [(r.node, r.op) for r in rep.rows] == converted and len(converted) > 50
    assert rep.engines == ["trt_engine0"]
    assert "no divergence: all" in str(rep)
    out = json.loads(rep.to_json())
    assert out["first_bad"] is None and len(out["rows"]) == len(rep.rows) and not any(r["bad"] for r in out["rows"])
    rep.plot(tmp_path / "clean.png")
    assert (tmp_path / "clean.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_float32_islands_and_multi_output_nodes_are_marked() -> None:
    """fp16: argmax over 2100 positions runs in float32 (fp16 rounds indices above 2048); a split has one row per
    output, keyed node:k."""
    x = mx.sym.var("data")
    parts = mx.sym.split(mx.sym.relu(x, name="relu0"), num_outputs=2, axis=0, name="split0")
    sym = mx.sym.Group([mx.sym.argmax(parts[0], axis=1, name="am"), mx.sym.sigmoid(parts[1], name="sig")])
    data = {"data": np.random.default_rng(2).permutation(4200).reshape(2, 2100).astype("f4")}
    rep = debug.compare(sym, {}, data, precision="fp16")
    status = {r.key: r.status for r in rep.rows}
    assert status["am"] == "fp32" and status["sig"] == "engine", status
    assert "runs in float32" in rep.row("am").reason
    assert [r.key for r in rep.rows if r.node == "split0"] == ["split0:0", "split0:1"]
    assert rep.row("am").max_abs == 0.0  # exact indices
    assert rep.row("split0:1").inputs == ("relu0",) and rep.row("sig").inputs == ("split0:1",)
    assert rep.first_bad is None, str(rep)
    assert "trt_engine0/fp32" in str(rep)


@pytest.mark.parametrize("inputs, words", [
    ({"image": np.zeros(SHAPE, "f4")}, ["'image' is not an input of the symbol", "['data']"]),
    ({}, ["no value for ['data']"]),
    ({"data": [[1.0]]}, ["'data' must be a numpy array or NDArray", "list"]),
    ({"data": np.zeros((2, 3), "f4")}, ["MXNet shape inference failed", "'data': (2, 3)"]),
    ({"data": np.zeros(SHAPE, "f4"), "conv0_weight": np.zeros((4, 3, 3, 3), "f4")}, ["'conv0_weight' is a parameter"]),
])
def test_bad_inputs_are_named(inputs: dict[str, Any], words: list[str]) -> None:
    sym = _net()
    with pytest.raises(InputError) as exc:
        debug.compare(sym, _params(sym, {"data": SHAPE}), inputs)
    for w in words:
        assert w in str(exc.value), str(exc.value)


def test_bad_options_are_named() -> None:
    sym = _net()
    params, data = _params(sym, {"data": SHAPE}), _data()
    with pytest.raises(InputError, match="tolerance"):
        debug.compare(sym, params, data, tolerance=-1)
    with pytest.raises(InputError, match="precision"):
        debug.compare(sym, params, data, precision="fp8")
    with pytest.raises(InputError, match="registry must be"):
        debug.compare(sym, params, data, registry={})
    nothing = debug.compare(sym, params, data, registry=Registry())  # converts nothing: all stays in MXNet
    assert nothing.engines == [] and nothing.first_bad is None
    assert {r.status for r in nothing.rows} == {"mxnet"}
    with pytest.raises(InputError, match=r"'data' has shape \(2, 3, 6, 6\), not the \(1, 3, 6, 6\) given"):
        debug.check_inputs(sym, params, data, {"data": (1, 3, 6, 6)})


@pytest.mark.parametrize("got, want, expect", [
    ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], (0.0, 0.0, 0)),
    ([1.0, 2.5, 3.0], [1.0, 2.0, 4.0], (1.0, 0.25, 0)),
    ([np.inf, 2.0, np.nan], [1.0, 2.0, 3.0], (0.0, 0.0, 2)),
    ([np.inf, 2.0], [np.inf, 2.0], (0.0, 0.0, 0)),  # MXNet's own inf: not counted
    ([1e-7, 0.0], [0.0, 0.0], (1e-7, 0.1, 0)),  # all-zero MXNet values: relative to 1e-6
])
def test_errors(got: list[float], want: list[float], expect: tuple[float, float, int]) -> None:
    max_abs, max_rel, nonfinite = debug.errors(np.array(got, "f4"), np.array(want, "f4"))
    assert (max_abs, max_rel, nonfinite) == pytest.approx(expect)


@pytest.mark.requires_engine
def test_tensorrt_engines_with_every_node_marked_pinpoint_the_broken_converter() -> None:
    sym = _net()
    params, data = _params(sym, {"data": SHAPE}), _data()
    clean = debug.compare(sym, params, data, runtime="tensorrt")
    assert clean.runtime == "tensorrt" and clean.first_bad is None, str(clean)
    rep = debug.compare(sym, params, data, runtime="tensorrt", registry=_broken("elemwise_add"))
    assert rep.first_bad.key == "add0", str(rep)
    assert all(not rep.bad(r) for r in _before(rep, "add0"))


def test_the_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "debugging.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- debugging-example:[^\n]*-->\n```python\n(.*?)\n```\n", text, re.S)
    assert m, "docs/debugging.md: the debugging-example marker must be followed by a ```python block"
    monkeypatch.chdir(tmp_path)
    exec(compile(m.group(1), "docs/debugging.md", "exec"), {})
    out = capsys.readouterr().out
    assert "no divergence: all" in out and "\nNone\n" in out, out
    assert (tmp_path / "resnet18-fp16.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "resnet18-fp16.json").read_text())["precision"] == "fp16"
