"""Head outputs, the sae-codes / sae-code-edges / sae-patching methods, and patching a list of heads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from circuits.analysis.head_outputs import Pooling, head_outputs
from circuits.discovery import (
    METHODS,
    ActivationPatching,
    NodeScore,
    Positives,
    SAECodeEdges,
    SAECodes,
    SAEPatching,
    ShortlistBy,
    build_method,
    code_run,
)
from circuits.errors import HeadgraphError
from circuits.graph import QKV, Edge, Node, NodeKind
from circuits.scores import UninformativeScoresWarning
from saes import Architecture, argmax_codes
from tasks import Accuracy, LogitDiff, PromptPairDataset, Targets
from tests.helpers.checks import unchecked
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory
from tests.helpers.sae import FAST, LIVE, marked_dataset, planted

ATOL = 1e-5
"""Tolerance of float32 head outputs against TransformerLens's own per-head results."""

METRIC = LogitDiff()


@pytest.mark.parametrize("kv_heads", [None, 2])
@pytest.mark.parametrize("pooling", list(Pooling))
def test_head_outputs_equal_transformer_lens_head_results(
    tiny_model: TinyFactory, kv_heads: int | None, pooling: Pooling
) -> None:
    """Pooled z @ W_O equals TL's hook_result pooled over the real positions, per query head."""
    model = tiny_model(n_key_value_heads=kv_heads, positional_embedding_type="rotary" if kv_heads else "standard")
    data = random_dataset(n=5, length=7, lengths=[7, 4, 6, 7, 5])
    got = head_outputs(model, data.clean, data.lengths, pooling=pooling, batch_size=2)
    with torch.no_grad():
        logits, cache = model.run_with_cache(data.clean)
        results = cache.stack_head_results(layer=-1)  # (layer·head, batch, pos, d_model), layer-major
    rows = torch.arange(len(data))
    for i, n in enumerate(data.lengths.tolist()):
        pooled = results[:, i, :n].mean(1) if pooling is Pooling.MEAN else results[:, i, n - 1]
        torch.testing.assert_close(got.outputs[i], pooled, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.logits, logits[rows, data.answer_pos], atol=ATOL, rtol=0)


# --------------------------------------------------------------------------------------------
# Patching only some heads.


def test_patching_a_head_list_equals_patching_all_heads_there(tiny_model: TinyFactory) -> None:
    model = tiny_model(n_key_value_heads=2, positional_embedding_type="rotary")
    data = random_dataset(n=5, length=7, lengths=[7, 6, 7, 5, 7], diff_from=2)
    full = ActivationPatching(batch_size=2)(model, data, METRIC, progress=False)
    chosen = ("L2H3", "L0H1", "L2H0")
    part = ActivationPatching(batch_size=2, heads=chosen)(model, data, METRIC, progress=False)
    idx = [full.graph.node_index(Node.parse(h)) for h in chosen]
    torch.testing.assert_close(part.values[idx], full.values[idx], atol=1e-6, rtol=0)
    others = [i for i in range(len(full.graph.nodes)) if i not in idx]
    assert bool(part.values[others].isnan().all())
    assert part.baseline == full.baseline


@pytest.mark.parametrize("heads", [("L0H1", "L0H1"), ("MLP0",), ("L0H9",), ("nonsense",)])
def test_bad_head_lists_raise(tiny_model: TinyFactory, heads: tuple[str, ...]) -> None:
    with pytest.raises(HeadgraphError):
        ActivationPatching(heads=heads)(tiny_model(), random_dataset(n=2), METRIC, progress=False)


# --------------------------------------------------------------------------------------------
# A model whose task-relevant heads are known: only LIVE heads write anything.


def test_sae_codes_rank_the_only_heads_that_differ_first(tiny_model: TinyFactory) -> None:
    """The paper's ReLU + L1 SAE switches every latent off for a zero vector (NO_CODE), so silent
    heads and the live heads' negatives share one code and the live heads' positives have others.
    (A TopK SAE always names some latent, and may name the positives' latent for zero: not tested.)"""
    model, data = planted(tiny_model), marked_dataset()
    scores = SAECodes(positives=Positives.ALL, l1_coefficient=1e-3, **FAST)(  # type: ignore[arg-type]
        model, data, METRIC, progress=False
    )
    heads = dict(scores.ranked())
    assert set(heads) == set(scores.graph.heads), "every head is scored, nothing else"
    for node in LIVE:
        assert heads[node] < 0, f"{node} shows codes only positives have"
    assert all(v == 0 for n, v in heads.items() if n not in LIVE), "silent heads have one code everywhere"
    assert {n for n, _ in scores.ranked()[: len(LIVE)]} == set(LIVE)
    assert scores.params["n_positives"] == len(data)


def test_sae_code_edges_put_pair_counts_on_head_edges(tiny_model: TinyFactory) -> None:
    model, data = planted(tiny_model), marked_dataset()
    scores = SAECodeEdges(positives=Positives.ALL, l1_coefficient=1e-3, **FAST)(  # type: ignore[arg-type]
        model, data, METRIC, progress=False
    )
    g = scores.graph
    values = dict(zip(g.edges, scores.values.tolist(), strict=True))
    for e, v in values.items():
        head_to_head = e.src.kind is NodeKind.HEAD and e.dst.kind is NodeKind.HEAD
        assert (v == v) == head_to_head, f"{e}: only head → head edges are scored"  # v == v: not NaN
    live = [values[Edge(LIVE[0], LIVE[1], qkv)] for qkv in QKV]
    assert live[0] == live[1] == live[2] < 0, "q, k and v edges of a pair carry the pair's count"
    assert live[0] == min(v for v in values.values() if v == v), "the two live heads form a top pair"
    silent = Edge(Node.of_head(0, 0), Node.of_head(1, 0), QKV.V)
    assert values[silent] == 0


def test_pair_endpoint_node_score(tiny_model: TinyFactory) -> None:
    model, data = planted(tiny_model), marked_dataset()
    method = SAECodes(positives=Positives.ALL, node_score=NodeScore.PAIR_ENDPOINTS, l1_coefficient=1e-3, **FAST)  # type: ignore[arg-type]
    heads = dict(method(model, data, METRIC, progress=False).ranked())
    assert all(heads[n] < 0 for n in LIVE)
    # every pair with a live head has one positive-only code pair: a live head ends n_heads - 1 of
    # them, a silent head only its two pairs with the live heads
    assert all(heads[n] == -(len(heads) - 1) for n in LIVE)
    assert all(v == -len(LIVE) for n, v in heads.items() if n not in LIVE)


def test_sae_patching_patches_exactly_the_shortlist(tiny_model: TinyFactory) -> None:
    model, data = planted(tiny_model), marked_dataset(n=8)
    method = SAEPatching(positives=Positives.ALL, l1_coefficient=1e-3, shortlist=len(LIVE), **FAST)  # type: ignore[arg-type]
    scores = method(model, data, METRIC, progress=False)
    shortlisted = [Node.parse(h) for h in scores.params["shortlisted"]]
    assert set(shortlisted) == set(LIVE), "heads with codes seen only on positives rank first"
    exact = ActivationPatching(heads=tuple(map(str, LIVE)))(model, data, METRIC, progress=False)
    torch.testing.assert_close(scores.values, exact.values, atol=1e-6, rtol=0, equal_nan=True)
    assert [n for n, _ in scores.ranked()] == [n for n, _ in exact.ranked()]


def test_sae_patching_fills_the_shortlist_with_unchanged_heads(tiny_model: TinyFactory) -> None:
    model, data = planted(tiny_model), marked_dataset(n=8)
    size = len(LIVE) + 2
    scores = SAEPatching(positives=Positives.ALL, l1_coefficient=1e-3, shortlist=size, **FAST)(  # type: ignore[arg-type]
        model, data, METRIC, progress=False
    )
    shortlisted = {Node.parse(h) for h in scores.params["shortlisted"]}
    assert len(shortlisted) == size and set(LIVE) <= shortlisted
    assert all(v == 0 for n, v in scores.ranked() if n not in LIVE), "silent heads, patched, have no effect"


def test_sae_patching_can_shortlist_by_output_difference(tiny_model: TinyFactory) -> None:
    model, data = planted(tiny_model), marked_dataset(n=8)
    method = SAEPatching(positives=Positives.ALL, shortlist=len(LIVE), shortlist_by=ShortlistBy.OUTPUT_DIFFERENCE)
    scores = method(model, data, METRIC, progress=False)
    assert {Node.parse(h) for h in scores.params["shortlisted"]} == set(LIVE), "silent heads never move"
    assert "train" not in scores.params["seconds_by_phase"], "no SAE is trained"


def test_positives_are_the_solved_prompts_and_the_saes_save(tiny_model: TinyFactory, tmp_path: Path) -> None:
    model = tiny_model()
    data = random_dataset(n=8, length=6, diff_from=3)
    with torch.no_grad():
        top = model(data.clean)[:, -1].argmax(-1)
    answers = data.targets.answers.clone()
    answers[:3, 0] = top[:3]  # the model "solves" exactly the first three (and maybe others by chance)
    data = PromptPairDataset(data.task, 0, "none", data.pairs, data.clean, data.corrupt, data.lengths,
                             Targets(answers, data.targets.wrong, data.targets.candidates), {})  # fmt: skip
    settings = SAECodes(**FAST)  # type: ignore[arg-type]
    run = code_run(settings, model, data, METRIC, progress=False)
    solved = Accuracy()(model(data.clean)[:, -1], data.targets) > 0.5
    assert run.positives.shape == (int(solved.sum()), model.cfg.n_layers * model.cfg.n_heads)
    assert run.negatives.shape == run.positives.shape
    assert run.train_rows.numel() == min(FAST["train_prompts"], 2 * int(solved.sum()))
    assert run.baseline.clean_accuracy == pytest.approx(float(solved.float().mean()))
    run.saes.save(tmp_path)
    sae = SAE.load_from_disk(tmp_path / "shared")
    x = head_outputs(model, data.clean, data.lengths).outputs[solved]
    with torch.no_grad():
        assert torch.equal(argmax_codes(sae.encode(x.flatten(0, 1))).view(x.shape[:2]), run.positives)


def test_no_solved_prompt_raises(tiny_model: TinyFactory) -> None:
    model, data = tiny_model(), random_dataset(n=4)
    with torch.no_grad():
        top = model(data.clean)[:, -1].argmax(-1)
    wrong = Targets(((top + 1) % 50)[:, None], data.targets.wrong, data.targets.candidates)
    data = PromptPairDataset("random", 0, "none", data.pairs, data.clean, data.corrupt, data.lengths, wrong, {})
    with pytest.raises(HeadgraphError, match="solves none"):
        SAECodes(**FAST)(model, data, METRIC, progress=False)  # type: ignore[arg-type]


def test_methods_are_registered_and_built_from_strings() -> None:
    for name, cls in (("sae-codes", SAECodes), ("sae-code-edges", SAECodeEdges), ("sae-patching", SAEPatching)):
        assert METHODS[name] is cls
    m = build_method(
        "sae-codes", {"architecture": "topk", "epochs": "7", "pooling": "last", "node-score": "pair-endpoints"}
    )
    assert isinstance(m, SAECodes) and m.epochs == 7 and m.pooling is Pooling.LAST
    assert build_method("sae-patching", {"shortlist": "12"}).shortlist == 12  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"d_sae": 0}, "d_sae must be a positive integer, got 0"),
        ({"k": 500}, "k (500) cannot exceed d_sae (200)"),
        ({"train_prompts": 0}, "train_prompts must be a positive integer, got 0"),
        ({"l1_coefficient": -1.0}, "l1_coefficient must be non-negative, got -1.0"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"lr": -1.0}, "lr must be positive, got -1.0"),
    ],
)
def test_bad_method_settings_raise(bad: dict[str, object], message: str) -> None:
    for cls in (SAECodes, SAECodeEdges, SAEPatching):
        with pytest.raises(HeadgraphError, match=re.escape(message)):
            cls(**bad)  # type: ignore[arg-type]


def test_bad_shortlist_and_pooling_raise() -> None:
    with pytest.raises(HeadgraphError, match="shortlist must be a positive integer, got 0"):
        SAEPatching(shortlist=0)
    with pytest.raises(HeadgraphError, match="pooling must be a Pooling, got 'mean'"), unchecked():  # not the checker
        SAECodes(pooling="mean")  # type: ignore[arg-type]


def test_a_dead_sae_is_warned_about_and_recorded(tiny_model: TinyFactory) -> None:
    """An L1 weight so large that no latent survives training: every code is NO_CODE, counts are all 0."""
    model, data = planted(tiny_model), marked_dataset()
    with pytest.warns(UninformativeScoresWarning) as caught:
        scores = SAECodes(positives=Positives.ALL, l1_coefficient=1e6, **FAST)(  # type: ignore[arg-type]
            model, data, METRIC, progress=False
        )
    assert any("dead" in w for w in scores.warnings) and any("ties" in w for w in scores.warnings)
    assert {str(w.message).split(": ", 1)[1] for w in caught} >= set(scores.warnings)
    with pytest.warns(UninformativeScoresWarning, match="dead"):
        patched = SAEPatching(positives=Positives.ALL, l1_coefficient=1e6, shortlist=2, **FAST)(  # type: ignore[arg-type]
            model, data, METRIC, progress=False
        )
    assert any("dead" in w and "output difference" in w for w in patched.warnings)
    assert {Node.parse(h) for h in patched.params["shortlisted"]} == set(LIVE), "a dead SAE never ranks"


def test_a_saturated_sae_is_warned_about_recorded_and_not_used(tiny_model: TinyFactory) -> None:
    """A TopK SAE with one latent codes every (prompt, head) of a random model (no head is silent)
    by that latent: the counts carry nothing, and sae-patching ranks by output difference instead."""
    model, data = tiny_model(), random_dataset(n=8, length=6, diff_from=2)
    one = {**FAST, "d_sae": 1, "architecture": Architecture.TOPK, "positives": Positives.ALL}
    for method in (SAECodes(**one), SAECodeEdges(**one)):  # type: ignore[arg-type]
        with pytest.warns(UninformativeScoresWarning, match="saturated"):
            scores = method(model, data, METRIC, progress=False)
        assert any("saturated" in w for w in scores.warnings)
    with pytest.warns(UninformativeScoresWarning, match="saturated"):
        patched = SAEPatching(shortlist=3, **one)(model, data, METRIC, progress=False)  # type: ignore[arg-type]
    assert any("saturated" in w and "output difference" in w for w in patched.warnings)
    by_distance = SAEPatching(shortlist=3, positives=Positives.ALL, shortlist_by=ShortlistBy.OUTPUT_DIFFERENCE)
    expected = by_distance(model, data, METRIC, progress=False).params["shortlisted"]
    assert patched.params["shortlisted"] == expected
