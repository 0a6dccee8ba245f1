"""Node attribution patching: the gradient estimate of activation patching."""

from __future__ import annotations

import re

import pytest
import torch

from circuits.discovery import Ablation, ActivationPatching, AttributionPatching, Components
from circuits.errors import HeadgraphError
from tasks import LogitDiff
from tests.helpers.checks import revalidate
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory
from tests.helpers.oracles import spearman

METRIC = LogitDiff()
MIN_SPEARMAN = 0.9
"""Rank agreement with exact activation patching on a nearly linear (normalization-free) model."""


@pytest.mark.parametrize("kv_heads", [None, 2])
@pytest.mark.parametrize("ablation", list(Ablation))
def test_ranks_nodes_like_activation_patching(
    tiny_model: TinyFactory, kv_heads: int | None, ablation: Ablation
) -> None:
    model = tiny_model(normalization_type=None, n_key_value_heads=kv_heads, positional_embedding_type="rotary")
    data = random_dataset(n=8, length=7, lengths=[7, 6, 7, 7, 5, 7, 7, 6], diff_from=3)
    both = Components.HEADS_AND_MLPS
    approx = AttributionPatching(ablation=ablation, components=both)(model, data, METRIC, progress=False)
    exact = ActivationPatching(ablation=ablation, components=both)(model, data, METRIC, progress=False)
    scored = ~torch.isnan(exact.values)
    assert torch.equal(scored, ~torch.isnan(approx.values))
    assert spearman(approx.values[scored], exact.values[scored]) >= MIN_SPEARMAN
    top = exact.order()[:5]
    assert all(torch.sign(approx.values[i]) == torch.sign(exact.values[i]) for i in top)
    assert approx.baseline.clean == pytest.approx(exact.baseline.clean, abs=1e-5)
    assert 0 < approx.seconds < 600


def test_heads_only_by_default(tiny_model: TinyFactory) -> None:
    scores = AttributionPatching()(tiny_model(), random_dataset(n=3, diff_from=2), METRIC, progress=False)
    heads = {scores.graph.node_index(n) for n in scores.graph.heads}
    assert all(bool(torch.isnan(v)) == (i not in heads) for i, v in enumerate(scores.values))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"components": "heads"}, "components must be a Components, got 'heads'"),
        ({"ablation": "mean"}, "ablation must be a Ablation, got 'mean'"),
    ],
)
def test_bad_settings_raise(bad: dict[str, object], message: str) -> None:
    with pytest.raises(HeadgraphError, match=re.escape(message)):  # the hand-written check, not the type checker
        revalidate(AttributionPatching(), **bad)
