"""``headgraph score`` and ``headgraph golden`` (no real model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuits.cli import main
from circuits.discovery import ActivationPatching
from circuits.groundtruth.benchmark import default_suite
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import model_info
from tasks import LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("headgraph: error: ") and "\n" not in err
    return err


@pytest.fixture
def gpt2_shaped_file(tiny_model: TinyFactory, tmp_path: Path) -> Path:
    """A circuit file of a random model with GPT-2 small's shape (12 × 12, MLPs)."""
    model = tiny_model(n_layers=12, n_heads=12, d_model=16, d_head=4, d_mlp=16, model_name="gpt2")
    data = random_dataset(n=2, length=5, diff_from=2)
    scores = ActivationPatching()(model, data, LogitDiff(), progress=False)
    return HeadGraph(model_info(model), TaskRun("ioi", 0, 2), scores, scores.top_k(10)).save(tmp_path / "c.json")


def test_score_against_a_published_circuit(capsys: pytest.CaptureFixture[str], gpt2_shaped_file: Path) -> None:
    assert main(["score", str(gpt2_shaped_file), "--truth", "ioi-wang2022"]) == 0
    out = capsys.readouterr().out
    assert "ground truth: ioi-wang2022 (Wang et al. 26 heads" in out
    assert "over 144 nodes, 26 in the ground truth" in out
    assert "top 26 (ground-truth size): precision" in out and "top 10 (the file's circuit)" in out
    assert "  name mover: L9H9 #" in out


def test_score_planted_prints_the_method_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--planted", "--methods", "activation-patching", "--pairs", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("| activation-patching |") == len(default_suite()) == 6 and "| 1.000 | 1.000 |" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "FILE", "--truth", "docstring-heimersheim2023"], "is defined on attn-only-4l (4 layers × 8 heads"),
        (["score", "FILE", "--truth", "nope"], "unknown ground truth 'nope'; valid ground truths: "),
        (["score", "FILE"], "give a circuit file and --truth NAME"),
        (["score", "FILE", "--truth", "ioi-wang2022", "--zero-tol", "-1"], "--zero-tol must be non-negative"),
        (["score", "--planted", "FILE"], "--planted scores the registered methods"),
        (["score", "--planted", "--methods", "magic"], "unknown method 'magic'"),
        (["score", "--planted", "--pairs", "0"], "--pairs must be positive"),
        (["score", "/nonexistent.json", "--truth", "ioi-wang2022"], "no such file"),
        (["golden", "build", "--name", "nope"], "unknown golden circuit 'nope'"),
        (["golden", "build", "--seeds", "1,x"], "--seeds expects comma-separated integers"),
        (["golden", "build", "--pairs", "0"], "n_pairs must be a positive integer"),
        (["golden", "build", "--seeds", "1,1"], "seeds must be distinct"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], gpt2_shaped_file: Path, argv: list[str], message: str
) -> None:
    assert message in _error(capsys, [str(gpt2_shaped_file) if a == "FILE" else a for a in argv])


def test_golden_list_names_every_registered_golden_circuit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["golden", "list"]) == 0
    assert capsys.readouterr().out.startswith("ioi-smollm2-135m: ")
