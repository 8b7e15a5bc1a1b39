"""The README's examples, run as written. The deployment example (the python block after its `deploy-example`
marker): twice, each time in a fresh process in an empty directory sharing one engine cache. The first run builds the engine; the second
builds nothing (the cache has it), and both save and load a model that matches MXNet. The int8 example keeps the
digits CNN's accuracy within a point."""
from __future__ import annotations

from harness import last_json, readme_block, run_python

CHECK = """
import json, numpy as np, mx2trt.build
from mx2trt._mx import mx
x = np.random.default_rng(0).standard_normal(shapes["data"]).astype(np.float32)
def run(s, p):
    args = {k: v for k, v in p.items() if k in s.list_arguments()}
    aux = {k: v for k, v in p.items() if k in s.list_auxiliary_states()}
    args["data"] = mx.nd.array(x)
    return s.bind(mx.cpu(), args, aux_states=aux, grad_req="null").forward(is_train=False)[0].asnumpy()
want = run(sym, {k: v for k, v in params.items()})
got = run(trt_sym, trt_params)
print(json.dumps({"builds": mx2trt.build.BUILDS, "err": float(np.abs(got - want).max() / np.abs(want).max())}))
"""


def test_deploy_example_builds_once_then_loads_from_the_cache(tmp_path):
    code, first = readme_block("deploy-example")
    script = "\n" * (first - 1) + code + CHECK  # tracebacks name the README's lines
    env = {"MX2TRT_CACHE": "1", "MX2TRT_CACHE_DIR": str(tmp_path / "cache")}
    runs = []
    for i in range(2):
        work = tmp_path / f"run{i}"
        work.mkdir()
        runs.append(last_json(run_python(script, env=env, cwd=work).stdout))
        assert (work / "resnet18-trt-symbol.json").exists() and (work / "resnet18-trt-mx2trt.json").exists()
    assert [r["builds"] for r in runs] == [1, 0], runs
    assert all(r["err"] <= 1e-4 for r in runs), runs
    assert len(list((tmp_path / "cache").glob("*.engine"))) == 1


INT8_CHECK = """
import json, numpy as np
from mx2trt._mx import mx
def accuracy(s, p):
    hits = 0
    for i in range(0, 500, 100):
        args = {k: v for k, v in p.items() if k in s.list_arguments()}
        aux = {k: v for k, v in p.items() if k in s.list_auxiliary_states()}
        args["data"] = mx.nd.array(x_test[i:i + 100])
        out = s.bind(mx.cpu(), args, aux_states=aux, grad_req="null").forward(is_train=False)[0].asnumpy()
        hits += int((out.argmax(1) == y_test[i:i + 100]).sum())
    return hits / 500
print(json.dumps({"float": accuracy(sym, params), "int8": accuracy(int8_sym, int8_params)}))
"""


def test_int8_example_keeps_the_accuracy(tmp_path):
    code, first = readme_block("int8-example")
    out = last_json(run_python("\n" * (first - 1) + code + INT8_CHECK, cwd=tmp_path).stdout)
    assert (tmp_path / "digits-calib.json").is_file()
    assert out["float"] > 0.95 and out["int8"] >= out["float"] - 0.01, out


def test_dynamic_example_serves_three_batch_sizes_from_one_engine(tmp_path):
    code, first = readme_block("dynamic-example")
    check = "\nimport json, mx2trt.build\nprint(json.dumps({'builds': mx2trt.build.BUILDS, 'shape': list(out.shape)}))\n"
    proc = run_python("\n" * (first - 1) + code + check, cwd=tmp_path, env={"MX2TRT_CACHE": "0"})
    printed = [line.split(" ", 1) for line in proc.stdout.splitlines() if line[:1].isdigit()]
    assert printed == [["1", "(1, 1000)"], ["5", "(5, 1000)"], ["32", "(32, 1000)"]], proc.stdout
    assert last_json(proc.stdout) == {"builds": 1, "shape": [32, 1000]}
