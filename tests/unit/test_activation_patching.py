"""Activation patching equals brute force: TransformerLens's helper and a hook-per-head loop."""

from __future__ import annotations

import re

import pytest
import torch
from transformer_lens.patching import get_act_patch_attn_head_out_all_pos

from circuits.discovery import Ablation, ActivationPatching, Components, PatchPositions
from circuits.errors import HeadgraphError
from tasks import LogitDiff
from tests.helpers.checks import revalidate
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory
from tests.helpers.oracles import ATOL, answer_metric, assert_matches

METRIC = LogitDiff()


@pytest.mark.parametrize("kv_heads", [None, 2, 1])
def test_equals_transformer_lens_helper(tiny_model: TinyFactory, kv_heads: int | None) -> None:
    """Noising all positions of hook_z equals TL's helper run on clean tokens with the corrupt cache,
    for multi-head and grouped-query attention (per query head)."""
    model = tiny_model(n_key_value_heads=kv_heads, positional_embedding_type="rotary" if kv_heads else "standard")
    data = random_dataset(n=6, length=7, diff_from=2)
    scores = ActivationPatching(batch_size=4, max_rows=8)(model, data, METRIC, progress=False)
    _, corrupt_cache = model.run_with_cache(data.corrupt)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return answer_metric(logits, data).mean()

    with torch.no_grad():
        reference = get_act_patch_attn_head_out_all_pos(model, data.clean, corrupt_cache, metric)
        clean = metric(model(data.clean))
    torch.testing.assert_close(scores.head_matrix(normalized=False), (reference - clean).float(), atol=ATOL, rtol=0)
    assert scores.baseline.clean == pytest.approx(float(clean), abs=ATOL)


@pytest.mark.parametrize("positions", list(PatchPositions))
@pytest.mark.parametrize("ablation", list(Ablation))
def test_every_variant_equals_brute_force(
    tiny_model: TinyFactory, positions: PatchPositions, ablation: Ablation
) -> None:
    model = tiny_model(n_key_value_heads=2, positional_embedding_type="rotary")
    data = random_dataset(n=5, length=8, lengths=[8, 6, 7, 8, 5], diff_from=3)
    method = ActivationPatching(
        positions=positions, ablation=ablation, components=Components.HEADS_AND_MLPS, batch_size=2
    )
    assert_matches(model, data, method)


def test_attention_only_shortformer_model(tiny_model: TinyFactory) -> None:
    """attn-only-4l style models add positions inside attention (shortformer): resumed runs must too."""
    model = tiny_model(attn_only=True, positional_embedding_type="shortformer")
    data = random_dataset(n=4, length=7, diff_from=3)
    assert_matches(model, data, ActivationPatching(batch_size=3))
    scores = ActivationPatching(components=Components.HEADS_AND_MLPS)(model, data, METRIC, progress=False)
    assert not scores.graph.has_mlps
    assert all(n.kind.value != "mlp" for n in scores.graph.nodes)


def test_unscored_nodes_are_nan_and_batching_does_not_change_scores(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=7, length=6, lengths=[6, 5, 6, 4, 6, 5, 6], diff_from=1)
    a = ActivationPatching(batch_size=7)(model, data, METRIC, progress=False)
    b = ActivationPatching(batch_size=2, max_rows=3)(model, data, METRIC, progress=False)
    torch.testing.assert_close(a.values, b.values, atol=ATOL, rtol=0, equal_nan=True)
    heads = {a.graph.node_index(n) for n in a.graph.heads}
    for i, node in enumerate(a.graph.nodes):
        assert bool(torch.isnan(a.values[i])) == (i not in heads), node


def test_identical_prompts_give_zero_effect(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=3, length=5, diff_from=5)  # corrupt == clean
    scores = ActivationPatching()(model, data, METRIC, progress=False)
    assert scores.head_matrix(normalized=False).abs().max() < 1e-6


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"max_rows": -1}, "max_rows must be a positive integer, got -1"),
        ({"ablation": "mean"}, "ablation must be a Ablation, got 'mean'"),
        ({"positions": "all"}, "positions must be a PatchPositions, got 'all'"),
    ],
)
def test_bad_settings_raise(bad: dict[str, object], message: str) -> None:
    with pytest.raises(HeadgraphError, match=re.escape(message)):  # the hand-written check, not the type checker
        revalidate(ActivationPatching(), **bad)
