#!/usr/bin/env python3
"""mx2trt demo: convert an MXNet model, show where every node runs, and check the optimized graph against MXNet.

    python tools/demo.py                          # Gluon model zoo resnet18_v1, random weights, 1x3x32x32
    python tools/demo.py --model lenet            # a Symbol-API LeNet ending in SoftmaxOutput
    python tools/demo.py --model mobilenet1.0 --shape 2,3,64,64 --precision fp16

Weights are random (no download): Xavier init and randomized BatchNorm statistics, so BatchNorm folding is really
exercised. Without a GPU that can execute TensorRT engines the engines are still built (TensorRT-RTX builds ahead of
time on the CPU) and the optimized graph runs them with the NumPy reference interpreter (runtime "reference").
Exits 1 when the optimized graph disagrees with MXNet by more than --tol.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")  # MXNet's MKLDNN kernels are wrong for some ops

import numpy as np  # noqa: E402

import mx2trt  # noqa: E402
from mx2trt import zoo  # noqa: E402
from mx2trt._mx import mx  # noqa: E402
from mx2trt.runtime import resolve_runtime  # noqa: E402

DEFAULT_TOL = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 5e-2}


def run_cpu(sym: Any, params: dict[str, Any], data: np.ndarray, label_shapes: dict[str, tuple[int, ...]]) -> list[np.ndarray]:
    """Bind `sym` on CPU as a user would, load `params`, and run inference on `data`.

    Label shapes (e.g. SoftmaxOutput's, unused at inference) are passed for whichever symbol still has them, since
    MXNet infers them backwards from the loss op and an engine node does not infer its inputs' shapes.
    """
    labels = {k: v for k, v in label_shapes.items() if k in sym.list_arguments()}
    ex = sym.simple_bind(mx.cpu(), grad_req="null", data=data.shape, **labels)
    arg = {k: v for k, v in params.items() if k in ex.arg_dict}
    aux = {k: v for k, v in params.items() if k in ex.aux_dict}
    missing = set(ex.arg_dict) - set(arg) - {"data"} - set(labels)
    if missing:
        raise SystemExit(f"no value for arguments {sorted(missing)}")
    ex.copy_params_from(arg, aux)
    return [o.asnumpy() for o in ex.forward(is_train=False, data=mx.nd.array(data))]


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,3,32,32, got {text!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"bad shape {text!r}")
    return shape


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Convert an MXNet model with mx2trt and compare it with MXNet.")
    ap.add_argument("--model", default="resnet18_v1", help="'lenet' or any gluon model zoo name (default: %(default)s)")
    ap.add_argument("--shape", type=parse_shape, help="input shape N,C,H,W, square (default: batch 1 at the "
                    "smallest size the model accepts; LeNet is always 28x28)")
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    ap.add_argument("--runtime", choices=["auto", "tensorrt", "reference"], default="auto",
                    help="how the engine nodes execute (default: %(default)s: TensorRT on a capable GPU, else reference)")
    ap.add_argument("--tol", type=float, help="max relative error accepted (default: 1e-4 fp32, 2e-2 fp16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ops", action="store_true", help="print the per-op summary table as well")
    ap.add_argument("-v", "--verbose", action="store_true", help="mx2trt's log at DEBUG level")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tol = args.tol if args.tol is not None else DEFAULT_TOL[args.precision]
    rng = np.random.default_rng(args.seed)

    print(f"mx2trt {mx2trt.__version__} | MXNet {mx.__version__} | {mx2trt.TRT_FLAVOR} {mx2trt.TRT_VERSION}")
    batch, size = (args.shape[0], args.shape[-1]) if args.shape else (1, None)
    try:
        sym, params, shapes = zoo.get(args.model, batch=batch, size=size, seed=args.seed)
    except ValueError as exc:  # unknown model name
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shape = shapes["data"]
    print(f"model {args.model}: {len(sym.get_internals().list_outputs())} graph entries, "
          f"{sum(int(np.prod(v.shape)) for v in params.values()):,} parameters, input {shape}, {args.precision}\n")

    t0 = time.perf_counter()
    try:
        conversion = mx2trt.convert(sym, params, {"data": shape}, precision=args.precision, runtime=args.runtime)
    except mx2trt.Mx2TrtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    convert_s = time.perf_counter() - t0
    print(conversion.report)
    if args.ops:
        print("\n" + conversion.report.op_table())
    print(f"\nconversion took {convert_s:.2f}s (partition {conversion.report.partition_s:.3f}s)")
    for e in conversion.engines:
        plan = f"{len(e.plan):,} bytes" if e.plan else "not built"
        print(f"  {e.name} [{e.key}]: {len(e.nodes)} nodes, {e.num_layers} layers, "
              f"define {e.define_s:.3f}s, build {e.build_s:.3f}s, plan {plan}")

    data = rng.standard_normal(shape).astype(np.float32)
    t0 = time.perf_counter()
    arg_shapes, _, _ = sym.infer_shape(data=shape)
    label_shapes = {n: tuple(s) for n, s in zip(sym.list_arguments(), arg_shapes) if n.endswith("_label")}
    want = run_cpu(sym, params, data, label_shapes)
    mx_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = run_cpu(conversion.symbol, conversion.params, data, label_shapes)
    opt_s = time.perf_counter() - t0
    runtime = resolve_runtime(args.runtime)
    print(f"\nMXNet CPU forward {mx_s:.3f}s; optimized graph forward {opt_s:.3f}s (engines run by: {runtime})")

    ok = len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            print(f"output {k}: shape {g.shape} vs MXNet {w.shape}")
            ok = False
            continue
        diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
        abs_err = float(diff.max()) if diff.size else 0.0
        rel_err = abs_err / max(float(np.abs(w).max()) if w.size else 0.0, 1e-12)
        print(f"output {k} {tuple(w.shape)}: max abs error {abs_err:.3e}, max relative error {rel_err:.3e} "
              f"(relative to max |MXNet output| = {float(np.abs(w).max()):.3e})")
        ok &= rel_err <= tol
    print(("PASS" if ok else "FAIL") + f": optimized graph matches MXNet within relative tolerance {tol:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
