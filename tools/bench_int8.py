#!/usr/bin/env python3
"""int8/fp8 against fp16/fp32: build time, plan size, quantized vs float nodes, and accuracy, as markdown tables.

Each (model, precision) is built in a fresh process, `--runs` times (medians; min-max in brackets), with the engine
cache off. Accuracy: the digits CNN (trained here on scikit-learn's digits, calibrated with `--method` on 800 training
images) gives top-1 accuracy on 500 held-out images and agreement with float; zoo models (random weights, calibrated
on 4 random batches) give the max relative error of the output against MXNet float32.

    python tools/bench_int8.py [--models digits_cnn resnet50_v1 mobilenetv2_1.0] [--size 224] [--runs 3]
                               [--out docs/bench/int8.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mx2trt.benchmark import fresh_json, spread_text

PRECISIONS = ("fp32", "fp16", "int8", "fp8")

CHILD = r"""
import json, os, sys, numpy as np
os.environ["MXNET_MKLDNN_ENABLED"] = "0"
import mx2trt
from mx2trt import zoo
from mx2trt._mx import mx
model, prec, size, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def run(sym, params, x):
    vals = {"data": x, **{k: v.asnumpy() for k, v in params.items()}}
    args = {n: mx.nd.array(vals[n]) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(vals[n]) for n in sym.list_auxiliary_states()}
    return sym.bind(mx.cpu(), args, aux_states=aux, grad_req="null").forward()[0].asnumpy()

if model == "digits_cnn":
    sym, params, _ = zoo.digits_cnn()
    x_train, _, x_test, y_test = zoo.digits_data()
    shapes = {"data": (100, 1, 8, 8)}
    calib = [x_train[i:i + 100] for i in range(0, 800, 100)]
    evaluate = [x_test[i:i + 100] for i in range(0, 500, 100)]
else:
    sym, params, shapes = zoo.get(model, size=size)
    rng = np.random.default_rng(1)
    calib = [rng.standard_normal(shapes["data"]).astype(np.float32) for _ in range(4)]
    evaluate = [rng.standard_normal(shapes["data"]).astype(np.float32)]
extra = {}
if prec in ("int8", "fp8"):
    extra["calibration"] = mx2trt.calibrate(sym, params, shapes, calib, method=method, progress=False)
c = mx2trt.convert(sym, params, shapes, precision=prec, runtime="reference", cache=False, progress=False, **extra)
got = np.concatenate([run(c.symbol, c.params, x) for x in evaluate])
want = np.concatenate([run(sym, params, x) for x in evaluate])
out = {"engines": len(c.engines), "build_s": sum(e.build_s for e in c.engines),
       "plan_bytes": sum(len(e.plan or b"") for e in c.engines), "quantized": len(c.quant),
       "quantizable": sum(1 for n in c.partition.graph.op_nodes if (mx2trt.REGISTRY.get(n.op) or 0) and
                          mx2trt.REGISTRY.get(n.op).quantize),
       "nodes": c.report.nodes_total,
       "max_rel": float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))}
if model == "digits_cnn":
    out["accuracy"] = float((got.argmax(1) == y_test).mean())
    out["float_accuracy"] = float((want.argmax(1) == y_test).mean())
    out["agreement"] = float((got.argmax(1) == want.argmax(1)).mean())
print(json.dumps(out))
"""


def measure(model: str, prec: str, size: int, method: str) -> dict:
    return fresh_json(CHILD, model, prec, str(size), method, what=f"{model} {prec}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["digits_cnn", "resnet50_v1", "mobilenetv2_1.0"])
    ap.add_argument("--size", type=int, default=224, help="input size of zoo models (default %(default)s)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--method", default="entropy", help="calibration method (default %(default)s)")
    ap.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    args = ap.parse_args()
    rows = []
    for model in args.models:
        for prec in PRECISIONS:
            runs = [measure(model, prec, args.size, args.method) for _ in range(args.runs)]
            rows.append((model, prec, runs))
            print(f"{model} {prec}: {runs[-1]}", file=sys.stderr, flush=True)
    lines = [f"Batch 1 ({args.size}x{args.size}) for zoo models, batch 100 of 8x8 images for the digits CNN; "
             f"{args.runs} fresh processes per row; calibration '{args.method}'; {_trt()}.", "",
             "| model | precision | engines | quantized nodes | build s | plan MiB | plan vs fp32 | max rel err vs fp32 "
             "MXNet | accuracy (float) | agreement |", "|---|---|---|---|---|---|---|---|---|---|"]
    fp32_plan = {}
    for model, prec, runs in rows:
        r = runs[0]
        if prec == "fp32":
            fp32_plan[model] = r["plan_bytes"]
        acc = f"{r['accuracy']:.3f} ({r['float_accuracy']:.3f})" if "accuracy" in r else "-"
        agree = f"{r['agreement']:.3f}" if "agreement" in r else "-"
        lines.append(f"| {model} | {prec} | {r['engines']} | {r['quantized']}/{r['quantizable']} of {r['nodes']} | "
                     f"{spread_text([x['build_s'] for x in runs], '.2f')} | {r['plan_bytes'] / 2**20:.2f} | "
                     f"{r['plan_bytes'] / max(fp32_plan.get(model, 1), 1):.2f}× | {r['max_rel']:.2e} | {acc} | "
                     f"{agree} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("# int8 and fp8 against fp16 and fp32 (tools/bench_int8.py)\n\n" + text + "\n")


def _trt() -> str:
    import mx2trt

    return f"{mx2trt.TRT_FLAVOR} {mx2trt.TRT_VERSION} builder, reference runtime (no GPU here)"


if __name__ == "__main__":
    main()
