"""Memory of repeated optimize in one process: each call gets new weights and its result is dropped; prints the
process's RSS after every few calls and how many engines are still alive (mx2trt/engine.py frees the others).

    python tools/bench_engine_memory.py --model resnet18_v1 --calls 30 --store-mb 256
"""
from __future__ import annotations

import argparse
import gc
import os
import time
import weakref


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18_v1", help="a model of mx2trt.zoo")
    ap.add_argument("--shape", default="1,3,32,32", help="data shape")
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--store-mb", type=float, default=None, help="MX2TRT_ENGINE_STORE_MB for this run")
    ap.add_argument("--every", type=int, default=5, help="print a row every N calls")
    args = ap.parse_args()
    if args.store_mb is not None:
        os.environ["MX2TRT_ENGINE_STORE_MB"] = str(args.store_mb)
    os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")

    import numpy as np

    import mx2trt
    from mx2trt import zoo
    from mx2trt._mx import mx
    from mx2trt.engine import STORE

    shape = tuple(int(d) for d in args.shape.split(","))
    sym, params, _ = zoo.get(args.model, batch=shape[0])
    rng = np.random.default_rng(0)
    refs: list[weakref.ref] = []
    base = rss_mb()
    print(f"{args.model} {shape}, store bound {STORE.limit_bytes / 2**20:.0f} MiB, RSS before {base:.0f} MiB")
    print(f"{'calls':>5} {'RSS MiB':>8} {'growth':>7} {'engines alive':>13} {'store MiB':>9} {'s/call':>7}")
    t0 = time.perf_counter()
    for i in range(1, args.calls + 1):
        new = {k: mx.nd.array(np.abs(rng.standard_normal(v.shape)).astype(np.float32) * 0.05 + ("var" in k))
               for k, v in params.items()}  # positive variances
        c = mx2trt.convert(sym, new, {"data": shape}, runtime="reference")
        refs.extend(weakref.ref(e) for e in c.engines)
        del c, new
        if i % args.every == 0 or i == args.calls:
            gc.collect()
            alive = sum(r() is not None for r in refs)
            now = rss_mb()
            print(f"{i:>5} {now:>8.0f} {now - base:>+7.0f} {alive:>13} {STORE.recent_bytes / 2**20:>9.1f} "
                  f"{(time.perf_counter() - t0) / i:>7.2f}")


if __name__ == "__main__":
    main()
