"""Build progress (mx2trt/progress.py): a tqdm bar per model, log lines when stderr is no terminal, or nothing;
and a build cancelled from inside TensorRT's progress callbacks."""
from __future__ import annotations

import logging

import pytest

import mx2trt
import mx2trt.progress
from test_cache import _model


def test_a_bar_shows_each_engine_and_its_build_phase(capsys):
    sym, params, shapes, _, _ = _model(0)
    mx2trt.convert(sym, params, shapes, runtime="reference", cache=False, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "engine" in err, err
    assert "trt_engine0: Building engine" in err and "trt_engine1: Building engine" in err, err


def test_without_a_terminal_builds_are_log_lines(caplog, capsys):
    sym, params, shapes, _, _ = _model(0)
    with caplog.at_level(logging.DEBUG, logger="mx2trt"):
        mx2trt.convert(sym, params, shapes, runtime="reference", cache=False)  # pytest's stderr is no terminal
    msgs = [r.getMessage() for r in caplog.records]
    assert "mx2trt: building trt_engine0 (1/2)" in msgs and "mx2trt: building trt_engine1 (2/2)" in msgs, msgs
    assert any(m.startswith("mx2trt: trt_engine0: ") for m in msgs), "phases at debug level"
    assert "engine/s" not in capsys.readouterr().err, "no bar"


def test_progress_false_is_quiet(caplog, capsys):
    sym, params, shapes, _, _ = _model(0)
    with caplog.at_level(logging.DEBUG, logger="mx2trt"):
        mx2trt.convert(sym, params, shapes, runtime="reference", cache=False, progress=False)
    assert not any("building trt_engine" in r.getMessage() for r in caplog.records)
    assert "engine/s" not in capsys.readouterr().err


def test_an_interrupt_inside_a_progress_callback_cancels_the_build(tmp_path, monkeypatch):
    """KeyboardInterrupt raised in the monitor (where Ctrl-C lands during a build) cancels TensorRT's build; convert
    raises KeyboardInterrupt, the cache gets nothing, and the next convert builds normally."""
    real = mx2trt.progress.BuildProgress.phase

    def interrupted(self, engine, phase):  # noqa: ANN001
        raise KeyboardInterrupt

    monkeypatch.setattr(mx2trt.progress.BuildProgress, "phase", interrupted)
    sym, params, shapes, _, _ = _model(0)
    with pytest.raises(KeyboardInterrupt):
        mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path, progress=False)
    assert list(tmp_path.glob("*.engine")) == [] and list(tmp_path.glob(".*.tmp")) == []
    monkeypatch.setattr(mx2trt.progress.BuildProgress, "phase", real)
    c = mx2trt.convert(sym, params, shapes, runtime="reference", cache_dir=tmp_path, progress=False)
    assert [e.origin for e in c.engines] == ["built", "built"] and len(list(tmp_path.glob("*.engine"))) == 2
