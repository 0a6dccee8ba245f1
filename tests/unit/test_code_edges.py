"""Edges from codes weighted by effect (circuits/discovery/code_edges.py) on planted IOI models:
the causal chain's edges are kept, co-occurrences without effect are dropped."""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch

from circuits.discovery.code_edges import CodeEdges, CodeEdgeSettings, code_edges, edge_agreement, pair_scores
from circuits.discovery.code_patching import CodePatchingSettings
from circuits.errors import HeadgraphError
from circuits.graph import QKV, NodeKind
from circuits.groundtruth.planted import Planted
from circuits.groundtruth.planted_ioi import IOIConfig, ioi_model
from circuits.model import graph_of
from circuits.scores import Baseline, Level, Scores
from tests.helpers.checks import unchecked

PAIRS = 64


@cache
def _run(seed: int) -> tuple[Planted, CodeEdges]:
    torch.manual_seed(seed)
    planted = ioi_model(IOIConfig(seed=seed))
    data = planted.task.dataset(PAIRS, seed=seed)
    heads = list(graph_of(planted.model).heads)
    settings = CodeEdgeSettings(patching=CodePatchingSettings(seed=seed))
    return planted, code_edges(settings, planted.model, data, heads)


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_chain_gives_code_edges(seed: int) -> None:
    planted, result = _run(seed)
    dup, inh, mover = (planted.roles[r] for r in ("duplicate-token", "s-inhibition", "name-mover"))
    for sender, receiver in ((inh, mover), (dup, inh)):
        edge = result[sender, receiver]
        assert edge.kept, edge
        assert edge.effect >= 0.9, edge  # the sender's code decides the receiver's code
        assert edge.cooccurrence > 0, edge
        assert edge.weight == edge.effect
    assert result.edges[0].effect == max(p.effect for p in result.pairs)
    assert all(p.sender.layer < p.receiver.layer for p in result.pairs)


@pytest.mark.parametrize("seed", [0, 1])
def test_cooccurrence_without_effect_is_dropped(seed: int) -> None:
    planted, result = _run(seed)
    circuit = set(planted.roles.values())
    # distractors write only into a subspace no head reads: code patching them changes nothing downstream
    from_distractors = [p for p in result.pairs if p.sender not in circuit]
    assert from_distractors
    for p in from_distractors:
        assert p.effect == 0.0 and not p.kept and p.weight == 0.0, p
    assert any(p.cooccurrence > 0.05 for p in from_distractors), "no co-occurrence to drop: the test says nothing"


def test_edge_agreement_ranks_pairs_against_edge_scores() -> None:
    planted, result = _run(0)
    graph = graph_of(planted.model)
    weight = {(p.sender, p.receiver): p.weight for p in result.pairs}
    values = torch.full((len(graph.edges),), math.nan)
    for i, e in enumerate(graph.edges):
        if e.src.kind is NodeKind.HEAD and e.dst.kind is NodeKind.HEAD and e.qkv is QKV.Q:
            values[i] = -weight.get((e.src, e.dst), 0.0)  # sign is ignored: |score|
    same = Scores(graph, Level.EDGE, values, "copy", Baseline("m", 1.0, 0.0, 1.0, 0.0))
    agreement = edge_agreement(result, same, ks=(3,))
    assert agreement.spearman == pytest.approx(1.0)
    assert agreement.n_pairs == len(result.pairs)
    assert agreement.n_kept == len(result.edges)
    top = max(weight.values())
    reversed_ = Scores(graph, Level.EDGE, top + 1 - values.abs(), "rev", same.baseline)  # NaN stays NaN
    assert edge_agreement(result, reversed_).spearman == pytest.approx(-1.0)
    pairs = [(p.sender, p.receiver) for p in result.pairs]
    assert torch.allclose(pair_scores(same, pairs), torch.tensor([weight[k] for k in pairs], dtype=torch.float64))


def test_edge_agreement_needs_edge_scores() -> None:
    planted, result = _run(0)
    graph = graph_of(planted.model)
    nodes = Scores(graph, Level.NODE, torch.zeros(len(graph.nodes)), "n", Baseline("m", 1.0, 0.0, 1.0, 0.0))
    with pytest.raises(HeadgraphError, match="edge scores"):
        edge_agreement(result, nodes)


@pytest.mark.parametrize("bad", [{"min_effect": 1.5}, {"min_effect": -0.1}, {"min_cooccurrence": 1.0}])
def test_settings_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(HeadgraphError):
        CodeEdgeSettings(**bad)  # type: ignore[arg-type]


def test_settings_need_patching_settings() -> None:
    with pytest.raises(HeadgraphError, match="patching must be a CodePatchingSettings, got 'x'"), unchecked():
        CodeEdgeSettings(patching="x")  # type: ignore[arg-type]
