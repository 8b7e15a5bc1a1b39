"""Calibration statistics (mx2trt.calibration): amax per quantizable tensor, checked against independent NumPy."""
from __future__ import annotations

import dataclasses
import json
import logging
import math

import numpy as np
import pytest

from mx2trt._mx import mx
from mx2trt.calibration import CalibrationTable, _Histogram, calibrate, entropy_amax, graph_hash
from mx2trt.errors import InputError
from mx2trt.registry import REGISTRY, Registry

SHAPES = {"data": (4, 3, 8, 8)}


def private_registry(**quantize: tuple[int, ...]) -> Registry:
    """REGISTRY's specs of the given ops, with `quantize` set."""
    reg = Registry()
    for op, q in quantize.items():
        reg.register(dataclasses.replace(REGISTRY.get(op), quantize=q))
    return reg


REG = private_registry(Convolution=(0,), FullyConnected=(0,), dot=(0, 1), batch_dot=(0, 1))


def conv_relu_fc(num_hidden: int = 5):
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, name="conv0")
    relu = mx.sym.relu(conv, name="relu0")
    fc = mx.sym.FullyConnected(relu, num_hidden=num_hidden, name="fc0")
    rng = np.random.default_rng(1)
    params = {
        "conv0_weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "conv0_bias": rng.standard_normal(4).astype(np.float32),
        "fc0_weight": rng.standard_normal((num_hidden, 144)).astype(np.float32),
        "fc0_bias": np.zeros(num_hidden, np.float32),
    }
    return fc, params


def dense(features: int = 64):
    """A FullyConnected straight on the data: its only calibrated tensor is the data itself."""
    fc = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2, name="fc0")
    return fc, {"fc0_weight": np.ones((2, features), np.float32), "fc0_bias": np.zeros(2, np.float32)}


def two_inputs():
    return mx.sym.dot(mx.sym.var("a"), mx.sym.var("b"), name="dot0"), {"a": (3, 4), "b": (4, 5)}


def samples(n: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)


def mxnet_abs_max(sym, params, name: str, batches) -> float:
    """Largest |x| of internal tensor `name` over `batches`, run separately in MXNet."""
    out = sym.get_internals()[name]
    best = 0.0
    for x in batches:
        args = {k: mx.nd.array(v) for k, v in params.items() if k in out.list_arguments()}
        args["data"] = mx.nd.array(x)
        ex = out.bind(mx.cpu(), args, grad_req="null")
        best = max(best, float(np.abs(ex.forward(is_train=False)[0].asnumpy()).max()))
    return best


# ---- methods ---------------------------------------------------------------------------------------------------------


def test_max_is_the_abs_max_over_all_batches_of_each_quantizable_input():
    sym, params = conv_relu_fc()
    x = samples(10)
    batches = [x[0:4], x[4:8] * 3.0, x[8:10]]  # the largest values in the middle batch; the last one is smaller
    t = calibrate(sym, params, SHAPES, batches, registry=REG, progress=False)
    assert set(t.amax) == {"data", "relu0_output"}  # conv's input and fc's input; their weights are parameters
    assert t.amax["data"] == pytest.approx(float(np.abs(x[4:8] * 3.0).max()), rel=1e-7)
    assert t.amax["relu0_output"] == pytest.approx(mxnet_abs_max(sym, params, "relu0_output", batches), rel=1e-6)
    assert t.batches == 3 and t.method == "max" and t.params == {}
    assert t.amax_of("relu0_output") == t.amax["relu0_output"] and t.amax_of("conv0_output") is None


@pytest.mark.parametrize("pct", [50.0, 99.0, 99.99])
@pytest.mark.parametrize("num_bins", [128, 2048])
@pytest.mark.parametrize("scales", [(1.0,), (0.001, 1.0, 0.5, 4.0)])
def test_percentile_is_within_one_bin_of_numpy(pct, num_bins, scales):
    rng = np.random.default_rng(2)
    # With several batches the first is narrow, so later ones grow the histogram (and merge its bins).
    batches = [rng.standard_normal((64, 64)).astype(np.float32) * s for s in scales]
    sym, params = dense()
    t = calibrate(sym, params, {"data": (64, 64)}, batches, method="percentile", percentile=pct,
                  num_bins=num_bins, registry=REG, progress=False)
    a = np.abs(np.concatenate([b.ravel() for b in batches]))
    # One bin of the final histogram's width; one batch of dense data comes much closer (not a promise).
    tol = a.max() / num_bins / (2 if len(batches) == 1 else 1)
    assert abs(t.amax["data"] - np.percentile(a, pct)) <= tol
    assert t.params == {"percentile": pct, "num_bins": num_bins}


def test_histogram_grows_by_whole_bins_and_merges_exactly():
    rng = np.random.default_rng(8)
    h = _Histogram(128)
    parts = [np.abs(rng.standard_normal(5000)) * s for s in (1.0, 3.0, 0.5, 2000.0)]
    for a in parts:
        h.add(a, float(a.max()))
    counts, width = h.fine(max(float(a.max()) for a in parts))
    assert 16 * 128 < len(counts) <= 32 * 128  # grown 2000x, merged in pairs down to at most 32x num_bins
    both = np.concatenate(parts)
    idx = np.minimum((both / width).astype(np.int64), len(counts) - 1)
    exact = np.bincount(idx, minlength=len(counts))
    # Every value in its own bin, but for the odd one on a bin edge that rounding puts into the neighbour.
    assert np.abs(np.cumsum(counts) - np.cumsum(exact)).max() <= 2 and np.abs(counts - exact).sum() <= 6
    assert counts.sum() == both.size


def test_percentile_100_is_the_max():
    sym, params = dense()
    batches = [np.random.default_rng(3).standard_normal((8, 64)).astype(np.float32)]
    t = calibrate(sym, params, {"data": (8, 64)}, batches, method="percentile", percentile=100, registry=REG,
                  progress=False)
    assert t.amax["data"] == pytest.approx(float(np.abs(batches[0]).max()), rel=1e-7)


def gaussian_with_outliers(n: int, outliers: list[float], seed: int = 4) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    x[: len(outliers)] = outliers
    return x.reshape(-1, 64)


def reference_entropy(hist: np.ndarray, width: float, levels: int = 128, start: int = 128) -> float:
    """TensorRT's legacy entropy calibration written out level by level, for comparison."""
    best, best_i = math.inf, len(hist)
    for i in range(start, len(hist) + 1):
        p = hist[:i].astype(np.float64)
        p[-1] += hist[i:].sum()
        q = np.zeros(i)
        for lev in range(levels):
            lo, hi = -(-lev * i // levels), -(-(lev + 1) * i // levels)  # bins j with j * levels // i == lev
            part = hist[lo:hi]
            used = np.count_nonzero(part)
            if used:
                q[lo:hi] = np.where(part > 0, part.sum() / used, 0.0)
        p, q = p / p.sum(), q / q.sum()
        kl = 0.0
        for pj, qj in zip(p, q):
            if pj > 0:
                kl = math.inf if qj == 0 else kl + pj * math.log(pj / qj)
        if kl < best:
            best, best_i = kl, i
    return best_i * width


def test_entropy_agrees_with_a_reference_implementation():
    x = np.abs(gaussian_with_outliers(64 * 1000, [8.0, -7.5, 7.0]))
    hist, edges = np.histogram(x, bins=512, range=(0, x.max()))  # candidates from bin 128: 2.0 up
    got = entropy_amax(hist, edges[1])
    assert got == pytest.approx(reference_entropy(hist, edges[1]), rel=1e-12)
    assert 2.0 < got < 6.0


def test_entropy_clips_outliers():
    x = gaussian_with_outliers(64 * 3000, [30.0, -25.0, 28.0, -22.0, 26.0])
    batches = [x[:1000], x[1000:2000], x[2000:]]
    sym, params = dense()
    t = calibrate(sym, params, {"data": (1000, 64)}, batches, method="entropy", registry=REG, progress=False)
    amax = t.amax["data"]
    assert 2.0 < amax < 30.0 / 4, amax
    hist, edges = np.histogram(np.abs(x), bins=2048, range=(0, 30.0))  # one histogram of everything
    assert amax == pytest.approx(entropy_amax(hist, edges[1]), abs=2 * edges[1])


def test_entropy_keeps_images_of_few_levels():
    """Pixels of 17 levels (k/16) and many zeros, like the digits images: zeros count as in TensorRT's calibrator, so
    clipping at the first non-empty bin is not free (without them every value would clip to 1/16)."""
    rng = np.random.default_rng(3)
    x = np.where(rng.random(64 * 500) < 0.5, 0.0, rng.integers(1, 17, 64 * 500) / 16.0).astype(np.float32)
    sym, params = dense()
    t = calibrate(sym, params, {"data": (500, 64)}, [x.reshape(500, 64)], method="entropy", registry=REG,
                  progress=False)
    assert 0.5 <= t.amax["data"] <= 1.0, t.amax


def int8_mse(x: np.ndarray, amax: float) -> float:
    s = amax / 127
    return float(np.sum((x - np.clip(np.rint(x / s), -127, 127) * s) ** 2))


def test_mse_minimises_the_quantisation_error():
    x = gaussian_with_outliers(64 * 3000, [40.0])
    batches = [x[:1500], x[1500:]]
    sym, params = dense()
    t = calibrate(sym, params, {"data": (1500, 64)}, batches, method="mse", registry=REG, progress=False)
    amax = t.amax["data"]
    assert 2.0 < amax < 40.0 * 0.6, amax
    grid = np.linspace(3.0, 40.0, 75)
    errors = [int8_mse(x, a) for a in grid]
    assert int8_mse(x, amax) <= 1.01 * min(errors)
    assert int8_mse(x, amax) < 0.8 * int8_mse(x, 40.0)  # clipping the outlier pays


@pytest.mark.parametrize("method", ["max", "percentile", "entropy", "mse"])
def test_all_zero_tensor_gets_amax_zero(method):
    sym, params = conv_relu_fc()
    params = {**params, "conv0_bias": np.zeros(4, np.float32)}
    t = calibrate(sym, params, SHAPES, [np.zeros((4, 3, 8, 8), np.float32)] * 2, method=method, registry=REG,
                  progress=False)
    assert t.amax == {"data": 0.0, "relu0_output": 0.0}


# ---- data kinds ------------------------------------------------------------------------------------------------------


def test_every_kind_of_data_gives_the_same_table():
    from mxnet import gluon

    sym, params = conv_relu_fc()
    x, y = samples(10), np.arange(10, dtype=np.float32)
    chunks = [x[0:4], x[4:8], x[8:10]]  # the last batch is smaller: the model is bound again
    kinds = {
        "ndarrayiter": mx.io.NDArrayIter(x, y, batch_size=4),  # pads its last batch: the padding is dropped
        "ndarrayiter_dict": mx.io.NDArrayIter({"data": x}, batch_size=4, last_batch_handle="pad"),
        "dataloader": gluon.data.DataLoader(gluon.data.ArrayDataset(x, y), batch_size=4),  # (data, label) items
        "numpy": chunks,
        "ndarray": [mx.nd.array(c) for c in chunks],
        "dicts": [{"data": c} for c in chunks],
        "tuples": [(c, np.zeros(len(c))) for c in chunks],
        "generator": (c for c in chunks),
        "databatch": [mx.io.DataBatch([mx.nd.array(c)]) for c in chunks],
    }
    tables = {k: calibrate(sym, params, SHAPES, d, method="percentile", percentile=90, registry=REG, progress=False)
              for k, d in kinds.items()}
    first = tables["numpy"]
    assert first.batches == 3
    for kind, t in tables.items():
        assert t == first, kind
    assert first.amax["relu0_output"] > 0


def test_a_data_iter_is_reset_first():
    sym, params = conv_relu_fc()
    it = mx.io.NDArrayIter(samples(8), batch_size=4)
    for _ in it:
        pass
    assert calibrate(sym, params, SHAPES, it, registry=REG, progress=False).batches == 2


def test_two_data_inputs_by_dict_and_by_tuple():
    sym, shapes = two_inputs()
    rng = np.random.default_rng(5)
    a = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)]
    b = [rng.standard_normal((4, 5)).astype(np.float32) * 2 for _ in range(3)]
    by_dict = calibrate(sym, {}, shapes, [{"b": bb, "a": aa} for aa, bb in zip(a, b)], registry=REG, progress=False)
    by_tuple = calibrate(sym, {}, shapes, list(zip(a, b)), registry=REG, progress=False)
    assert by_dict == by_tuple
    assert by_dict.amax == pytest.approx({"a": float(np.abs(a).max()), "b": float(np.abs(b).max())}, rel=1e-7)


def test_batches_limits_the_data_seen():
    sym, params = dense()
    rng = np.random.default_rng(6)
    data = [rng.standard_normal((2, 64)).astype(np.float32) for _ in range(4)]
    data[2] *= 100
    t = calibrate(sym, params, {"data": (2, 64)}, iter(data), batches=2, registry=REG, progress=False)
    assert t.batches == 2
    assert t.amax["data"] == pytest.approx(float(np.abs(data[:2]).max()), rel=1e-7)


def test_folded_constants_are_not_calibrated():
    w = mx.sym.var("w")
    sym = mx.sym.dot(mx.sym.var("data"), w * 2, name="dot0")  # w * 2 is folded into a parameter
    x = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)
    t = calibrate(sym, {"w": np.ones((4, 2), np.float32)}, {"data": (3, 4)}, [x], registry=REG, progress=False)
    assert t.amax == pytest.approx({"data": float(np.abs(x).max())}, rel=1e-7)
    only_first = private_registry(dot=(0,))
    sym = mx.sym.dot(w * 2, mx.sym.var("data"), name="dot0")
    with pytest.raises(InputError, match="nothing to calibrate"):
        calibrate(sym, {"w": np.ones((3, 3), np.float32)}, {"data": (3, 4)}, [x], registry=only_first, progress=False)


def test_progress_log_lines_bar_and_quiet(caplog, capsys):
    sym, params = dense()
    data = [np.ones((2, 64), np.float32)] * 3
    with caplog.at_level(logging.INFO, logger="mx2trt"):
        calibrate(sym, params, {"data": (2, 64)}, data, registry=REG, progress=None)  # stderr is no terminal here
    assert "calibration: batch 2/3" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mx2trt"):
        calibrate(sym, params, {"data": (2, 64)}, data, registry=REG, progress=False)
    assert "calibration: batch" not in caplog.text
    calibrate(sym, params, {"data": (2, 64)}, data, registry=REG, progress=True)
    assert "calibration" in capsys.readouterr().err


# ---- the table -------------------------------------------------------------------------------------------------------


def table(method: str = "percentile") -> CalibrationTable:
    sym, params = conv_relu_fc()
    return calibrate(sym, params, SHAPES, [samples(4)], method=method, registry=REG, progress=False)


def test_save_load_round_trip(tmp_path):
    t = table()
    path = tmp_path / "calib.json"
    t.save(path)
    js = json.loads(path.read_text())
    assert js["format"] == 1 and list(js) == sorted(js)
    back = CalibrationTable.load(str(path))
    assert back == t and back.digest() == t.digest()
    assert back.created_by.startswith("mx2trt")


def test_digest_follows_amax_and_method_only():
    t = table()
    bumped = dataclasses.replace(t, amax={**t.amax, "data": t.amax["data"] * (1 + 1e-6)})
    assert bumped.digest() != t.digest()
    assert dataclasses.replace(t, method="max").digest() != t.digest()
    assert dataclasses.replace(t, batches=7, created_by="someone").digest() == t.digest()


def test_check_accepts_the_same_model_and_refuses_another():
    t = table()
    t.check(conv_relu_fc()[0])  # built again: same structure
    t.check(mx.sym.load_json(conv_relu_fc()[0].tojson()))
    refused = r"calibration table was made for another model \(graph hash \w+, this model \w+\)"
    with pytest.raises(InputError, match=refused):
        t.check(conv_relu_fc(num_hidden=6)[0])
    assert graph_hash(conv_relu_fc()[0]) != graph_hash(two_inputs()[0])


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"format": 2}', "format 2 is not 1"),
    ('{"format": 1, "method": "max"}', r"missing field\(s\) \['graph_hash'"),
    ('{"format": 1, "method": "max", "graph_hash": "x", "amax": {"a": -1}, "batches": 1, "params": {}, '
     '"created_by": "me"}', "finite numbers >= 0"),
])
def test_load_refuses_bad_files(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=f"calibration table .*bad.json.*{words}"):
        CalibrationTable.load(path)


def test_load_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(InputError, match="nope.json: cannot read it"):
        CalibrationTable.load(tmp_path / "nope.json")


# ---- bad input -------------------------------------------------------------------------------------------------------


def bad(match: str, data=None, sym_params=None, shapes=None, **options) -> None:
    sym, params = sym_params or conv_relu_fc()
    with pytest.raises(InputError, match=match):
        calibrate(sym, params, shapes or SHAPES, [samples(4)] if data is None else data,
                  **{"registry": REG, "progress": False, **options})


@pytest.mark.parametrize("options, match", [
    ({"method": "kl"}, "method must be one of"),
    ({"method": "percentile", "percentile": 0}, r"percentile must be a number in \(0, 100\], not 0"),
    ({"method": "percentile", "percentile": 100.5}, "percentile must be a number"),
    ({"percentile": True}, "percentile must be a number"),
    ({"method": "entropy", "num_bins": 127}, "num_bins must be at least 128 for method 'entropy'"),
    ({"method": "mse", "num_bins": 64}, "num_bins must be at least 128 for method 'mse'"),
    ({"num_bins": 0}, "num_bins must be an integer of at least 1"),
    ({"batches": 0}, "batches must be an integer of at least 1"),
    ({"batches": 1.5}, "batches must be an integer"),
    ({"progress": "yes"}, "progress must be"),
    ({"registry": {}}, "registry must be an mx2trt Registry"),
])
def test_bad_options(options, match):
    bad(match, **options)


def test_few_bins_are_fine_for_percentile():
    sym, params = conv_relu_fc()
    calibrate(sym, params, SHAPES, [samples(4)], method="percentile", num_bins=16, registry=REG, progress=False)


def test_no_data():
    bad("no calibration data: the iterator gave no batch", data=[])
    gen = (x for x in [samples(4)])
    next(gen)
    bad("no calibration data: the iterator gave no batch", data=gen)


@pytest.mark.parametrize("data, match", [
    (42, "data must be an mx.io.DataIter, a Gluon DataLoader or an iterable of batches, not int"),
    ("data", "data must be"),
    (np.zeros((4, 3, 8, 8), np.float32), r"data is one array.*\[array\]"),
    ({"data": np.zeros((4, 3, 8, 8))}, "data is one dict"),
    (["text"], "calibration batch 0 is a str"),
    ([[[1.0, 2.0]]], "calibration batch 0: input 'data' is a list, not an NDArray or numpy array"),
])
def test_bad_data(data, match):
    bad(match, data=data)


def test_wrong_shape_names_input_batch_and_shapes():
    ok = samples(4)
    bad(r"calibration batch 1: input 'data' has shape \(4, 3, 9, 8\), expected \(N, 3, 8, 8\)",
        data=[ok, np.zeros((4, 3, 9, 8), np.float32)])
    bad(r"calibration batch 0: input 'data' has shape \(3, 8, 8\), expected \(N, 3, 8, 8\)", data=[ok[0]])
    bad(r"input 'data' is empty", data=[ok[:0]])


def test_non_numeric_dtype():
    bad(r"calibration batch 0: input 'data' has dtype <U1, not a numeric dtype",
        data=[np.full((4, 3, 8, 8), "a")])
    bad("has dtype complex64, not a numeric dtype", data=[samples(4).astype(np.complex64)])


def test_nan_or_inf_in_data_names_input_and_batch():
    x = samples(4)
    x[1, 2, 3, 4] = np.nan
    bad("calibration batch 1: input 'data' contains NaN or Inf", data=[samples(4), x])
    bad(r"input 'data' contains NaN or Inf \(as float32\)", data=[np.full((4, 3, 8, 8), 1e300)])


def test_nan_in_an_internal_tensor_names_it():
    log_fc = mx.sym.FullyConnected(mx.sym.log(mx.sym.var("data"), name="log0"), num_hidden=2, name="fc0")
    params = {"fc0_weight": np.ones((2, 4), np.float32), "fc0_bias": np.zeros(2, np.float32)}
    bad("calibration batch 0: tensor 'log0_output' has NaN or Inf", data=[-np.ones((2, 4), np.float32)],
        sym_params=(log_fc, params), shapes={"data": (2, 4)})


def test_bad_batches_of_a_two_input_model():
    sym, shapes = two_inputs()
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    for data, match in [
        ([{"a": a}], r"calibration batch 0 has no \['b'\]"),
        ([{"a": a, "b": b, "c": b}], r"calibration batch 0: \['c'\] is not a data input of the model"),
        ([(a,)], r"calibration batch 0 has 1 item\(s\) but the model has 2 data inputs \['a', 'b'\]"),
        ([a], "calibration batch 0 is one array but the model has 2 data inputs"),
    ]:
        bad(match, data=data, sym_params=(sym, {}), shapes=shapes)


def test_nothing_to_calibrate():
    relu = mx.sym.relu(mx.sym.var("data"), name="relu0")
    for registry in (REG, None):  # no op of this model is ever quantized
        bad("nothing to calibrate: the model has no input of a quantizable op", sym_params=(relu, {}),
            registry=registry)
    sym, params = conv_relu_fc()
    bad(r"nothing to calibrate.*no op in the registry has quantize inputs", registry=Registry())


def test_bad_model_arguments_are_input_errors():
    sym, params = conv_relu_fc()
    bad("expected an mxnet Symbol", sym_params=("sym", params))
    bad(r"no value for \['fc0_weight'\]", sym_params=(sym, {k: v for k, v in params.items() if k != "fc0_weight"}))
    bad("shapes: 'data' must be a tuple", shapes={"data": 4})


def test_entropy_of_a_relu_output_is_near_mxnets_own():
    """Half zeros and a long tail (a ReLU after a convolution): MXNet's own entropy calibration
    (contrib.quantization._get_optimal_threshold, over a signed 8001-bin histogram) is the independent reference."""
    from mxnet.contrib import quantization

    rng = np.random.default_rng(5)
    x = np.maximum(rng.standard_normal(64 * 2000) * np.exp(rng.standard_normal(64 * 2000) * 0.5), 0)
    x = x.astype(np.float32).reshape(2000, 64)
    sym, params = dense()
    t = calibrate(sym, params, {"data": (2000, 64)}, [x], method="entropy", registry=REG, progress=False)
    th = float(np.abs(x).max())
    hist, edges = np.histogram(x, bins=8001, range=(-th, th))
    theirs = float(quantization._get_optimal_threshold((hist, edges, x.min(), x.max(), th), "int8")[2])
    assert t.amax["data"] == pytest.approx(theirs, rel=0.15), (t.amax["data"], theirs, th)
