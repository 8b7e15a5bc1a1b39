#!/usr/bin/env python3
"""mx2trt against MXNet's ONNX route (mx.onnx.export_model -> TensorRT's OnnxParser) on the same TensorRT builder:
time to network, time to plan, the builds, cache hit and load, partition quality and memory, in fresh processes.

    python tools/bench.py                                             # the default models, batch 1, 3 runs
    python tools/bench.py --models resnet50_v1 bert --batch 1 8 --seq 128 --json b.json --plot b.png --md b.md
    mx2trt bench --zoo resnet50_v1 vgg16 --vs-onnx                    # the same from the command line

The logic lives in mx2trt.benchmark; `python tools/bench.py --help` lists the options. docs/bench/ holds the last
full run (README, "Benchmarks").
"""
import os
import sys

os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")  # MXNet's MKLDNN kernels are wrong for some ops

from mx2trt.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
