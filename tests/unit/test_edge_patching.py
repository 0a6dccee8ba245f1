"""Exact edge patching and the edge-ablation engine against plain TransformerLens hooks."""

from __future__ import annotations

import re

import pytest
import torch

from circuits.discovery import Ablation, ActivationPatching, EdgePatching
from circuits.engine.edge_ablation import ablated_logits, prepare_batch
from circuits.engine.edges import ActivePositions, EdgeLayout
from circuits.errors import HeadgraphError
from circuits.graph import ComponentGraph, Node, NodeKind
from circuits.model import run_to_logits
from tasks import LogitDiff
from tests.helpers.checks import unchecked
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory
from tests.helpers.oracles import BruteForceEdges

METRIC = LogitDiff()
ATOL = 1e-5
SAMPLE_EVERY = 3
"""Brute force checks every third edge (one full forward each)."""
MODELS = {
    "mha-ln": {},
    "gqa-rms-rotary": {"n_key_value_heads": 2, "positional_embedding_type": "rotary", "normalization_type": "RMS"},
    "attn-only-shortformer": {"attn_only": True, "positional_embedding_type": "shortformer"},
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_edge_equals_brute_force(tiny_model: TinyFactory, name: str) -> None:
    model = tiny_model(**MODELS[name])
    data = random_dataset(n=4, length=6, lengths=[6, 5, 6, 4], diff_from=2)
    scores = EdgePatching(max_rows=64)(model, data, METRIC, progress=False)
    brute_force = BruteForceEdges(model, data, METRIC)
    values = scores.values.tolist()
    for i in range(0, len(values), SAMPLE_EVERY):  # every kind of sender, receiver and input is sampled
        edge = scores.graph.edges[i]
        assert values[i] == pytest.approx(brute_force(edge), abs=ATOL), str(edge)


@pytest.mark.parametrize("name", list(MODELS))
def test_ablating_no_edge_is_clean_and_every_edge_is_corrupt(tiny_model: TinyFactory, name: str) -> None:
    model = tiny_model(**MODELS[name])
    data = random_dataset(n=5, length=7, lengths=[7, 6, 7, 5, 7], diff_from=3)
    layout = EdgeLayout(ComponentGraph(model.cfg.n_layers, model.cfg.n_heads, has_mlps=not model.cfg.attn_only))
    n = len(layout.graph.edges)
    logits = ablated_logits(
        model,
        layout,
        prepare_batch(model, data, Ablation.RESAMPLE),
        torch.stack([torch.zeros(n), torch.ones(n)]).bool(),
    )
    with torch.no_grad():
        clean = run_to_logits(model, data.clean, data.answer_pos)
        corrupt = run_to_logits(model, data.corrupt, data.answer_pos)
    torch.testing.assert_close(logits[0], clean, atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[1], corrupt, atol=ATOL, rtol=0)


@pytest.mark.parametrize("ablation", list(Ablation))
def test_ablating_all_edges_out_of_a_head_is_activation_patching(tiny_model: TinyFactory, ablation: Ablation) -> None:
    """A head whose every outgoing edge is ablated is a head whose output is ablated."""
    model = tiny_model(n_key_value_heads=2, positional_embedding_type="rotary")
    data = random_dataset(n=4, length=6, lengths=[6, 5, 6, 6], diff_from=2)
    nodes = ActivationPatching(ablation=ablation)(model, data, METRIC, progress=False)
    graph = nodes.graph
    layout = EdgeLayout(graph)
    heads = list(graph.heads)
    ablate = torch.tensor([[e.src == h for e in graph.edges] for h in heads])
    from circuits.engine.edges import mean_sender_acts

    means = mean_sender_acts(model, data, 32) if ablation is Ablation.MEAN else None
    logits = ablated_logits(model, layout, prepare_batch(model, data, ablation, means), ablate)
    with torch.no_grad():
        m_clean = METRIC(run_to_logits(model, data.clean, data.answer_pos), data.targets)
    effect = METRIC(logits.flatten(0, 1), data.targets.repeat(len(heads))).view(len(heads), -1) - m_clean
    expected = torch.stack([nodes.values[graph.node_index(h)] for h in heads])
    torch.testing.assert_close(effect.mean(1), expected, atol=ATOL, rtol=0)


def test_active_positions_skip_the_shared_prefix_and_the_padding() -> None:
    data = random_dataset(n=3, length=6, lengths=[6, 4, 5], diff_from=3)
    pos = ActivePositions.of(data, from_first_difference=True)
    assert set(zip(pos.rows.tolist(), pos.cols.tolist(), strict=True)) == {
        (0, 3),
        (0, 4),
        (0, 5),
        (1, 3),
        (2, 3),
        (2, 4),
    }
    every = ActivePositions.of(data, from_first_difference=False)
    assert len(every) == 6 + 4 + 5


def test_unsupported_models_are_refused(tiny_model: TinyFactory) -> None:
    model = tiny_model(parallel_attn_mlp=True)
    with pytest.raises(HeadgraphError, match="Node-level methods"):
        EdgePatching()(model, random_dataset(n=2), METRIC, progress=False)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"max_rows": 0}, "max_rows must be a positive integer, got 0"),
        ({"ablation": "zero"}, "ablation must be an Ablation, got 'zero'"),
    ],
)
def test_bad_settings_raise(bad: dict[str, object], message: str) -> None:
    with pytest.raises(HeadgraphError, match=re.escape(message)), unchecked():  # the hand-written check
        EdgePatching(**bad)  # type: ignore[arg-type]


def test_edges_into_logits_cover_every_sender() -> None:
    graph = ComponentGraph(2, 3)
    into_logits = [e for e in graph.edges if e.dst.kind is NodeKind.LOGITS]
    assert [e.src for e in into_logits] == list(graph.senders())
    assert Node(NodeKind.INPUT, -1) in {e.src for e in into_logits}
