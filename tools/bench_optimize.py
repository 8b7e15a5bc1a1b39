#!/usr/bin/env python3
"""Time `mx2trt.convert` per model (network definition vs engine build) and check each against MXNet; print a table.

    python tools/bench_optimize.py                       # LeNet + all 34 vision-zoo models at their smallest input
    python tools/bench_optimize.py ssd yolo3 deeplab simple_pose   # detection/segmentation/pose (zoo.HEAD_MODELS)
    python tools/bench_optimize.py resnet50_v1 --size 224 --batch 8 --precision fp16

Columns: op nodes, engines, share of nodes / multiply-accumulates inside TensorRT, time to define the TensorRT
networks, to build the engines (ahead of time), plan size, and the optimized graph's max relative error against
MXNet on CPU (engines run by the NumPy reference interpreter unless a TensorRT-capable GPU is present).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")  # MXNet's MKLDNN kernels are wrong for some ops

import numpy as np  # noqa: E402

import mx2trt  # noqa: E402
from mx2trt import zoo  # noqa: E402
from mx2trt._mx import mx  # noqa: E402


def forward(sym, values: dict) -> np.ndarray:
    args = {n: mx.nd.array(values[n]) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(values[n]) for n in sym.list_auxiliary_states()}
    return sym.bind(mx.cpu(), args, aux_states=aux, grad_req="null").forward(is_train=False)[0].asnumpy()


def bench(name: str, batch: int, size: int | None, precision: str, runtime: str) -> dict:
    sym, params, shapes = zoo.get(name, batch=batch, size=size)
    t0 = time.perf_counter()
    c = mx2trt.convert(sym, params, shapes, precision=precision, runtime=runtime)
    total = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    feeds = {"data": rng.standard_normal(shapes["data"]).astype(np.float32)}
    if "softmax_label" in sym.list_arguments():
        feeds["softmax_label"] = np.zeros(shapes["data"][0], np.float32)
    want = forward(sym, {**feeds, **{k: v.asnumpy() for k, v in params.items()}})
    t1 = time.perf_counter()
    got = forward(c.symbol, {**feeds, **{k: v.asnumpy() for k, v in c.params.items()}})
    run_s = time.perf_counter() - t1
    rep = c.report
    return {
        "model": name,
        "input": "x".join(map(str, shapes["data"])),
        "nodes": rep.nodes_total,
        "engines": len(c.engines),
        "nodes_trt": f"{100 * rep.node_coverage:.0f}%",
        "macs_trt": "-" if rep.mac_coverage is None else f"{100 * rep.mac_coverage:.0f}%",
        "layers": sum(e.num_layers for e in c.engines),
        "define_s": sum(e.define_s for e in c.engines),
        "build_s": sum(e.build_s for e in c.engines),
        "convert_s": total,
        "plan_mib": sum(len(e.plan) for e in c.engines) / 2**20,
        "run_s": run_s,
        "max_rel_err": float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)),
    }


COLUMNS = [
    ("model", "{:<18}"), ("input", "{:<14}"), ("nodes", "{:>5}"), ("engines", "{:>7}"), ("nodes_trt", "{:>9}"),
    ("macs_trt", "{:>8}"), ("layers", "{:>6}"), ("define_s", "{:>8.2f}"), ("build_s", "{:>7.2f}"),
    ("convert_s", "{:>9.2f}"), ("plan_mib", "{:>8.1f}"), ("run_s", "{:>6.2f}"), ("max_rel_err", "{:>11.1e}"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="'lenet', vision-zoo or zoo.HEAD_MODELS names (default: lenet + vision zoo)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, help="square input size (default: the smallest each model accepts)")
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    ap.add_argument("--runtime", choices=["auto", "tensorrt", "reference"], default="auto")
    args = ap.parse_args(argv)
    names = args.models or ["lenet", *zoo.VISION_MODELS]
    print(f"mx2trt {mx2trt.__version__}, {mx2trt.TRT_FLAVOR} {mx2trt.TRT_VERSION}, {args.precision}, "
          f"batch {args.batch}, {os.cpu_count()} CPU cores")
    print(" ".join(_head(col, fmt) for col, fmt in COLUMNS))
    for name in names:
        row = bench(name, args.batch, args.size, args.precision, args.runtime)
        print(" ".join(fmt.format(row[col]) for col, fmt in COLUMNS), flush=True)
    return 0


def _head(col: str, fmt: str) -> str:
    width = int("".join(ch for ch in fmt.split(":")[1].split(".")[0] if ch.isdigit()))
    return f"{col:<{width}}" if "<" in fmt else f"{col:>{width}}"


if __name__ == "__main__":
    sys.exit(main())
