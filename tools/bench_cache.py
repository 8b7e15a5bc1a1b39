#!/usr/bin/env python3
"""Cold `optimize` vs a cache-hit `optimize` vs `mx2trt.load`, each in a fresh process; prints a table of medians.

    python tools/bench_cache.py                          # ResNet-50 (1x3x224x224) and the 12-layer BERT-base encoder
    python tools/bench_cache.py resnet18_v1 --runs 5

Per model: its checkpoint is written once; then, RUNS times and in turn, a new process times (after its imports)
`convert` with the cache off (cold: fold, partition, define, build), `convert` on a warm cache (hit), and `load` of a
model saved once (load). Each child also reports how many engines it built: a hit and a load must build none.
The reference interpreter's program is not part of any figure (it is defined on first forward after a hit or load).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")

MODELS = {"resnet50_v1": "ResNet-50 v1, 1x3x224x224", "bert12": "BERT-base encoder, 12 layers, 1x128"}


def _model(name: str) -> tuple:
    from mx2trt import zoo

    if name == "bert12":
        return zoo.bert_encoder(batch=1, seq=128, layers=12)
    return zoo.get(name, batch=1, size=224 if name.startswith(("resnet", "vgg", "densenet", "mobilenet")) else None)


def _child(step: str, work: Path) -> dict:
    """One timed step in this (fresh) process."""
    import mx2trt
    import mx2trt.build
    from mx2trt._mx import mx

    shapes = {k: tuple(v) for k, v in json.loads((work / "shapes.json").read_text()).items()}
    if step == "load":
        t0 = time.perf_counter()
        mx2trt.load(work / "saved" / "model")
        return {"s": time.perf_counter() - t0, "builds": mx2trt.build.BUILDS}
    sym, arg, aux = mx.model.load_checkpoint(str(work / "model"), 0)
    params = {**arg, **aux}
    mx.nd.waitall()
    cache = {"cold": {"cache": False}, "hit": {"cache_dir": work / "cache"},
             "save": {"cache_dir": work / "save-cache"}}[step]
    t0 = time.perf_counter()
    c = mx2trt.convert(sym, params, shapes, progress=False, **cache)
    s = time.perf_counter() - t0
    if step == "save":
        mx2trt.save(work / "saved" / "model", c.symbol, c.params)
    if step == "hit" and not (work / "cache").exists():
        raise SystemExit("no cache")
    return {"s": s, "builds": mx2trt.build.BUILDS, "engines": len(c.engines)}


def _run(step: str, work: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, "--work", str(work)], capture_output=True,
                         text=True, env={**os.environ, "MX2TRT_CACHE": "1"})
    if out.returncode != 0:
        raise SystemExit(f"{step} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(name: str, runs: int) -> dict:
    from mx2trt._mx import mx

    with tempfile.TemporaryDirectory(prefix="mx2trt-bench-") as tmp:
        work = Path(tmp)
        sym, params, shapes = _model(name)
        mx.model.save_checkpoint(str(work / "model"), 0, sym, {k: v for k, v in params.items()
                                                               if k in sym.list_arguments()},
                                 {k: v for k, v in params.items() if k in sym.list_auxiliary_states()})
        (work / "shapes.json").write_text(json.dumps({k: list(v) for k, v in shapes.items()}))
        first = _run("hit", work)  # fills the cache (its own figure is a cold build into the cache)
        saved = _run("save", work)
        times: dict[str, list[float]] = {"cold": [], "hit": [], "load": []}
        builds = {"hit": 0, "load": 0}
        for _ in range(runs):
            for step in times:
                r = _run(step, work)
                times[step].append(r["s"])
                if step in builds:
                    builds[step] += r["builds"]
        med = {k: statistics.median(v) for k, v in times.items()}
        return {"model": MODELS.get(name, name), "engines": saved["engines"], "first build": first["s"],
                **med, "builds on hit/load": builds["hit"] + builds["load"],
                "cold/hit": med["cold"] / med["hit"], "cold/load": med["cold"] / med["load"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, Path(args.work))))
        return
    rows = [bench(m, args.runs) for m in args.models]
    print(f"median of {args.runs} runs, each in a fresh process; seconds inside the call")
    print("| model | engines | cold optimize | cache-hit optimize | load | cold / hit | cold / load | builds on hit/load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['engines']} | {r['cold']:.2f} | {r['hit']:.3f} | {r['load']:.3f} | "
              f"{r['cold/hit']:.1f}x | {r['cold/load']:.1f}x | {r['builds on hit/load']} |")


if __name__ == "__main__":
    main()
