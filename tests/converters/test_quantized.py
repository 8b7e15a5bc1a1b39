"""MXNet's own int8 graphs (`mx.contrib.quantization.quantize_model`, non-fused path) convert to TensorRT Q/DQ and
give MXNet's quantized values: op by op bit-exactly against MXNet (MKLDNN) and independent NumPy, whole models
against MXNet's quantized execution and the float model; uncalibrated and uint8 nodes stay in MXNet with a reason.

MXNet runs its int8 ops on CPU only with MKLDNN (MXNET_MKLDNN_ENABLED=1), read when mxnet is imported: those runs
happen in one subprocess per module (`mkldnn`); the suite itself runs with MKLDNN off. MXNet's CPU quantized_conv
takes uint8 data only (int8 conv is cuDNN's): to run a converted int8 conv in MXNet, its data (non-negative there)
is cast to uint8, which MKLDNN convolves to the same int32 sums with the same range.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest

import mx2trt
from harness import assert_close, run_symbol
from mx2trt._mx import mx

f32 = np.float32
I32 = f32(2147483647)  # 2^31 in float32

# Runs symbols with MXNet's MKLDNN int8 kernels: jobs.json names them; <name>.json + <name>.npz in, <name>.out.npz
# (or <name>.err) out.
_RUNNER = r"""
import json, sys, numpy as np
from mx2trt._mx import mx
d = sys.argv[1]
for name in json.load(open(f"{d}/jobs.json")):
    sym, feeds = mx.sym.load(f"{d}/{name}.json"), np.load(f"{d}/{name}.npz")
    nd = lambda n: mx.nd.array(feeds[n], dtype=feeds[n].dtype)
    try:
        ex = sym.bind(mx.cpu(), {n: nd(n) for n in sym.list_arguments()},
                      aux_states={n: nd(n) for n in sym.list_auxiliary_states()}, grad_req="null")
        np.savez(f"{d}/{name}.out.npz", *[o.asnumpy() for o in ex.forward(is_train=False)])
    except mx.base.MXNetError as exc:
        open(f"{d}/{name}.err", "w").write(str(exc))
"""


def _f(v: float) -> np.ndarray:
    return np.array([v], f32)


def _var(name: str, dtype: Any = None) -> Any:
    return mx.sym.var(name, dtype=dtype) if dtype is not None else mx.sym.var(name)


# ---- one-node cases: (symbol, data inputs, params); ranges are params so they are known at conversion -------------


def _i8(rng: np.random.Generator, shape: tuple[int, ...], lo: int = -128) -> np.ndarray:
    return rng.integers(lo, 128, shape).astype(np.int8)


_NO_BIAS = ("data", "weight", "min_data", "max_data", "min_weight", "max_weight")


def _op(op: str, names: list[tuple[str, Any]], **attrs: Any) -> Any:
    """One node of `op` named 'node' on variables `names` ((name, dtype)); without bias, passed by MXNet's names."""
    if attrs.get("no_bias"):
        return getattr(mx.sym.contrib, op)(name="node", **{k: _var(n, d) for k, (n, d) in zip(_NO_BIAS, names)},
                                           **attrs)
    return getattr(mx.sym.contrib, op)(*[_var(n, d) for n, d in names], name="node", **attrs)


@functools.lru_cache(maxsize=None)
def _cases() -> dict[str, tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray]]]:
    rng = np.random.default_rng(7)
    A = f32(1.7)
    ties = ((np.arange(-130, 130) + 0.5) * (A / f32(127.5))).astype(f32)  # x*127.5/A lands on (or next to) .5
    x = np.concatenate([rng.normal(0, 1, 4000).astype(f32), ties, [0.0, 10.0, -10.0]]).astype(f32)
    rng_in = {"lo": _f(-0.8), "hi": _f(1.3)}
    cases = {
        "quantize_v2": (_op("quantize_v2", [("x", None)], out_type="int8", min_calib_range=-1.2,
                            max_calib_range=float(A)), {"x": x}, {}),
        "requantize": (_op("requantize", [("x", "int32"), ("lo", None), ("hi", None)], min_calib_range=-0.004,
                           max_calib_range=0.01),
                       {"x": np.concatenate([rng.integers(-2**31 + 1, 2**31 - 1, 3000),
                                             rng.integers(-99999, 99999, 3000)]).astype(np.int32)},
                       {"lo": _f(-50.0), "hi": _f(40.0)}),
        "dequantize": (_op("dequantize", [("x", "int8"), ("lo", None), ("hi", None)]),
                       {"x": np.arange(-128, 128).astype(np.int8)}, {"lo": _f(-0.3), "hi": _f(1.7)}),
        "relu": (_op("quantized_act", [("x", "int8"), ("lo", None), ("hi", None)], act_type="relu"),
                 {"x": _i8(rng, (2, 3, 5))}, rng_in),
        "flatten": (mx.sym.contrib.quantized_flatten(*_op("quantized_act", [("x", "int8"), ("lo", None), ("hi", None)],
                                                          act_type="relu"), name="node"),  # alone: no compute
                    {"x": _i8(rng, (2, 3, 4, 4))}, rng_in),
        "add": (_op("quantized_elemwise_add", [("a", "int8"), ("b", "int8"), ("la", None), ("ha", None),
                                               ("lb", None), ("hb", None)]),
                {"a": _i8(rng, (4, 997)), "b": _i8(rng, (4, 997))},  # a[0, 0] = b[0, 0] = -128 below: int32 saturates
                {"la": _f(-1.3), "ha": _f(0.9), "lb": _f(-0.1), "hb": _f(0.7)}),
        "add_calibrated": (_op("quantized_elemwise_add", [("a", "int8"), ("b", "int8"), ("la", None), ("ha", None),
                                                          ("lb", None), ("hb", None)],
                               min_calib_range=-1.0, max_calib_range=1.6),
                           {"a": np.repeat(np.arange(-128, 128), 256).astype(np.int8).reshape(256, 256),
                            "b": np.tile(np.arange(-128, 128), 256).astype(np.int8).reshape(256, 256)},
                           {"la": _f(-1.3), "ha": _f(1.3), "lb": _f(-0.7), "hb": _f(0.7)}),
    }
    cases["add"][1]["a"][0, 0] = cases["add"][1]["b"][0, 0] = -128
    pools = (("max", {}), ("avg", {"pad": (1, 1)}), ("avg_exclude", {"pad": (1, 1), "count_include_pad": False}))
    for pool, kw in pools:
        cases[f"pool_{pool}"] = (_op("quantized_pooling", [("x", "int8"), ("lo", None), ("hi", None)], kernel=(2, 2),
                                     stride=(2, 2), pool_type=pool[:3], **kw), {"x": _i8(rng, (2, 3, 8, 8))}, rng_in)
    c = 4
    bn = {"g": rng.uniform(0.5, 2, c).astype(f32), "be": rng.normal(0, 1, c).astype(f32),
          "mu": rng.normal(0, 1, c).astype(f32), "var": rng.uniform(0.5, 2, c).astype(f32)}
    for fix in (False, True):  # MXNet's int8 BatchNorm uses gamma even with fix_gamma
        sym = mx.sym.contrib.quantized_batch_norm(_var("x", "int8"), _var("g"), _var("be"), _var("mu"), _var("var"),
                                                  _var("lo"), _var("hi"), name="node", eps=0.1, fix_gamma=fix,
                                                  min_calib_range=-1.0, max_calib_range=3.0)
        cases[f"batch_norm_{fix}"] = (sym, {"x": _i8(rng, (2, c, 5, 5))}, {**bn, **rng_in})
    fc_in = [("x", "int8"), ("w", "int8"), ("b", "int8")] + [(n, None) for n in ("lx", "hx", "lw", "hw", "lb", "hb")]
    cases["fc"] = (_op("quantized_fully_connected", fc_in, num_hidden=255),
                   {"x": _i8(rng, (6, 40))}, {"w": _i8(rng, (255, 40), -127), "b": np.arange(-127, 128).astype(np.int8),
                                         "lx": _f(-1.3), "hx": _f(1.0), "lw": _f(-0.4), "hw": _f(0.3),
                                         "lb": _f(-3.0), "hb": _f(2.0)})
    cases["fc_4d"] = (_op("quantized_fully_connected", fc_in[:2] + fc_in[3:7], num_hidden=7, no_bias=True),
                      {"x": _i8(rng, (2, 3, 4, 4))}, {"w": _i8(rng, (7, 48), -127), "lx": _f(-1.3), "hx": _f(1.0),
                                                 "lw": _f(-0.4), "hw": _f(0.3)})
    conv_in = [("x", "int8"), ("w", "int8")] + [(n, None) for n in ("lx", "hx", "lw", "hw")]
    conv_params = {"w": _i8(rng, (5, 3, 3, 3), -127), "lx": _f(-1.3), "hx": _f(1.0), "lw": _f(-0.4), "hw": _f(0.3)}
    cases["conv"] = (_op("quantized_conv", conv_in, kernel=(3, 3), num_filter=5, pad=(1, 1), stride=(2, 1),
                         no_bias=True), {"x": _i8(rng, (2, 3, 7, 7), 0)}, conv_params)  # data >= 0: MXNet's CPU runs it
    for seed in range(3):  # random ranges: MXNet's float32 scale arithmetic, not round numbers
        r = lambda lo, hi: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # noqa: E731
        a, b, c_, d_ = r(0.01, 10), r(0.01, 10), r(0.01, 10), r(0.5, 2)
        x = rng.normal(0, a, 3000).astype(f32)
        cases[f"quantize_v2_{seed}"] = (_op("quantize_v2", [("x", None)], min_calib_range=-a * 0.7, max_calib_range=a),
                                        {"x": x}, {})
        cases[f"requantize_{seed}"] = (_op("requantize", [("x", "int32"), ("lo", None), ("hi", None)],
                                           min_calib_range=-c_ * 0.5, max_calib_range=c_),
                                       {"x": (rng.uniform(-0.3, 0.3, 3000) * 2**31).astype(np.int32)},
                                       {"lo": _f(-4 * c_), "hi": _f(3 * c_)})  # ±1.2 C
        add = [("a", "int8"), ("b", "int8")] + [(n, None) for n in ("la", "ha", "lb", "hb")]
        ranges = {"la": _f(-a), "ha": _f(a), "lb": _f(-b * 0.5), "hb": _f(b)}
        ab = {"a": _i8(rng, (3, 1000)), "b": _i8(rng, (3, 1000))}
        cases[f"add_{seed}"] = (_op("quantized_elemwise_add", add), ab, ranges)
        cases[f"add_calibrated_{seed}"] = (_op("quantized_elemwise_add", add, min_calib_range=-(a + b) * 0.6,
                                               max_calib_range=(a + b) * 0.5), ab, ranges)
        sym = mx.sym.contrib.quantized_batch_norm(_var("x", "int8"), _var("g"), _var("be"), _var("mu"), _var("var"),
                                                  _var("lo"), _var("hi"), name="node", eps=1e-5, fix_gamma=False,
                                                  min_calib_range=-2 * a - d_, max_calib_range=2 * a + 1)
        cases[f"batch_norm_{seed}"] = (sym, {"x": _i8(rng, (2, c, 5, 5))}, {**bn, "lo": _f(-a), "hi": _f(a * 0.3)})
        cases[f"fc_{seed}"] = (_op("quantized_fully_connected", fc_in, num_hidden=255),
                               {"x": _i8(rng, (6, 40))}, {"w": _i8(rng, (255, 40), -127),
                                                          "b": np.arange(-127, 128).astype(np.int8),
                                                          "lx": _f(-a), "hx": _f(a), "lw": _f(-b), "hw": _f(b),
                                                          "lb": _f(-c_), "hb": _f(c_)})
    return cases


def _as_uint8_data(sym: Any) -> Any:
    """`sym` with the data of every quantized_conv cast to uint8: MXNet's CPU conv takes uint8 data only, and
    convolves non-negative int8 values cast to uint8 exactly as int8 (same sums, same S8S8 range)."""
    g = json.loads(sym.tojson())
    nodes, remap, out = g["nodes"], {}, []
    for i, n in enumerate(nodes):
        n["inputs"] = [[remap[e[0]], e[1], e[2]] for e in n["inputs"]]
        if n["op"] == "_contrib_quantized_conv":
            cast = {"op": "Cast", "name": n["name"] + "_u8", "attrs": {"dtype": "uint8"}, "inputs": [n["inputs"][0]]}
            out.append(cast)
            n["inputs"][0] = [len(out) - 1, 0, 0]
        remap[i] = len(out)
        out.append(n)
    g["nodes"] = out
    g["arg_nodes"] = [i for i, n in enumerate(out) if n["op"] == "null"]
    g["heads"] = [[remap[e[0]], e[1], e[2]] for e in g["heads"]]
    g.pop("node_row_ptr", None)
    return mx.sym.load_json(json.dumps(g))


# ---- whole models --------------------------------------------------------------------------------------------------


def _conv_net() -> Any:
    """conv -> BN -> relu -> conv -> +skip -> relu -> maxpool -> flatten -> FC -> softmax (convs without bias)."""
    d = mx.sym.var("data")
    r1 = mx.sym.Activation(mx.sym.BatchNorm(mx.sym.Convolution(d, num_filter=8, kernel=(3, 3), pad=(1, 1),
                                                               no_bias=True, name="conv1"), fix_gamma=False,
                                            name="bn1"), act_type="relu", name="relu1")
    c2 = mx.sym.Convolution(r1, num_filter=8, kernel=(3, 3), pad=(1, 1), no_bias=True, name="conv2")
    r2 = mx.sym.Activation(mx.sym.elemwise_add(c2, r1, name="add"), act_type="relu", name="relu2")
    p = mx.sym.flatten(mx.sym.Pooling(r2, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool"), name="flatten")
    return mx.sym.softmax(mx.sym.FullyConnected(p, num_hidden=10, name="fc"), name="softmax")


def _fc_net() -> Any:
    """FC -> relu -> FC -> softmax."""
    h = mx.sym.Activation(mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=32, name="fc1"), act_type="relu",
                          name="relu1")
    return mx.sym.softmax(mx.sym.FullyConnected(h, num_hidden=10, name="fc2"), name="softmax")


def _params(sym: Any, shape: tuple[int, ...], seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=shape)
    args = {n: mx.nd.array(rng.normal(0, 0.3, s).astype(f32))
            for n, s in zip(sym.list_arguments(), arg_shapes) if n != "data"}
    aux = {n: mx.nd.array((rng.uniform(0.5, 1.5, s) if "var" in n else rng.normal(0, 0.1, s)).astype(f32))
           for n, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    return args, aux


MODELS: dict[str, tuple[Callable[[], Any], tuple[int, ...], str, str, Callable]] = {
    # name: (net, input shape, calib_mode, quantize_mode, data sampler); conv data >= 0 (see _as_uint8_data)
    "conv_naive": (_conv_net, (4, 3, 8, 8), "naive", "full", lambda r, s: r.uniform(0, 1, s)),
    "conv_entropy": (_conv_net, (4, 3, 8, 8), "entropy", "smart", lambda r, s: r.uniform(0, 1, s)),
    "fc_naive": (_fc_net, (4, 20), "naive", "full", lambda r, s: r.normal(0, 1, s)),
}


def _quantize(name: str, calib_mode: str | None = None, **kw: Any) -> tuple[Any, dict, Any, dict, np.ndarray]:
    """(float symbol, float params, quantized symbol with fc_dequantize as a second output, its params, data)."""
    net, shape, mode, qmode, sample = MODELS[name]
    sym = net()
    args, aux = _params(sym, shape, seed=len(name))
    rng = np.random.default_rng(1)
    calib = mx.io.NDArrayIter(data=sample(rng, (32,) + shape[1:]).astype(f32), batch_size=shape[0], label_name=None)
    options = dict(ctx=mx.cpu(), calib_mode=calib_mode or mode, calib_data=calib, num_calib_examples=32,
                   quantized_dtype="int8", quantize_mode=qmode, label_names=None)
    qsym, qarg, qaux = mx.contrib.quantization.quantize_model(sym, args, aux, **{**options, **kw})
    last = [o for o in qsym.get_internals().list_outputs() if o.endswith("_dequantize_output")][-1]
    qsym = mx.sym.Group([qsym, qsym.get_internals()[last]])
    fparams = {k: v.asnumpy() for k, v in {**args, **aux}.items()}
    return sym, fparams, qsym, {**qarg, **qaux}, sample(rng, shape).astype(f32)


@pytest.fixture(scope="module")
def mkldnn(tmp_path_factory: Any) -> dict[str, Any]:
    """Every one-node case and model run by MXNet with MKLDNN (one subprocess): name -> outputs, or the error."""
    d = tmp_path_factory.mktemp("mkldnn")
    jobs = {name: (_as_uint8_data(sym), {**data, **params}) for name, (sym, data, params) in _cases().items()}
    sym, data, params = _cases()["conv"]
    jobs["conv_int8_data"] = (sym, {**data, **params})  # as is: MXNet's CPU conv refuses int8 data
    models = {}
    for name in MODELS:
        models[name] = _quantize(name)
        _, _, qsym, qparams, x = models[name]
        run = _as_uint8_data(qsym) if name.startswith("conv") else qsym
        jobs[name] = (run, {"data": x, **{k: v.asnumpy() for k, v in qparams.items()}})
    for name, (sym, feeds) in jobs.items():
        sym.save(str(d / f"{name}.json"))
        np.savez(d / f"{name}.npz", **feeds)
    (d / "jobs.json").write_text(json.dumps(list(jobs)))
    env = dict(os.environ, MXNET_MKLDNN_ENABLED="1", MXNET_SUBGRAPH_BACKEND="NONE")
    subprocess.run([sys.executable, "-c", _RUNNER, str(d)], env=env, check=True, capture_output=True, timeout=120)
    out: dict[str, Any] = {"models": models}
    for name in jobs:
        err = d / f"{name}.err"
        if err.exists():
            out[name] = err.read_text()
        else:
            z = np.load(d / f"{name}.out.npz")
            out[name] = [z[f"arr_{i}"] for i in range(len(z.files))]
    return out


def _convert(sym: Any, data: dict[str, np.ndarray], params: dict[str, Any], **kw: Any) -> mx2trt.Conversion:
    nd = {k: v if isinstance(v, mx.nd.NDArray) else mx.nd.array(v, dtype=v.dtype) for k, v in params.items()}
    return mx2trt.convert(sym, nd, {k: v.shape for k, v in data.items()}, dtypes={k: v.dtype for k, v in data.items()},
                          runtime="reference", cache=False, **kw)


def _run(c: mx2trt.Conversion, data: dict[str, np.ndarray]) -> list[np.ndarray]:
    return run_symbol(c.symbol, {**data, **{k: v.asnumpy() for k, v in c.params.items()}})


# ---- one op at a time ----------------------------------------------------------------------------------------------


def _numpy_reference(name: str, data: dict, p: dict) -> np.ndarray | None:
    """MXNet's arithmetic written out in NumPy (independent of the converter), where it is short."""
    amax = lambda lo, hi: f32(max(abs(f32(lo[0])), abs(f32(hi[0]))))  # noqa: E731
    if name == "quantize_v2":
        return np.clip(np.rint(data["x"] * (f32(127.5) / f32(1.7))), -128, 127).astype(np.int8)
    if name == "requantize":
        scale = f32(amax(p["lo"], p["hi"]) / I32) * f32(f32(127) / f32(0.01))
        return np.clip(np.rint(data["x"].astype(f32) * scale), -128, 127).astype(np.int8)
    if name == "dequantize":
        return data["x"].astype(f32) * (f32(1.7) / f32(127.5))
    if name == "fc":
        acc = data["x"].astype(np.int64) @ p["w"].astype(np.int64).T
        rescale = f32(f32(f32(f32(127.5) / f32(1.3)) * f32(f32(127.5) / f32(0.4))) * f32(3.0)) / f32(127.5)
        bias = np.trunc(p["b"].astype(f32) * rescale)
        return (acc + bias.astype(np.int64)).astype(np.int32)
    if name == "relu":
        return np.maximum(data["x"], 0)
    if name == "pool_avg":  # the mean of each window, padding counted, rounded half to even
        x = np.pad(data["x"].astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        return np.rint(x.reshape(2, 3, 5, 2, 5, 2).mean((3, 5))).astype(np.int8)
    if name in ("add", "add_calibrated"):
        a, b = amax(p["la"], p["ha"]), amax(p["lb"], p["hb"])
        if name == "add":  # int32 in levels of (A+B)/2^31, float32 products and sum, saturated
            sa, sb = (f32(v * I32) / f32(f32(a + b) * f32(127.5)) for v in (a, b))
            y = data["a"].astype(f32) * sa + data["b"].astype(f32) * sb
            return np.clip(np.rint(y), -2.0**31, 2**31 - 1).astype(np.int32)
        out = f32(127.5) / f32(1.6)  # calibrated: int8 in levels of C/127.5
        y = data["a"].astype(f32) * (out / (f32(127.5) / a)) + data["b"].astype(f32) * (out / (f32(127.5) / b))
        return np.clip(np.rint(y), -128, 127).astype(np.int8)
    if name in ("batch_norm_False", "batch_norm_True"):  # gamma used even with fix_gamma; MKLDNN divides by sqrt(1 + eps) once more
        invstd = (1 / np.sqrt(p["var"].astype(np.float64) + 0.1)).astype(f32)
        scale = p["g"] * invstd * f32(1.3) / f32(3.0) * f32(1 / np.sqrt(1.1))
        shift = (p["be"] - p["mu"] * p["g"] * invstd) * f32(127.5) / f32(3.0)
        y = data["x"].astype(f32) * scale[:, None, None] + shift[:, None, None]
        return np.clip(np.rint(y), -128, 127).astype(np.int8)
    return None


@pytest.mark.parametrize("name", sorted(_cases()))
def test_op_is_bit_exact(mkldnn: dict, name: str) -> None:
    """Each int8 op converts into the engine and gives MXNet's (MKLDNN) outputs exactly, ranges included."""
    sym, data, params = _cases()[name]
    c = _convert(sym, data, params)
    assert c.report.row("node").placement != "mxnet", c.report.row("node").reason
    got, want = _run(c, data), mkldnn[name]
    assert isinstance(want, list), want
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, (k, g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_array_equal(g, w, err_msg=f"{name} output {k}")
        if g.dtype == np.int8 and name[-1].isdigit():  # random ranges exercise the scale: not flat, not saturated
            assert len(np.unique(g)) > 20 and np.mean(np.abs(g.astype(int)) >= 127) < 0.4, name
    ref = _numpy_reference(name, data, params)
    if ref is not None:
        np.testing.assert_array_equal(want[0], ref)


def test_int8_conv_bias_follows_mxnet_gpu() -> None:
    """quantized_conv with bias on int8 data (MXNet runs that on GPU only): int32 sums plus qb * (Ab/127) in units
    of the output range, R = (Ax/127)(Aw/127)(2^31-1); MXNet's GPU truncates the float result to int32."""
    sym, data, params = _cases()["conv"]
    names = [("x", "int8"), ("w", "int8"), ("b", "int8")] + [(n, None) for n in ("lx", "hx", "lw", "hw", "lb", "hb")]
    sym = _op("quantized_conv", names, kernel=(3, 3), num_filter=5, pad=(1, 1), stride=(2, 1))
    rng = np.random.default_rng(3)
    x = _i8(rng, (2, 3, 7, 7))
    p = {**params, "b": np.array([-127, -3, 0, 50, 127], np.int8), "lb": _f(-0.02), "hb": _f(0.05)}
    c = _convert(sym, {"x": x}, p)
    got, lo, hi = _run(c, {"x": x})
    acc = np.zeros(got.shape, np.int64)
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    for i in range(got.shape[2]):
        for j in range(got.shape[3]):
            acc[:, :, i, j] = np.einsum("nchw,kchw->nk", xp[:, :, 2 * i:2 * i + 3, j:j + 3], p["w"].astype(np.int64))
    bound = f32(f32(f32(1.3) / f32(127)) * f32(f32(0.4) / f32(127))) * I32
    f_out, f_b = np.float64(f32(bound / I32)), np.float64(f32(0.05) / f32(127))
    want = np.trunc((acc * f_out + p["b"].astype(np.float64)[None, :, None, None] * f_b) / f_out)
    assert np.abs(got - want).max() <= 1
    assert lo[0] == -bound and hi[0] == bound


def test_mxnet_cpu_conv_takes_uint8_data_only(mkldnn: dict) -> None:
    """Why the models' convs run in MXNet with uint8 data: MKLDNN's quantized_conv refuses int8 data."""
    assert "only supports uint8 as input type" in mkldnn["conv_int8_data"]


# ---- whole models --------------------------------------------------------------------------------------------------

# Measured (3 models): the dequantized int8 logits equal MXNet's quantized run exactly (max |Δ| 0; in an fp16 engine,
# MXNet's rounded to fp16 once); the softmax after them agrees to 1.2e-7 (fp16: 1.1e-4). Against the float model,
# the quantization error itself: 0.022-0.062 of max |logit| (softmax 0.007-0.024 absolute).
FLOAT_RTOL = 0.15


# precision='int8' on a graph MXNet quantized needs no table: its own int8 ops convert, the rest runs in fp16.
@pytest.mark.parametrize("name, precision", [(m, "fp32") for m in sorted(MODELS)]
                         + [("conv_naive", "fp16"), ("conv_naive", "int8")])
def test_quantized_model_matches_mxnet(mkldnn: dict, name: str, precision: str) -> None:
    """Every int8 node of a quantize_model graph runs in one engine; outputs match MXNet's quantized run (the int8
    core exactly, an fp16 engine's float softmax to fp16) and the float model up to quantization error."""
    sym, fparams, qsym, qparams, x = mkldnn["models"][name]
    c = _convert(qsym, {"data": x}, qparams, precision=precision)
    assert len(c.engines) == 1, c.report.summary()
    for row in c.report.rows:
        assert row.placement != "mxnet", f"{row.node}: {row.reason}"
    for step in c.engines[0].program.steps:  # one int8 kernel each: the layer reads the int8 tensors and scales
        if step.kind in ("CONVOLUTION", "MATRIX_MULTIPLY"):
            assert len(step.inputs) == 4, f"{step.name} computes on dequantized values (not fused)"
    softmax, logits = _run(c, {"data": x})
    want_softmax, want_logits = mkldnn[name]
    if precision == "fp32":
        np.testing.assert_array_equal(logits, want_logits)
        assert_close(softmax, want_softmax, 1e-6, "softmax vs MXNet quantized")
    else:  # the int8 core is exact: the dequantized logits are MXNet's rounded to fp16 once
        np.testing.assert_array_equal(logits, want_logits.astype(np.float16).astype(f32))
        assert_close(softmax, want_softmax, 2e-3, "fp16 softmax vs MXNet quantized")
    float_logits = run_symbol(sym.get_internals()[[o for o in sym.get_internals().list_outputs()
                                                   if o.endswith("fc_output") or o.endswith("fc2_output")][0]],
                              {"data": x, **fparams})[0]
    assert_close(logits, float_logits, FLOAT_RTOL, "logits vs the float model")


# ---- what stays in MXNet -------------------------------------------------------------------------------------------


def test_uncalibrated_nodes_stay_in_mxnet() -> None:
    """calib_mode='none': quantize_v2 and requantize compute their ranges from the data at run time; they stay in
    MXNet with that reason, and so do the nodes whose input ranges they compute."""
    sym, _, qsym, qparams, x = _quantize("fc_naive", calib_mode="none", calib_data=None)
    c = _convert(qsym, {"data": x}, qparams)
    reasons = {r.node: r.reason for r in c.report.rows if r.placement == "mxnet"}
    assert reasons["data_quantize"] == ("_contrib_quantize_v2 'data_quantize' has no calibrated range (MXNet computes "
                                        "it from the data at run time)")
    assert reasons["requantize_fc1"] == ("_contrib_requantize 'requantize_fc1' has no calibrated range (MXNet "
                                         "computes it from the data at run time)")
    assert "computed at run time" in reasons["quantized_fc1"]


def test_uint8_stays_in_mxnet() -> None:
    """out_type 'auto' with a range >= 0 (or 'uint8') makes uint8, which has no TensorRT Q."""
    for attrs in ({"out_type": "auto", "min_calib_range": 0.0, "max_calib_range": 2.0},
                  {"out_type": "uint8", "min_calib_range": -1.0, "max_calib_range": 2.0}):
        sym = mx.sym.contrib.quantize_v2(mx.sym.var("x"), name="node", **attrs)
        sym = mx.sym.contrib.dequantize(sym[0], sym[1], sym[2], name="dq")
        c = _convert(sym, {"x": np.ones((2, 3), f32)}, {})
        reasons = {r.node: r.reason for r in c.report.rows}
        assert "uint8 output" in reasons["node"] and "has no TensorRT Q" in reasons["node"], reasons
        assert "uint8 input" in reasons["dq"], reasons
