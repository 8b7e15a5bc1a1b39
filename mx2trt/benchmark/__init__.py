"""mx2trt against MXNet's ONNX route (`mx.onnx.export_model` -> TensorRT's `OnnxParser`), on the same TensorRT builder.

    python tools/bench.py                                    # the default models, batch 1, 3 runs
    python tools/bench.py --models resnet50_v1 bert --batch 1 8 --seq 128 --json b.json --plot b.png
    mx2trt bench --zoo resnet50_v1 vgg16 --vs-onnx           # the same from the command line

Every figure comes from a fresh process (`python -m mx2trt.benchmark --one ROUTE --work DIR`, which prints one JSON
line), repeated `runs` times with the routes interleaved (mx2trt, ONNX, cache hit, load, mx2trt, ONNX, ...); the
table gives medians and min-max. Each process imports what its route needs and warms it up on a tiny model before
the clock starts, and the model's weights are loaded from a checkpoint written once by the parent process
(`mx.nd.waitall()` before timing). DEFINITIONS says what each figure measures. Where TensorRT can execute engines
here, the optimized model's GPU latency is also measured against plain MXNet's; elsewhere that is skipped with the
reason.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .measure import ROUTES, _child_main, child, run_child
from .models import DEFAULT_MODELS, SEQUENCE_MODELS, build_model, known_models, label, write_model
from .tables import DEFINITIONS, _med, _ratio, headline, markdown, plot

README_BEGIN, README_END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"

def spread(values: Iterable[float]) -> dict[str, float] | None:
    """{"median", "min", "max", "n"} of the values that are numbers; None without any."""
    vs = [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    if not vs:
        return None
    return {"median": statistics.median(vs), "min": min(vs), "max": max(vs), "n": len(vs)}


def spread_text(values: Sequence[float], fmt: str) -> str:
    """'median [min-max]' of `values` formatted with `fmt` (the median alone for one value), for markdown tables."""
    med = statistics.median(values)
    return f"{med:{fmt}}" if len(values) == 1 else f"{med:{fmt}} [{min(values):{fmt}}–{max(values):{fmt}}]"


def fresh_json(code: str, *args: str, what: str = "", timeout: float = 1800) -> Any:
    """Run Python `code` with `args` in a fresh interpreter (MKLDNN and the engine cache off) and return its last
    stdout line as JSON; a failure exits naming `what`, with the child's stderr."""
    import subprocess

    env = {**os.environ, "MXNET_MKLDNN_ENABLED": "0", "MX2TRT_CACHE": "0"}
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if res.returncode:
        raise SystemExit(f"{what or args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict[str, Any]], keys: Iterable[str]) -> dict[str, Any]:
    """Spread of each figure over the successful runs; nested dicts (timings, build_usage) by sub-key."""
    good = [r for r in runs if r.get("ok")]
    out: dict[str, Any] = {"ok": bool(good) and len(good) == len(runs), "runs": runs}
    if len(good) < len(runs):
        bad = next(r for r in runs if not r.get("ok"))
        failed = f" ({len(runs) - len(good)} of {len(runs)} runs)" if good else ""
        out.update(stage=bad.get("stage"), error=f"{bad.get('error')}{failed}")
    for k in keys:
        vals = [r.get(k) for r in good]
        if vals and isinstance(vals[0], dict):
            out[k] = {s: spread(v.get(s) for v in vals) for s in vals[0]}
        else:
            out[k] = spread(vals)
    return out


MX2TRT_KEYS = ("s", "to_network_s", "to_plan_s", "timings", "build_usage", "peak_rss_mib", "peak_to_network_mib",
               "peak_to_plan_mib", "baseline_rss_mib", "layers", "builds")
ONNX_KEYS = ("export_s", "parse_s", "build_s", "to_network_s", "to_plan_s", "build_usage", "peak_rss_mib",
             "peak_to_network_mib", "baseline_rss_mib", "layers")


def _memory(route: Mapping[str, Any], weights: float) -> dict[str, Any] | None:
    """Peak memory against weights: mx2trt's to its plans (before the reference program), the ONNX route's whole."""
    whole, base = _med(route, "peak_rss_mib"), _med(route, "baseline_rss_mib")
    peak = _med(route, "peak_to_plan_mib") or whole
    if peak is None or base is None:
        return None
    network = _med(route, "peak_to_network_mib")
    return {"peak_mib": peak, "process_peak_mib": whole, "network_peak_mib": network, "baseline_mib": base,
            "growth_over_weights": (peak - base) / weights if weights else None,
            "network_growth_over_weights": (network - base) / weights if weights and network else None,
            "limit_mib": 2 * weights + base, "ok": peak <= 2 * weights + base}


def bench_case(name: str, batch: int, seq: int, precision: str, runs: int, onnx: bool, extras: bool,
               gpu: bool, runtime: str = "auto", log: Callable[[str], None] = print, size: int | None = None
               ) -> dict[str, Any]:
    """Every figure of one model at one batch size (and sequence length) and precision."""
    onnx = onnx and precision == "fp32"  # the parsed network is the float32 ONNX graph, strongly typed
    with tempfile.TemporaryDirectory(prefix="mx2trt-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        desc = write_model(work, name, batch, seq, size)
        case: dict[str, Any] = {"model": name, "label": label(name, desc["seq"], desc["size"]), "batch": batch,
                                "seq": desc["seq"], "size": desc["size"],
                                "precision": precision, "shapes": desc["shapes"], "weights_mib": desc["weights_mib"]}
        where = f"{case['label']}, batch {batch}, {precision}"
        log(f"{where}: model written ({time.perf_counter() - t0:.1f} s, {desc['weights_mib']:.0f} MiB of weights)")

        def one(route: str, i: int | None = None) -> dict[str, Any]:
            r = run_child(route, work, precision, runtime)
            what = f"{r.get('s', r.get('to_plan_s', r.get('ratio', 0.0))):.3f}" if r.get("ok") else \
                f"failed: {str(r.get('error'))[:120]}"
            log(f"  {route}{'' if i is None else f' {i + 1}/{runs}'}: {what} ({r.get('process_s', 0.0):.1f} s)")
            return r

        fill = one("fill") if extras else None
        results: dict[str, list[dict[str, Any]]] = {"mx2trt": [], "onnx": [], "hit": [], "load": []}
        for i in range(runs):
            for route in results if i % 2 == 0 else ("onnx", "mx2trt", "hit", "load"):  # who goes first alternates
                if (route == "onnx" and not onnx) or (route in ("hit", "load") and not (fill and fill.get("ok"))):
                    continue
                results[route].append(one(route, i))
        case["mx2trt"] = _summary(results["mx2trt"], MX2TRT_KEYS)
        good = [r for r in results["mx2trt"] if r.get("ok")]
        if good:
            case["partition"] = {k: good[0][k] for k in ("engines", "layers", "nodes_trt", "nodes_total",
                                                         "node_coverage", "mac_coverage")}
        case["onnx"] = _summary(results["onnx"], ONNX_KEYS) if onnx else {
            "skipped": "not measured" if precision == "fp32" else
            f"{precision}: the ONNX route builds the float32 ONNX graph (strongly typed), so only fp32 compares"}
        if fill is not None:
            case["fill"] = fill
            case["hit"] = _summary(results["hit"], ("s", "to_plan_s", "builds", "from_cache", "peak_rss_mib"))
            case["load"] = _summary(results["load"], ("s", "builds", "peak_rss_mib"))
        onnx_ok = onnx and case["onnx"].get("ok")
        if extras and onnx_ok:
            case["same_process"] = one("same")
        if gpu:
            case["gpu"] = one("gpu")
    case["ratios"] = ratios(case)
    case["memory"] = {"mx2trt": _memory(case["mx2trt"], case["weights_mib"]),
                      "onnx": _memory(case["onnx"], case["weights_mib"]) if onnx_ok else None}
    return case


def ratios(case: Mapping[str, Any]) -> dict[str, float | None]:
    """The headline ratios of one case, ONNX route / mx2trt (above 1: mx2trt faster)."""
    m, o = case["mx2trt"], case["onnx"]
    ok = bool(o.get("ok")) and bool(m.get("ok"))
    same = case.get("same_process") or {}
    return {"to_network": _ratio(_med(o, "to_network_s"), _med(m, "to_network_s")) if ok else None,
            "to_plan": _ratio(_med(o, "to_plan_s"), _med(m, "to_plan_s")) if ok else None,
            "build_fresh": _ratio(_med(o, "build_s"), _med(m, "build_usage", "s")) if ok else None,
            "build_same_process": same.get("ratio") if same.get("ok") else None}


def geomean(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in vs) / len(vs)) if vs else None


def machine() -> dict[str, Any]:
    """The CPU model, cores and memory of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "system": platform.platform()}


def _versions() -> dict[str, str]:
    from .. import __version__, _trt
    from .._mx import mx

    out = {"mx2trt": __version__, "tensorrt": f"{_trt.flavor_name()} {_trt.VERSION}", "mxnet": mx.__version__,
           "python": platform.python_version()}
    try:
        import onnx

        out["onnx"] = onnx.__version__
    except ImportError:
        out["onnx"] = "not installed"
    return out


def run(models: Sequence[str] = DEFAULT_MODELS, batches: Sequence[int] = (1,), seqs: Sequence[int] = (128,),
        precisions: Sequence[str] = ("fp32",), runs: int = 3, onnx: bool = True, extras: bool = True,
        runtime: str = "auto", log: Callable[[str], None] | None = None, command: str | None = None,
        size: int | None = None) -> dict[str, Any]:
    """Run the benchmark; returns everything as one JSON-able dict (see `markdown` and `plot`). `extras`: the cache
    hit, load and same-process figures."""
    from .. import _trt

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    why = bad_arguments(models, batches, seqs, runs, size)
    if why:
        raise ValueError(why)
    can_run, why = _trt.can_execute_engines()
    t0 = time.perf_counter()
    cases = []
    for name in models:
        for seq in (seqs if name in SEQUENCE_MODELS else seqs[:1]):
            for batch in batches:
                for precision in precisions:
                    cases.append(bench_case(name, batch, seq, precision, runs, onnx, extras, can_run, runtime, log,
                                            size))
    head = {k: geomean(c["ratios"][k] for c in cases) for k in ("to_network", "to_plan", "build_fresh",
                                                                   "build_same_process")}
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
            "versions": _versions(), "command": command, "runs": runs, "runtime": runtime, "size": size,
            "gpu": {"measured": can_run, "reason": why}, "definitions": DEFINITIONS, "cases": cases,
            "geomean": head, "wall_s": time.perf_counter() - t0}


def add_arguments(p: argparse.ArgumentParser, models: bool = True) -> None:
    """The benchmark's options (shared by tools/bench.py and `mx2trt bench --zoo`)."""
    if models:
        p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="MODEL",
                       help="lenet, a vision-zoo name, bert (12-layer BERT-base encoder), bert_tiny, gluonnlp_bert "
                            "(default: %(default)s)")
        p.add_argument("--runs", type=int, default=3, metavar="N", help="fresh processes per figure (default 3)")
        p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "fp16", "bf16"],
                       help="inside mx2trt's engines (default fp32; the ONNX route only compares at fp32)")
    p.add_argument("--batch", nargs="+", type=int, action="extend", metavar="N",
                   help="batch sizes (repeatable or a list; default 1)")
    p.add_argument("--seq", nargs="+", type=int, action="extend", metavar="T",
                   help="sequence lengths of the BERT models (default 128)")
    p.add_argument("--size", type=int, metavar="PX",
                   help="input height and width of the vision models (default 224, Inception v3 299)")
    p.add_argument("--plot", metavar="FILE.png", help="write the plot as PNG")
    p.add_argument("--no-extras", action="store_true",
                   help="skip the cache-hit, load and same-process figures (fewer processes)")


def bad_arguments(models: Sequence[str], batches: Sequence[int] = (1,), seqs: Sequence[int] = (128,), runs: int = 3,
                  size: int | None = None, models_flag: str = "--models") -> str | None:
    """None, or what is wrong with the benchmark's arguments, naming the option."""
    unknown = [m for m in models if m not in known_models()]
    if unknown:
        return f"{models_flag}: unknown model(s) {unknown}; choose from {', '.join(known_models())}"
    for flag, values in (("--batch", batches), ("--seq", seqs), ("--runs", [runs]),
                         ("--size", [size] if size is not None else [])):
        if any(v < 1 for v in values):
            return f"{flag} must be positive, not {[v for v in values if v < 1]}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """tools/bench.py: run the benchmark, print the markdown table, write --json/--plot/--md."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--one" in argv:
        _child_main(argv)
        return 0
    ap = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--no-onnx", action="store_true", help="mx2trt's figures only")
    ap.add_argument("--runtime", choices=["auto", "tensorrt", "reference"], default="auto",
                    help="convert's runtime (default %(default)s)")
    ap.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    ap.add_argument("--md", metavar="FILE", help="also write the tables as markdown")
    ap.add_argument("--from-json", metavar="FILE", help="measure nothing: render the tables, plot and README from a "
                                                        "JSON an earlier run wrote")
    ap.add_argument("--readme", metavar="FILE", help=f"replace the headline table between {README_BEGIN} and "
                                                      f"{README_END} in FILE (the README's Benchmarks section)")
    a = ap.parse_args(argv)
    if a.from_json:
        res = json.loads(Path(a.from_json).read_text())
        write(res, None, a.plot, a.md, a.readme)
        print(markdown(res))
        return 0
    batches, seqs = a.batch or [1], a.seq or [128]
    why = bad_arguments(a.models, batches, seqs, a.runs, a.size)
    if why:
        ap.error(why)
    res = run(a.models, batches, seqs, a.precision, a.runs, onnx=not a.no_onnx, extras=not a.no_extras,
              runtime=a.runtime, command="python tools/bench.py " + " ".join(argv), size=a.size)
    write(res, a.json, a.plot, a.md, a.readme)
    print(markdown(res))
    return 0


def write(res: Mapping[str, Any], json_path: str | Path | None = None, plot_path: str | Path | None = None,
          md_path: str | Path | None = None, readme_path: str | Path | None = None) -> None:
    """Write the result's JSON, plot, markdown and README headline where asked."""
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=1, default=float) + "\n")
    if plot_path:
        plot(res, plot_path)
    if md_path:
        Path(md_path).write_text(markdown(res) + "\n")
    if readme_path:
        path = Path(readme_path)
        path.write_text(with_headline(path.read_text(), res))


def with_headline(text: str, res: Mapping[str, Any]) -> str:
    """`text` with what lies between README_BEGIN and README_END replaced by the result's headline."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"no {README_BEGIN} ... {README_END} block to replace")
    return text[:begin + len(README_BEGIN)] + "\n" + headline(res) + "\n" + text[end:]


__all__ = ["DEFAULT_MODELS", "DEFINITIONS", "ROUTES", "run", "headline", "markdown", "plot", "write", "with_headline",
           "main", "bad_arguments", "build_model",
           "bench_case", "ratios", "geomean", "spread", "child", "run_child"]
