"""The circuit-regression plugin on planted models: it passes on a re-run and names an altered head."""

from __future__ import annotations

import pytest
import torch

from circuits.discovery import ActivationPatching
from circuits.errors import HeadgraphError
from circuits.graph import ComponentGraph, Node
from circuits.groundtruth import Planted, induction_model, ioi_model
from circuits.measures.regression import (
    CircuitRegression,
    CircuitRegressionError,
    assert_circuit_matches,
    diff_circuits,
)
from circuits.model import attention_weights
from circuits.scores import Baseline, Level, Scores

N_PAIRS = 12


def _scores(planted: Planted, seed: int) -> Scores:
    data = planted.task.dataset(N_PAIRS, seed=seed)
    return ActivationPatching()(planted.model, data, planted.task.metric, progress=False)


def test_plugin_is_installed_and_gives_the_fixture(
    pytestconfig: pytest.Config, circuit_regression: CircuitRegression
) -> None:
    assert pytestconfig.pluginmanager.hasplugin("headgraph")
    assert isinstance(circuit_regression, CircuitRegression)


@pytest.mark.parametrize("make", [induction_model, ioi_model], ids=["induction", "ioi"])
def test_planted_circuit_is_stable_across_prompt_seeds(circuit_regression: CircuitRegression, make: object) -> None:
    planted = make()  # type: ignore[operator]
    k = len(planted.circuit_heads)
    diff = circuit_regression.assert_matches(_scores(planted, 1), _scores(planted, 0), top_k=k, min_jaccard=1.0)
    assert diff.jaccard == 1.0 and not diff.lost and not diff.gained


@pytest.mark.parametrize(
    ("scale", "row"),
    [
        # a quarter of S2's flag is too weak for the S-inhibition head (BOS wins): the duplicate-token
        # and S-inhibition heads keep tiny effects (attention leaks), so they stay in the top 3 above
        # the exactly-inert distractors, but their scores collapse
        (0.25, "moved"),
        (0.0, "lost"),  # silenced: their scores are zero, they leave the top 3
    ],
)
def test_a_scaled_circuit_head_fails_with_a_diff_naming_it(
    circuit_regression: CircuitRegression, scale: float, row: str
) -> None:
    golden = _scores(ioi_model(), 0)
    altered = ioi_model()
    dup = altered.roles["duplicate-token"]
    with torch.no_grad():
        attention_weights(altered.model, dup.layer).W_O[dup.head] *= scale
    with pytest.raises(CircuitRegressionError) as err:
        circuit_regression.assert_matches(_scores(altered, 0), golden, top_k=3, min_jaccard=0.8, max_score_change=0.1)
    message = str(err.value)
    assert message.startswith("circuit regression: ")
    named = [line for line in message.splitlines() if line.strip().startswith(row)]
    assert any(f" {dup} " in line for line in named), message
    assert any(f" {altered.roles['s-inhibition']} " in line for line in named), message
    assert not any(f" {altered.roles['name-mover']} " in line for line in named if "lost" in line)


def test_a_score_change_at_the_same_rank_is_listed() -> None:
    g = ComponentGraph(2, 3)
    golden = _manual(g, {"L0H0": -2.0, "L0H1": -1.0})
    found = _manual(g, {"L0H0": -2.0, "L0H1": -0.5})
    assert assert_circuit_matches(found, golden, top_k=2).jaccard == 1.0
    with pytest.raises(CircuitRegressionError, match=r"(?s)moved 0.2500 > 0.1000.*changed L0H1 +rank #2 → #2"):
        assert_circuit_matches(found, golden, top_k=2, max_score_change=0.1)


def _manual(graph: ComponentGraph, values: dict[str, float]) -> Scores:
    v = torch.zeros(len(graph.nodes))
    for name, x in values.items():
        v[graph.node_index(Node.parse(name))] = x
    return Scores(graph, Level.NODE, v, "m", Baseline("logit-diff", 2.0, 0.0))


def test_diff_lists_lost_gained_and_moved_heads_with_ranks_and_scores() -> None:
    g = ComponentGraph(2, 3)
    golden = _manual(g, {"L0H0": -2.0, "L0H1": -1.0, "L1H0": -0.5, "L1H2": -0.1})
    found = _manual(g, {"L0H1": -2.0, "L0H0": -1.0, "L1H1": -0.8, "L1H2": -0.1})
    diff = diff_circuits(found, golden, top_k=3)
    assert [str(c.node) for c in diff.lost] == ["L1H0"]
    assert [str(c.node) for c in diff.gained] == ["L1H1"]
    assert diff.jaccard == 0.5
    text = diff.format()
    assert "lost    L1H0     golden    #3 -0.2500  →  found   zero +0.0000" in text
    assert "gained  L1H1     found     #3 -0.4000  ←  golden  zero +0.0000" in text
    assert "moved   L0H0     rank #1 → #2, score -1.0000 → -0.5000" in text
    assert diff.max_score_change == 0.5


def test_bad_comparisons_raise() -> None:
    a, b = _manual(ComponentGraph(2, 3), {}), _manual(ComponentGraph(3, 3), {})
    with pytest.raises(HeadgraphError, match="cannot compare circuits of a 2×3 and a 3×3 model"):
        diff_circuits(a, b)
    with pytest.raises(HeadgraphError):
        assert_circuit_matches(a, a, min_jaccard=1.5)
    with pytest.raises(HeadgraphError):
        diff_circuits(a, a, top_k=0)
    with pytest.raises(HeadgraphError, match="cannot compare a str"):
        diff_circuits("circuit.json", a)


def test_edge_scores_are_compared_through_their_heads() -> None:
    """Two edge-level results: heads rank by their outgoing edges' summed scores (was: an empty diff)."""
    g = ComponentGraph(2, 2)
    a_vals = torch.zeros(len(g.edges))
    b_vals = torch.zeros(len(g.edges))
    for i, e in enumerate(g.edges):
        if e.src == Node.of_head(0, 1):
            a_vals[i] = -1.0
        if e.src == Node.of_head(1, 0):
            b_vals[i] = -1.0
    a = Scores(g, Level.EDGE, a_vals, "eap", Baseline("logit-diff", 2.0, 0.0))
    b = Scores(g, Level.EDGE, b_vals, "eap", Baseline("logit-diff", 2.0, 0.0))
    diff = diff_circuits(a, b, top_k=1)
    assert [c.node for c in diff.lost] == [Node.of_head(1, 0)] and [c.node for c in diff.gained] == [Node.of_head(0, 1)]
    assert diff.jaccard == 0.0
    assert diff_circuits(a, a, top_k=1).jaccard == 1.0 and diff_circuits(a, a, top_k=1).kept[0].node == Node.of_head(
        0, 1
    )
