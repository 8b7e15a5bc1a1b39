"""One figure of one route, measured in this (fresh) process: `python -m mx2trt.benchmark --one ROUTE --work DIR`
prints it as one JSON line; `run_child` starts such a process and reads it."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .models import feeds, load_model, shapes_of, tiny_cnn

# Report.timings phases: "to network" is the time until every network is defined and keyed, "to plan" everything
# but the reference interpreter's program (which a GPU runtime never builds).
TO_NETWORK = ("fold", "graph", "partition", "define", "key")
NOT_IN_PLAN = ("reference_program",)
ROUTES = ("mx2trt", "onnx", "fill", "hit", "load", "same", "gpu")
_MARK = "MX2TRT_BENCH_RESULT "


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Start VmHWM afresh from the current resident set (Linux 4.0+: /proc/self/clear_refs), so the warm-up's peak is
    not counted; False where it cannot be reset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _rss_mib() -> float:
    """This process's resident set now, MiB."""
    return _status_mib("VmRSS")


def _peak_mib() -> float:
    """This process's peak resident set, MiB: VmHWM, which starts afresh at exec (ru_maxrss keeps the parent's
    resident set at fork)."""
    return _status_mib("VmHWM")


class Usage:
    """Wall time, minor/major page faults and user/system CPU seconds of a block, summed over the times it is entered
    (resource.getrusage deltas of the whole process)."""

    FIELDS = ("s", "minflt", "majflt", "user_s", "sys_s")

    def __init__(self) -> None:
        self.totals = dict.fromkeys(self.FIELDS, 0.0)
        self.each: list[dict[str, float]] = []

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        try:
            yield
        finally:
            t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            d = {"s": t1 - t0, "minflt": r1.ru_minflt - r0.ru_minflt, "majflt": r1.ru_majflt - r0.ru_majflt,
                 "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime}
            self.each.append(d)
            for k, v in d.items():
                self.totals[k] += v


@contextlib.contextmanager
def _watch_builds(usage: Usage, keep: list[Any] | None = None, peaks: dict[str, list[float]] | None = None
                  ) -> Iterator[None]:
    """Measure every engine build `convert` does (and keep its NetworkBuild in `keep`), and the process's peak
    resident set just before each build and each reference program (peaks["build"], peaks["program"]), by wrapping
    what mx2trt.api calls."""
    from .. import api

    original, original_program = api.build_engine, api.reference_program

    def build_engine(nb: Any, *args: Any, **kwargs: Any) -> Any:
        if keep is not None:
            keep.append(nb)
        if peaks is not None:
            peaks["build"].append(_peak_mib())
        with usage():
            return original(nb, *args, **kwargs)

    def reference_program(*args: Any, **kwargs: Any) -> Any:
        if peaks is not None:
            peaks["program"].append(_peak_mib())
        return original_program(*args, **kwargs)

    api.build_engine, api.reference_program = build_engine, reference_program
    try:
        yield
    finally:
        api.build_engine, api.reference_program = original, original_program


def _warm_mx2trt(tmp: Path, runtime: str, cache: bool = False, save: bool = False) -> None:
    """Import and run mx2trt's whole path once on the tiny model (with the cache: a build and a hit)."""
    import mx2trt

    sym, params, shapes = tiny_cnn()
    if not cache:
        mx2trt.convert(sym, params, shapes, cache=False, runtime=runtime, progress=False)
        return
    c = None
    for _ in range(2):
        c = mx2trt.convert(sym, params, shapes, cache_dir=tmp / "cache", runtime=runtime, progress=False)
    if save:
        mx2trt.save(tmp / "warm", c.symbol, c.params)
        mx2trt.load(tmp / "warm")


def _export_parse(sym: Any, params: Mapping[str, Any], desc: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The ONNX route up to a network: {"ok", "stage", "error", "export_s", "parse_s", "builder", "network",
    "parser", "layers"}. Exporter and parser errors are recorded, never raised."""
    import onnx  # noqa: F401  (the exporter's dependency, imported before any clock)

    from .._mx import mx
    from .._trt import LOGGER, create_network, trt

    shapes = shapes_of(desc)
    out: dict[str, Any] = {"ok": False, "stage": "export"}
    t0 = time.perf_counter()
    try:
        mx.onnx.export_model(sym, dict(params), [shapes[n] for n in desc["inputs"]],
                             [np.float32] * len(desc["inputs"]), str(path))
    except Exception as exc:  # the exporter's own errors (often a tuple of message and code)
        out["error"] = _exc_text(exc)
        return out
    out["export_s"] = time.perf_counter() - t0
    out["stage"] = "parse"
    # No error recorder on this builder: with one, destroying an OnnxParser's network segfaults (TensorRT-RTX 1.7).
    builder = trt.Builder(LOGGER)
    t0 = time.perf_counter()
    network = create_network(builder)
    parser = trt.OnnxParser(network, LOGGER)
    parsed = parser.parse_from_file(str(path))
    out["parse_s"] = time.perf_counter() - t0
    out.update(builder=builder, network=network, parser=parser, layers=network.num_layers)
    if not parsed:
        out["error"] = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors)) or "parse failed"
        return out
    out["ok"] = True
    del out["stage"]
    return out


def _exc_text(exc: BaseException) -> str:
    args = exc.args
    text = ", ".join(str(a) for a in args) if len(args) > 1 else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _build_parsed(route: Mapping[str, Any]) -> Any:
    """The parsed network's serialized plan (IHostMemory), or None."""
    from .._trt import create_builder_config

    return route["builder"].build_serialized_network(route["network"], create_builder_config(route["builder"]))


def _rebuild(nb: Any) -> bool:
    """Build a NetworkBuild that convert built once already, with the config mx2trt uses."""
    from .._trt import create_builder_config

    return nb.builder.build_serialized_network(nb.network, create_builder_config(nb.builder)) is not None


def _figures(timings: Mapping[str, float]) -> dict[str, float]:
    return {"to_network_s": sum(timings.get(k, 0.0) for k in TO_NETWORK),
            "to_plan_s": timings["total"] - sum(timings.get(k, 0.0) for k in NOT_IN_PLAN)}


def _partition_quality(c: Any) -> dict[str, Any]:
    rep = c.report
    return {"engines": len(c.engines), "layers": sum(e.num_layers for e in c.engines),
            "nodes_trt": rep.nodes_trt, "nodes_total": rep.nodes_total, "node_coverage": rep.node_coverage,
            "mac_coverage": rep.mac_coverage}


def child(route: str, work: Path, precision: str = "fp32", runtime: str = "auto") -> dict[str, Any]:
    """One figure of `route` in this (fresh) process; returns a JSON-able dict."""
    import mx2trt
    import mx2trt.build

    from .._mx import mx

    out: dict[str, Any] = {"route": route, "precision": precision, "ok": True}
    with tempfile.TemporaryDirectory(prefix="mx2trt-warm-") as tmp_s:
        tmp = Path(tmp_s)
        if route in ("mx2trt", "same", "gpu"):
            _warm_mx2trt(tmp, runtime if route != "gpu" else "tensorrt")
        elif route in ("fill", "hit", "load"):
            _warm_mx2trt(tmp, runtime, cache=True, save=route in ("fill", "load"))
        if route in ("onnx", "same"):
            tsym, tparams, tshapes = tiny_cnn()
            warm = _export_parse(tsym, tparams, {"shapes": tshapes, "inputs": ["data"]}, tmp / "warm.onnx")
            if not warm["ok"] or _build_parsed(warm) is None:
                raise RuntimeError(f"the ONNX route fails on the warm-up model: {warm.get('error')}")
            del warm
        if route == "load":
            mx.nd.waitall()
            out["baseline_rss_mib"], out["peak_reset"] = _rss_mib(), _reset_peak()
            builds = mx2trt.build.BUILDS
            t0 = time.perf_counter()
            sym, _ = mx2trt.load(work / "saved" / "model")
            out["s"] = time.perf_counter() - t0
            out["builds"] = mx2trt.build.BUILDS - builds
            out["peak_rss_mib"] = _peak_mib()
            return out
        mx.nd.waitall()
        # The interpreter's, after imports and warm-up, weights not loaded yet; peaks count from here.
        out["baseline_rss_mib"], out["peak_reset"] = _rss_mib(), _reset_peak()
        sym, params, desc = load_model(work)
        shapes = shapes_of(desc)
        if route == "onnx":
            usage = Usage()
            r = _export_parse(sym, params, desc, tmp / "model.onnx")
            if r["ok"]:
                out["peak_to_network_mib"] = _peak_mib()
                with usage():
                    plan = _build_parsed(r)
                if plan is None:
                    r.update(ok=False, stage="build", error="build_serialized_network returned None")
                else:
                    r["build_s"] = usage.totals["s"]
                    r["plan_mib"] = plan.nbytes / 2**20
                    r["build_usage"] = usage.totals
            out.update({k: v for k, v in r.items() if k not in ("builder", "network", "parser")})
            if r["ok"]:
                out["to_network_s"] = r["export_s"] + r["parse_s"]
                out["to_plan_s"] = out["to_network_s"] + r["build_s"]
            out["peak_rss_mib"] = _peak_mib()
            return out
        if route in ("mx2trt", "fill", "hit"):
            usage = Usage()
            builds = mx2trt.build.BUILDS
            cache: dict[str, Any] = {"cache": False} if route == "mx2trt" else {"cache_dir": work / "cache"}
            peaks: dict[str, list[float]] = {"build": [], "program": []}
            with _watch_builds(usage, peaks=peaks):
                t0 = time.perf_counter()
                c = mx2trt.convert(sym, params, shapes, precision=precision, runtime=runtime, progress=False, **cache)
                wall = time.perf_counter() - t0
            out["peak_rss_mib"] = _peak_mib()
            out["peak_to_network_mib"] = peaks["build"][0] if peaks["build"] else out["peak_rss_mib"]
            out["peak_to_plan_mib"] = max(peaks["program"]) if peaks["program"] else out["peak_rss_mib"]
            timings = dict(c.report.timings)
            out.update(s=wall, timings=timings, **_figures(timings),
                       builds=mx2trt.build.BUILDS - builds, from_cache=sum(e.origin == "cache" for e in c.engines),
                       build_usage=usage.totals, **_partition_quality(c))
            if route == "fill":
                t0 = time.perf_counter()
                mx2trt.save(work / "saved" / "model", c.symbol, c.params)
                out["save_s"] = time.perf_counter() - t0
            return out
        if route == "same":
            return {**out, **_same_process(sym, params, desc, precision, runtime, tmp)}
        if route == "gpu":
            return {**out, **_gpu_latency(sym, params, desc, precision, work)}
    raise ValueError(f"unknown route {route!r}; one of {ROUTES}")


def _same_process(sym: Any, params: Mapping[str, Any], desc: Mapping[str, Any], precision: str, runtime: str,
                  tmp: Path, pairs: int = 3) -> dict[str, Any]:
    """mx2trt's network(s) and the parsed network built alternately in this one process, after a warm-up build."""
    import mx2trt

    onnx = _export_parse(sym, params, desc, tmp / "model.onnx")
    if not onnx["ok"]:
        return {"ok": False, "stage": onnx["stage"], "error": onnx["error"]}
    nbs: list[Any] = []
    with _watch_builds(Usage(), keep=nbs):  # convert's own build of each network: mx2trt's warm-up
        c = mx2trt.convert(sym, params, shapes_of(desc), precision=precision, runtime=runtime, cache=False,
                           progress=False)
    if not nbs:
        return {"ok": False, "stage": "mx2trt", "error": "convert built no engine"}
    if _build_parsed(onnx) is None:  # the parsed network's warm-up
        return {"ok": False, "stage": "build", "error": "build_serialized_network returned None"}
    mine, theirs = Usage(), Usage()
    for i in range(pairs):  # the order alternates from pair to pair
        for which in ("mx2trt", "onnx") if i % 2 == 0 else ("onnx", "mx2trt"):
            with (mine if which == "mx2trt" else theirs)():
                ok = all([_rebuild(nb) for nb in nbs]) if which == "mx2trt" else _build_parsed(onnx) is not None
            if not ok:
                return {"ok": False, "stage": "build", "error": f"a rebuild of the {which} network returned None"}
    ratios = [t["s"] / m["s"] for m, t in zip(mine.each, theirs.each)]
    del c
    return {"mx2trt_builds": mine.each, "onnx_builds": theirs.each, "ratios": ratios,
            "ratio": statistics.median(ratios), "engines": len(nbs), "peak_rss_mib": _peak_mib()}


def _gpu_latency(sym: Any, params: Mapping[str, Any], desc: Mapping[str, Any], precision: str, work: Path,
                 warmup: int = 10, iters: int = 50) -> dict[str, Any]:
    """Forward latency on GPU 0 of the optimized model (runtime 'tensorrt') and of plain MXNet (float32)."""
    import mx2trt

    from .._mx import mx

    shapes = shapes_of(desc)
    values = feeds(desc["name"], shapes)
    ctx = mx.gpu(0)
    c = mx2trt.convert(sym, params, shapes, precision=precision, runtime="tensorrt", cache_dir=work / "gpu-cache",
                       progress=False)

    def latency(s: Any, p: Mapping[str, Any]) -> dict[str, float]:
        names, aux_names = set(s.list_arguments()), set(s.list_auxiliary_states())
        args = {k: v.as_in_context(ctx) for k, v in p.items() if k in names}
        args.update({k: mx.nd.array(v, ctx=ctx) for k, v in values.items() if k in names})
        aux = {k: v.as_in_context(ctx) for k, v in p.items() if k in aux_names}
        ex = s.bind(ctx, args, aux_states=aux, grad_req="null")
        for _ in range(warmup):
            ex.forward(is_train=False)
        mx.nd.waitall()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            ex.forward(is_train=False)
            mx.nd.waitall()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        return {"ms": med * 1e3, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3,
                "per_s": desc["batch"] / med}

    return {"mx2trt": latency(c.symbol, c.params), "mxnet_fp32": latency(sym, params), "iters": iters}


def _child_main(argv: Sequence[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m mx2trt.benchmark --one")
    ap.add_argument("--one", choices=ROUTES, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--runtime", default="auto")
    a = ap.parse_args(argv)
    result = child(a.one, a.work, a.precision, a.runtime)
    print(_MARK + json.dumps(result, default=float), flush=True)


# ---- the parent's side -------------------------------------------------------------------------------------------


def run_child(route: str, work: Path, precision: str = "fp32", runtime: str = "auto",
              timeout: float = 900) -> dict[str, Any]:
    """Run one figure in a fresh process; a crash or timeout is recorded as {"ok": False, "error": ...}."""
    env = {**os.environ, "MXNET_MKLDNN_ENABLED": os.environ.get("MXNET_MKLDNN_ENABLED", "0")}
    env.pop("MX2TRT_CACHE_DIR", None)
    cmd = [sys.executable, "-m", "mx2trt.benchmark", "--one", route, "--work", str(work), "--precision", precision,
           "--runtime", runtime]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"route": route, "ok": False, "stage": "process", "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(_MARK)]
    if p.returncode != 0 or not lines:
        tail = [ln for ln in p.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        return {"route": route, "ok": False, "stage": "process",
                "error": f"the {route} process exited with {p.returncode}: {tail[0][:300]}",
                "stderr_tail": p.stderr[-3000:]}
    out = json.loads(lines[-1][len(_MARK):])
    out["process_s"] = time.perf_counter() - t0
    return out

