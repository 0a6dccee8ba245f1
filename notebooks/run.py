"""Execute the research notebooks and write their paired ``.ipynb`` files, outputs included.

    .venv/bin/python notebooks/run.py                 # every notebooks/0N_*.py, full settings
    .venv/bin/python notebooks/run.py 03_arithmetic_heads.py

Each py:percent source runs in a fresh kernel with the notebooks folder as working directory; the
sizes come from the environment (``HEADGRAPH_NB_*``, defaults = the committed full run). ``make
notebooks`` calls this. Needs jupytext, nbclient and ipykernel (the dev extra).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
FORMATS = "ipynb,py:percent"
CELL_TIMEOUT_S = 3600


def run(source: Path) -> float:
    """Execute ``source`` and write ``source.with_suffix('.ipynb')``; returns the seconds it took."""
    nb = jupytext.read(source)
    nb.metadata.setdefault("jupytext", {})["formats"] = FORMATS
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    seconds = time.perf_counter() - start
    jupytext.write(nb, source.with_suffix(".ipynb"))
    return seconds


def main(names: list[str]) -> None:
    sources = [HERE / n for n in names] if names else sorted(HERE.glob("[0-9][0-9]_*.py"))
    for source in sources:
        print(f"{source.name}: executing", flush=True)
        print(f"{source.name}: {run(source):.0f} s → {source.with_suffix('.ipynb').name}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
