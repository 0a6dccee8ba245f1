"""Ships (query scaling → KL): exact against a brute-force loop, and the planted heads dominate."""

from __future__ import annotations

import pytest
import torch

from circuits.discovery import METHODS, Ships, build_method, ships_kl
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.groundtruth import induction_model
from circuits.interventions import ScaleQuery, intervene
from circuits.model import hook_pattern, run_to_logits, run_with_cache
from tests.helpers.data import random_dataset

KL_TOL = 1e-10
"""Float64 agreement between the stacked-resume implementation and one plain forward per head."""

ZERO_KL = 1e-12
"""Distractors write only to JUNK: their KL is zero up to float64 rounding."""


def test_uniform_attention_at_zero_factor(tiny_model) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(dtype=torch.float64)
    tokens = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(1))
    with intervene(model, ScaleQuery(1, 2, 0.0)):
        _, cache = run_with_cache(model, tokens, [hook_pattern(1)])
    pattern = cache[hook_pattern(1)][:, 2]  # (batch, q, k)
    expected = torch.tril(torch.ones(7, 7, dtype=torch.float64)) / torch.arange(1, 8, dtype=torch.float64)[:, None]
    assert torch.allclose(pattern, expected.expand_as(pattern), atol=1e-12)
    with pytest.raises(HeadgraphError, match="non-negative"):
        ScaleQuery(0, 0, -1.0)


@pytest.mark.parametrize("eps", [0.0, 1e-4, 0.5])
def test_ships_matches_one_forward_per_head(tiny_model, eps: float) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(dtype=torch.float64, positional_embedding_type="rotary", n_ctx=16)
    data = random_dataset(5, 7, lengths=[7, 5, 6, 7, 4])
    got = Ships(eps=eps, batch_size=2, max_rows=6).per_prompt(model, data)
    with torch.no_grad():
        p0 = run_to_logits(model, data.clean, data.answer_pos)
        for layer in range(3):
            for head in range(4):
                with intervene(model, ScaleQuery(layer, head, eps)):
                    p = run_to_logits(model, data.clean, data.answer_pos)
                assert torch.allclose(got[:, layer, head], ships_kl(p0, p), atol=KL_TOL, rtol=0)
    assert bool((got > 0).all())


def test_planted_circuit_heads_dominate_and_distractors_are_zero() -> None:
    planted = induction_model()
    data = planted.task.dataset(16, seed=0)
    scores = Ships()(planted.model, data, planted.task.metric, progress=False)
    kl = -scores.head_matrix(normalized=False)
    for node in planted.distractors:
        assert abs(float(kl[node.layer, node.head])) < ZERO_KL, node
    circuit = {planted.roles["induction"], planted.roles["previous-token"]}
    top = {node for node, _ in scores.ranked()[:2]}
    assert top == circuit and all(float(kl[n.layer, n.head]) > 1.0 for n in circuit)


def test_registered_with_settings() -> None:
    assert METHODS["ships"] is Ships
    assert build_method("ships", {"eps": "1e-5"}) == Ships(eps=1e-5)
    with pytest.raises(HeadgraphError, match="eps"):
        Ships(eps=1.5)
    assert Node.of_head(0, 1) != Node.of_head(1, 0)


def test_rank_agreement_is_one_for_a_method_with_itself_and_spearman_handles_ties() -> None:
    from circuits.measures.rank_agreement import rank_agreement, spearman

    planted = induction_model()
    data = planted.task.dataset(8, seed=1)
    s = Ships()(planted.model, data, planted.task.metric, progress=False)
    agree = rank_agreement(s, s)
    assert agree.spearman == pytest.approx(1.0) and set(agree.top_overlap.values()) == {1.0}
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, torch.zeros(4)) != spearman(a, torch.zeros(4))  # NaN: a constant ranking


def test_sahara_greedy_choice_matches_brute_force_and_silent_heads_do_not_shift(tiny_model) -> None:  # type: ignore[no-untyped-def]
    from circuits.discovery.sahara import representations, sahara, subspace_angle

    model = tiny_model(dtype=torch.float64)
    with torch.no_grad():
        model.blocks[1].attn.W_O[3].zero_()  # L1H3 writes nothing: ablating it cannot move anything
    data = random_dataset(6, 7, seed=4)
    result = sahara(model, data, steps=2)
    first = result.candidates[0]
    assert float(first[1, 3]) == 0.0
    assert result.heads[0] == Node.of_head(*divmod(int(first.nan_to_num(-1).flatten().argmax()), 4))
    base = representations(model, data, [])
    again = subspace_angle(base, representations(model, data, list(result.heads)))
    assert result.shifts[1] == pytest.approx(again, abs=1e-9)
    assert torch.isnan(result.candidates[1][result.heads[0].layer, result.heads[0].head])
    with pytest.raises(HeadgraphError, match="steps"):
        sahara(model, data, steps=0)
