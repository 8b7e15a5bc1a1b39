"""docs/ops.md is generated from the converter registry; this keeps it from drifting (fix: `make ops-doc`)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_op_table", ROOT / "tools" / "gen_op_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ops_doc_is_up_to_date():
    ok, diff = _generator().check(ROOT / "docs" / "ops.md")
    assert ok, "docs/ops.md is stale: run `make ops-doc`\n" + diff


def test_ops_doc_lists_every_packaged_converter():
    import mx2trt

    text = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8")
    for op, spec in mx2trt.REGISTRY.specs.items():
        if spec.fn.__module__.startswith("mx2trt.converters."):
            assert f"`{op}`" in text, op
