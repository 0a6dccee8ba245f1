"""Repair building blocks: attention/ablation edits under resumed runs, answer roles, head edits, configs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from circuits.discovery import Ablation
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.interventions import AblateHead, ForceAttention, ScaleAttention, intervene
from circuits.model import hook_pattern, hook_z, logits_at, resumable_run, resume_to_logits, run_with_cache
from circuits.repair import (
    AnswerRole,
    Candidates,
    EditEvaluator,
    EditKind,
    HeadEdit,
    RepairConfig,
    require_roles,
    role_positions,
)
from circuits.repair.edits import Outcome
from circuits.repair.workflow import Trial, _draw_controls, _select
from tasks import (
    IOI,
    MCQA,
    TASKS,
    ColoredObjects,
    LogitDiff,
    PromptPair,
    PromptPairDataset,
    Task,
    TextTokenizer,
    TokenRows,
    UnknownNameError,
    collate,
)
from tasks.answers import AnswerRoles, names_matching, tokens_at
from tests.helpers.checks import unchecked
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

ATOL = 1e-5

GQA_ROTARY = {"n_key_value_heads": 2, "positional_embedding_type": "rotary"}


def _ioi_like(n: int = 6) -> PromptPairDataset:
    """Random tokens with IOI-style named positions and unequal lengths (answer positions 6, 7, 8...)."""
    lengths = [7 + i % 3 for i in range(n)]
    data = random_dataset(n=n, length=9, lengths=lengths, diff_from=4)
    positions = {
        "IO": torch.tensor([1] * n),
        "S1": torch.tensor([2] * n),
        "S2": torch.tensor([4 + i % 2 for i in range(n)]),
    }
    return dataclasses.replace(data, task="ioi", positions=positions)


@pytest.mark.parametrize("kind", ["force", "scale", "ablate"])
def test_edits_at_the_answer_position_are_exact_in_a_resumed_pass(tiny_model: TinyFactory, kind: str) -> None:
    """An edit given absolute positions does the same in a full pass and in one resumed from a cache."""
    model = tiny_model(**GQA_ROTARY)
    data = _ioi_like()
    pos = data.answer_pos
    keys = torch.stack([data.positions["S1"], data.positions["S2"]], 1)
    prefix = int(pos.min())
    run = resumable_run(model, data.clean, prefix, [])
    mean = torch.randn(model.cfg.d_head)
    if kind == "force":
        full_edit = resumed_edit = ForceAttention(1, 2, pos, keys)
    elif kind == "scale":
        full_edit = resumed_edit = ScaleAttention(1, 2, keys, 3.0, pos)
    else:
        full_edit = AblateHead(1, 2, Ablation.MEAN, mean, pos)
        resumed_edit = AblateHead(1, 2, Ablation.MEAN, mean, pos - prefix)
    with torch.no_grad():
        with intervene(model, full_edit):
            resid, _ = run_with_cache(model, data.clean, [])
        full = logits_at(model, resid, pos)
        with intervene(model, resumed_edit):
            resumed = resume_to_logits(model, run, 1, 1, pos, [])
        plain = logits_at(model, run.final_resid, pos)
    torch.testing.assert_close(resumed, full, atol=ATOL, rtol=0)
    assert (full - plain).abs().max() > 1e-3  # the edit does something


def test_ablation_at_positions_leaves_the_other_positions_alone(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    tokens = torch.tensor([[3, 7, 1, 9, 4, 2], [5, 5, 8, 0, 6, 1]])
    mean = torch.randn(model.cfg.d_head)
    _, clean = model.run_with_cache(tokens)
    with torch.no_grad(), intervene(model, AblateHead(0, 1, Ablation.MEAN, mean, torch.tensor([5, 2]))):
        _, seen = model.run_with_cache(tokens)
    z, z0 = seen[hook_z(0)][:, :, 1], clean[hook_z(0)][:, :, 1]
    torch.testing.assert_close(z[0, 5], mean)
    torch.testing.assert_close(z[1, 2], mean)
    torch.testing.assert_close(z[0, :5], z0[0, :5])
    torch.testing.assert_close(z[1, 3:], z0[1, 3:])
    with unchecked(), pytest.raises(HeadgraphError):
        AblateHead(0, 1, positions=torch.zeros(2, 2, dtype=torch.long))


def test_an_edited_query_before_the_resumed_positions_is_an_error(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = _ioi_like()
    run = resumable_run(model, data.clean, int(data.answer_pos.min()), [])
    early = torch.full((len(data),), 1)
    with (
        pytest.raises(HeadgraphError, match="before the positions"),
        intervene(model, ForceAttention(1, 0, early, torch.zeros(len(data), 1, dtype=torch.long))),
    ):
        resume_to_logits(model, run, 1, 1, data.answer_pos, [])


def test_the_evaluator_matches_full_forward_passes(tiny_model: TinyFactory) -> None:
    """Each outcome (metric, accuracies, watched attention) equals a plain full pass with the edit."""
    model = tiny_model(**GQA_ROTARY)
    data = _ioi_like(8)
    heads = (Node.of_head(1, 2), Node.of_head(2, 0))
    edits = [None, HeadEdit(heads, EditKind.FORCE), HeadEdit(heads, EditKind.SCALE, gamma=0.25),
             HeadEdit(heads, EditKind.ABLATE)]  # fmt: skip
    outcomes = EditEvaluator(model, data, batch_size=3)(edits, watch=[Node.of_head(2, 0), Node.of_head(2, 3)])
    roles = role_positions(data)
    rows = torch.arange(len(data))
    _, cache = run_with_cache(model, data.clean, [hook_z(1), hook_z(2)])
    means = {h: cache[hook_z(h.layer)][rows, data.answer_pos, h.head].mean(0) for h in heads}
    for edit, got in zip(edits, outcomes, strict=True):
        ivs = edit.interventions(data, roles, means) if edit else []
        with torch.no_grad(), intervene(model, *ivs):
            resid, seen = run_with_cache(model, data.clean, [hook_pattern(2)])
        logits = logits_at(model, resid, data.answer_pos)
        assert got.n == len(data)
        assert got.metric == pytest.approx(float(LogitDiff()(logits, data.targets).mean()), abs=ATOL)
        row = seen[hook_pattern(2)][rows, 0, data.answer_pos]  # watched head L2H0, (batch, k)
        wrong = sum(row[rows, roles.wrong[:, i]] for i in range(2)).mean()
        assert got.attention[Node.of_head(2, 0)][AnswerRole.WRONG] == pytest.approx(float(wrong), abs=ATOL)
        a = got.attention[Node.of_head(2, 3)]
        assert a[AnswerRole.CANDIDATES] == pytest.approx(a[AnswerRole.ANSWER] + a[AnswerRole.WRONG], abs=ATOL)
    assert outcomes[1].attention[Node.of_head(2, 0)][AnswerRole.WRONG] == pytest.approx(1.0)
    assert outcomes[0].metric != pytest.approx(outcomes[1].metric)


def test_roles_of_the_text_tasks(smollm2_tokenizer: TextTokenizer) -> None:
    tok = smollm2_tokenizer
    ioi = IOI().dataset(tok, 8, seed=0)
    r = role_positions(ioi)
    assert r.answer[:, 0].tolist() == ioi.positions["IO"].tolist()
    assert r.wrong.tolist() == torch.stack([ioi.positions["S1"], ioi.positions["S2"]], 1).tolist()
    co = ColoredObjects().dataset(tok, 8, seed=0)
    r = role_positions(co)
    rows = torch.arange(len(co))
    for i, pair in enumerate(co.pairs):
        words = {tok.decode(int(co.clean[i, p])).strip().lower() for p in r.wrong[i]}
        answer = tok.decode(int(co.clean[i, r.answer[i, 0]])).strip()
        assert answer.lower() == pair.answers[0].strip().lower()
        assert len(words) == 2 and answer.lower() not in words
        assert pair.wrong[0].strip().lower() in words  # the corrupt prompt's answer is among the wrong colours
    assert r.candidates.shape == (len(co), 3) and bool((r.answer[:, 0] == co.positions["answer_color"]).all())
    assert rows.numel() == len(co)
    mcqa = MCQA().dataset(tok, 8, seed=0)
    r = role_positions(mcqa)
    assert r.wrong[:, 0].tolist() == mcqa.positions["wrong_label"].tolist()  # two options: the other letter


def test_tasks_without_roles_are_named_errors() -> None:
    with pytest.raises(UnknownNameError, match="unknown repair task 'arithmetic'; valid repair tasks: colored-objects"):
        require_roles("arithmetic")


def test_head_edit_validation() -> None:
    h = Node.of_head(1, 0)
    with pytest.raises(HeadgraphError, match="at least one head"):
        HeadEdit((), EditKind.FORCE)
    with pytest.raises(HeadgraphError, match="attention heads"):
        HeadEdit((Node.of_mlp(1),), EditKind.FORCE)
    with pytest.raises(HeadgraphError, match="each head once"):
        HeadEdit((h, h), EditKind.FORCE)
    with unchecked(), pytest.raises(HeadgraphError, match="EditKind"):
        HeadEdit((h,), "force")  # type: ignore[arg-type]
    with unchecked(), pytest.raises(HeadgraphError, match="Role"):
        HeadEdit((h,), EditKind.FORCE, "wrong")  # type: ignore[arg-type]
    for gamma in (0.0, 1.0, -2.0):
        with pytest.raises(HeadgraphError, match="gamma"):
            HeadEdit((h,), EditKind.SCALE, gamma=gamma)
    assert HeadEdit((h,), EditKind.ABLATE).label == "mean-ablate L1H0"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"candidates": "source"}, "Candidates"),
        ({"min_source_attention": 1.5}, "min_source_attention"),
        ({"max_heads": 0}, "max_heads"),
        ({"controls": 0}, "controls"),
        ({"batch_size": -1}, "batch_size"),
        ({"gammas": (2.0, 1.0)}, "gamma"),
        ({"gammas": (0.0,)}, "gamma"),
    ],
)
def test_repair_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with unchecked(), pytest.raises(HeadgraphError, match=message):
        RepairConfig(**kwargs)  # type: ignore[arg-type]


def test_repair_config_is_frozen() -> None:
    config = RepairConfig(candidates=Candidates.SHARED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_heads = 2  # type: ignore[misc]


def test_control_draws_use_other_heads_of_the_same_layers() -> None:
    chosen = [Node.of_head(1, 3), Node.of_head(1, 0), Node.of_head(2, 2)]
    draws = _draw_controls(chosen, 5, 20, seed=0)
    assert draws == _draw_controls(chosen, 5, 20, seed=0)
    assert len({d for d in draws}) > 1
    for d in draws:
        assert [h.layer for h in d] == [1, 1, 2]
        assert not set(d) & set(chosen) and len(set(d)) == 3
    with pytest.raises(HeadgraphError, match="no head besides"):
        _draw_controls([Node.of_head(0, 0), Node.of_head(0, 1)], 2, 1, seed=0)


def test_selection_prefers_the_smaller_edit_unless_a_larger_one_is_better() -> None:
    def trial(k: int, metric: float) -> Trial:
        return Trial(
            HeadEdit(tuple(Node.of_head(0, h) for h in range(k)), EditKind.FORCE), Outcome(4, metric, 0.0, 0.0)
        )

    assert _select([trial(1, 2.0), trial(2, 2.0), trial(3, 1.0)]).edit.heads == (Node.of_head(0, 0),)
    assert len(_select([trial(1, 2.0), trial(2, 2.5), trial(3, 2.5)]).edit.heads) == 2


def test_a_new_task_declares_its_roles_without_touching_circuits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A toy task (not known to ``circuits/``) gets role positions, its parse included, from its declaration."""

    def parse_cued(data: PromptPairDataset) -> torch.Tensor:  # the option whose token equals the cue's
        opts = names_matching(data, r"opt\d")
        tok = tokens_at(data, ["cue", *opts])
        match = tok[:, 1:] == tok[:, :1]
        pos = torch.stack([data.positions[n] for n in opts], 1)
        return torch.where(match.sum(1) == 1, (pos * match).sum(1), -1)[:, None]

    class Toy(Task):
        name = "toy-vote"
        description = "three options and a cue"
        answer_roles = AnswerRoles("pick", r"opt\d", parse_cued)

        def stream(self, rng, tokenizer):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    monkeypatch.setitem(TASKS._items, Toy.name, Toy)  # registered for this test only
    rows = []
    for i, (a, b, c) in enumerate([(1, 2, 3), (4, 5, 6)]):
        clean = [9, a, b, c, [a, c][i], 0]  # options at 1..3, the cue at 4
        rows.append((PromptPair("", "", (), (), ()), TokenRows(clean, clean, [7], [8], [7, 8],
                     {"opt0": 1, "opt1": 2, "opt2": 3, "cue": 4, "pick": [1, 3][i]})))  # fmt: skip
    data = collate(Toy.name, 0, "ids", 0, rows)
    require_roles(Toy.name)
    r = role_positions(data)
    assert r.answer.tolist() == [[1], [3]]
    assert r.wrong.tolist() == [[2, 3], [1, 2]]
    assert r.candidates.tolist() == [[1, 2, 3], [1, 2, 3]]
    assert r.parsed.tolist() == [[1], [3]] and r.has(AnswerRole.PARSED)
