"""Build progress: one bar per model on a terminal (tqdm), log lines otherwise, from TensorRT's IProgressMonitor.

The monitor is also how a build is cancelled: Ctrl-C arrives as a KeyboardInterrupt inside one of its callbacks (they
run on the calling thread). TensorRT catches what a callback raises and cancels the build; the monitor also records
it where it can and answers False. `build.build_engine` then raises KeyboardInterrupt, before anything is written."""
from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm import tqdm

from ._trt import trt

log = logging.getLogger("mx2trt")


def mode(progress: Any) -> str:
    """'bar', 'log' or 'off' for the `progress` option (None: a bar if stderr is a terminal, else log lines)."""
    if progress is None:
        return "bar" if sys.stderr.isatty() else "log"
    if progress is True:
        return "bar"
    if progress is False:
        return "off"
    from .errors import InputError

    raise InputError(f"progress must be True, False or None (automatic), not {progress!r}")


class BuildProgress:
    """Progress of one model's engine builds."""

    def __init__(self, progress: Any, total: int, label: str = "mx2trt") -> None:
        self.mode = mode(progress)
        self.total, self.done = total, 0
        self.bar = tqdm(total=total, desc=label, unit="engine", file=sys.stderr) if self.mode == "bar" and total else None

    def monitor(self, engine: str) -> "Monitor":
        """The monitor of the next engine's build (always one: it is also what cancels on Ctrl-C)."""
        if self.mode == "log":
            log.info("mx2trt: building %s (%d/%d)", engine, self.done + 1, self.total)
        return Monitor(self, engine)

    def phase(self, engine: str, phase: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{engine}: {phase}", refresh=True)
        elif self.mode == "log":
            log.debug("mx2trt: %s: %s", engine, phase)

    def finished(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Monitor(trt.IProgressMonitor):  # type: ignore[misc]
    """TensorRT's progress callbacks for one build; records Ctrl-C (or any error) and cancels."""

    def __init__(self, progress: BuildProgress, engine: str) -> None:
        trt.IProgressMonitor.__init__(self)
        self.progress, self.engine = progress, engine
        self.interrupted = False

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        try:
            if parent_phase is None:
                self.progress.phase(self.engine, phase_name)
        except BaseException:  # noqa: BLE001 - Ctrl-C lands here; TensorRT would only log it
            self.interrupted = True

    def step_complete(self, phase_name: str, step: int) -> bool:
        return not self.interrupted

    def phase_finish(self, phase_name: str) -> None:
        pass


__all__ = ["BuildProgress", "Monitor"]
