"""On-disk engine cache: one checksummed engine file (entry.py) per engine key, shared by every process of the user.

Location: `cache_dir=`, else `MX2TRT_CACHE_DIR`, else the user's cache directory (platformdirs) + `/engines`. Size:
`MX2TRT_CACHE_MB` (default 4096), least recently used evicted first (a hit refreshes its entry's mtime). Writes are
atomic (temporary file, then rename), and a per-key file lock makes a second process wait for the first one's build
instead of building the same engine again. A corrupt, truncated, foreign or mismatched entry is logged, removed and
rebuilt; a directory that cannot be written is warned about once and the cache is then read-only for it."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import filelock
import platformdirs

from .engine import STORE, EngineSpec
from .entry import SUFFIX, EngineFile, EntryError, SourceReader, encode, write
from .errors import InputError
from .source import SubgraphSource

log = logging.getLogger("mx2trt")

LOCK_TIMEOUT_S = 1800.0  # a build that takes longer than this in another process is not waited for


def default_dir() -> Path:
    """MX2TRT_CACHE_DIR, else the user's cache directory for mx2trt."""
    env = os.environ.get("MX2TRT_CACHE_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("mx2trt")) / "engines"


def _limit_bytes() -> int:
    raw = os.environ.get("MX2TRT_CACHE_MB", "4096")
    try:
        return int(float(raw) * 2**20)
    except ValueError:
        raise InputError(f"MX2TRT_CACHE_MB must be a number of MiB, not {raw!r}") from None


@dataclass(frozen=True)
class CacheEntry:
    """One file of the cache, as `mx2trt cache ls` lists it."""

    key: str
    path: Path
    size: int
    mtime: float
    name: str = ""
    nodes: int = 0
    precision: str = ""
    trt: str = ""
    problem: str = ""  # why the entry cannot be used ('' if it can)


class EngineCache:
    """Engine key -> engine file under `root`."""

    _unwritable: set[Path] = set()
    _guard = threading.Lock()

    def __init__(self, root: Path | str | None = None, limit_bytes: int | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_dir()
        self.limit_bytes = _limit_bytes() if limit_bytes is None else limit_bytes

    def path(self, key: str) -> Path:
        return self.root / f"{key}{SUFFIX}"

    def load(self, key: str, env: dict[str, Any]) -> EngineSpec | None:
        """The cached engine of `key` with its plan, or None; a bad entry is logged and removed (then rebuilt)."""
        path = self.path(key)
        try:
            inode = path.stat().st_ino
        except OSError:
            return None
        try:
            f = EngineFile.read(path)
            if f.meta["spec"].get("key") != key or f.env != env:
                raise EntryError(f"{path}: built for {f.env} as {f.meta['spec'].get('key')}, not for this {env}")
            spec = f.spec()
        except EntryError as exc:
            log.warning("mx2trt cache: ignoring bad entry, it will be rebuilt: %s", exc)
            try:  # only the file found bad: a writer may have renamed a whole new entry over it meanwhile
                if path.stat().st_ino == inode:
                    path.unlink()
            except OSError:
                pass
            return None
        try:
            os.utime(path)  # least recently used goes first
        except OSError:
            pass
        spec.source = SourceReader(f)
        return spec

    def reader(self, key: str) -> SourceReader | None:
        """The source of the entry just written for `key` (None if it cannot be read back)."""
        try:
            return SourceReader(EngineFile.read(self.path(key)))
        except EntryError:
            return None

    def find(self, key: str) -> EngineSpec | None:
        """The cached engine of `key` for an engine node that has none in memory (its source is read on demand)."""
        from .build import build_env

        spec = self.load(key, build_env())
        if spec is not None:
            spec.origin = "cache"
        return spec

    def store(self, spec: EngineSpec, env: dict[str, Any], source: SubgraphSource | None) -> bool:
        """Write `spec` (and its source, so another TensorRT can rebuild it) under its key; False if not writable."""
        if not self.writable():
            return False
        try:
            write(self.path(spec.key), encode(spec, env, source))
        except OSError as exc:
            self._mark_unwritable(f"cannot write {self.path(spec.key)}: {exc.strerror or exc}")
            return False
        self.evict(keep=spec.key)
        return True

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Held while building `key`, so concurrent processes build it once (nothing to hold when not writable; a
        holder that takes longer than LOCK_TIMEOUT_S is not waited for any more)."""
        if not self.writable():
            yield
            return
        lock = filelock.FileLock(str(self.root / f".{key}.lock"))
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except (filelock.Timeout, OSError) as exc:
            log.warning("mx2trt cache: building %s without its lock (%s: %s)", key, type(exc).__name__, exc)
            yield
            return
        try:
            yield
        finally:
            lock.release()

    def entries(self) -> list[CacheEntry]:
        """Every engine file, oldest use first, with what its header says (or why it is unusable)."""
        out = []
        for path, st in self._files():
            key = path.name[: -len(SUFFIX)]
            try:
                meta = EngineFile.read(path).meta
                spec, env = meta["spec"], meta["env"]
                out.append(CacheEntry(key, path, st.st_size, st.st_mtime, spec["name"], len(spec["nodes"]),
                                      spec["precision"], f"{env['flavor']} {env['version']}"))
            except (EntryError, KeyError, TypeError) as exc:
                out.append(CacheEntry(key, path, st.st_size, st.st_mtime, problem=str(exc)))
        return sorted(out, key=lambda e: e.mtime)

    def clear(self) -> int:
        """Remove every entry (and stale temporary files; lock files stay, another process may hold one); returns the
        number of engine files removed."""
        n = 0
        for path, _ in list(self._files()):
            path.unlink(missing_ok=True)
            n += 1
        if self.root.is_dir():
            for path in self.root.glob(".*"):
                if path.suffix == ".tmp":
                    path.unlink(missing_ok=True)
        return n

    def evict(self, keep: str | None = None) -> None:
        """Remove least recently used entries until the cache holds at most `limit_bytes` (`keep` stays)."""
        files = [(st.st_mtime, st.st_size, path) for path, st in self._files()]
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.limit_bytes:
                break
            if keep is not None and path == self.path(keep):
                continue
            log.info("mx2trt cache: evicting %s (%d bytes; the cache holds at most %d)", path.name, size,
                     self.limit_bytes)
            path.unlink(missing_ok=True)
            total -= size

    def _files(self) -> Iterator[tuple[Path, os.stat_result]]:
        """Every engine file with its stat (files another process removed meanwhile are skipped)."""
        if not self.root.is_dir():
            return
        for path in self.root.glob(f"*{SUFFIX}"):
            try:
                yield path, path.stat()
            except OSError:
                continue

    def writable(self) -> bool:
        with self._guard:
            if self.root in self._unwritable:
                return False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._mark_unwritable(f"cannot create {self.root}: {exc.strerror or exc}")
            return False
        if not os.access(self.root, os.W_OK | os.X_OK):
            self._mark_unwritable(f"{self.root} is not writable")
            return False
        return True

    def _mark_unwritable(self, why: str) -> None:
        with self._guard:
            if self.root in self._unwritable:
                return
            self._unwritable.add(self.root)
        log.warning("mx2trt cache: %s; engines are built without caching (set cache_dir= or MX2TRT_CACHE_DIR)", why)


_searched: dict[Path, EngineCache] = {}


def search(cache: EngineCache) -> None:
    """Let engine nodes without an engine in memory look in `cache` (every cache `optimize` used in this process)."""
    with EngineCache._guard:
        _searched.setdefault(cache.root, cache)


def find_anywhere(key: str) -> EngineSpec | None:
    """The engine store's finder: the default cache (unless MX2TRT_CACHE=0), then every cache used here."""
    caches = [] if os.environ.get("MX2TRT_CACHE", "1") == "0" else [EngineCache()]
    with EngineCache._guard:
        caches += [c for root, c in _searched.items() if all(root != d.root for d in caches)]
    for c in caches:
        spec = c.find(key)
        if spec is not None:
            return spec
    return None


STORE.add_finder(find_anywhere)


def age(mtime: float) -> str:
    """'3 min', '2 h', '5 d' since `mtime`, for listings."""
    s = max(0.0, time.time() - mtime)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit}"
    return f"{s:.0f} s"


__all__ = ["EngineCache", "CacheEntry", "default_dir", "search", "find_anywhere", "age"]
