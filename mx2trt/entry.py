"""One engine as a file: a checksummed container of JSON metadata, the plan and (optionally) the engine's source.

Layout: 8-byte magic (`MX2TRT` + NUL + format), 8-byte little-endian header length, the header's xxh3-128 digest
(32 hex bytes), the JSON header, then the sections it lists as {name: [offset, size, xxh3-128]}. No pickle: the source
is JSON plus an .npz read with allow_pickle=False. The cache and saved models both use it."""
from __future__ import annotations

import json
import os
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any

import xxhash

from .engine import EngineSpec
from .errors import Mx2TrtError
from .source import SourceError, SubgraphSource

MAGIC = b"MX2TRT\x00\x01"
_PREFIX = len(MAGIC) + 8 + 32
SUFFIX = ".engine"
_SPEC_FIELDS = ("key", "name", "nodes", "in_shapes", "in_dtypes", "out_shapes", "out_dtypes", "precision", "in_names",
                "num_layers", "define_s", "build_s", "stats")
_DYNAMIC_FIELDS = ("profiles", "shape_symbol")  # a dynamic engine's only: static engines' headers stay as they were


class EntryError(Mx2TrtError):
    """An engine file that is corrupt, truncated, foreign or of another format."""


def _digest(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128(data).hexdigest()


def encode(spec: EngineSpec, env: dict[str, Any], source: SubgraphSource | SourceReader | None) -> list[bytes]:
    """The file's bytes, in pieces: header and sections (plan, then the source's JSON and weights if given; a
    SourceReader's are copied from its file as they are)."""
    sections = {"plan": spec.plan}
    if source is not None:
        sections["source"], sections["weights"] = source.sections()
    table, offset = {}, 0
    for name, data in sections.items():
        table[name] = [offset, len(data), _digest(data)]
        offset += len(data)
    fields = _SPEC_FIELDS + (_DYNAMIC_FIELDS if spec.profiles else ())
    meta = {"spec": {f: getattr(spec, f) for f in fields}, "env": env, "sections": table}
    header = json.dumps(meta, sort_keys=True).encode()
    return [MAGIC, struct.pack("<Q", len(header)), _digest(header).encode(), header, *sections.values()]


def write(path: Path, pieces: list[bytes]) -> None:
    """Write atomically: a temporary file in the same directory, flushed to disk, then renamed over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for p in pieces:
                f.write(p)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from its other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EngineFile:
    """A verified engine file: `meta` (spec fields, env, sections) read at once; sections read and checksummed on
    demand (a cache hit reads the plan, not the stored weights) from the file as it was opened, even if another
    process has since replaced it."""

    def __init__(self, path: Path, meta: dict[str, Any], base: int, f: Any) -> None:
        self.path, self.meta, self._base, self._f = path, meta, base, f
        self._lock = threading.Lock()

    def __del__(self) -> None:
        f = getattr(self, "_f", None)
        if f is not None:
            f.close()

    @classmethod
    def read(cls, path: Path) -> "EngineFile":
        """Read `path`'s header; EntryError (with the reason) unless it is a whole mx2trt engine file of this format."""
        try:
            f = open(path, "rb")
        except OSError as exc:
            raise EntryError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            return cls._read(path, f)
        except BaseException:
            f.close()
            raise

    @classmethod
    def _read(cls, path: Path, f: Any) -> "EngineFile":
        try:
            size = os.fstat(f.fileno()).st_size
            data = f.read(_PREFIX)
            n = struct.unpack("<Q", data[len(MAGIC):len(MAGIC) + 8])[0] if len(data) == _PREFIX else 0
            header = f.read(min(n, size))
        except OSError as exc:
            raise EntryError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if len(data) < _PREFIX or data[:6] != MAGIC[:6]:
            raise EntryError(f"{path}: not an mx2trt engine file")
        if data[:len(MAGIC)] != MAGIC:
            raise EntryError(f"{path}: engine file format {data[len(MAGIC) - 1]}, this mx2trt reads {MAGIC[-1]}")
        if len(header) != n:
            raise EntryError(f"{path}: truncated (header)")
        if _digest(header).encode() != data[len(MAGIC) + 8:_PREFIX]:
            raise EntryError(f"{path}: header checksum mismatch (corrupt)")
        base = _PREFIX + n
        try:
            meta = json.loads(header)
            end = max((int(o) + int(s) for o, s, _ in meta["sections"].values()), default=0)
            if not isinstance(meta["spec"], dict) or not isinstance(meta["env"], dict):
                raise TypeError("spec and env must be objects")
            missing = [f for f in _SPEC_FIELDS if f not in meta["spec"]]
            if missing or "plan" not in meta["sections"]:
                raise KeyError(f"no {missing or 'plan section'}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EntryError(f"{path}: malformed header ({type(exc).__name__}: {exc})") from None
        if size != base + end:
            what = "truncated" if size < base + end else "longer than written"
            raise EntryError(f"{path}: {what}: {size} bytes, its header says {base + end}")
        return cls(path, meta, base, f)

    @property
    def env(self) -> dict[str, Any]:
        return self.meta["env"]

    @property
    def has_source(self) -> bool:
        return "source" in self.meta["sections"]

    def section(self, name: str) -> bytes:
        """One section's bytes, verified against its checksum."""
        offset, size, digest = self.meta["sections"][name]
        try:
            with self._lock:
                self._f.seek(self._base + offset)
                data = self._f.read(size)
        except OSError as exc:
            raise EntryError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        if len(data) != size or _digest(data) != digest:
            raise EntryError(f"{self.path}: section '{name}' checksum mismatch (corrupt)")
        return data

    def source(self) -> SubgraphSource:
        try:
            return SubgraphSource.from_bytes(self.section("source"), self.section("weights"))
        except SourceError as exc:
            raise EntryError(f"{self.path}: {exc}") from None

    def spec(self, with_plan: bool = True) -> EngineSpec:
        """The EngineSpec it describes (plan verified and loaded; no reference program)."""
        try:
            fields = {f: self.meta["spec"][f] for f in _SPEC_FIELDS}
            fields.update({f: self.meta["spec"][f] for f in _DYNAMIC_FIELDS if f in self.meta["spec"]})
            fields["in_shapes"] = [tuple(int(d) for d in s) for s in fields["in_shapes"]]
            fields["out_shapes"] = [tuple(int(d) for d in s) for s in fields["out_shapes"]]
            spec = EngineSpec(**fields)
        except (TypeError, ValueError, KeyError) as exc:
            raise EntryError(f"{self.path}: header describes no engine ({type(exc).__name__}: {exc})") from None
        if with_plan:
            spec.plan = self.section("plan")
        return spec


class SourceReader:
    """An engine's source, read when first needed from its engine file as opened (so no weights stay in memory, and
    an entry evicted or replaced meanwhile is still read: the open handle keeps the file's contents)."""

    def __init__(self, f: EngineFile) -> None:
        self.file = f

    def __call__(self) -> SubgraphSource:
        return self.file.source()

    def sections(self) -> tuple[bytes, bytes]:
        """The source's JSON and .npz sections, verified, without decoding them."""
        return self.file.section("source"), self.file.section("weights")


__all__ = ["EngineFile", "EntryError", "SourceReader", "encode", "write", "SUFFIX"]
