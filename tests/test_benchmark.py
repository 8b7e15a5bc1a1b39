"""The benchmark against MXNet's ONNX route (mx2trt.benchmark, tools/bench.py): real fresh processes, real builds."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mx2trt import _trt, benchmark
from mx2trt.benchmark import models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result() -> dict:
    """One run of each route on a model the ONNX route converts (tiny_cnn) and one its exporter refuses."""
    lines: list[str] = []
    res = benchmark.run(["tiny_cnn", "bert_tiny"], seqs=[16], runs=1, log=lines.append, command="pytest")
    res["log"] = lines
    return res


@pytest.mark.slow
def test_every_route_is_measured_in_its_own_process(result: dict) -> None:
    tiny, bert = result["cases"]
    m, o = tiny["mx2trt"], tiny["onnx"]
    assert m["ok"] and o["ok"], (m, o)
    (run,) = m["runs"]
    assert run["builds"] == 1 and run["engines"] == 1 and run["node_coverage"] == 1.0
    assert set(benchmark.measure.TO_NETWORK) <= set(run["timings"]) and run["to_network_s"] < run["to_plan_s"]
    assert run["build_usage"]["minflt"] > 0 and run["peak_rss_mib"] > run["baseline_rss_mib"] > 0
    assert run["baseline_rss_mib"] < run["peak_to_plan_mib"] <= run["peak_rss_mib"]
    (parsed,) = o["runs"]
    assert parsed["layers"] > 0 and parsed["plan_mib"] > 0
    assert parsed["to_plan_s"] == pytest.approx(parsed["export_s"] + parsed["parse_s"] + parsed["build_s"])
    # The cache-hit and load processes build nothing; the same-process figure built both networks alternately.
    assert tiny["hit"]["runs"][0]["builds"] == 0 and tiny["hit"]["runs"][0]["from_cache"] == 1
    assert tiny["load"]["runs"][0]["builds"] == 0 and tiny["load"]["ok"]
    same = tiny["same_process"]
    assert same["ok"] and len(same["ratios"]) == 3 and same["ratio"] > 0
    r = tiny["ratios"]
    assert r["to_network"] == pytest.approx(o["to_network_s"]["median"] / m["to_network_s"]["median"])
    assert result["geomean"]["to_plan"] == pytest.approx(r["to_plan"])  # the one model the ONNX route converts
    assert len([ln for ln in result["log"] if ln.lstrip().startswith(("mx2trt", "onnx", "hit", "load"))]) == 8


@pytest.mark.slow
def test_an_onnx_failure_is_recorded_with_the_exporters_error(result: dict) -> None:
    bert = result["cases"][1]
    assert bert["mx2trt"]["ok"] and bert["seq"] == 16
    o = bert["onnx"]
    assert not o["ok"] and o["stage"] == "export" and "Reshape" in o["error"], o
    assert bert["ratios"]["to_network"] is None and "same_process" not in bert
    table = benchmark.markdown(result)
    assert "fails at export: AttributeError: Reshape" in table


@pytest.mark.slow
def test_the_table_json_and_plot_are_written(result: dict, tmp_path: Path) -> None:
    benchmark.write(result, tmp_path / "b.json", tmp_path / "b.png", tmp_path / "b.md")
    back = json.loads((tmp_path / "b.json").read_text())
    assert back["cases"][0]["ratios"] == pytest.approx(result["cases"][0]["ratios"])
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "b.png").stat().st_size > 10_000
    md = (tmp_path / "b.md").read_text()
    assert md == benchmark.markdown(result) + "\n"
    for want in ("| tiny_cnn |", "BERT encoder, 1 layer, 64 wide, seq 16", result["machine"]["cpu"],
                 result["date"][:10], "Command: `pytest`", "**geomean**"):
        assert want in md, want
    can_run, why = _trt.can_execute_engines()
    assert result["gpu"] == {"measured": can_run, "reason": why}
    if not can_run:
        assert f"skipped, TensorRT cannot execute engines here ({why})" in md


def test_a_crashed_measuring_process_is_recorded_not_raised(tmp_path: Path) -> None:
    r = benchmark.run_child("mx2trt", tmp_path / "nothing-here")  # no model written there
    assert not r["ok"] and r["stage"] == "process" and "exited with 1" in r["error"], r
    assert "FileNotFoundError" in r["error"] or "model.json" in r["error"], r["error"]


def test_spread_geomean_and_memory_limit() -> None:
    assert benchmark.spread([3.0, 1.0, float("nan"), None, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert benchmark.spread([None]) is None
    assert benchmark.geomean([2.0, 8.0, None]) == pytest.approx(4.0) and benchmark.geomean([None]) is None
    route = {"peak_rss_mib": {"median": 700.0}, "baseline_rss_mib": {"median": 300.0}}
    route["peak_to_network_mib"] = {"median": 400.0}
    assert benchmark._memory(route, 200.0) == {"peak_mib": 700.0, "process_peak_mib": 700.0, "network_peak_mib": 400.0,
                                                "baseline_mib": 300.0, "growth_over_weights": 2.0,
                                                "network_growth_over_weights": 0.5, "limit_mib": 700.0, "ok": True}
    assert not benchmark._memory(route, 199.0)["ok"]
    route["peak_to_plan_mib"] = {"median": 650.0}  # mx2trt's: read before the reference program
    assert benchmark._memory(route, 180.0)["ok"] and benchmark._memory(route, 180.0)["process_peak_mib"] == 700.0


def test_models_and_labels() -> None:
    known = benchmark.known_models()
    assert set(benchmark.DEFAULT_MODELS) <= set(known) and {"tiny_cnn", "lenet", "bert_tiny"} <= set(known)
    assert models.label("inceptionv3", None, 299) == "inceptionv3" and models.label("vgg16", None, 64) == "vgg16, 64×64"
    sym, params, shapes = benchmark.build_model("gluonnlp_bert", 1, 8)
    assert shapes == {"data0": (1, 8), "data1": (1, 8), "data2": (1,)} and params


def test_tools_bench_rejects_bad_arguments() -> None:
    for argv, word in ((["--models", "nope"], "unknown model(s) ['nope']"), (["--runs", "0"], "--runs must be"),
                       (["--batch", "0"], "--batch must be positive")):
        p = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), *argv], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 2 and word in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_a_measuring_process_reports_its_own_peak_not_its_parents(tmp_path: Path) -> None:
    """ru_maxrss of a child starts at its parent's resident set at fork: the peak is read from VmHWM instead."""
    import numpy as np

    models.write_model(tmp_path, "tiny_cnn", 1, 16)
    ballast = np.ones(2**28 // 8 * 3)  # 768 MiB resident in this process while the child starts
    r = benchmark.run_child("mx2trt", tmp_path)
    del ballast
    assert r["ok"], r
    assert r["peak_rss_mib"] < 700, r["peak_rss_mib"]  # the child's own: ~350 MiB with MXNet and TensorRT loaded
