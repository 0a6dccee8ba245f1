"""The label-free repair recipe: answer positions parsed from the prompt's structure, checked against
the task's labels, and the planted IOI model repaired through its name mover without reading a label."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from circuits.errors import HeadgraphError
from circuits.groundtruth.planted import ALPHA, Planted
from circuits.groundtruth.planted_ioi import ioi_model
from circuits.repair import (
    EditKind,
    Recipe,
    RepairConfig,
    RepairResult,
    Role,
    broken_copy,
    evaluate_edits,
    parse_queried_color,
    parse_unique_name,
    repair,
    repair_markdown,
    repair_to_dict,
    role_positions,
)
from tasks import TASKS, PromptPairDataset, get_task
from tasks.tokenizer import TextTokenizer
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

N = 64


def _scrambled(data: PromptPairDataset) -> PromptPairDataset:
    """The same prompts with every label destroyed: answers and wrong answers swapped, the colour
    labels pointed at BOS, and IOI's IO and S1 names exchanged (the set of name positions, which is
    structure, is kept; which of them is the answer, a label, is not)."""
    t = data.targets
    targets = dataclasses.replace(t, answers=t.wrong, wrong=t.answers)
    positions = dict(data.positions)
    for name in ("answer_color", "wrong_color"):
        if name in positions:
            positions[name] = torch.zeros_like(positions[name])
    if "IO" in positions:
        positions["IO"], positions["S1"] = positions["S1"], positions["IO"]
    return dataclasses.replace(data, targets=targets, positions=positions)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_colored_objects_parse_finds_the_answer_colour_without_labels(
    smollm2_tokenizer: TextTokenizer, seed: int
) -> None:
    data = get_task("colored-objects").dataset(smollm2_tokenizer, N, seed=seed)
    parsed = parse_queried_color(data)
    assert parsed[:, 0].tolist() == data.positions["answer_color"].tolist()
    assert torch.equal(parse_queried_color(_scrambled(data)), parsed)  # no label is read


@pytest.mark.parametrize("n_objects", [2, 4])
def test_colored_objects_parse_holds_for_other_list_lengths(smollm2_tokenizer: TextTokenizer, n_objects: int) -> None:
    data = TASKS["colored-objects"](n_objects=n_objects).dataset(smollm2_tokenizer, 32, seed=5)
    assert parse_queried_color(data)[:, 0].tolist() == data.positions["answer_color"].tolist()


def test_ioi_parse_finds_the_indirect_object_without_labels(smollm2_tokenizer: TextTokenizer) -> None:
    data = get_task("ioi").dataset(smollm2_tokenizer, N, seed=0)
    parsed = parse_unique_name(data)
    assert parsed[:, 0].tolist() == data.positions["IO"].tolist()
    assert torch.equal(parse_unique_name(_scrambled(data)), parsed)


def test_ioi_parse_is_minus_one_when_no_name_is_unique(smollm2_tokenizer: TextTokenizer) -> None:
    data = get_task("ioi").dataset(smollm2_tokenizer, 4, seed=0)
    clean = data.clean.clone()
    rows = torch.arange(len(data))
    clean[rows, data.positions["IO"]] = clean[rows, data.positions["S1"]]  # all three names equal
    assert parse_unique_name(dataclasses.replace(data, clean=clean))[:, 0].tolist() == [-1] * 4


def test_mcqa_has_no_parsed_answer(smollm2_tokenizer: TextTokenizer) -> None:
    roles = role_positions(get_task("mcqa").dataset(smollm2_tokenizer, 8, seed=0))
    assert not roles.has(Role.PARSED) and roles.has(Role.ANSWER)


@pytest.fixture(scope="module")
def planted() -> Planted:
    return ioi_model()


@pytest.fixture(scope="module")
def result(planted: Planted) -> RepairResult:
    t = planted.task
    return repair(
        broken_copy(planted),
        t.dataset(N, seed=0),
        t.dataset(N, seed=2),
        select=t.dataset(N, seed=1),
        collateral={"planted-ioi, seed 3": t.dataset(N, seed=3)},
        source_model=planted.model,
        config=RepairConfig(fraction=0.16, controls=5, recipe=Recipe.PARSED),
        progress=False,
    )


def test_label_free_recipe_redirects_the_mover_and_restores_the_metric(planted: Planted, result: RepairResult) -> None:
    """With S-inhibition broken the mover spreads over IO, S1, S2; the label-free recipe forces it onto
    the parsed IO (read from the tokens alone) and the logit difference returns to +ALPHA."""
    mover, inh = planted.roles["name-mover"], planted.roles["s-inhibition"]
    assert result.chosen.heads == (mover,)
    assert result.chosen.kind is EditKind.FORCE and result.chosen.role is Role.PARSED
    ranked = result.ranked
    assert ranked[0].head == mover and ranked[0].misdirection == pytest.approx(2 / 3, abs=0.05)
    assert all(h.head != inh for h in ranked)  # it attends to S2, not the answer, on the source
    assert result.before.metric == pytest.approx(-ALPHA / 3, abs=1e-3)
    assert result.after.metric == pytest.approx(ALPHA, rel=0.01)
    assert result.after.attention[mover][Role.PARSED] == pytest.approx(1.0)
    assert result.errors is not None and len(result.errors.indices) == N  # every prompt was wrong before
    assert result.errors.after.candidate_accuracy == 1.0
    for outcome in result.errors.control.outcomes:  # random heads of the mover's layer do nothing
        assert outcome.candidate_accuracy == 0.0


def test_the_edit_reads_no_label_at_test_time(planted: Planted, result: RepairResult) -> None:
    """The chosen edit applied to prompts whose labels are scrambled attends to exactly the same tokens."""
    data = planted.task.dataset(N, seed=2)
    mover = planted.roles["name-mover"]
    (a,) = evaluate_edits(broken_copy(planted), data, [result.chosen], watch=[mover])
    (b,) = evaluate_edits(broken_copy(planted), _scrambled(data), [result.chosen], watch=[mover])
    assert a.attention[mover][Role.ANSWER] == pytest.approx(1.0)
    assert b.attention[mover][Role.WRONG] == pytest.approx(1.0)  # the scrambled "wrong" is the real IO


def test_report_names_the_recipe_and_the_errors(result: RepairResult) -> None:
    md = repair_markdown(result)
    assert "label-free" in md and f"{len(result.errors.indices)} errors" in md  # type: ignore[union-attr]
    assert f"Chosen edit: force {result.chosen.heads[0]} → parsed" in md
    data = repair_to_dict(result)
    assert data["config"]["recipe"] == "parsed" and data["chosen"]["role"] == "parsed"
    assert data["errors"]["after"]["candidate_accuracy"] == 1.0


def test_label_free_recipe_refuses_a_task_without_structure(smollm2_tokenizer: TextTokenizer, planted: Planted) -> None:
    mcqa = get_task("mcqa").dataset(smollm2_tokenizer, 4, seed=0)
    ioi = get_task("ioi").dataset(smollm2_tokenizer, 4, seed=0)
    with pytest.raises(HeadgraphError, match="label-free recipe"):
        repair(planted.model, ioi, mcqa, select=mcqa, config=RepairConfig(recipe=Recipe.PARSED), progress=False)


def test_a_second_recipe_reuses_the_sweeps(planted: Planted, result: RepairResult) -> None:
    """Passing an earlier run's sweeps gives the same circuits and heads without patching again."""
    t = planted.task
    again = repair(
        broken_copy(planted),
        t.dataset(N, seed=0),
        t.dataset(N, seed=2),
        select=t.dataset(N, seed=1),
        source_model=planted.model,
        config=RepairConfig(fraction=0.16, controls=5, recipe=Recipe.PARSED),
        scores=(result.source_scores, result.target_scores),
        progress=False,
    )
    assert again.overlap == result.overlap and again.chosen == result.chosen
    assert again.after.metric == result.after.metric
    assert again.timings["circuits"] < result.timings["circuits"]


def test_sweeps_of_another_shape_are_refused(planted: Planted, tiny_model: TinyFactory) -> None:
    from circuits.discovery import ActivationPatching
    from tasks.metrics import LogitDiff

    method = ActivationPatching(heads=("L0H0",))
    other = method(tiny_model(n_layers=5), random_dataset(n=2), LogitDiff(), progress=False)
    t = planted.task
    with pytest.raises(HeadgraphError, match="not of a"):
        repair(planted.model, t.dataset(4, seed=0), t.dataset(4, seed=2), select=t.dataset(4, seed=1),
               scores=(other, other), progress=False)  # fmt: skip


def test_shortlist_patches_exactly_the_top_heads_by_attribution(planted: Planted) -> None:
    """With a shortlist as large as the model, the sweep is the full one; with k heads, exactly the k
    heads attribution patching ranks first are patched (the others NaN), with the full sweep's values."""
    from circuits.discovery import AttributionPatching
    from circuits.repair.workflow import _circuit_scores
    from tasks.metrics import LogitDiff

    data, metric = planted.task.dataset(16, seed=0), LogitDiff()
    n_heads = planted.model.cfg.n_heads * planted.model.cfg.n_layers
    full = _circuit_scores(planted.model, data, metric, RepairConfig(), False)
    same = _circuit_scores(planted.model, data, metric, RepairConfig(shortlist=n_heads), False)
    torch.testing.assert_close(same.values, full.values, equal_nan=True)
    atp = AttributionPatching()(planted.model, data, metric, progress=False)
    g = atp.graph
    top = sorted(g.heads, key=lambda h: -abs(float(atp.values[g.node_index(h)])))[:3]
    short = _circuit_scores(planted.model, data, metric, RepairConfig(shortlist=3), False)
    for h in g.heads:
        i = g.node_index(h)
        if h in top:
            assert float(short.values[i]) == pytest.approx(float(full.values[i]), abs=1e-9)
        else:
            assert torch.isnan(short.values[i])
