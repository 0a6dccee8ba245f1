"""MIB's CPR and CMD: the hand example, a MIB results file, and the MIB curve rule on a real model."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
import torch

from circuits.discovery import EAP
from circuits.errors import CircuitFileError, HeadgraphError
from circuits.formats import read_mib_result, submission_path, write_mib_results
from circuits.formats.mib import result_name
from circuits.measures.faithfulness import (
    MIB_FRACTIONS,
    PERCENTAGES,
    CircuitRunner,
    CurveRule,
    FaithfulnessReport,
    evaluate_faithfulness,
    faithfulness_curve,
    mib_areas,
)
from circuits.scores import Level, Scores
from circuits.selection import Ranking
from tasks import LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

EXACT = 1e-12  # float sums of ten terms

# f at MIB's sizes 0.1 %, 0.2 %, 0.5 %, 1 %, 2 %, 5 %, 10 %, 20 %, 50 %, 100 %
HAND_F = [0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 1.0]
# By hand, widths 0.001, 0.003, 0.005, 0.01, 0.03, 0.05, 0.1, 0.3, 0.5:
#   CPR = 0.03·(0 + 0.5)/2 + 0.05·0.5 + 0.1·(0.5 + 1)/2 + 0.3·1 + 0.5·1
#       = 0.0075 + 0.025 + 0.075 + 0.3 + 0.5 = 0.9075
#   CMD = (0.001 + 0.003 + 0.005 + 0.01)·1 + 0.03·(1 + 0.5)/2 + 0.05·0.5 + 0.1·(0.5 + 0)/2
#       = 0.019 + 0.0225 + 0.025 + 0.025 = 0.0915
HAND_CPR, HAND_CMD, HAND_AVERAGE = 0.9075, 0.0915, 0.4


def test_hand_example() -> None:
    a = mib_areas(HAND_F)
    assert a.area_under == pytest.approx(HAND_CPR, abs=EXACT)
    assert a.area_from_1 == pytest.approx(HAND_CMD, abs=EXACT)
    assert a.average == pytest.approx(HAND_AVERAGE, abs=EXACT)
    # a circuit better than the model (f > 1) counts above 1 for CPR and as a distance for CMD
    over = mib_areas([1.0] * 8 + [2.0, 1.0])
    assert over.area_under == pytest.approx(1 - 0.001 + (0.3 + 0.5) * 0.5, abs=EXACT)
    assert over.area_from_1 == pytest.approx((0.3 + 0.5) * 0.5, abs=EXACT)
    with pytest.raises(HeadgraphError, match="9 faithfulness values for 10 circuit sizes"):
        mib_areas(HAND_F[:-1])


def _write_result(folder: Path, absolute: bool, faith: list[float], under: float, from_1: float) -> Path:
    """A results file exactly as MIB's run_evaluation.py pickles it."""
    counts = [32.0, 64.0, 162.0, 324.0, 649.0, 1624.0, 3249.0, 6498.0, 16245.0, 32491.0]
    average = sum(faith) / len(faith)
    d = {"weighted_edge_counts": counts, "area_under": under, "area_from_1": from_1, "average": average,
         "faithfulnesses": faith}  # fmt: skip
    path = folder / f"ioi_gpt2_test_abs-{absolute}.pkl"
    path.write_bytes(pickle.dumps(d))
    return path


def test_mib_results_file_is_reproduced(tmp_path: Path) -> None:
    cpr_file = _write_result(tmp_path, False, HAND_F, HAND_CPR, 0.0)
    cmd_file = _write_result(tmp_path, True, HAND_F, 0.0, HAND_CMD)
    cpr, cmd = read_mib_result(cpr_file), read_mib_result(cmd_file)
    assert (cpr.task, cpr.model, cpr.split, cpr.absolute) == ("ioi", "gpt2", "test", False)
    assert cpr.metric == HAND_CPR and cmd.metric == HAND_CMD  # what print_results.py shows
    assert cpr.recomputed().area_under == pytest.approx(cpr.area_under, abs=EXACT)
    assert cmd.recomputed().area_from_1 == pytest.approx(cmd.area_from_1, abs=EXACT)
    assert cpr.recomputed().average == pytest.approx(cpr.average, abs=EXACT)


def test_bad_results_files(tmp_path: Path) -> None:
    with pytest.raises(CircuitFileError, match="not a MIB results file name"):
        read_mib_result(tmp_path / "results.pkl")
    evil = tmp_path / "ioi_gpt2_test_abs-True.pkl"
    evil.write_bytes(pickle.dumps(print))
    with pytest.raises(CircuitFileError, match="refusing to load builtins.print"):
        read_mib_result(evil)
    evil.write_bytes(pickle.dumps({"faithfulnesses": [1.0]}))
    with pytest.raises(CircuitFileError, match="not a MIB results dict"):
        read_mib_result(evil)


def test_mib_rule_on_a_real_model(tiny_model: TinyFactory, tmp_path: Path) -> None:
    """The MIB rule sizes circuits by every edge of the graph (scored or not), and its areas are MIB's."""
    model = tiny_model(n_layers=2, n_heads=3, n_key_value_heads=1, positional_embedding_type="rotary")
    data = random_dataset(n=4, length=6, diff_from=2)
    scores = EAP()(model, data, LogitDiff(), progress=False)
    values = scores.values.clone()
    values[::5] = math.nan  # some edges unscored
    scores = Scores(scores.graph, Level.EDGE, values, scores.method, scores.baseline)
    n_edges, n_scored = len(scores.graph.edges), int((~torch.isnan(values)).sum())
    runner = CircuitRunner(model, data, LogitDiff(), batch_size=4)
    mib = faithfulness_curve(runner, scores, Ranking.SIGNED, rule=CurveRule.MIB, progress=False)
    own = faithfulness_curve(runner, scores, Ranking.SIGNED, progress=False)
    assert [p.asked for p in mib.points] == [int(f * n_edges) for f in MIB_FRACTIONS]
    assert [p.asked for p in own.points] == [int(p / 100 * n_scored) for p in PERCENTAGES]
    assert [p.x() for p in mib.points] == list(MIB_FRACTIONS)
    assert mib.area() == mib_areas([p.faithfulness for p in mib.points]).area_under
    with pytest.raises(HeadgraphError, match="fixes the circuit sizes"):
        faithfulness_curve(runner, scores, Ranking.SIGNED, rule=CurveRule.MIB, percentages=(1.0, 100.0))

    report = evaluate_faithfulness(model, data, LogitDiff(), scores, batch_size=4, progress=False, rule=CurveRule.MIB)
    assert report.signed.rule is CurveRule.MIB and report.to_dict()["signed"]["rule"] == "mib"  # type: ignore[index]
    paths = write_mib_results(report, tmp_path, "ioi", "tiny", "validation")
    assert [p.name for p in paths] == ["ioi_tiny_validation_abs-False.pkl", "ioi_tiny_validation_abs-True.pkl"]
    cpr, cmd = (read_mib_result(p) for p in paths)
    assert cpr.area_under == report.cpr and cmd.area_from_1 == report.cmd
    assert cpr.faithfulnesses == tuple(p.faithfulness for p in report.signed.points)
    assert cmd.recomputed().area_from_1 == pytest.approx(report.cmd, abs=EXACT)
    own_report = FaithfulnessReport(own, own, report.ablation, 4)
    with pytest.raises(HeadgraphError, match="MIB's rule"):
        write_mib_results(own_report, tmp_path, "ioi", "tiny", "validation")


def test_submission_layout() -> None:
    assert submission_path("sub", "ioi", "smollm2", suffix=".pt") == Path("sub/ioi_smollm2/importances.pt")
    assert result_name("ioi", "qwen2.5", "validation", True) == "ioi_qwen2.5_validation_abs-True.pkl"
    with pytest.raises(HeadgraphError, match="no '_' in the model name"):
        submission_path("sub", "ioi", "smol_lm")


def test_evaluate_curve_options_fail_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad MIB options are one-line errors before any model is loaded."""
    from circuits.cli import main
    from circuits.graph import ComponentGraph
    from circuits.headgraph import HeadGraph, TaskRun
    from circuits.model import ModelInfo
    from circuits.scores import Baseline

    g = ComponentGraph(1, 2)
    scores = Scores(g, Level.NODE, torch.zeros(len(g.nodes)), "x", Baseline("logit-diff", 1.0, 0.0))
    info = ModelInfo("not-a-model", 1, 2, 2, 8, 4, 10, False, "h")
    path = HeadGraph(info, TaskRun("ioi", 0, 2), scores, scores.top_k(1)).save(tmp_path / "c.json")
    cases = [
        (["--curve", "mib", "--percentages", "1,5"], "--curve mib uses MIB's ten circuit sizes; drop --percentages"),
        (["--mib-results", str(tmp_path / "r")], "--mib-results needs --curve mib (MIB's results hold MIB's curve)"),
        (["--curve", "log"], "--curve must be one of headgraph, mib, got 'log'"),
    ]
    for extra, message in cases:
        assert main(["evaluate", str(path), *extra]) == 2
        assert capsys.readouterr().err.strip() == f"headgraph: error: {message}"
