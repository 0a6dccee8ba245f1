"""ComponentGraph, Scores, Circuit, metrics, and the head-graph JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from circuits.errors import CircuitFileError, HeadgraphError
from circuits.graph import QKV, ComponentGraph, Edge, Node, NodeKind
from circuits.headgraph import SCHEMA, HeadGraph, TaskRun
from circuits.model import ModelInfo
from circuits.scores import Baseline, Level, Scores
from tasks import Accuracy, CandidateAccuracy, LogitDiff, ProbDiff, Targets


def test_graph_nodes_and_edge_count() -> None:
    g = ComponentGraph(n_layers=2, n_heads=3)
    assert [str(n) for n in g.nodes] == [
        "input",
        "L0H0",
        "L0H1",
        "L0H2",
        "MLP0",
        "L1H0",
        "L1H1",
        "L1H2",
        "MLP1",
        "logits",
    ]
    # heads of layer l read input + 4 components per lower layer, three times (q, k, v);
    # the MLP of layer l also reads its own layer's heads; logits read all 9 senders.
    expected = 3 * 3 * 1 + 3 * 3 * 5 + (1 + 3) + (1 + 4 + 3) + 9
    assert len(g.edges) == expected
    assert Edge(Node.of_head(0, 1), Node.of_head(1, 2), QKV.K) in g.edges
    assert Edge(Node.of_head(1, 0), Node.of_head(1, 2), QKV.K) not in g.edges
    assert Edge(Node.of_head(1, 0), Node.of_mlp(1)) in g.edges
    assert len(ComponentGraph(2, 3, has_mlps=False, split_qkv=False).edges) == 3 * 1 + 3 * 4 + 7
    for e in g.edges[:50]:
        assert Edge.parse(str(e), 2) == e
    with pytest.raises(HeadgraphError, match="not a node name"):
        Node.parse("head 3")
    with pytest.raises(HeadgraphError):
        ComponentGraph(0, 3)


def _scores(values: list[float], graph: ComponentGraph | None = None) -> Scores:
    graph = graph or ComponentGraph(2, 2)
    full = torch.full((len(graph.nodes),), math.nan)
    for node, v in zip(graph.heads, values, strict=False):
        full[graph.node_index(node)] = v
    return Scores(graph, Level.NODE, full, "test", Baseline("logit-diff", 3.0, 1.0, 0.9, 0.1), {"a": 1}, 1.5)


def test_scores_rank_select_and_normalize() -> None:
    s = _scores([0.1, -1.0, 0.5, -0.2])
    assert [str(n) for n, _ in s.ranked()] == ["L0H1", "L1H0", "L1H1", "L0H0"]
    assert s.top_k(2).heads() == [Node.of_head(0, 1), Node.of_head(1, 0)]
    assert s.threshold(0.2).heads() == [Node.of_head(0, 1), Node.of_head(1, 0)]  # |v|/2 >= 0.2
    torch.testing.assert_close(s.head_matrix(), torch.tensor([[0.05, -0.5], [0.25, -0.1]]))
    assert s.top_k(100).nodes == frozenset(s.graph.heads)
    with pytest.raises(HeadgraphError):
        Scores(s.graph, Level.EDGE, s.values, "x", s.baseline)


def test_metrics_per_example() -> None:
    logits = torch.tensor([[1.0, 3.0, 0.0, 2.0], [0.0, 0.0, 5.0, 1.0]])
    t = Targets(torch.tensor([[1, -1], [0, 3]]), torch.tensor([[3], [2]]), torch.tensor([[1, 3], [0, 2]]))
    torch.testing.assert_close(LogitDiff()(logits, t), torch.tensor([1.0, -4.5]))
    torch.testing.assert_close(Accuracy()(logits, t), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(CandidateAccuracy()(logits, t), torch.tensor([1.0, 0.0]))
    p = logits.softmax(-1)
    torch.testing.assert_close(ProbDiff()(logits, t), torch.stack([p[0, 1] - p[0, 3], p[1, 0] + p[1, 3] - p[1, 2]]))
    with pytest.raises(ValueError, match="at least one answer"):
        Targets(torch.tensor([[-1]]), torch.tensor([[0]]), torch.tensor([[0]]))


def _headgraph() -> HeadGraph:
    s = _scores([0.1, -1.0, 0.5, math.nan])
    info = ModelInfo("tiny", 2, 2, 1, 8, 4, 10, False, "abc123")
    return HeadGraph(info, TaskRun("ioi", 3, 16, "tok", {"corruption": "abc"}, {"x": 1}), s, s.top_k(2))


def test_json_round_trip(tmp_path: Path) -> None:
    hg = _headgraph()
    path = hg.save(tmp_path / "sub" / "circuit.json")
    back = HeadGraph.load(path)
    assert back.to_dict() == hg.to_dict()
    torch.testing.assert_close(back.scores.values, hg.scores.values, equal_nan=True)
    assert back.circuit.nodes == hg.circuit.nodes
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA and data["schema_version"] == 1
    assert data["model"]["config_hash"] == "abc123"
    assert data["task"]["seed"] == 3 and data["task"]["n_pairs"] == 16
    assert data["scores"]["ids"] == ["L0H1", "L1H0", "L0H0"]  # NaN (L1H1) omitted


def test_edge_level_round_trip(tmp_path: Path) -> None:
    g = ComponentGraph(2, 2, has_mlps=False)
    values = torch.arange(len(g.edges), dtype=torch.float32)
    s = Scores(g, Level.EDGE, values, "eap", Baseline("logit-diff", 1.0, 0.0))
    hg = HeadGraph(ModelInfo("t", 2, 2, 2, 8, 4, 10, True, "h"), TaskRun("ioi", 0, 4), s, s.top_k(3))
    back = HeadGraph.load(hg.save(tmp_path / "c.json"))
    assert back.circuit.edges == hg.circuit.edges and len(back.circuit.edges) == 3
    assert NodeKind.LOGITS in {n.kind for n in back.circuit.nodes}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json {", "not JSON"),
        ('{"hello": 1}', "not a headgraph circuit file"),
        ("[1, 2]", "not a headgraph circuit file"),
        (json.dumps({"schema": SCHEMA, "schema_version": 99}), "schema version 99 is not supported"),
        (json.dumps({"schema": SCHEMA, "schema_version": 1, "graph": {}}), "malformed circuit file"),
    ],
)
def test_bad_files_raise_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(CircuitFileError, match=message) as err:
        HeadGraph.load(path)
    assert "\n" not in str(err.value)


def test_missing_file() -> None:
    with pytest.raises(CircuitFileError, match="no such file"):
        HeadGraph.load("/nonexistent/circuit.json")


def test_scores_of_ties_warn_and_the_warning_is_kept_in_the_file(tmp_path: Path) -> None:
    from circuits.commands.common import format_table
    from circuits.scores import UninformativeScoresWarning, flag_uninformative

    ties = _scores([0.0, 0.0, 0.0, math.nan])
    with pytest.warns(UninformativeScoresWarning, match="every scored value is 0"):
        flagged = flag_uninformative(ties, "", "the sparse autoencoder is dead")
    assert flagged.warnings == (
        "every scored value is 0 (3 scored): a ranking of ties",
        "the sparse autoencoder is dead",
    )
    hg = HeadGraph(ModelInfo("t", 2, 2, 1, 8, 4, 10, False, "h"), TaskRun("ioi", 0, 4), flagged, flagged.top_k(2))
    back = HeadGraph.load(hg.save(tmp_path / "c.json"))
    assert back.scores.warnings == flagged.warnings
    assert "warning: the sparse autoencoder is dead" in format_table(back, 3)
    informative = _scores([0.1, -1.0, 0.5, math.nan])
    assert flag_uninformative(informative) is informative
