"""Position-aware edge scores: the labels partition the positions, so they sum to the position-blind scores."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from circuits.discovery import EAP, EAPIG, RelP
from circuits.discovery.positions import END, OTHER, position_edge_scores, position_labels, top_position_edges
from circuits.errors import HeadgraphError
from tasks import LogitDiff, PromptPairDataset
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

METRIC = LogitDiff()


def _named(data: PromptPairDataset, **positions: list[int]) -> PromptPairDataset:
    return dataclasses.replace(data, positions={k: torch.tensor(v) for k, v in positions.items()})


def test_labels_mark_named_positions_the_answer_and_the_rest() -> None:
    data = _named(random_dataset(n=2, length=5, lengths=[5, 4]), S=[1, 2], IO=[0, 0])
    names, idx = position_labels(data)
    assert names == ("IO", "S", END, OTHER)
    assert idx.tolist() == [[0, 1, 3, 3, 2], [0, 3, 1, 2, 3]]


@pytest.mark.parametrize(
    ("method", "blind"),
    [("eap", EAP()), ("eap-ig", EAPIG(ig_steps=3)), ("relp", RelP())],
)
def test_labels_sum_to_the_position_blind_scores(tiny_model: TinyFactory, method: str, blind: object) -> None:
    model = tiny_model(n_key_value_heads=2, positional_embedding_type="rotary", normalization_type="RMS")
    data = _named(random_dataset(n=5, length=7, lengths=[7, 6, 7, 5, 7], diff_from=2), S=[3, 2, 4, 3, 2])
    split = position_edge_scores(model, data, METRIC, method=method, ig_steps=3, batch_size=2)
    whole = blind(model, data, METRIC, progress=False)  # type: ignore[operator]
    assert split.values.shape == (3, len(whole.graph.edges))
    torch.testing.assert_close(split.blind(), whole.values, atol=1e-5, rtol=1e-4)
    assert all((split.values[i].abs() > 0).any() for i in range(3)), "every label carries some score"


def test_positions_before_the_first_difference_score_nothing(tiny_model: TinyFactory) -> None:
    """A named position before the clean/corrupt difference is identical in both runs (causality)."""
    model = tiny_model()
    data = _named(random_dataset(n=4, length=7, diff_from=3), A=[1, 1, 2, 0])
    split = position_edge_scores(model, data, METRIC, method="eap")
    assert split.labels[0] == "A"
    assert float(split.values[0].abs().max()) == 0.0
    top = top_position_edges(split, 5)
    assert len(top) == 5 and all(label != "A" for _, label, _ in top)
    assert abs(top[0][2]) == pytest.approx(float(split.values.abs().max()))


def test_refusals(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    with pytest.raises(HeadgraphError, match="no named positions"):
        position_edge_scores(model, random_dataset(n=2), METRIC)
    with pytest.raises(HeadgraphError, match="eap, eap-ig or relp"):
        position_edge_scores(model, _named(random_dataset(n=2), S=[1, 1]), METRIC, method="edge-patching")
