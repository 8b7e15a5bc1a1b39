"""Generated docs stay in step with what generates them: docs/ops.md with the converter registry (fix: `make
ops-doc`), docs/bench/ and the README's benchmark table with the run's JSON (fix: `make bench`)."""
import importlib.util
import json
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


def test_benchmark_docs_are_the_runs_json():
    from mx2trt import benchmark

    res = json.loads((ROOT / "docs" / "bench" / "bench.json").read_text(encoding="utf-8"))
    assert (ROOT / "docs" / "bench" / "bench.md").read_text(encoding="utf-8") == benchmark.markdown(res) + "\n"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert benchmark.with_headline(readme, res) == readme, "README's benchmark table is not docs/bench/bench.json's"
    assert {c["model"] for c in res["cases"]} == set(benchmark.DEFAULT_MODELS)
    assert (ROOT / "docs" / "bench" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
