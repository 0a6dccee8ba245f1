"""The command line: one-line errors for bad input, and `show` on a saved head graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuits.cli import main
from circuits.discovery import ActivationPatching
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import model_info
from tasks import LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("headgraph: error: ")
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["discover", "--task", "nope"],
            "unknown task 'nope'; valid tasks: arithmetic, colored-objects, greater-than, induction, ioi, mcqa, "
            "retrieval",
        ),
        (["discover", "--method", "magic"], "unknown method 'magic'; valid methods: activation-patching"),
        (["discover", "--model", "not-a-model", "--n", "2"], "unknown model 'not-a-model'"),
        (["discover", "--n", "0"], "--n must be a positive number"),
        (["discover", "--n", "-5"], "--n must be a positive number"),
        (["discover", "--set", "batch_size"], "--set expects KEY=VALUE"),
        (["discover", "--set", "colour=red"], "has no setting 'colour'"),
        (["discover", "--set", "ablation=sideways"], "ablation must be one of resample, mean, zero"),
        (["discover", "--set", "batch_size=many"], "batch_size must be an integer, got 'many'"),
        (["discover", "--set", "batch_size=0"], "batch_size must be a positive integer"),
        (["show", "/nonexistent.json"], "no such file"),
    ],
)
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert message in _error_line(capsys, argv)


def test_show_rejects_a_file_that_is_not_a_circuit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"schema": "something-else"}')
    assert "not a headgraph circuit file" in _error_line(capsys, ["show", str(bad)])


def test_show_prints_the_table_and_redraws(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_model: TinyFactory
) -> None:
    model = tiny_model()
    data = random_dataset(n=4, length=6, diff_from=2)
    scores = ActivationPatching()(model, data, LogitDiff(), progress=False)
    hg = HeadGraph(model_info(model), TaskRun("random", 0, 4), scores, scores.top_k(3))
    path = hg.save(tmp_path / "circuit.json")
    assert main(["show", str(path), "--top", "3"]) == 0
    out = capsys.readouterr().out
    top = [str(n) for n, _ in scores.ranked()[:3]]
    lines = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [line.split()[1] for line in lines] == top
    png = tmp_path / "circuit.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
