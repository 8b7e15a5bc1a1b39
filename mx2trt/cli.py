"""The `mx2trt` command: explain, convert, calibrate, cache ls|clear, bench and debug, on MXNet checkpoints or
symbol/params files.

Exit codes: 0 ok, 1 an mx2trt error (one line on stderr, no traceback), 2 a usage error (argparse's message). `debug`
has its own (DEBUG_EXIT_CODES): 0 no divergence, 1 a divergence found, 2 usage or bad input, 3 another error."""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import mxnet_message

PROG = "mx2trt"
EXAMPLES = """examples:
  mx2trt explain resnet50 0 --shape data=1,3,224,224
  mx2trt convert resnet50 0 --shape data=8,3,224,224 --precision fp16 -o resnet50-trt
  mx2trt convert --symbol net-symbol.json --params net-0000.params --shape data=1,3,32,32
  mx2trt calibrate resnet50 0 --shape data=32,3,224,224 --data data=calib.npy -o table.json
  mx2trt convert resnet50 0 --shape data=8,3,224,224 --precision int8 --calibration table.json
  mx2trt cache ls
  mx2trt cache clear
  mx2trt debug resnet50 0 --shape data=1,3,224,224 --input data=x.npy --precision fp16

exit codes: 0 ok, 1 conversion error (message on stderr), 2 usage error (debug: see mx2trt debug --help)"""
DEBUG_EXIT_CODES = """exit codes: 0 no divergence, 1 a divergence found (the first divergent node is named),
  2 usage error or bad input (model files, --input names, shapes or files), 3 another error (message on stderr)"""


class _Shape(argparse.Action):
    """--shape name=d1,d2,... or name=min:opt:max (each d1,d2,...: an optimization profile's range): repeatable,
    collected into {name: dims or [min, opt, max]}; a bad value or a repeated name is a usage error naming it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                 option: str | None = None) -> None:
        shapes = dict(getattr(namespace, self.dest, None) or {})
        name, sep, dims = value.partition("=")
        name = name.strip()
        try:
            parts = [tuple(int(d) for d in part.split(",")) for part in dims.split(":")] if sep and name else []
        except ValueError:
            parts = []
        if len(parts) not in (1, 3) or any(d < 1 for part in parts for d in part):
            parser.error(f"argument --shape: bad value {value!r}: expected NAME=D1,D2,... with positive integers, "
                         "like data=1,3,224,224, or a range NAME=MIN:OPT:MAX like data=1,3,224,224:8,3,224,224:32,3,"
                         "224,224")
        shape: Any = parts[0] if len(parts) == 1 else [list(p) for p in parts]
        if name in shapes:
            parser.error(f"argument --shape: {name!r} is given twice")
        shapes[name] = shape
        setattr(namespace, self.dest, shapes)


class _Dtype(argparse.Action):
    """--dtype name=float16: repeatable, collected into {name: dtype string}."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                 option: str | None = None) -> None:
        name, sep, dt = value.partition("=")
        if not (sep and name and dt):
            parser.error(f"argument --dtype: bad value {value!r}: expected NAME=DTYPE, like data=float16")
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest, None) or {}), name: dt})


class _Input(argparse.Action):
    """--input name=file.npy: repeatable, collected into {name: path}."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                 option: str | None = None) -> None:
        files = dict(getattr(namespace, self.dest, None) or {})
        name, sep, path = value.partition("=")
        if not (sep and name.strip() and path):
            parser.error(f"argument {option or '--input'}: bad value {value!r}: expected NAME=FILE.npy, like data=x.npy")
        if name.strip() in files:
            parser.error(f"argument {option or '--input'}: {name.strip()!r} is given twice")
        files[name.strip()] = Path(path)
        setattr(namespace, self.dest, files)


def _model_args(p: argparse.ArgumentParser, shape_required: bool = True) -> None:
    """The model (checkpoint prefix + epoch, or --symbol/--params files) and the partitioning options."""
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT",
                   help="checkpoint prefix: reads CHECKPOINT-symbol.json and CHECKPOINT-EPOCH.params")
    p.add_argument("epoch", nargs="?", type=int, metavar="EPOCH", help="checkpoint epoch (an integer)")
    p.add_argument("--symbol", metavar="FILE", help="a -symbol.json file (instead of CHECKPOINT EPOCH)")
    p.add_argument("--params", metavar="FILE", help="its .params file (keys with or without arg:/aux:)")
    p.add_argument("--shape", action=_Shape, required=shape_required, metavar="NAME=D1,D2,...",
                   help="shape of a data input, or its range MIN:OPT:MAX (each D1,D2,...) for an optimization "
                        "profile; repeat for each input")
    p.add_argument("--dtype", action=_Dtype, metavar="NAME=DTYPE", help="dtype of a data input (default float32)")
    p.add_argument("--exclude-op", action="append", default=[], metavar="OP", help="keep every node of OP in MXNet")
    p.add_argument("--exclude-node", action="append", default=[], metavar="NODE", help="keep node NODE in MXNet")
    p.add_argument("--min-subgraph-size", type=int, default=1, metavar="N",
                   help="smallest number of op nodes worth an engine (default %(default)s)")


def _build_args(p: argparse.ArgumentParser, quantized: bool = False, islands: bool = False) -> None:
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"] + (["int8", "fp8"] if quantized else []),
                   default="fp32", help="inside engines (default %(default)s)" + (
                       "; int8/fp8 quantize convolutions, FCs and matrix products with --calibration" if quantized
                       else ""))
    if quantized:
        g = p.add_argument_group("int8/fp8")
        g.add_argument("--calibration", metavar="TABLE.json", help="a table from `mx2trt calibrate`")
        g.add_argument("--int8-fallback", choices=["fp16", "fp32"], default="fp16",
                       help="precision of what is not quantized (default %(default)s)")
        g.add_argument("--exclude-quant-op", action="append", default=[], metavar="OP",
                       help="keep every node of OP in floating point")
        g.add_argument("--exclude-quant-node", action="append", default=[], metavar="NODE",
                       help="keep node NODE in floating point")
    if islands:
        _island_args(p.add_argument_group("fp16 range"))
    p.add_argument("--runtime", choices=["auto", "tensorrt", "reference"], default="auto",
                   help="how engine nodes run (default %(default)s: TensorRT on a capable GPU, else NumPy)")
    p.add_argument("--no-progress", action="store_true", help="no build progress bar")


def _float64_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--float64", choices=["refuse", "float32"], default="refuse",
                   help="float64 nodes: stay in MXNet (default, TensorRT has no float64) or compute in float32")


def _saved_model_args(p: argparse.ArgumentParser) -> None:
    """The saved model and its Triton name (triton, serve)."""
    p.add_argument("model", metavar="PREFIX", help="the saved model (PREFIX-mx2trt.json and its files)")
    p.add_argument("--name", default="model", help="the Triton model name (default %(default)s)")


def _island_args(g: Any) -> None:
    g.add_argument("--fp32-op", action="append", default=[], metavar="OP",
                   help="run every node of OP in float32 inside fp16/bf16 engines")
    g.add_argument("--fp32-node", action="append", default=[], metavar="NODE",
                   help="run node NODE in float32 inside fp16/bf16 engines")
    g.add_argument("--no-overflow-guard", action="store_true",
                   help="do not keep attention energies and box-decoding exp in float32 in fp16 engines")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("-v", "--verbose", action="count", default=0, help="mx2trt's log at INFO (-vv: DEBUG)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success (warnings still show)")


def parser() -> argparse.ArgumentParser:
    """The argument parser of `mx2trt`."""
    top = argparse.ArgumentParser(prog=PROG, description="Convert Apache MXNet 1.9 models to TensorRT engines.",
                                  epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    subs = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = subs.add_parser("explain", help="where each node would run and why (builds nothing)",
                        description="Print where each op node would run (an engine or MXNet) and why; builds nothing.")
    _model_args(p)
    _float64_arg(p)
    p.add_argument("--ops", action="store_true", help="also print the per-op table")
    _common(p)
    p.set_defaults(run=cmd_explain, _parser=p)

    p = subs.add_parser("convert", help="build the engines and save the optimized model",
                        description="Build one TensorRT engine per convertible region and save the optimized model "
                                    "(OUT-symbol.json, OUT-0000.params, OUT-engines/, OUT-mx2trt.json; load it "
                                    "with mx2trt.load(OUT)).")
    _model_args(p)
    _float64_arg(p)
    _build_args(p, quantized=True, islands=True)
    p.add_argument("-o", "--output", metavar="OUT", help="prefix of the saved model (default: CHECKPOINT-trt)")
    p.add_argument("--cache-dir", metavar="DIR", help="engine cache directory (default: MX2TRT_CACHE_DIR, else the "
                                                      "user's cache directory)")
    p.add_argument("--no-cache", action="store_true", help="build every engine, neither reading nor writing the engine cache")
    _common(p)
    p.set_defaults(run=cmd_convert, _parser=p)

    p = subs.add_parser("calibrate", help="int8/fp8 ranges from calibration data, for convert --precision int8",
                        description="Run the float model in MXNet over calibration data and write the range (amax) "
                                    "of every input of a quantizable op (convolution, FC, dot, batch_dot) as a JSON "
                                    "table for `convert --precision int8|fp8 --calibration TABLE.json`.",
                        epilog="example:\n  mx2trt calibrate resnet50 0 --shape data=32,3,224,224 --data data=calib.npy "
                               "--method entropy -o resnet50-calib.json",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_args(p)
    p.add_argument("--data", action=_Input, required=True, metavar="NAME=FILE.npy",
                   help="calibration samples of a data input (.npy, N samples along axis 0), read in batches of its "
                        "--shape's first dimension; repeat for each input")
    p.add_argument("--method", choices=["max", "percentile", "entropy", "mse"], default="max",
                   help="how a range is chosen (default %(default)s)")
    p.add_argument("--percentile", type=float, default=99.99, help="for --method percentile (default %(default)s)")
    p.add_argument("--batches", type=int, metavar="N", help="use at most N batches")
    p.add_argument("-o", "--output", metavar="TABLE.json", required=True, help="where to write the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(p)
    p.set_defaults(run=cmd_calibrate, _parser=p)

    p = subs.add_parser("triton", help="export a saved model as a Triton model repository",
                        description="Write a model saved by `mx2trt convert` (or mx2trt.save) into a Triton model "
                                    "repository: converted into one engine, a TensorRT-plan model "
                                    "(REPO/NAME/config.pbtxt and REPO/NAME/VERSION/model.plan; Triton's TensorRT "
                                    "backend loads plans of the full TensorRT it was built with only); partly "
                                    "converted, a Python-backend model serving it with MXNet and its engines "
                                    "(REPO/NAME/VERSION/model.py and the saved model).")
    _saved_model_args(p)
    p.add_argument("-o", "--output", metavar="REPO", required=True, help="the model repository directory")
    p.add_argument("--version", type=int, default=1, help="the model version (default %(default)s)")
    _common(p)
    p.set_defaults(run=cmd_triton, _parser=p)

    p = subs.add_parser("serve", help="serve a saved model with Triton Inference Server (PyTriton)",
                        description="Serve a model saved by `mx2trt convert` (or mx2trt.save) over HTTP and gRPC with "
                                    "the Triton server PyTriton bundles, until interrupted. A model optimized with "
                                    "a batch range is served with Triton's dynamic batcher; static ones take whole "
                                    "tensors of the shapes they were optimized for. Outputs are named as the "
                                    "optimized symbol's list_outputs().")
    _saved_model_args(p)
    p.add_argument("--shape", action=_Shape, metavar="NAME=D1,D2,...",
                   help="shape of a data input the model does not fix (repeatable)")
    p.add_argument("--max-batch", type=int, metavar="N", help="the largest batch Triton's dynamic batcher forms "
                                                              "(default: the batch range's max)")
    p.add_argument("--http-port", type=int, default=8000, help="(default %(default)s)")
    p.add_argument("--grpc-port", type=int, default=8001, help="(default %(default)s)")
    p.add_argument("--metrics-port", type=int, default=8002, help="(default %(default)s)")
    _common(p)
    p.set_defaults(run=cmd_serve, _parser=p)

    p = subs.add_parser("cache", help="list or clear the engine cache",
                        description="List (ls) or empty (clear) the on-disk engine cache.")
    p.add_argument("action", choices=["ls", "clear"])
    p.add_argument("--cache-dir", metavar="DIR", help="the cache directory (default: MX2TRT_CACHE_DIR, else the "
                                                      "user's cache directory)")
    _common(p)
    p.set_defaults(run=cmd_cache, _parser=p)

    p = subs.add_parser("bench", help="convert, cache-hit and save/load times; --zoo: mx2trt vs the ONNX route",
                        description="With a model: a quick, in-process look at its timings (convert with the cache "
                                    "off, into an empty cache, from a warm cache, then save and load). With --zoo: "
                                    "the benchmark of tools/bench.py on zoo models, each figure in fresh processes "
                                    "(medians over --runs), against MXNet's ONNX route with --vs-onnx.",
                        epilog="examples:\n  mx2trt bench resnet50 0 --shape data=1,3,224,224\n"
                               "  mx2trt bench --zoo resnet50_v1 bert --vs-onnx --batch 1 8 --plot bench.png",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_args(p, shape_required=False)
    _build_args(p)
    p.add_argument("--repeat", type=int, default=3, metavar="N", help="runs of each quick step (default %(default)s)")
    g = p.add_argument_group("--zoo (fresh processes; see tools/bench.py)")
    g.add_argument("--zoo", nargs="+", metavar="MODEL", help="benchmark these models instead of a checkpoint: "
                   "tiny_cnn, lenet, a vision-zoo name, bert, bert_tiny, gluonnlp_bert")
    g.add_argument("--vs-onnx", action="store_true",
                   help="also measure mx.onnx.export_model + TensorRT's OnnxParser on the same builder")
    g.add_argument("--runs", type=int, metavar="N", help="fresh processes per figure (default 3)")
    from .benchmark import add_arguments

    add_arguments(g, models=False)
    _common(p)
    p.set_defaults(run=cmd_bench, _parser=p)

    p = subs.add_parser("debug", help="compare every node's output with MXNet's and name the first divergence",
                        description="Run the model in MXNet and through mx2trt's engines (each engine fed MXNet's "
                                    "values of its inputs), compare every node's output, and name the first node "
                                    "whose relative error exceeds the tolerance or that has inf/NaN MXNet has not. "
                                    "See docs/debugging.md.",
                        epilog=DEBUG_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_args(p)
    p.add_argument("--input", action=_Input, required=True, metavar="NAME=FILE.npy",
                   help="the values of a data input (numpy .npy, of its --shape); repeat for each input")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32",
                   help="inside engines (default %(default)s)")
    p.add_argument("--runtime", choices=["auto", "tensorrt", "reference"], default="auto",
                   help="what evaluates the engines (default %(default)s: TensorRT on a capable GPU, else NumPy)")
    p.add_argument("--tolerance", type=float, metavar="REL",
                   help="max relative error per node (default by precision: fp32 1e-5, fp16 5e-3, bf16 5e-2)")
    p.add_argument("--plot", metavar="FILE.png", help="also write a PNG of the error along the graph")
    _common(p)
    p.set_defaults(run=cmd_debug, _parser=p)
    return top


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("mx2trt")
    except Exception:  # not installed: the source tree's version is in mx2trt/__init__.py
        return "unknown"


# ---- inputs ------------------------------------------------------------------------------------------------------


def _usage(args: argparse.Namespace, message: str) -> None:
    args._parser.error(message)  # exits 2


def _source(args: argparse.Namespace) -> tuple[Path, int | None]:
    """(prefix, epoch) of a checkpoint, or (symbol file, None); usage errors for a wrong combination."""
    if args.symbol:
        if args.checkpoint is not None:
            _usage(args, "give either CHECKPOINT EPOCH or --symbol/--params, not both")
        return Path(args.symbol), None
    if args.params:
        _usage(args, "--params needs --symbol")
    if args.checkpoint is None:
        _usage(args, "give CHECKPOINT EPOCH, or --symbol FILE --params FILE")
    if args.epoch is None:
        _usage(args, f"CHECKPOINT {args.checkpoint!r} needs an EPOCH (e.g. 0)")
    prefix = args.checkpoint[: -len("-symbol.json")] if args.checkpoint.endswith("-symbol.json") else args.checkpoint
    return Path(prefix), args.epoch


def _load(args: argparse.Namespace, need_params: bool) -> tuple[Any, dict[str, Any] | None, Path, list[Path]]:
    """(symbol, params or None, default output prefix, files read) of the model the command line names."""
    from ._mx import mx
    from .errors import InputError

    where, epoch = _source(args)
    if epoch is None:
        if need_params and not args.params:
            _usage(args, f"{args.command} needs --params with --symbol")
        files = [where] + ([Path(args.params)] if args.params else [])
    else:
        files = [Path(f"{where}-symbol.json"), Path(f"{where}-{epoch:04d}.params")]
    for f in files:
        if not f.is_file():
            found = _epochs(where) if epoch is not None else []
            raise InputError(f"cannot read the model: {f} does not exist"
                             + (f" (checkpoint {where} has epoch(s) {', '.join(found)})" if found else ""))
    try:
        sym = mx.sym.load(str(files[0]))
        if epoch is not None:
            _, arg, aux = mx.model.load_checkpoint(str(where), epoch)
            params = {**arg, **aux}
        else:
            params = mx.nd.load(str(files[1])) if len(files) > 1 else None
    except (mx.base.MXNetError, OSError, ValueError) as exc:
        raise InputError(f"cannot read the model from {', '.join(map(str, files))}: {mxnet_message(exc)}") from None
    if isinstance(params, list):
        raise InputError(f"{files[1]} holds a list of arrays, not named parameters")
    out = where if epoch is not None else Path(str(where).removesuffix(".json").removesuffix("-symbol"))
    return sym, params, Path(f"{out}-trt"), files


def _epochs(prefix: Path) -> list[str]:
    """The epochs of the checkpoint files `prefix`-NNNN.params on disk."""
    pattern = re.compile(re.escape(prefix.name) + r"-(\d{4})\.params")
    found = (pattern.fullmatch(p.name) for p in prefix.parent.glob(f"{glob.escape(prefix.name)}-*.params"))
    return sorted(str(int(m.group(1))) for m in found if m)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    quant = {}
    if getattr(args, "calibration", None) is not None or getattr(args, "precision", "") in ("int8", "fp8"):
        quant = {"calibration": args.calibration, "int8_fallback": args.int8_fallback,
                 "exclude_quant_ops": args.exclude_quant_op, "exclude_quant_nodes": args.exclude_quant_node}
    islands = {}
    if hasattr(args, "fp32_op"):
        islands = {"fp32_ops": args.fp32_op, "fp32_nodes": args.fp32_node, "overflow_guard": not args.no_overflow_guard}
    return {"dtypes": args.dtype, "exclude_ops": args.exclude_op, "exclude_nodes": args.exclude_node,
            "min_subgraph_size": args.min_subgraph_size, "float64": getattr(args, "float64", "refuse"), **quant,
            **islands}


def _coverage(report: Any) -> dict[str, Any]:
    return {"nodes_trt": report.nodes_trt, "nodes_total": report.nodes_total, "nodes": report.node_coverage,
            "macs": report.mac_coverage}


def _emit(args: argparse.Namespace, obj: dict[str, Any], text: Callable[[], str]) -> None:
    """Print `obj` as JSON with --json, else `text()` unless --quiet."""
    if args.json:
        print(json.dumps(obj, indent=1, default=str))
    elif not args.quiet:
        print(text())


# ---- subcommands -------------------------------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    """mx2trt explain: the placement table."""
    import mx2trt

    sym, params, _, _ = _load(args, need_params=False)
    rep = mx2trt.explain(sym, args.shape, params, **_options(args))
    obj = {"rows": [r._asdict() for r in rep.rows], "engines": [asdict(e) for e in rep.engines],
           "coverage": _coverage(rep), "folded": rep.folded}
    _emit(args, obj, lambda: str(rep) + ("\n\n" + rep.op_table() if args.ops else ""))
    return 0


def _convert(args: argparse.Namespace, sym: Any, params: Any, **cache: Any) -> Any:
    import mx2trt

    progress = False if args.no_progress or args.quiet or args.json else None
    return mx2trt.convert(sym, params, args.shape, precision=args.precision, runtime=args.runtime, progress=progress,
                          **_options(args), **cache)


def cmd_convert(args: argparse.Namespace) -> int:
    """mx2trt convert: build the engines and save the optimized model."""
    import mx2trt
    from .errors import InputError

    sym, params, default_out, read = _load(args, need_params=True)
    out = Path(args.output) if args.output else default_out
    clash = {f.resolve() for f in read} & {Path(f"{out}{s}").resolve() for s in ("-symbol.json", "-0000.params")}
    if clash:
        raise InputError(f"-o {out} would overwrite the input {sorted(map(str, clash))[0]}; choose another prefix")
    with tempfile.TemporaryDirectory(prefix="mx2trt-nocache-") as private:
        # Without a usable cache (--no-cache, MX2TRT_CACHE=0, unwritable) build into a private one that goes
        # afterwards: the saved model still gets each engine's subgraph, which mx2trt keeps only in engine files.
        from .api import engine_cache_for

        shared = None if args.no_cache else engine_cache_for(True, args.cache_dir)
        usable = shared is not None and shared.writable()
        c = _convert(args, sym, params, cache=True, cache_dir=shared.root if usable else private)
        files = [str(f) for f in mx2trt.save(out, c.symbol, c.params)]
    obj = {"output": str(out), "engines": [asdict(e) for e in c.report.engines], "files": files,
           "coverage": _coverage(c.report)}
    _emit(args, obj, lambda: c.report.summary() + "\nwrote:\n" + "\n".join(f"  {f}" for f in files))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """mx2trt calibrate: the calibration table of a model over .npy samples."""
    import mx2trt
    from .errors import InputError

    if any(isinstance(v, list) for v in args.shape.values()):
        raise InputError("calibrate takes one static --shape per input, not MIN:OPT:MAX ranges")
    sym, params, _, _ = _load(args, need_params=True)
    samples = _npy_files("--data", args.data, args.shape)
    if any(a.ndim == 0 for a in samples.values()) or any(len(sh) == 0 for sh in args.shape.values()):
        raise InputError("--data files and --shape need a batch axis (samples along axis 0)")
    counts = {len(a) for a in samples.values()}
    if len(counts) != 1:
        raise InputError(f"--data files hold different numbers of samples: { {k: len(a) for k, a in samples.items()} }")
    step = min(s[0] for s in args.shape.values())
    batches = ({k: a[i:i + step] for k, a in samples.items()} for i in range(0, counts.pop(), step))
    progress = False if args.no_progress or args.quiet or args.json else None
    table = mx2trt.calibrate(sym, params, args.shape, batches, method=args.method, batches=args.batches,
                             percentile=args.percentile, dtypes=args.dtype, progress=progress)
    table.save(args.output)
    obj = {"output": args.output, "method": table.method, "batches": table.batches, "tensors": len(table.amax),
           "digest": table.digest()}
    _emit(args, obj, lambda: f"calibrated {len(table.amax)} tensor(s) over {table.batches} batch(es) "
                             f"({table.method}); wrote {args.output}")
    return 0


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def cmd_triton(args: argparse.Namespace) -> int:
    """mx2trt triton PREFIX -o REPO."""
    import mx2trt

    from .triton import export_repository

    sym, params = mx2trt.load(args.model)
    model = export_repository(sym, args.output, args.name, args.version, params=params)
    plan = model / str(args.version) / "model.plan"
    _emit(args, {"model": str(model), "config": str(model / "config.pbtxt"),
                 "plan": str(plan) if plan.exists() else None, "backend": "tensorrt_plan" if plan.exists() else "python"},
          lambda: f"wrote Triton model {args.name} to {model}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """mx2trt serve PREFIX."""
    from .serving import serve

    serve(args.model, args.name, args.shape, args.http_port, args.grpc_port, args.metrics_port, args.max_batch)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """mx2trt cache ls|clear."""
    from . import inputs
    from .cache import EngineCache, age

    cache = EngineCache(inputs.path("--cache-dir", args.cache_dir) if args.cache_dir else None)
    if args.action == "clear":
        n = cache.clear()
        _emit(args, {"root": str(cache.root), "removed": n}, lambda: f"removed {n} engine(s) from {cache.root}")
        return 0
    entries = cache.entries()
    obj = {"root": str(cache.root), "entries": [{**asdict(e), "path": str(e.path)} for e in entries],
           "bytes": sum(e.size for e in entries)}

    def table() -> str:
        head = f"{cache.root}: {len(entries)} engine(s), {_size(obj['bytes'])}"
        if not entries:
            return head
        lines = [head, f"{'key':<18} {'engine':<14} {'nodes':>5} {'prec':<5} {'size':>9} {'used':>7}  tensorrt"]
        for e in entries:
            what = f"unusable: {e.problem}" if e.problem else e.trt
            lines.append(f"{e.key[:16] + '..':<18} {e.name:<14} {e.nodes:>5} {e.precision:<5} {_size(e.size):>9} "
                         f"{age(e.mtime):>7}  {what}")
        return "\n".join(lines)

    _emit(args, obj, table)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """mx2trt bench: in-process timings of convert (cache off, empty, warm) and save/load; --zoo: the benchmark."""
    import mx2trt

    if args.zoo:
        return _bench_zoo(args)
    zoo_only = [o for o, v in (("--vs-onnx", args.vs_onnx), ("--batch", args.batch), ("--seq", args.seq),
                                ("--size", args.size), ("--plot", args.plot), ("--no-extras", args.no_extras),
                                ("--runs", args.runs is not None)) if v]
    if zoo_only:
        _usage(args, f"{', '.join(zoo_only)} only apply with --zoo")
    if not args.shape:
        _usage(args, "the following arguments are required: --shape (or --zoo MODEL ...)")
    if args.repeat < 1:
        _usage(args, "--repeat must be at least 1")
    sym, params, _, _ = _load(args, need_params=True)
    args.no_progress = True
    rows: list[dict[str, Any]] = []

    def timed(step: str, runs: int, fn: Callable[[], Any]) -> Any:
        times, result = [], None
        for _ in range(runs):
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        rows.append({"step": step, "runs": runs, "median_s": statistics.median(times), "min_s": min(times)})
        return result

    with tempfile.TemporaryDirectory(prefix="mx2trt-bench-") as tmp:
        cache_dir, saved = Path(tmp) / "cache", Path(tmp) / "model"
        timed("convert, cache off", 1, lambda: _convert(args, sym, params, cache=False))
        c = timed("convert into an empty cache", 1,
                  lambda: _convert(args, sym, params, cache=True, cache_dir=cache_dir))
        hit = timed("convert, cache hit", args.repeat,
                    lambda: _convert(args, sym, params, cache=True, cache_dir=cache_dir))
        timed("save", args.repeat, lambda: mx2trt.save(saved, c.symbol, c.params))
        quiet = logging.getLogger()
        level, quiet.level = quiet.level, logging.ERROR  # MXNet warns that a params file all in engines is empty
        try:
            timed("load", args.repeat, lambda: mx2trt.load(saved))
        finally:
            quiet.setLevel(level)
    hits = sum(e.origin == "cache" for e in hit.engines)
    obj = {"shapes": args.shape, "precision": args.precision, "engines": len(c.engines), "cache_hits": hits,
           "coverage": _coverage(c.report), "timings": rows}

    def table() -> str:
        lines = [f"{c.report.summary().splitlines()[0]}; precision {args.precision}",
                 f"{'step':<30} {'runs':>4} {'median':>9} {'min':>9}"]
        lines += [f"{r['step']:<30} {r['runs']:>4} {r['median_s']:>8.3f}s {r['min_s']:>8.3f}s" for r in rows]
        lines.append(f"cache hit: {hits}/{len(hit.engines)} engine(s) from the cache. In-process, a quick look: "
                     "mx2trt bench --zoo and tools/bench.py measure in fresh processes.")
        return "\n".join(lines)

    _emit(args, obj, table)
    return 0


def _bench_zoo(args: argparse.Namespace) -> int:
    """mx2trt bench --zoo: mx2trt.benchmark.run on zoo models; prints its markdown tables (or the JSON)."""
    from . import benchmark

    model_only = [o for o, v in (("CHECKPOINT", args.checkpoint), ("--symbol", args.symbol), ("--params", args.params),
                                  ("--shape", args.shape), ("--dtype", args.dtype), ("--exclude-op", args.exclude_op),
                                  ("--exclude-node", args.exclude_node), ("--repeat", args.repeat != 3),
                                  ("--min-subgraph-size", args.min_subgraph_size != 1)) if v]
    if model_only:
        _usage(args, f"--zoo benchmarks zoo models: give no {', '.join(model_only)} with it")
    args.runs = 3 if args.runs is None else args.runs
    why = benchmark.bad_arguments(args.zoo, args.batch or [1], args.seq or [128], args.runs, args.size, "--zoo")
    if why:
        _usage(args, why)
    log = (lambda s: None) if args.quiet or args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    res = benchmark.run(args.zoo, args.batch or [1], args.seq or [128], [args.precision], args.runs,
                        onnx=args.vs_onnx, extras=not args.no_extras, runtime=args.runtime, log=log,
                        command="mx2trt " + " ".join(args.argv), size=args.size)
    benchmark.write(res, plot_path=args.plot)
    _emit(args, res, lambda: benchmark.markdown(res))
    return 0


def _npy_files(option: str, files: dict[str, Path], shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The arrays of `option`'s NAME=FILE.npy values: one for each --shape name, none for another."""
    import numpy as np

    from .errors import InputError

    unknown = sorted(set(files) - set(shapes))
    if unknown:
        raise InputError(f"{option} {unknown[0]!r} has no --shape; the --shape inputs are {sorted(shapes)}")
    missing = sorted(set(shapes) - set(files))
    if missing:
        raise InputError(f"--shape {missing[0]!r} has no {option} {missing[0]}=FILE.npy")
    out = {}
    for name, path in files.items():
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{option} {name}: cannot read {path} as a .npy array: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        if not isinstance(x, np.ndarray):
            raise InputError(f"{option} {name}: {path} holds several arrays (.npz); save one array with numpy.save")
        out[name] = x
    return out


def _debug_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The --input arrays: one per --shape name, of that shape, cast to its --dtype (default float32)."""
    from .errors import InputError

    out = {}
    for name, x in _npy_files("--input", args.input, args.shape).items():
        if x.shape != args.shape[name]:
            raise InputError(f"--input {name}: {args.input[name]} has shape {x.shape}, not the --shape "
                             f"{args.shape[name]}")
        dtype = (args.dtype or {}).get(name, "float32")  # as for --shape inputs everywhere: float32 by default
        try:
            x = x.astype(dtype, copy=False)
        except TypeError:
            raise InputError(f"--dtype {name}={dtype} is not a dtype") from None
        out[name] = x
    return out


def cmd_debug(args: argparse.Namespace) -> int:
    """mx2trt debug: node-by-node errors against MXNet and the first divergence; exit codes DEBUG_EXIT_CODES."""
    os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")  # read when MXNet first runs an op: before anything here
    from . import debug
    from ._mx import mx
    from .errors import InputError, Mx2TrtError

    try:
        sym, params, _, _ = _load(args, need_params=True)
        data = _debug_inputs(args)
        rep = debug.compare(sym, params, data, precision=args.precision, tolerance=args.tolerance,
                            runtime=args.runtime, min_subgraph_size=args.min_subgraph_size,
                            exclude_ops=args.exclude_op, exclude_nodes=args.exclude_node)
        if args.plot:
            rep.plot(args.plot)
    except InputError as exc:
        _error(str(exc).strip())
        return 2
    except Mx2TrtError as exc:
        _error(str(exc).strip())
        return 3
    except mx.base.MXNetError as exc:
        _error(f"MXNet: {mxnet_message(exc)}")
        return 3
    except OSError as exc:  # writing the plot
        _error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else _first_line(exc))
        return 3
    except Exception as exc:  # e.g. TensorRT failing to run an engine: still exit 3, as DEBUG_EXIT_CODES says
        _error(f"{type(exc).__name__}: {_first_line(exc)}")
        return 3
    _emit(args, rep.to_dict(), lambda: str(rep))
    return 1 if rep.first_bad is not None else 0


# ---- entry point -------------------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    lines = [s for s in str(exc).strip().splitlines() if s.strip()]
    return lines[0] if lines else type(exc).__name__


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    level = logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    logging.getLogger("mx2trt").setLevel(level)
    try:
        from .errors import Mx2TrtError
        from ._mx import mx

        try:
            return args.run(args)
        except Mx2TrtError as exc:
            return _error(str(exc).strip())
        except mx.base.MXNetError as exc:
            return _error(f"MXNet: {mxnet_message(exc)}")
        except BrokenPipeError:  # `mx2trt ... | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
            return 0
        except OSError as exc:
            return _error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else _first_line(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


__all__ = ["main", "parser"]
