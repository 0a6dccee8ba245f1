"""Repair checked against ground truth: the planted IOI model, broken on purpose, is repaired by the workflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.groundtruth.planted import ALPHA, Planted
from circuits.groundtruth.planted_ioi import ioi_model
from circuits.measures.roc import task_overlap
from circuits.repair import (
    AnswerRole,
    EditKind,
    RepairConfig,
    RepairResult,
    broken_copy,
    evaluate_edits,
    plot_repair,
    repair,
    repair_markdown,
    repair_to_dict,
)

REPAIR_TOL = 0.01
"""The repaired metric must be within 1% of the intact model's (the issue's acceptance criterion)."""

ATOL = 1e-6

N = 64

PLANTED_CONFIG = RepairConfig(fraction=0.16, controls=5)
"""Circuits of 2 of the 12 heads: what patching at the last position can see (S-inhibition, mover)."""


@pytest.fixture(scope="module")
def planted() -> Planted:
    return ioi_model()


@pytest.fixture(scope="module")
def result(planted: Planted) -> RepairResult:
    t = planted.task
    broken = broken_copy(planted)
    return repair(
        broken,
        t.dataset(N, seed=0),
        t.dataset(N, seed=2),
        select=t.dataset(N, seed=1),
        collateral={"planted-ioi, seed 3": t.dataset(N, seed=3)},
        source_model=planted.model,
        config=PLANTED_CONFIG,
        progress=False,
    )


def test_the_break_disables_the_s_inhibition_head_only_in_the_copy(planted: Planted) -> None:
    data = planted.task.dataset(N, seed=2)
    broken = broken_copy(planted)
    (intact,) = evaluate_edits(planted.model, data, [None], watch=[planted.roles["s-inhibition"]])
    (bad,) = evaluate_edits(broken, data, [None], watch=[planted.roles["s-inhibition"]])
    assert intact.metric == pytest.approx(ALPHA, abs=1e-3)
    assert bad.metric == pytest.approx(-ALPHA / 3, abs=1e-3)  # the mover spreads over IO, S1, S2
    assert intact.attention[planted.roles["s-inhibition"]][AnswerRole.WRONG] == pytest.approx(1.0, abs=1e-6)
    assert bad.attention[planted.roles["s-inhibition"]][AnswerRole.CANDIDATES] < ATOL  # it looks at BOS now
    (again,) = evaluate_edits(planted.model, data, [None])
    assert again.metric == intact.metric  # the original model is untouched


def test_the_workflow_finds_the_broken_head_and_restores_the_metric(planted: Planted, result: RepairResult) -> None:
    inh = planted.roles["s-inhibition"]
    (intact,) = evaluate_edits(planted.model, planted.task.dataset(N, seed=2), [None])
    assert result.chosen.heads == (inh,)
    assert result.chosen.kind is EditKind.FORCE and result.chosen.role is AnswerRole.WRONG
    assert result.ranked[0].head == inh and result.ranked[0].misdirection == pytest.approx(1.0, abs=1e-6)
    assert result.before.metric == pytest.approx(-ALPHA / 3, abs=1e-3)
    assert abs(result.after.metric - intact.metric) <= REPAIR_TOL * abs(intact.metric)
    assert result.after.candidate_accuracy == 1.0 and result.before.candidate_accuracy == 0.0
    assert result.after.attention[inh][AnswerRole.WRONG] == pytest.approx(1.0)
    # the mover is in the source circuit but attends to the answer there: not eligible
    mover = next(h for h in result.heads if h.head == planted.roles["name-mover"])
    assert not mover.eligible and mover.source[AnswerRole.ANSWER] > 0.99


def test_the_random_head_control_does_not_repair(planted: Planted, result: RepairResult) -> None:
    inh = planted.roles["s-inhibition"]
    assert len(result.control.outcomes) == PLANTED_CONFIG.controls
    for heads, outcome in zip(result.control.heads, result.control.outcomes, strict=True):
        assert heads[0].layer == inh.layer and heads[0] != inh
        assert outcome.metric == pytest.approx(result.before.metric, abs=ATOL)  # distractors are inert
    mean, _ = result.control.mean_sd("metric")
    assert mean < result.after.metric - ALPHA


def test_collateral_forms(result: RepairResult) -> None:
    """On more prompts of the same task: forcing restores it again; ablating the broken head (whose
    output is now constant, BOS's) changes nothing."""
    force, ablate = result.collateral
    assert force.form.kind is EditKind.FORCE and ablate.form.kind is EditKind.ABLATE
    assert force.before.metric == pytest.approx(-ALPHA / 3, abs=1e-3)
    assert force.after.metric == pytest.approx(ALPHA, rel=REPAIR_TOL)
    assert ablate.after.metric == pytest.approx(ablate.before.metric, abs=ATOL)


def test_scaling_cannot_repair_what_has_no_attention_left(result: RepairResult) -> None:
    """γ·a with a ≈ 0 stays ≈ 0: the selection had a real choice and took FORCE."""
    scaled = [t for t in result.trials if t.edit.kind is EditKind.SCALE]
    assert scaled and all(t.outcome.metric < result.after.metric - ALPHA for t in scaled)


def test_the_result_keeps_both_patching_sweeps(result: RepairResult) -> None:
    """The stored sweeps are the ones the circuits came from: recomputing the overlap gives the same heads."""
    again = task_overlap([result.source_scores], [result.target_scores], PLANTED_CONFIG.fraction)
    assert (again.a, again.b, again.shared) == (result.overlap.a, result.overlap.b, result.overlap.shared)
    assert result.source_scores.baseline.clean != result.target_scores.baseline.clean  # intact vs broken model


def test_nothing_to_redirect_is_a_clear_error(planted: Planted) -> None:
    data = planted.task.dataset(8, seed=0)
    config = RepairConfig(fraction=0.16, min_source_attention=1.0)  # nothing attends that much
    with pytest.raises(HeadgraphError, match="nothing to redirect"):
        repair(planted.model, data, data, select=data, config=config, progress=False)


def test_report_files(result: RepairResult, tmp_path: Path) -> None:
    md = repair_markdown(result, "headgraph repair ...")
    assert "Chosen edit: force L1H3 → wrong" in md and "control" in md
    data = json.loads(json.dumps(repair_to_dict(result)))
    assert data["chosen"]["heads"] == ["L1H3"]
    assert data["after"]["attention"]["L1H3"]["wrong"] == pytest.approx(1.0)
    assert len(data["control"]["outcomes"]) == PLANTED_CONFIG.controls
    assert set(data["timings"]) >= {"circuits", "attention", "selection", "target and control"}
    fig = plot_repair(result, tmp_path / "repair.png")
    assert (tmp_path / "repair.png").stat().st_size > 10_000 and len(fig.axes) == 3
    assert Node.of_head(1, 3) in result.after.attention
