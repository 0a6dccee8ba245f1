"""A user's own ground truth in JSON or YAML: read, checked, and scored against with ``--truth FILE``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from circuits.cli import main
from circuits.discovery import ActivationPatching
from circuits.errors import CircuitFileError
from circuits.graph import QKV, ComponentGraph, Edge, Node, NodeKind
from circuits.groundtruth.user import load_truth_file
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import model_info
from tasks import LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

YAML = """\
name: tiny-mine
task: random
citation: "Me (2026). A circuit of the tiny model, by hand."
model: {name: tiny, n_layers: 3, n_heads: 4, attn_only: false}
heads: [L2H1, L1H3]
nodes: [MLP0]
groups:
  mover: [L2H1]
edges: ["L1H3->L2H1<v>", "L2H1->logits"]
edge_rules:
  - {from: mover, to: logits}
"""


def test_yaml_and_json_read_the_same(tmp_path: Path) -> None:
    y = tmp_path / "mine.yaml"
    y.write_text(YAML)
    import yaml

    j = tmp_path / "mine.json"
    j.write_text(json.dumps(yaml.safe_load(YAML)))
    a, b = load_truth_file(y), load_truth_file(j)
    assert dataclasses.replace(a, source="") == dataclasses.replace(b, source="") and a.source == str(y)
    assert a.groups == {"circuit": ("L2H1", "L1H3", "MLP0"), "mover": ("L2H1",)}
    c = a.circuit(ComponentGraph(3, 4))
    assert c.nodes == {Node(NodeKind.INPUT, -1), Node(NodeKind.LOGITS, 3), Node.of_head(2, 1), Node.of_head(1, 3),
                       Node.of_mlp(0)}  # fmt: skip
    assert c.edges == {
        Edge(Node.of_head(1, 3), Node.of_head(2, 1), QKV.V),
        Edge(Node.of_head(2, 1), Node(NodeKind.LOGITS, 3)),
    }


def test_without_a_model_the_truth_takes_the_circuits_shape(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"citation": "x", "heads": ["L5H2"]}))
    with pytest.raises(CircuitFileError, match="no 'model' shape"):
        load_truth_file(f)
    truth = load_truth_file(f, ComponentGraph(6, 3))
    assert truth.name == "t" and truth.nodes(ComponentGraph(6, 3)) == {Node.of_head(5, 2)}
    with pytest.raises(CircuitFileError, match="malformed ground truth"):
        load_truth_file(f, ComponentGraph(2, 3))  # L5H2 is not on a 2-layer graph


@pytest.mark.parametrize(
    "doc,message",
    [
        ({"heads": ["L0H0"]}, "'citation' is required"),
        ({"citation": "x", "head": ["L0H0"]}, r"unknown keys \['head'\]"),
        ({"citation": "x"}, "give the circuit as"),
        ({"citation": "x", "heads": "L0H0"}, "'heads' must be a list of names"),
        ({"citation": "x", "heads": ["L0H9"], "model": {"n_layers": 3, "n_heads": 4}}, "malformed ground truth"),
        ({"citation": "x", "edges": ["L0H0->L0H1<q>"], "model": {"n_layers": 3, "n_heads": 4}}, "malformed"),
        (["L0H0"], "holds one mapping"),
    ],
)
def test_bad_user_truth(tmp_path: Path, doc: object, message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(CircuitFileError, match=message):
        load_truth_file(f, ComponentGraph(3, 4))


def test_score_against_a_user_file(tiny_model: TinyFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model()
    data = random_dataset(n=3, length=5, diff_from=2)
    scores = ActivationPatching()(model, data, LogitDiff(), progress=False)
    path = HeadGraph(model_info(model), TaskRun("random", 0, 3), scores, scores.top_k(4)).save(tmp_path / "c.json")
    truth = tmp_path / "mine.yaml"
    truth.write_text(YAML)
    assert main(["score", str(path), "--truth", str(truth)]) == 0
    out = capsys.readouterr().out
    assert "ground truth: tiny-mine (user ground truth)" in out and "Me (2026)" in out
    assert "  mover: L2H1 #" in out
    assert main(["score", str(path), "--truth", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.strip().endswith("missing.yaml: no such ground-truth file")
    truth.write_text("model: [unclosed")
    assert main(["score", str(path), "--truth", str(truth)]) == 2
    assert "not YAML" in capsys.readouterr().err
