"""Circuit selection: rankings, top-k, threshold, greedy growth from the logits, pruning."""

from __future__ import annotations

import math
import re

import pytest
import torch

from circuits.errors import HeadgraphError
from circuits.graph import QKV, ComponentGraph, Edge, Node, NodeKind
from circuits.scores import Baseline, Circuit, Level, Scores
from circuits.selection import Ranking, edge_mask, greedy, prune, prune_mask, ranked, threshold, top_k
from tests.helpers.checks import unchecked

GRAPH = ComponentGraph(3, 3)
INPUT, LOGITS = Node(NodeKind.INPUT, -1), Node(NodeKind.LOGITS, 3)


def _edge_scores(values: torch.Tensor) -> Scores:
    return Scores(GRAPH, Level.EDGE, values, "test", Baseline("logit-diff", 2.0, 0.0))


def _random_scores(seed: int) -> Scores:
    g = torch.Generator().manual_seed(seed)
    return _edge_scores(torch.randn(len(GRAPH.edges), generator=g) * torch.rand(len(GRAPH.edges), generator=g) ** 4)


def _assert_no_dangling(circuit: Circuit) -> None:
    """Every inner node has a kept edge in and a kept edge out; the input feeds, the logits read."""
    if not circuit.edges:
        return
    ins = {e.dst for e in circuit.edges}
    outs = {e.src for e in circuit.edges}
    for node in circuit.nodes:
        if node.kind is NodeKind.INPUT:
            assert node in outs
        elif node.kind is NodeKind.LOGITS:
            assert node in ins
        else:
            assert node in ins and node in outs, f"{node} dangles"
    assert INPUT in circuit.nodes and LOGITS in circuit.nodes


def test_rankings() -> None:
    s = _edge_scores(torch.zeros(len(GRAPH.edges)))
    vals = s.values
    vals[:4] = torch.tensor([0.5, -2.0, 1.0, math.nan])
    assert ranked(s)[:3] == [1, 2, 0]
    assert ranked(s, Ranking.SIGNED)[0] == 1 and ranked(s, Ranking.SIGNED)[-1] == 2
    assert 3 not in ranked(s)


def test_prune_removes_edges_off_every_input_to_logits_path() -> None:
    kept = [
        Edge(INPUT, Node.of_head(0, 0), QKV.Q),
        Edge(Node.of_head(0, 0), Node.of_head(1, 1), QKV.K),
        Edge(Node.of_head(1, 1), LOGITS),
    ]
    dangling = [
        Edge(Node.of_head(0, 2), Node.of_head(1, 0), QKV.V),  # nothing feeds L0H2
        Edge(Node.of_head(1, 0), LOGITS),  # so this one falls too
        Edge(INPUT, Node.of_head(2, 2), QKV.Q),  # L2H2 feeds nothing
    ]
    circuit = prune(Circuit.from_items(GRAPH, kept + dangling, {}))
    assert circuit.edges == frozenset(kept)
    assert circuit.nodes == {INPUT, Node.of_head(0, 0), Node.of_head(1, 1), LOGITS}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 30, 200])
def test_every_selection_leaves_no_dangling_node(seed: int, k: int) -> None:
    scores = _random_scores(seed)
    for circuit in (top_k(scores, k), top_k(scores, k, Ranking.SIGNED), greedy(scores, k)):
        _assert_no_dangling(circuit)
        assert len(circuit.edges) <= k
    _assert_no_dangling(threshold(scores, 0.05))


def test_greedy_prefers_connected_edges() -> None:
    values = torch.zeros(len(GRAPH.edges))
    far = Edge(INPUT, Node.of_head(0, 0), QKV.Q)  # the best edge, but nothing connects L0H0 to the logits yet
    values[GRAPH.edge_index(far)] = 10.0
    chain = [Edge(Node.of_head(0, 0), LOGITS)]
    values[GRAPH.edge_index(chain[0])] = 1.0
    values[GRAPH.edge_index(Edge(INPUT, LOGITS))] = 0.5
    circuit = greedy(_edge_scores(values), 2)
    assert circuit.edges == {chain[0], far}


def test_top_k_prunes_and_can_keep_fewer_edges() -> None:
    values = torch.zeros(len(GRAPH.edges))
    values[GRAPH.edge_index(Edge(Node.of_head(0, 1), Node.of_head(1, 0), QKV.Q))] = 3.0  # dangling alone
    values[GRAPH.edge_index(Edge(INPUT, LOGITS))] = 1.0
    circuit = top_k(_edge_scores(values), 2)
    assert circuit.edges == {Edge(INPUT, LOGITS)}
    assert len(top_k(_edge_scores(values), 2, pruned=False).edges) == 2


def test_threshold_uses_normalized_importance() -> None:
    values = torch.zeros(len(GRAPH.edges))
    values[GRAPH.edge_index(Edge(INPUT, LOGITS))] = -1.0  # normalized -0.5 (gap 2)
    values[GRAPH.edge_index(Edge(Node.of_mlp(0), LOGITS))] = 0.1
    scores = _edge_scores(values)
    assert threshold(scores, 0.4).edges == {Edge(INPUT, LOGITS)}
    assert threshold(scores, 0.6).edges == frozenset()


def test_node_circuits_keep_edges_between_their_nodes() -> None:
    heads = frozenset({Node.of_head(0, 0), Node.of_head(2, 1)})
    mask = edge_mask(Circuit(GRAPH, heads), Level.NODE, always=frozenset({Node.of_mlp(1)}))
    kept = {GRAPH.edges[i] for i in mask.nonzero().flatten().tolist()}
    allowed = heads | {INPUT, LOGITS, Node.of_mlp(1)}
    assert kept == {e for e in GRAPH.edges if e.src in allowed and e.dst in allowed}
    assert not edge_mask(Circuit(GRAPH, frozenset()), Level.EDGE).any()
    assert prune_mask(GRAPH, torch.ones(len(GRAPH.edges), dtype=torch.bool)).all()


@pytest.mark.parametrize("k", [-1, 1.5, True])
def test_bad_k_raises(k: object) -> None:
    message = re.escape(f"k must be a non-negative integer, got {k!r}")
    with pytest.raises(HeadgraphError, match=message), unchecked():  # the hand-written check, not the type checker
        top_k(_random_scores(0), k)  # type: ignore[arg-type]
    with pytest.raises(HeadgraphError, match=message), unchecked():
        greedy(_random_scores(0), k)  # type: ignore[arg-type]


def test_greedy_needs_edge_scores() -> None:
    nodes = Scores(GRAPH, Level.NODE, torch.zeros(len(GRAPH.nodes)), "test", Baseline("m", 1.0, 0.0))
    with pytest.raises(HeadgraphError, match="edge scores"):
        greedy(nodes, 3)
