"""Test set-up: MXNet references without MKLDNN (wrong for some ops), a hypothesis profile, engine markers."""
import os

os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")
os.environ.setdefault("MXNET_SUBGRAPH_BACKEND", "NONE")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

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
