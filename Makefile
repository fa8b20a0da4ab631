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
	touch $(STAMP)

# Until the trained-model demo lands: a generated head, one pair's cosine set to -1 and +1,
# each export verified.
demo: $(STAMP)
	mkdir -p demo-report
	$(BIN)/python -c "import numpy as np; r = np.random.default_rng(0); \
	np.save('demo-report/W.npy', r.standard_normal((1000, 64)) + 2.0)"
	$(BIN)/unembed inspect demo-report/W.npy --top 3
	$(BIN)/unembed counterexample demo-report/W.npy --pair '#1' '#2' --target -1 \
	  --out demo-report/W_minus1.npy --force
	$(BIN)/unembed counterexample demo-report/W.npy --pair '#1' '#2' --target 1 \
	  --out demo-report/W_plus1.npy --force
	$(BIN)/unembed verify demo-report/W.npy demo-report/W_minus1.npy

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
