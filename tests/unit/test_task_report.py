"""The task report: its numbers against direct computation, verdicts, files, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from circuits.cli import main
from circuits.model import run_to_logits
from circuits.task_report import (
    CAN_DO_Z,
    VARIANTS,
    TaskBaseline,
    TaskReport,
    default_rows,
    task_baseline,
)
from tasks import (
    IOI,
    MCQA,
    TASKS,
    Arithmetic,
    ArithmeticAnswer,
    ArithmeticCorruption,
    CandidateAccuracy,
    ColoredObjects,
    GreaterThan,
    Induction,
    InductionCorruption,
    IOICorruption,
    LogitDiff,
    Operation,
    Retrieval,
    Targets,
)
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

ATOL = 1e-5


def test_baseline_matches_direct_computation(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=7, length=6, diff_from=2, lengths=[6, 5, 6, 4, 6, 6, 3])
    t = data.targets
    t = Targets(t.answers, t.wrong, torch.cat([t.answers, (t.answers + 1) % 50], -1))  # answer among 2 candidates
    data = dataclasses.replace(data, targets=t)
    row = task_baseline(model, data, IOI(), label="tiny", batch_size=3)
    with torch.inference_mode():
        clean = run_to_logits(model, data.clean, data.answer_pos)
        corrupt = run_to_logits(model, data.corrupt, data.answer_pos)
    ld_clean, ld_corrupt = LogitDiff()(clean, data.targets), LogitDiff()(corrupt, data.targets)
    assert math.isclose(row.clean_logit_diff, float(ld_clean.mean()), abs_tol=ATOL)
    assert math.isclose(row.corrupt_logit_diff, float(ld_corrupt.mean()), abs_tol=ATOL)
    assert math.isclose(row.clean_metric, row.clean_logit_diff, abs_tol=ATOL), "IOI's metric is the logit diff"
    gap = ld_clean - ld_corrupt
    assert math.isclose(row.normalized_gap, float(gap.mean() / gap.std()), rel_tol=1e-4)
    cand = float(CandidateAccuracy()(clean, data.targets).mean())
    assert math.isclose(row.clean_candidate_accuracy, cand, abs_tol=ATOL)
    assert math.isclose(row.chance, 0.5), "two distinct candidates, one answer"
    assert row.n_pairs == 7 and row.label == "tiny" and row.task == "ioi"
    assert row.settings == {"corruption": "abc", "orders": ["ABBA", "BABA"]}


def _row(**kw: float) -> TaskBaseline:
    base = {
        "label": "t",
        "task": "ioi",
        "settings": {},
        "metric": "logit-diff",
        "n_pairs": 64,
        "dropped": {"x": 2},
        "chance": 0.5,
        "clean_accuracy": 0.4,
        "clean_candidate_accuracy": 0.9,
        "corrupt_candidate_accuracy": 0.5,
        "clean_logit_diff": 2.0,
        "corrupt_logit_diff": -1.0,
        "clean_metric": 2.0,
        "corrupt_metric": -1.0,
        "normalized_gap": 1.5,
        "accuracy_z": 6.0,
    }
    return TaskBaseline(**{**base, **kw})  # type: ignore[arg-type]


def test_verdicts_and_files(tmp_path: Path) -> None:
    rows = (_row(label="good"), _row(label="chance", accuracy_z=0.5), _row(label="weak", accuracy_z=2.5))
    assert [r.can_do for r in rows] == [True, False, False]
    assert _row(accuracy_z=CAN_DO_Z).can_do
    rep = TaskReport(model={"name": "tiny"}, n=64, seed=0, rows=rows, command="headgraph tasks report")
    table = rep.markdown_table()
    assert table.count("\n") == 4
    assert "| good | 64 (2) | 50% | 40% | 90% | yes |" in table
    assert "| chance | 64 (2) | 50% | 40% | 90% | **no (chance)** |" in table
    assert "| weak |" in table and "| weak |" in table.split("\n")[-1]
    doc = rep.to_markdown()
    assert doc.startswith("# Task baselines on tiny") and "`headgraph tasks report`" in doc
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["schema"] == "headgraph.tasks-report" and d["rows"][0]["can_do"] is True
    assert d["rows"][1] == {**dataclasses.asdict(rows[1]), "can_do": False, "clean_beats_corrupt": True}


def test_rows_cover_every_task_and_its_variants() -> None:
    rows = default_rows()
    labels = [r.label for r in rows]
    assert [x for x in labels if " " not in x] == TASKS.names()
    assert set(labels) - set(TASKS.names()) == {v.label for v in VARIANTS}
    assert [r.label for r in default_rows(["mcqa"], variants=False)] == ["mcqa"]
    for r in rows:
        assert r.make().name == r.label.split(" ")[0]


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("headgraph: error: ") and "\n" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tasks", "report", "--task", "nope"], "unknown task 'nope'; valid tasks: arithmetic, colored-objects"),
        (["tasks", "report", "--n", "0"], "--n must be a positive number of prompt pairs"),
        (["tasks", "report", "--model", "not-a-model", "--n", "2"], "unknown model 'not-a-model'"),
    ],
)
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert message in _error_line(capsys, argv)


def test_the_rows_the_tasks_declare_are_the_rows_of_the_old_variant_list() -> None:
    """Each task declares its variants (``report_variants``); the rows equal the list task_report held
    before the architecture pass (issue 17), in order and in settings."""
    expected = [
        ("arithmetic", Arithmetic()),
        ("arithmetic (+, 0 shots)", Arithmetic(shots=0)),
        ("arithmetic (−)", Arithmetic(operations=(Operation.SUB,))),
        ("arithmetic (÷)", Arithmetic(operations=(Operation.DIV,))),
        (
            "arithmetic (× 10–81, tens digit)",
            Arithmetic(operations=(Operation.MUL,), answer=ArithmeticAnswer.LEADING_DIGIT),
        ),
        ("arithmetic (null operator)", Arithmetic(corruption=ArithmeticCorruption.NULL_OPERATOR)),
        ("colored-objects", ColoredObjects()),
        ("greater-than", GreaterThan()),
        ("induction", Induction()),
        ("induction (flip)", Induction(corruption=InductionCorruption.FLIP)),
        ("ioi", IOI()),
        ("ioi (flip)", IOI(corruption=IOICorruption.FLIP)),
        ("mcqa", MCQA()),
        ("retrieval", Retrieval()),
    ]
    old_tasks = ["arithmetic", "colored-objects", "greater-than", "induction", "ioi", "mcqa", "retrieval"]
    assert [(r.label, r.make()) for r in default_rows(old_tasks)] == expected  # a new task adds rows elsewhere
