"""Faithfulness curves, CPR and CMD, the node view of edge scores, and the evaluate command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from circuits.cli import main
from circuits.commands.evaluate import format_report, task_from_run
from circuits.discovery import EAP, Ablation, ActivationPatching, AttributionPatching
from circuits.engine import baseline
from circuits.graph import Node, NodeKind
from circuits.measures.faithfulness import (
    PERCENTAGES,
    CircuitRunner,
    CurvePoint,
    FaithfulnessCurve,
    FaithfulnessReport,
    Selection,
    area,
    evaluate_faithfulness,
    faithfulness_curve,
)
from circuits.pictures.faithfulness_plot import plot_faithfulness
from circuits.pipeline import task_settings
from circuits.scores import Circuit, Level
from circuits.selection import Ranking, top_k
from tasks import IOI, IOICorruption, IOIOrder, LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

METRIC = LogitDiff()
ATOL = 1e-5


@pytest.mark.parametrize("ablation", list(Ablation))
def test_empty_circuit_is_zero_and_full_circuit_is_one(tiny_model: TinyFactory, ablation: Ablation) -> None:
    model = tiny_model(n_key_value_heads=2, positional_embedding_type="rotary")
    data = random_dataset(n=5, length=7, lengths=[7, 6, 7, 5, 7], diff_from=3)
    runner = CircuitRunner(model, data, METRIC, ablation, batch_size=2)
    n = len(runner.graph.edges)
    # f(empty) = 0 and f(full) = 1 hold by definition (the runner's memo); what can fail is that the
    # references they normalise by are the independent clean and corrupt runs of the model
    reference = baseline(model, data, METRIC)
    assert runner.clean == pytest.approx(reference.clean, abs=ATOL)
    if ablation is Ablation.RESAMPLE:  # every edge ablated is the corrupt run
        assert runner.empty == pytest.approx(reference.corrupt, abs=ATOL)
    else:  # mean ablation of every edge is neither run
        assert runner.empty != pytest.approx(reference.clean, abs=ATOL)
    # the full circuit through the engine (not the shortcut) is clean too
    almost = torch.ones(n, dtype=torch.bool)
    almost[0] = False
    assert float(runner.metrics(torch.ones(1, n, dtype=torch.bool))[0].mean()) == pytest.approx(runner.clean, abs=ATOL)
    assert math.isfinite(runner.faithfulness(almost))


def test_node_circuit_without_one_head_is_activation_patching(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=4, length=6, diff_from=2)
    nodes = ActivationPatching()(model, data, METRIC, progress=False)
    runner = CircuitRunner(model, data, METRIC)
    for head in list(nodes.graph.heads)[::3]:
        circuit = Circuit(nodes.graph, frozenset(h for h in nodes.graph.heads if h != head))
        f = runner.circuit_faithfulness(circuit, nodes)  # unscored MLPs stay in
        expected = 1 + float(nodes.values[nodes.graph.node_index(head)]) / (runner.clean - runner.empty)
        assert f == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("selection", list(Selection))
def test_curve_sizes_and_report(tiny_model: TinyFactory, selection: Selection, tmp_path: Path) -> None:
    model = tiny_model()
    data = random_dataset(n=4, length=6, diff_from=2)
    scores = EAP()(model, data, METRIC, progress=False)
    report = evaluate_faithfulness(model, data, METRIC, scores, selection=selection, progress=False)
    n_edges = len(scores.graph.edges)
    for curve in (report.signed, report.absolute):
        assert [p.percent for p in curve.points] == list(PERCENTAGES)
        assert [p.asked for p in curve.points] == [int(p / 100 * n_edges) for p in PERCENTAGES]
        assert all(p.kept <= p.asked for p in curve.points)
        assert curve.points[-1].faithfulness == 1.0 and curve.points[0].faithfulness == 0.0
        assert curve.level is Level.EDGE
    assert report.cpr == pytest.approx(report.signed.area())
    assert report.cmd == pytest.approx(report.absolute.area(from_one=True))
    json.dumps(report.to_dict())
    assert plot_faithfulness(report, tmp_path / "f.png").stat().st_size > 0
    text = format_report(report, "tiny")
    assert "CPR" in text and "CMD" in text


def test_curve_of_a_chosen_circuit_matches_its_own_evaluation(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=4, length=6, diff_from=2)
    scores = EAP()(model, data, METRIC, progress=False)
    runner = CircuitRunner(model, data, METRIC)
    curve = faithfulness_curve(runner, scores, Ranking.ABSOLUTE, percentages=(20.0,), progress=False)
    circuit = top_k(scores, int(0.2 * len(scores.graph.edges)))
    assert curve.points[0].faithfulness == pytest.approx(runner.circuit_faithfulness(circuit, scores))
    assert curve.points[0].kept == len(circuit.edges)


def test_cpr_and_cmd_follow_mib() -> None:
    """MIB: trapezoids over the fraction of edges; CPR from f, CMD from |1 - f|."""
    fs = [0.0, 0.5, 1.5, 1.0]
    xs = [10.0, 20.0, 50.0, 100.0]
    points = tuple(CurvePoint(x, 0, 0, 0.0, f) for x, f in zip(xs, fs, strict=True))
    curve = FaithfulnessCurve(Ranking.SIGNED, Selection.TOP_K, Level.EDGE, points, 1.0, 0.0)
    report = FaithfulnessReport(curve, curve, Ablation.RESAMPLE, 1)
    assert report.cpr == pytest.approx(0.1 * 0.25 + 0.3 * 1.0 + 0.5 * 1.25)
    assert report.cmd == pytest.approx(0.1 * 0.75 + 0.3 * 0.5 + 0.5 * 0.25)
    assert area([0.0, 1.0], [2.0, 2.0]) == 2.0
    assert curve.at(50.0).faithfulness == 1.5


def test_edge_scores_summed_per_node_are_node_attribution(tiny_model: TinyFactory) -> None:
    """A sender's EAP edge scores sum to its node attribution score (its output reaches every
    receiver additively)."""
    model = tiny_model(n_key_value_heads=2, positional_embedding_type="rotary")
    data = random_dataset(n=4, length=6, diff_from=2)
    nodes = EAP()(model, data, METRIC, progress=False).to_nodes()
    direct = AttributionPatching()(model, data, METRIC, progress=False)
    heads = [nodes.graph.node_index(h) for h in nodes.graph.heads]
    torch.testing.assert_close(nodes.values[heads], direct.values[heads], atol=ATOL, rtol=1e-4)
    assert nodes.level is Level.NODE
    assert math.isnan(float(nodes.values[nodes.graph.node_index(Node(NodeKind.LOGITS, 3))]))


def test_task_settings_round_trip() -> None:
    task = IOI(corruption=IOICorruption.FLIP, orders=(IOIOrder.BABA,))
    assert task_from_run("ioi", task_settings(task)) == task


def test_evaluate_reports_bad_files_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.strip().startswith("headgraph: error:")
