# Every target does its own set-up on a fresh machine: the virtualenv is made on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps transformer_lens==3.9.0
	touch $(STAMP)

# Trains a CNN and a logistic regression on scikit-learn's digits and a transformer LM on the
# Python documentation topics (no network, seeded), audits each: demo-report/index.html.
demo: $(STAMP)
	$(BIN)/unembed demo --out demo-report --force

test: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard benchmarks)
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard benchmarks)
	$(BIN)/mypy

bench: $(STAMP)  ## each benchmark prints ratios against a baseline measured in the same run
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) demo-report .pytest_cache .mypy_cache .ruff_cache
