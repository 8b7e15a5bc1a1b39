"""The benchmark's result as markdown tables and as a PNG plot."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

DEFINITIONS = {
    "mx2trt to network": "convert's fold + graph + partition + define + key (Report.timings): symbol -> every "
                         "TensorRT network defined and its engine key computed (key also holds the cache lookup, "
                         "where a cache is on: not in this figure)",
    "mx2trt to plan": "convert's total minus reference_program (the reference interpreter's program, which the GPU "
                      "runtime never builds): symbol -> serialized plans and the rewritten symbol",
    "export + parse": "mx.onnx.export_model to a file + OnnxParser.parse_from_file into a network of "
                      "mx2trt._trt.create_network",
    "ONNX route to plan": "export + parse + build_serialized_network",
    "build": "build_serialized_network alone, same builder config (mx2trt._trt.create_builder_config); mx2trt: "
             "the sum over its engines",
    "x (ratios)": "ONNX route's time / mx2trt's: above 1, mx2trt is faster",
    "build x, fresh": "median ONNX build / median mx2trt build, each in its own route's fresh process",
    "build x, same process": "in one process, after one warm-up build, mx2trt's network(s) and the parsed network "
                             "built alternately 3 times each: median of the 3 per-pair ratios (the network alone, "
                             "without the process state)",
    "minor faults, user/sys": "resource.getrusage deltas (the whole process, all threads) over the build(s)",
    "cache hit": "convert in a fresh process with the engine cache a first process filled (total time)",
    "load": "mx2trt.load of a model saved with mx2trt.save, in a fresh process",
    "peak": "VmHWM (peak resident set) of the route's process, counted from the baseline (reset through "
            "/proc/self/clear_refs, so the warm-up's peak is not in it): for mx2trt up to its plans (read just before "
            "convert builds the reference interpreter's program, as the times; the whole process's peak is "
            "peak_rss_mib in the JSON), for the ONNX route at its end",
    "to network peak": "VmHWM when the first build starts: mx2trt's own conversion (fold to key), or export + parse",
    "growth / weights": "(peak - baseline) / weights",
    "memory ok": "peak <= 2 x weights + baseline",
}


def _med(d: Mapping[str, Any] | None, *path: str) -> float | None:
    for k in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    if isinstance(d, Mapping):
        return d.get("median")
    return d if isinstance(d, (int, float)) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _f(v: float | None, digits: int = 2) -> str:
    """A number for the tables: `digits` decimals, fewer from 10 on, more below 0.1 (two significant digits)."""
    if v is None:
        return "–"
    if digits == 0 or abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10 and digits <= 2:
        return f"{v:.1f}"
    if 0 < abs(v) < 0.1 and digits <= 2:
        return f"{v:.{max(digits, 1 - math.floor(math.log10(abs(v))))}f}"
    return f"{v:.{digits}f}"


def _s(d: Mapping[str, Any] | None, *path: str, digits: int = 2, with_spread: bool = True) -> str:
    """'median (min–max)' of a spread at `path`."""
    for k in path:
        d = d.get(k) if isinstance(d, Mapping) else None
    if not isinstance(d, Mapping) or d.get("median") is None:
        return "–"
    if not with_spread or d["n"] < 2:
        return _f(d["median"], digits)
    return f"{_f(d['median'], digits)} ({_f(d['min'], digits)}–{_f(d['max'], digits)})"


def _x(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}×" if v < 10 else f"{v:.1f}×"


def _fail(route: Mapping[str, Any]) -> str:
    err = " ".join(str(route.get("error") or "").split())
    err = err if len(err) <= 90 else err[:87] + "..."
    return f"fails at {route.get('stage')}: {err.replace('|', '/')}"


def _row_name(c: Mapping[str, Any], multi: tuple[bool, bool]) -> str:
    return c["label"] + (f", batch {c['batch']}" if multi[0] else "") + (f", {c['precision']}" if multi[1] else "")


def headline(res: Mapping[str, Any]) -> str:
    """The header naming the date, machine and versions, and the main table (what the README shows)."""
    cases = res["cases"]
    multi = (len({c["batch"] for c in cases}) > 1, len({c["precision"] for c in cases}) > 1)
    m, v = res["machine"], res["versions"]
    lines = [
        f"Measured {res['date'][:10]} on {m['cpu']} ({m['cores']} cores"
        + (f", {m['memory_gib']:.0f} GiB" if m.get("memory_gib") else "") + f"), {v['tensorrt']} builder for both "
        f"routes, mx2trt {v['mx2trt']}, MXNet {v['mxnet']}, onnx {v['onnx']}, Python {v['python']}. Random weights; "
        f"batch {', '.join(sorted({str(c['batch']) for c in cases}))}; "
        + (f"vision models {res['size']}×{res['size']}" if res.get("size") else
           "vision models 224×224 (Inception v3 299×299)")
        + f". Seconds: median (min–max) of {res['runs']} run(s), each in a fresh process, routes interleaved; "
        "× is the ONNX route's time over mx2trt's (above 1: mx2trt faster).",
    ]
    if res.get("command"):
        lines.append(f"\nCommand: `{res['command']}`")
    lines += ["", "| model | mx2trt to network | export + parse | × | mx2trt to plan | ONNX route to plan | × |",
              "|---|---|---|---|---|---|---|"]
    for c in cases:
        mm, o, r = c["mx2trt"], c["onnx"], c["ratios"]
        if "skipped" in o or not o.get("ok"):
            why = o.get("skipped") or _fail(o)
            lines.append(f"| {_row_name(c, multi)} | {_s(mm, 'to_network_s')} | {why} | – | {_s(mm, 'to_plan_s')} "
                         "| – | – |")
        else:
            lines.append(f"| {_row_name(c, multi)} | {_s(mm, 'to_network_s')} | {_s(o, 'to_network_s')} | "
                         f"{_x(r['to_network'])} | {_s(mm, 'to_plan_s')} | {_s(o, 'to_plan_s')} | {_x(r['to_plan'])} |")
    g = res["geomean"]
    lines.append(f"| **geomean** | | | **{_x(g['to_network'])}** | | | **{_x(g['to_plan'])}** |")

    return "\n".join(lines)


def markdown(res: Mapping[str, Any]) -> str:
    """The benchmark as markdown: the headline, then the builds, phases, partition and memory, GPU latency."""
    cases = res["cases"]
    multi = (len({c["batch"] for c in cases}) > 1, len({c["precision"] for c in cases}) > 1)
    g = res["geomean"]
    lines = [headline(res)]
    lines += ["", "TensorRT's build of each route's network (same builder and config):", "",
              "| model | layers mx2trt / ONNX | build mx2trt | build ONNX | × fresh processes | × same process | "
              "minor faults mx2trt / ONNX | user + sys s mx2trt / ONNX |", "|---|---|---|---|---|---|---|---|"]
    for c in cases:
        mm, o, r = c["mx2trt"], c["onnx"], c["ratios"]
        ook = o.get("ok")
        faults = f"{_k(_med(mm, 'build_usage', 'minflt'))} / {_k(_med(o, 'build_usage', 'minflt')) if ook else '–'}"
        cpu = f"{_cpu(mm)} / {_cpu(o) if ook else '–'}"
        lines.append(f"| {_row_name(c, multi)} | {_f(_med(mm, 'layers'), 0)} / {_f(_med(o, 'layers'), 0)} | "
                     f"{_s(mm, 'build_usage', 's')} | {_s(o, 'build_s') if ook else '–'} | {_x(r['build_fresh'])} | "
                     f"{_same(c)} | {faults} | {cpu} |")
    lines.append(f"| **geomean** | | | | **{_x(g['build_fresh'])}** | **{_x(g['build_same_process'])}** | | |")

    lines += ["", "mx2trt's phases (Report.timings, medians, s), its cache hit and load, and the ONNX route's steps:", "",
              "| model | fold | graph | partition | define | key | build | rewrite | reference program* | cache hit | "
              "load | export | parse |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        mm, o = c["mx2trt"], c["onnx"]
        ph = [_f(_med(mm, "timings", k), 3) for k in ("fold", "graph", "partition", "define", "key", "build",
                                                       "rewrite", "reference_program")]
        hit = _s(c.get("hit"), "s", digits=3) if c.get("hit", {}).get("ok") else "–"
        load = _s(c.get("load"), "s", digits=3) if c.get("load", {}).get("ok") else "–"
        lines.append(f"| {_row_name(c, multi)} | {' | '.join(ph)} | {hit} | {load} | "
                     f"{_f(_med(o, 'export_s'))} | {_f(_med(o, 'parse_s'))} |")
    if any(_med(c["mx2trt"], "timings", "reference_program") for c in cases):
        lines.append(f"\n\\* not part of \"to plan\": the reference interpreter's program, which convert (runtime "
                     f"'{res.get('runtime', 'auto')}') built because the engines run on the NumPy reference interpreter "
                     "here; the GPU runtime never builds it.")

    lines += ["", "Partition and memory, MiB. Baseline: the process's VmRSS after imports and warm-up, before the "
              "weights are loaded; to network: its peak (VmHWM) when the first build starts; to plan: its peak up to "
              "the plans; growth: peak − baseline, over weights; ok: peak to plan ≤ 2 × weights + baseline.", "",
              "| model | engines | nodes in TensorRT | MACs in TensorRT | weights | baseline mx2trt / ONNX | "
              "to network: peak, growth mx2trt / ONNX | to plan: peak, growth mx2trt / ONNX | ok mx2trt / ONNX |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        p, mem = c.get("partition") or {}, c["memory"]
        mm, mo = mem["mx2trt"] or {}, mem["onnx"] or {}
        macs = p.get("mac_coverage")

        def peak(m: Mapping[str, Any], key: str) -> str:
            growth = m.get("growth_over_weights" if key == "peak_mib" else "network_growth_over_weights")
            return "–" if m.get(key) is None else f"{_f(m[key], 0)}, {_f(growth, 1)}×"

        lines.append(
            f"| {_row_name(c, multi)} | {p.get('engines', '–')} | {p.get('nodes_trt', '–')}/{p.get('nodes_total', '–')}"
            f" ({100 * p.get('node_coverage', 0):.1f}%) | {'–' if macs is None else f'{100 * macs:.1f}%'} | "
            f"{c['weights_mib']:.0f} | {_f(mm.get('baseline_mib'), 0)} / {_f(mo.get('baseline_mib'), 0)} | "
            f"{peak(mm, 'network_peak_mib')} / {peak(mo, 'network_peak_mib')} | "
            f"{peak(mm, 'peak_mib')} / {peak(mo, 'peak_mib')} | {_yes(mm.get('ok'))} / {_yes(mo.get('ok'))} |")

    gpu = res["gpu"]
    if not gpu["measured"]:
        lines += ["", f"GPU latency and throughput: skipped, TensorRT cannot execute engines here ({gpu['reason']})."]
    else:
        lines += ["", f"GPU latency ({gpu['reason']}), ms per forward, median of the iterations (min–max); "
                  "MXNet in float32:", "", "| model | mx2trt ms | MXNet ms | speed-up | mx2trt items/s | MXNet items/s |",
                  "|---|---|---|---|---|---|"]
        for c in cases:
            r = c.get("gpu") or {}
            if not r.get("ok"):
                lines.append(f"| {_row_name(c, (True, True))} | {_fail(r)} | | | | |")
                continue
            a, b = r["mx2trt"], r["mxnet_fp32"]
            lines.append(f"| {_row_name(c, (True, True))} | {a['ms']:.2f} ({a['min_ms']:.2f}–{a['max_ms']:.2f}) | "
                         f"{b['ms']:.2f} ({b['min_ms']:.2f}–{b['max_ms']:.2f}) | {_x(b['ms'] / a['ms'])} | "
                         f"{a['per_s']:.0f} | {b['per_s']:.0f} |")
    lines += ["", "Definitions:", ""] + [f"- **{k}**: {d}" for k, d in res["definitions"].items()]
    return "\n".join(lines)


def _k(v: float | None) -> str:
    return "–" if v is None else f"{v / 1000:.0f}k"


def _cpu(route: Mapping[str, Any]) -> str:
    u, s = _med(route, "build_usage", "user_s"), _med(route, "build_usage", "sys_s")
    return "–" if u is None or s is None else f"{u:.2f} + {s:.2f}"


def _same(c: Mapping[str, Any]) -> str:
    s = c.get("same_process")
    if not s:
        return "–"
    if not s.get("ok"):
        return _fail(s)
    return f"{_x(s['ratio'])} ({min(s['ratios']):.2f}–{max(s['ratios']):.2f})"


def _yes(v: Any) -> str:
    return "–" if v is None else "yes" if v else "**no**"


# ---- the plot ----------------------------------------------------------------------------------------------------


def plot(res: Mapping[str, Any], path: str | Path) -> Path:
    """Grouped bars per model of the to-network and to-plan times of both routes (log scale, min-max whiskers),
    with the headline ratios; written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = res["cases"]
    multi = (len({c["batch"] for c in cases}) > 1, len({c["precision"] for c in cases}) > 1)
    bars = [("mx2trt to network", "mx2trt", "to_network_s", "#1f77b4"),
            ("export + parse", "onnx", "to_network_s", "#aec7e8"),
            ("mx2trt to plan", "mx2trt", "to_plan_s", "#d62728"),
            ("ONNX route to plan", "onnx", "to_plan_s", "#ff9896")]
    fig, ax = plt.subplots(figsize=(max(8.0, 1.6 * len(cases) + 2), 5.5))
    width = 0.2
    floor = 1e-3
    for j, (name, route, key, color) in enumerate(bars):
        xs, hs, lo, hi = [], [], [], []
        for i, c in enumerate(cases):
            d = c[route].get(key) if c[route].get("ok") else None
            if d is None:
                if route == "onnx":
                    ax.text(i + (j - 1.5) * width, floor * 1.5, "fails" if "skipped" not in c[route] else "n/a",
                            rotation=90, ha="center", va="bottom", fontsize=7, color="0.3")
                continue
            xs.append(i + (j - 1.5) * width)
            hs.append(d["median"])
            lo.append(d["median"] - d["min"])
            hi.append(d["max"] - d["median"])
        ax.bar(xs, hs, width, yerr=[lo, hi], label=name, color=color, capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_ylabel("seconds (log scale)")
    ax.set_xticks(range(len(cases)))
    names = []
    for c in cases:
        r = c["ratios"]
        extra = "" if r["to_network"] is None else f"\nnet {_x(r['to_network'])}, plan {_x(r['to_plan'])}"
        names.append(_row_name(c, multi).replace(", seq", "\nseq").replace("encoder, ", "encoder\n") + extra)
    ax.set_xticklabels(names, fontsize=7)
    g = res["geomean"]
    v = res["versions"]
    ax.set_title(f"mx2trt vs mx.onnx + OnnxParser, {v['tensorrt']} builder: geomean ONNX route / mx2trt — to network "
                 f"{_x(g['to_network'])}, to plan {_x(g['to_plan'])}\n{res['machine']['cpu']}, "
                 f"{res['machine']['cores']} cores, {res['date'][:10]}; median of {res['runs']} fresh processes, "
                 "whiskers min–max", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

