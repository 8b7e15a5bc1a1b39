"""Test set-up: MXNet references without MKLDNN (wrong for some ops), a hypothesis profile, engine markers."""
import os

os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")
os.environ.setdefault("MXNET_SUBGRAPH_BACKEND", "NONE")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")
# The suite never touches the user's engine cache, and builds every engine it converts: the cache's own tests (and
# the CLI's) turn it on with a cache_dir of their own.
os.environ["MX2TRT_CACHE"] = "0"
os.environ.pop("MX2TRT_CACHE_DIR", None)
os.environ.pop("MX2TRT_ENABLE", None)

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("MX2TRT_EXAMPLES", "12")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config, items):
    from mx2trt._trt import can_execute_engines

    ok, why = can_execute_engines()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"needs a GPU on which TensorRT can execute engines: {why}")
    for item in items:
        if "requires_engine" in item.keywords:
            item.add_marker(skip)


# ---- what a run used: peak memory per process, and the tightest tolerance margins -----------------------------------
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

_WORKERS: list[dict] = []
_RAISED: list[tuple[float, str]] = []  # (MiB the process's peak grew by, test) for the tests that raised it


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = _maxrss_mb()
    yield
    grew = _maxrss_mb() - before
    if grew > 64:
        _RAISED.append((grew, item.nodeid))


def _own_summary() -> dict:
    margins: dict[str, list] = {}
    for mod in (sys.modules.get("harness"), sys.modules.get("tests.harness")):
        for test, entry in getattr(mod, "MARGINS", {}).items():
            if test not in margins or entry[0] > margins[test][0]:
                margins[test] = entry
    return {"peak_rss_mb": _maxrss_mb(), "margins": margins, "raised": sorted(_RAISED, reverse=True)[:5]}


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # an xdist worker: hand the controller what it used
        session.config.workeroutput["mx2trt"] = json.dumps(_own_summary())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    out = getattr(node, "workeroutput", {}).get("mx2trt")
    if out:
        _WORKERS.append(json.loads(out))


def pytest_terminal_summary(terminalreporter):
    runs = _WORKERS or [_own_summary()]
    peaks = ", ".join(f"{r['peak_rss_mb']:.0f}" for r in runs)
    tr = terminalreporter
    tr.write_line(f"mx2trt: peak RSS per test process {peaks} MiB (machine: 24 GiB)")
    raised = sorted((tuple(x) for r in runs for x in r["raised"]), reverse=True)[:5]
    if raised:
        tr.write_line("mx2trt: tests that raised a process's peak the most: "
                      + "; ".join(f"{test} +{mb:.0f} MiB" for mb, test in raised))
    margins: dict[str, list] = {}
    for r in runs:
        margins.update(r["margins"])
    tight = sorted(margins.items(), key=lambda kv: -kv[1][0])[:8]
    if tight:
        tr.write_line("mx2trt: tightest tolerances (measured error / tolerance):")
        for test, (ratio, err, rtol) in tight:
            tr.write_line(f"  {ratio:5.2f}  {err:.3g} <= {rtol:g}  {test}")
