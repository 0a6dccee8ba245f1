"""Direct logit attribution per dataset: the model's logit diff, and the direct effect of last-layer heads."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from circuits.errors import HeadgraphError
from circuits.interventions import AblateHead, intervene
from circuits.logit_attribution import direct_logit_attribution
from circuits.model import run_to_logits
from tasks.metrics import LogitDiff
from tests.conftest import TinyFactory, random_dataset

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
