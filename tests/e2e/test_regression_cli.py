"""``headgraph regress`` and ``headgraph compare`` on planted models (seconds, no real model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuits.cli import main
from circuits.discovery import ActivationPatching
from circuits.groundtruth import GoldenRecipe, Planted, build_golden, induction_model, ioi_model, load_golden
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import model_info

RECIPE = GoldenRecipe(model="planted:ioi", task="planted-ioi", n_pairs=8, seeds=(0, 1), top_k=3, quick_pairs=4)


@pytest.fixture(scope="module")
def golden_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    golden = build_golden("planted-ioi", RECIPE, progress=False, command="test")
    return golden.save(tmp_path_factory.mktemp("golden") / "planted-ioi.json")


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    status = main(argv)
    return status, capsys.readouterr().out


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("headgraph: error: ") and "\n" not in err
    return err


def test_golden_file_records_how_it_was_made(golden_file: Path) -> None:
    g = load_golden(golden_file)
    assert g.recipe == RECIPE and g.made["command"] == "test" and g.made["seconds_total"] > 0
    assert [hg.task.seed for hg in g.runs] == [0, 1] and g.quick.task.n_pairs == 4
    planted = ioi_model()
    assert set(g.circuit_heads()) == planted.circuit_heads
    assert g.stability.mean_pairwise == 1.0 and g.pooled.task.n_pairs == 16


@pytest.mark.parametrize("extra", [["--quick"], [], ["--seeds", "3", "--pairs", "6"]])
def test_regress_passes_on_an_unchanged_model(
    capsys: pytest.CaptureFixture[str], golden_file: Path, extra: list[str]
) -> None:
    status, out = _run(capsys, ["regress", str(golden_file), "--quiet", *extra])
    assert status == 0, out
    assert "PASS top-3 Jaccard 1.000" in out


def test_regress_fails_with_a_diff_when_the_golden_differs(
    capsys: pytest.CaptureFixture[str], golden_file: Path, tmp_path: Path
) -> None:
    """A golden file whose pooled circuit lacks the S-inhibition head: the recomputed one has it."""
    data = json.loads(golden_file.read_text())
    inh = str(ioi_model().roles["s-inhibition"])
    scores = data["pooled"]["scores"]
    i = scores["ids"].index(inh)
    scores["values"][i] = scores["normalized"][i] = 0.0
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(data))
    status, out = _run(capsys, ["regress", str(altered), "--quiet"])
    assert status == 1
    assert out.splitlines()[2].startswith("FAIL circuit regression: top-3 heads Jaccard")
    assert any(line.strip().startswith("gained") and f" {inh} " in line for line in out.splitlines()), out


def _circuit_file(planted: Planted, seed: int, path: Path) -> Path:
    data = planted.task.dataset(8, seed=seed)
    scores = ActivationPatching()(planted.model, data, planted.task.metric, progress=False)
    hg = HeadGraph(model_info(planted.model), TaskRun(planted.task.name, seed, 8), scores, scores.top_k(3))
    return hg.save(path)


def test_compare_prints_the_diff_and_the_overlap_curve(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a = _circuit_file(ioi_model(), 0, tmp_path / "a.json")
    b = _circuit_file(ioi_model(), 1, tmp_path / "b.json")
    status, out = _run(capsys, ["compare", str(a), f"{b},{a}", "--top-k", "3", "--fractions", "0.1,0.5"])
    assert status == 0
    assert "top-3 heads of B against A: Jaccard 1.000" in out
    assert "B: planted-ioi on planted-ioi-3x4 · activation-patching · 8 pairs (seed 1) (+1 more stages)" in out
    rows = [line.split() for line in out.splitlines() if line.strip().endswith(("1.000", "0.750"))]
    assert rows[-2][:2] == ["10%", "2"] and rows[-1][:2] == ["50%", "6"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["regress", "no-such-golden"], "unknown golden circuit 'no-such-golden'"),
        (["regress", "/nonexistent/golden.json"], "no such file"),
        (["regress", "GOLDEN", "--quick", "--seeds", "1"], "--quick reproduces the stored quick run"),
        (["regress", "GOLDEN", "--pairs", "0"], "n_pairs must be a positive integer"),
        (["regress", "GOLDEN", "--min-jaccard", "2"], "min_jaccard must be in [0, 1]"),
        (["compare", "/nonexistent/a.json", "/nonexistent/b.json"], "no such file"),
        (["compare", "a.json", "b.json", "--fractions", "2"], "--fractions must lie in (0, 1]"),
        (["compare", "a.json", "b.json", "--top-k", "0"], "--top-k must be positive"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], golden_file: Path, argv: list[str], message: str
) -> None:
    assert message in _error(capsys, [str(golden_file) if a == "GOLDEN" else a for a in argv])


def test_compare_refuses_models_of_different_shapes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a = _circuit_file(ioi_model(), 0, tmp_path / "a.json")
    b = _circuit_file(induction_model(), 0, tmp_path / "b.json")
    err = _error(capsys, ["compare", str(a), str(b)])
    assert "cannot compare circuits of a 2×4 and a 3×4 model head by head" in err
