"""Direct logit attribution: exact decomposition of the logit difference, and the direct effect of last-layer heads."""

from __future__ import annotations

import pytest
import torch

from circuits.interventions import AblateHead, intervene
from circuits.logit_attribution import direct_logit_attribution, logit_diff_directions
from circuits.model import (
    embedding_weights,
    final_norm_frozen,
    head_weights,
    hook_final_scale,
    hook_z,
    run_to_logits,
    run_with_cache,
    with_hooks,
)
from tasks.metrics import LogitDiff
from tests.conftest import TinyFactory, random_dataset

ATOL = 1e-4

CONFIGS = {
    "ln": {},
    "rms": {"normalization_type": "RMS"},
    "gqa-rms-rotary": {"n_key_value_heads": 2, "positional_embedding_type": "rotary", "normalization_type": "RMS"},
    "no-norm": {"normalization_type": None},
}


@pytest.mark.parametrize("overrides", CONFIGS.values(), ids=list(CONFIGS))
def test_heads_and_the_rest_of_the_stream_add_up_to_the_logit_diff(tiny_model: TinyFactory, overrides: dict) -> None:
    model = tiny_model(**overrides)
    data = random_dataset(n=5, length=7, lengths=[7, 5, 6, 7, 4])
    dla = direct_logit_attribution(model, data, batch_size=2)
    rows, pos = torch.arange(len(data)), data.answer_pos
    resid, cache = run_with_cache(model, data.clean, [hook_z(layer) for layer in range(model.cfg.n_layers)])
    final = resid[rows, pos]  # (b, d_model)
    heads = sum(
        torch.einsum("bhe,hed->bd", cache[hook_z(layer)][rows, pos], head_weights(model, layer).W_O)
        for layer in range(model.cfg.n_layers)
    )
    scales: list[torch.Tensor] = []
    if model.cfg.normalization_type is not None:
        with with_hooks(model, [(hook_final_scale(), scales.append)]):
            model.ln_final(final[:, None])
    scale = scales[0][:, 0] if scales else None  # (b, 1)
    direction = logit_diff_directions(model, data.targets)
    rest = (final_norm_frozen(model, final - heads, scale) * direction).sum(-1)
    a, w = data.targets.answers[:, 0], data.targets.wrong[:, 0]
    bias = embedding_weights(model).b_U[a] - embedding_weights(model).b_U[w]
    if model.cfg.normalization_type == "LN":
        bias = bias + (model.ln_final.b * direction).sum(-1)
    expected = LogitDiff()(run_to_logits(model, data.clean, pos), data.targets)
    torch.testing.assert_close(dla.logit_diff, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(dla.values.sum((1, 2)) + rest + bias, expected, atol=ATOL, rtol=0)


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


def test_corrupt_prompts_use_the_clean_direction(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=3, length=6, diff_from=2)
    on_corrupt = direct_logit_attribution(model, data, corrupt=True)
    expected = LogitDiff()(run_to_logits(model, data.corrupt, data.answer_pos), data.targets)
    torch.testing.assert_close(on_corrupt.logit_diff, expected, atol=ATOL, rtol=0)
    assert not torch.allclose(on_corrupt.values, direct_logit_attribution(model, data).values)


def test_padded_answers_average_like_logit_diff(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=2)
    targets = type(data.targets)(
        torch.tensor([[1, 2], [3, -1]]), torch.tensor([[4, -1], [5, 6]]), torch.tensor([[1, 4], [3, 5]])
    )
    w_u = embedding_weights(model).W_U
    got = logit_diff_directions(model, targets)
    torch.testing.assert_close(got[0], (w_u[:, 1] + w_u[:, 2]) / 2 - w_u[:, 4])
    torch.testing.assert_close(got[1], w_u[:, 3] - (w_u[:, 5] + w_u[:, 6]) / 2)
