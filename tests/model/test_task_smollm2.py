"""Every task on the embedded model (slow): clean beats corrupt, through `headgraph tasks report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuits.cli import main
from tasks import TASKS

pytestmark = pytest.mark.slow

N_PAIRS = 24
"""Pairs per task: enough for the gap to be many standard errors wide, small enough for CI."""


def test_every_task_clean_metric_beats_corrupt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tasks", "report", "--defaults-only", "--n", str(N_PAIRS), "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    assert "| task |" in capsys.readouterr().out
    report = json.loads((tmp_path / "tasks_report.json").read_text())
    assert (tmp_path / "tasks_report.md").read_text().startswith("# Task baselines on ")
    rows = {r["label"]: r for r in report["rows"]}
    assert sorted(rows) == TASKS.names()
    for name, r in rows.items():
        assert r["n_pairs"] == N_PAIRS
        assert r["clean_beats_corrupt"] and r["clean_metric"] > r["corrupt_metric"], name
        assert r["clean_logit_diff"] > r["corrupt_logit_diff"], name
