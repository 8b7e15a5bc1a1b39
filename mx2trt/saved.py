"""Saved optimized models: `save(prefix, sym, params)` and `load(prefix)`, in MXNet's own checkpoint files plus plans.

A saved model is `prefix-symbol.json` and `prefix-0000.params` (what `mx.model.save_checkpoint` writes, so
`mx.model.load_checkpoint` reads them), one engine file per engine under `prefix-engines/` (entry.py: plan, metadata
and, by default, the subgraph it was built from), and `prefix-mx2trt.json`, written last, which lists them. `load`
registers every engine before MXNet creates the symbol's engine nodes; nothing is partitioned or built, unless a plan
was built for another TensorRT or GPU, in which case it is rebuilt from its stored subgraph (with a warning)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import inputs
from ._mx import mx
from .build import build_engine, build_env, define_source
from .engine import STORE, EngineSpec
from .entry import SUFFIX, EngineFile, EntryError, SourceReader, encode, write
from .errors import InputError, Mx2TrtError, mxnet_message
from .runtime import OP_TYPE

log = logging.getLogger("mx2trt")

FORMAT = 1
EPOCH = 0
_PLAN_ENV = ("flavor", "version", "target")  # what decides whether a plan deserializes; the rest only named it


class SavedModelError(Mx2TrtError):
    """A saved model that is incomplete, corrupt or cannot run here."""


def _files(prefix: Path) -> tuple[Path, Path, Path, Path]:
    p = str(prefix)
    return Path(f"{p}-symbol.json"), Path(f"{p}-{EPOCH:04d}.params"), Path(f"{p}-engines"), Path(f"{p}-mx2trt.json")


def engine_keys(sym: Any) -> list[tuple[str, str]]:
    """(key, engine node name) of every engine node of `sym`, in graph order."""
    nodes = json.loads(sym.tojson())["nodes"]
    return [(n["attrs"]["key"], n["name"]) for n in nodes
            if n["op"] == "Custom" and n.get("attrs", {}).get("op_type") == OP_TYPE]


def save(
    prefix: str | Path,
    sym: Any,
    params: Mapping[str, Any] | None = None,
    *,
    include_source: bool = True,
    input_names: Iterable[str] | None = None,
) -> list[Path]:
    """Save an optimized symbol and its params (or an optimized Gluon SymbolBlock as `sym`); returns the files.

    `include_source` (default True) stores each engine's subgraph and weights beside its plan, so a machine with
    another TensorRT or GPU can rebuild it, and the reference runtime can run it; False keeps only the plans."""
    prefix = inputs.path("prefix", prefix)
    inputs.flag("include_source", include_source)
    sym, params, names = _unpack(sym, params, input_names)
    sym_file, params_file, engine_dir, manifest_file = _files(prefix)
    engine_dir.mkdir(parents=True, exist_ok=True)
    env, written, engines = build_env(), [], {}
    for key, node in engine_keys(sym):
        if key in engines:
            continue
        spec = STORE.get(key, node)
        source = spec.source if include_source else None  # a SourceReader: its sections are copied as they are
        if include_source and source is None:
            raise SavedModelError(
                f"engine node '{node}': engine {spec.name} has no stored subgraph to save (it was built without "
                "the engine cache, which is where its subgraph is kept): optimize with the cache on (the default), "
                "or save with include_source=False to keep only its plan")
        path = engine_dir / f"{key}{SUFFIX}"
        write(path, encode(spec, env, source))
        written.append(path)
        engines[key] = path.name
    args, aux = set(sym.list_arguments()), set(sym.list_auxiliary_states())
    missing = sorted((args | aux) - set(params) - set(names))
    if missing:
        raise InputError(f"save: no value for {missing}: pass the params optimize returned")
    arg_params = {k: _nd(v) for k, v in params.items() if k in args and k not in names}
    aux_params = {k: _nd(v) for k, v in params.items() if k in aux and k not in names}
    mx.model.save_checkpoint(str(prefix), EPOCH, sym, arg_params, aux_params, remove_amp_cast=False)
    manifest = {"format": FORMAT, "engines": engines, "inputs": names, "env": env}
    write(manifest_file, [json.dumps(manifest, indent=1, sort_keys=True).encode()])
    return [sym_file, params_file, *written, manifest_file]


def load(prefix: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load a model saved by `save`: (symbol, params), with every engine registered and nothing rebuilt (unless its
    plan was built for another TensorRT or GPU and its subgraph was saved)."""
    sym, params, _ = _load(prefix)
    return sym, params


def load_block(prefix: str | Path) -> Any:
    """Load a saved model as a Gluon SymbolBlock (the inputs are the data inputs given to optimize, in order)."""
    from .api import symbol_block

    sym, params, names = _load(prefix)
    return symbol_block(sym, params, names)


def _load(prefix: str | Path) -> tuple[Any, dict[str, Any], list[str]]:
    prefix = inputs.path("prefix", prefix)
    sym_file, params_file, engine_dir, manifest_file = _files(prefix)
    try:
        manifest = json.loads(manifest_file.read_text())
        engines, names = dict(manifest["engines"]), list(manifest["inputs"])
        if not all(isinstance(v, str) for v in [*engines, *engines.values(), *names]):
            raise TypeError("engines and inputs must be names")
    except FileNotFoundError:
        raise SavedModelError(f"{manifest_file} does not exist: {prefix} is not a model saved by mx2trt.save "
                              "(or its saving did not finish)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SavedModelError(f"{manifest_file} is corrupt: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise SavedModelError(f"{manifest_file} has format {manifest.get('format')}; this mx2trt reads {FORMAT}")
    held = [_register(engine_dir / file, key) for key, file in engines.items()]  # alive until the symbol holds them
    try:
        sym, arg, aux = mx.model.load_checkpoint(str(prefix), EPOCH)
    except (mx.base.MXNetError, OSError) as exc:
        raise SavedModelError(f"cannot read {sym_file} / {params_file}: {mxnet_message(exc)}") from None
    unknown = sorted({k for k, _ in engine_keys(sym)} - set(engines))
    if unknown:
        raise SavedModelError(f"{sym_file} has engine nodes whose engines {unknown} are not in {manifest_file}")
    del held
    return sym, {**arg, **aux}, names


def _register(path: Path, key: str) -> EngineSpec:
    """Read one saved engine, rebuild it if its plan does not fit here, and make it findable by its key."""
    if not path.exists():
        raise SavedModelError(f"engine file {path} is missing: save the model again, or copy the whole "
                              f"{path.parent.name}/ directory")
    here = build_env()
    try:
        f = EngineFile.read(path)
        if f.meta["spec"].get("key") != key:
            raise EntryError(f"{path}: holds engine {f.meta['spec'].get('key')}, not {key}")
        theirs = {k: f.env.get(k) for k in _PLAN_ENV}
        fits = theirs == {k: here[k] for k in _PLAN_ENV}
        spec = f.spec(with_plan=fits)  # a plan that does not fit is not read: it is rebuilt
    except EntryError as exc:
        raise SavedModelError(f"saved engine is unusable: {exc}") from None
    if not fits:
        built_for = f"{theirs['flavor']} {theirs['version']} ({theirs['target']})"
        this = f"{here['flavor']} {here['version']} ({here['target']})"
        if not f.has_source:
            raise SavedModelError(
                f"engine {spec.name} in {path} was built for {built_for}, this machine has {this}, and it was saved "
                "without its subgraph: save it with include_source=True, or run mx2trt.optimize here")
        log.warning("mx2trt.load: rebuilding engine %s: its plan was built for %s, this machine has %s",
                    spec.name, built_for, this)
        spec.plan, spec.build_s = build_engine(define_source(f.source()))
    if f.has_source:
        spec.source = SourceReader(f)
    spec.origin = "saved"
    _loaded[key] = path
    return STORE.register(spec)


_loaded: dict[str, Path] = {}  # engine key -> file, for symbols re-created from a loaded model's JSON


def _find_loaded(key: str) -> EngineSpec | None:
    """The engine store's finder for engines of models loaded in this process."""
    path = _loaded.get(key)
    return _register(path, key) if path is not None and path.exists() else None


STORE.add_finder(_find_loaded)


def _unpack(sym: Any, params: Mapping[str, Any] | None, input_names: Iterable[str] | None) -> tuple[Any, dict, list]:
    """(symbol, params, data input names) of a symbol + params, or of a Gluon SymbolBlock."""
    from mxnet import gluon

    if isinstance(sym, gluon.SymbolBlock):
        if params is not None:
            raise InputError("save: a SymbolBlock carries its own params; pass none")
        ins, out = sym._cached_graph
        return out, {p.name: p.data() for p in sym.collect_params().values()}, [s.name for s in ins]
    inputs.symbol(sym)
    if params is None:
        raise InputError("save: pass the params optimize returned with the symbol")
    if input_names is not None:
        names = list(input_names)
    else:
        names = [n for n in sym.list_arguments() if n not in params]
    return sym, dict(params), names


def _nd(v: Any) -> Any:
    return v if isinstance(v, mx.nd.NDArray) else mx.nd.array(v, dtype=v.dtype)


__all__ = ["save", "load", "load_block", "engine_keys", "SavedModelError"]
