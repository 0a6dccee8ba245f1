"""Direct logit attribution per dataset: the model's logit diff, and the direct effect of last-layer heads."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from circuits.analysis.logit_attribution import direct_logit_attribution
from circuits.errors import HeadgraphError
from circuits.interventions import AblateHead, intervene
from circuits.model import head_direct_logits, head_direct_logits_by_key, run_to_logits
from tasks.metrics import LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

ATOL = 1e-4


@pytest.mark.parametrize("overrides", [{}, {"n_key_value_heads": 2, "positional_embedding_type": "rotary"}])
def test_logit_diff_is_the_models(tiny_model: TinyFactory, overrides: dict) -> None:
    model = tiny_model(**overrides)
    data = random_dataset(n=5, length=7, lengths=[7, 5, 6, 7, 4], diff_from=2)
    for corrupt in (False, True):
        dla = direct_logit_attribution(model, data, corrupt=corrupt, batch_size=2)
        tokens = data.corrupt if corrupt else data.clean
        expected = LogitDiff()(run_to_logits(model, tokens, data.answer_pos), data.targets)
        torch.testing.assert_close(dla.logit_diff, expected, atol=ATOL, rtol=0)
        assert dla.values.shape == (5, model.cfg.n_layers, model.cfg.n_heads)


def test_a_last_layer_head_without_final_norm_changes_the_logit_diff_by_exactly_its_dla(
    tiny_model: TinyFactory,
) -> None:
    model = tiny_model(normalization_type=None, attn_only=True)  # nothing reads the last heads but the logits
    data = random_dataset(n=4, length=6)
    dla = direct_logit_attribution(model, data)
    last = model.cfg.n_layers - 1
    intact = LogitDiff()(run_to_logits(model, data.clean, data.answer_pos), data.targets)
    for head in range(model.cfg.n_heads):
        with intervene(model, AblateHead(last, head)):
            ablated = LogitDiff()(run_to_logits(model, data.clean, data.answer_pos), data.targets)
        torch.testing.assert_close(intact - ablated, dla.values[:, last, head], atol=ATOL, rtol=0)


def test_several_answer_tokens_are_refused(tiny_model: TinyFactory) -> None:
    data = random_dataset(n=2)
    t = data.targets
    several = dataclasses.replace(data, targets=type(t)(torch.tensor([[1, 2], [3, -1]]), t.wrong, t.candidates))
    with pytest.raises(HeadgraphError, match="one answer and one wrong token"):
        direct_logit_attribution(tiny_model(), several)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"n_key_value_heads": 2, "positional_embedding_type": "rotary"},  # grouped-query: shared value heads
        {"normalization_type": None, "attn_only": True},
    ],
)
def test_split_by_key_adds_up_to_each_heads_dla(tiny_model: TinyFactory, overrides: dict) -> None:
    """Σ over key positions of a head's per-key direct terms is its DLA (the split is exact)."""
    model = tiny_model(**overrides)
    data = random_dataset(n=5, length=7, lengths=[7, 5, 6, 7, 4], diff_from=2)
    t = data.targets
    heads = [(layer, head) for layer in range(model.cfg.n_layers) for head in range(model.cfg.n_heads)]
    whole = head_direct_logits(model, data.clean, data.answer_pos, t.answers[:, 0], t.wrong[:, 0])
    split = head_direct_logits_by_key(model, data.clean, data.answer_pos, t.answers[:, 0], t.wrong[:, 0], heads)
    assert split.shape == (5, len(heads), data.clean.shape[1])
    expected = torch.stack([whole[:, layer, head] for layer, head in heads], 1)
    torch.testing.assert_close(split.sum(-1), expected, atol=ATOL, rtol=0)
    for b in range(len(data)):  # causal: nothing is read after the answer position
        assert bool((split[b, :, int(data.answer_pos[b]) + 1 :] == 0).all())


def test_split_by_key_adds_up_on_a_post_norm_model() -> None:
    """Gemma 3's post-attention norm, frozen at the run's scale, is on every key's term alike."""
    from tests.helpers.models import gemma3_like

    model = gemma3_like()
    data = random_dataset(n=4, length=7, diff_from=2)
    t = data.targets
    heads = [(0, 0), (1, model.cfg.n_heads - 1)]
    whole = head_direct_logits(model, data.clean, data.answer_pos, t.answers[:, 0], t.wrong[:, 0])
    split = head_direct_logits_by_key(model, data.clean, data.answer_pos, t.answers[:, 0], t.wrong[:, 0], heads)
    torch.testing.assert_close(split.sum(-1), torch.stack([whole[:, a, b] for a, b in heads], 1), atol=ATOL, rtol=0)
