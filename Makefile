# mx2trt developer entry points. `make demo` and `make test` are all a newcomer needs.
#   make venv     create .venv and install the package with its test extra (once; re-runs only if pyproject.toml changes)
#   make demo     convert a randomly initialised ResNet-18 and compare it with MXNet (DEMO_ARGS="--model lenet" etc.)
#   make test     the test suite on 2 workers (what CI runs)
#   make test-fast  the suite without the whole-model tests marked slow, for iterating
#   make ops-doc  regenerate docs/ops.md from the converter registry
#   make bench    mx2trt vs the ONNX route (tools/bench.py): rewrites docs/bench/ and the README's table (~15 min)
#   make clean    remove caches and build outputs (make distclean also removes .venv)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mx2trt-installed
DEMO_ARGS ?=

export MXNET_MKLDNN_ENABLED ?= 0

.PHONY: venv demo test test-fast ops-doc bench clean distclean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $@

demo: venv
	$(PY) tools/demo.py $(DEMO_ARGS)

test: venv
	$(PY) -m pytest -n 2 -q

test-fast: venv
	$(PY) -m pytest -n 2 -q -m "not slow"

ops-doc: venv
	$(PY) tools/gen_op_table.py

bench: venv
	mkdir -p docs/bench
	$(PY) tools/bench.py --json docs/bench/bench.json --plot docs/bench/bench.png --md docs/bench/bench.md --readme README.md

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
