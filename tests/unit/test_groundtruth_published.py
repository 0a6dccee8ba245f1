"""Published circuits: the data as the papers give it, and the plumbing on random models of the right shape."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.discovery import ActivationPatching
from circuits.errors import CircuitFileError, HeadgraphError
from circuits.graph import ComponentGraph, Edge, Node, NodeKind
from circuits.groundtruth import get_ground_truth, load_published, published_names
from circuits.groundtruth.published import from_dict
from circuits.measures.roc import evaluate
from circuits.model import graph_of
from circuits.scores import Baseline, Level, Scores
from tasks import LogitDiff, UnknownNameError
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

# Shapes of the models the circuits were found in; d_model is kept small: the shape is what matters.
SHAPES = {
    "gpt2": {"n_layers": 12, "n_heads": 12},
    "gpt2-medium": {"n_layers": 24, "n_heads": 16},
    "attn-only-4l": {"n_layers": 4, "n_heads": 8, "attn_only": True, "positional_embedding_type": "shortformer"},
}
SMALL = {"d_model": 16, "d_head": 4, "d_mlp": 16, "n_ctx": 16}


def _graph(model_name: str) -> ComponentGraph:
    s = SHAPES[model_name]
    return ComponentGraph(s["n_layers"], s["n_heads"], has_mlps=not s.get("attn_only", False))


def test_every_shipped_file_loads_with_its_citation() -> None:
    names = published_names()
    assert {"ioi-wang2022", "greaterthan-hanna2023", "greaterthan-acdc", "greaterthan-hanna2024",
            "docstring-heimersheim2023", "colored-objects-merullo2023"} <= set(names)  # fmt: skip
    for name in names:
        truth = load_published(name)
        assert truth.name == name and truth.citation and truth.source and truth.variant
        assert truth.model.name in SHAPES


def test_ioi_26_heads_by_class() -> None:
    t = load_published("ioi-wang2022")
    sizes = {role: len(heads) for role, heads in t.groups.items()}
    assert sizes == {
        "name mover": 3, "backup name mover": 8, "negative name mover": 2, "s-inhibition": 4,
        "induction": 4, "duplicate token": 3, "previous token": 2,
    }  # fmt: skip
    assert t.groups["name mover"] == ("L9H9", "L10H0", "L9H6")
    assert len(t.nodes(_graph("gpt2"))) == 26
    oneill = load_published("ioi-oneill2024").nodes(_graph("gpt2"))
    assert t.nodes(_graph("gpt2")) - oneill == {Node.of_head(9, 0)}
    assert oneill - t.nodes(_graph("gpt2")) == {Node.of_head(11, 3)}


def test_ioi_edges_follow_acdc_rules() -> None:
    c = load_published("ioi-wang2022").circuit(_graph("gpt2"))
    edges = {str(e) for e in c.edges}
    assert {"L2H2->L5H5<k>", "L2H2->L5H5<v>", "L5H5->L7H3<k>", "L0H1->L7H3<v>", "L7H3->L9H9<q>",
            "input->L7H3<q>", "input->L9H9<k>", "L9H9->logits", "L10H7->logits", "MLP0->L5H5<q>",
            "L5H5->MLP7", "MLP3->MLP4", "input->MLP0", "MLP11->logits"} <= edges  # fmt: skip
    assert not {"L2H2->L5H5<q>", "input->L7H3<k>", "L5H5->logits", "L7H3->L9H9<k>", "input->L5H5<q>",
                "L2H2->L7H3<k>"} & edges  # fmt: skip
    assert all(e.src.kind is not NodeKind.HEAD or e.src in c.nodes for e in c.edges)
    assert not any(n.kind is NodeKind.MLP for n in c.nodes), "MLPs are pass-through: edges, not nodes"


def test_greater_than_three_variants() -> None:
    g = _graph("gpt2")
    orig = load_published("greaterthan-hanna2023").nodes(g)
    acdc = load_published("greaterthan-acdc").circuit(g)
    h24 = load_published("greaterthan-hanna2024").circuit(g)
    head = NodeKind.HEAD
    assert {str(n) for n in orig if n.kind is head} == {"L5H1", "L5H5", "L6H9", "L7H10", "L8H8", "L8H11", "L9H1"}
    assert {str(n) for n in acdc.nodes if n.kind is head} == {
        "L0H1", "L0H3", "L0H5", "L5H5", "L6H1", "L6H9", "L7H10", "L8H11", "L9H1"
    }  # fmt: skip
    # counts recomputed by hand from auto-circuit's greaterthan_true_edges (235) and the
    # eap-ig-faithfulness reference (19 nodes, 240 edges, as the survey records)
    assert len(acdc.edges) == 235
    assert len(h24.nodes - {g.nodes[0], g.nodes[-1]}) == 19 and len(h24.edges) == 240


def test_docstring_24_edges_with_positions() -> None:
    t = load_published("docstring-heimersheim2023")
    c = t.circuit(_graph("attn-only-4l"))
    assert len(c.edges) == 24
    assert {str(n) for n in t.nodes(c.graph)} == {"L0H5", "L1H2", "L1H4", "L2H0", "L3H0", "L3H6"}
    assert t.edge_positions["L1H4->L3H0<q>"] == ("param_3",)
    assert Edge.parse("L2H0->L3H6<k>", 4) in c.edges
    assert load_published("docstring-oneill2024").nodes(c.graph) - t.nodes(c.graph) == {Node.of_head(1, 0)}


def test_colored_objects_roles_on_gpt2_medium() -> None:
    t = load_published("colored-objects-merullo2023")
    nodes = {str(n) for n in t.nodes(_graph("gpt2-medium"))}
    assert {"L15H14", "L16H15", "L17H4", "L18H5", "L19H15", "L9H3", "L6H4", "L11H6", "L11H7", "L12H15"} == nodes
    ioi = {str(n) for n in load_published("ioi-gpt2medium-merullo2023").nodes(_graph("gpt2-medium"))}
    assert nodes & ioi == {"L15H14", "L16H15", "L17H4", "L18H5", "L19H15", "L9H3", "L6H4"}


@pytest.mark.parametrize(
    ("name", "model_name"),
    [("ioi-wang2022", "gpt2"), ("greaterthan-acdc", "gpt2"), ("docstring-heimersheim2023", "attn-only-4l")],
)
def test_plumbing_on_a_random_model_of_the_right_shape(tiny_model: TinyFactory, name: str, model_name: str) -> None:
    """A method's scores on a randomly initialised model evaluate against the published circuit."""
    model = tiny_model(**SHAPES[model_name], **SMALL)
    truth = get_ground_truth(name).circuit(graph_of(model))
    data = random_dataset(n=2, length=6, diff_from=3, d_vocab=50)
    scores = ActivationPatching()(model, data, LogitDiff(), progress=False)
    result = evaluate(scores, truth)
    assert 0.0 <= result.node_auc_pessimistic <= result.node_auc + 1e-12 <= 1.0 + 1e-12
    assert result.n_truth_nodes == len([n for n in truth.nodes if n.kind is NodeKind.HEAD])


def test_edge_scores_evaluate_at_edge_and_node_level() -> None:
    """Edge-level scores: edge AUC against the truth's edges; node importance is summed from edges."""
    graph = _graph("gpt2")
    truth = get_ground_truth("ioi-wang2022").circuit(graph)
    values = torch.rand(len(graph.edges), generator=torch.Generator().manual_seed(0))
    scores = Scores(graph, Level.EDGE, values, "random", Baseline("logit-diff", 1.0, 0.0))
    result = evaluate(scores, truth)
    assert 0.4 < result.edge_auc < 0.6 and 0.3 < result.node_auc < 0.7  # random scores: chance
    perfect = Scores(graph, Level.EDGE, torch.tensor([float(e in truth.edges) for e in graph.edges]), "oracle",
                     Baseline("logit-diff", 1.0, 0.0))  # fmt: skip
    assert evaluate(perfect, truth).edge_auc == 1.0


def test_gpt2_medium_truth_has_no_edges() -> None:
    graph = _graph("gpt2-medium")
    truth = get_ground_truth("colored-objects-merullo2023").circuit(graph)
    values = torch.rand(len(graph.nodes), generator=torch.Generator().manual_seed(0))
    result = evaluate(Scores(graph, Level.NODE, values, "random", Baseline("logit-diff", 1.0, 0.0)), truth)
    assert 0.2 < result.node_auc < 0.8 and result.n_nodes == 24 * 16 and result.n_truth_nodes == 10
    assert result.edge_auc != result.edge_auc  # NaN: node scores, and a truth without edges


@pytest.mark.parametrize(
    ("name", "model_name"),
    [("ioi-wang2022", "attn-only-4l"), ("docstring-heimersheim2023", "gpt2"), ("colored-objects-merullo2023", "gpt2")],
)
def test_a_model_of_another_shape_is_a_clear_error(name: str, model_name: str) -> None:
    with pytest.raises(HeadgraphError, match=rf"ground truth '{name}' is defined on .*; this model has"):
        get_ground_truth(name).circuit(_graph(model_name))


def test_an_attention_only_model_of_the_same_size_is_not_gpt2() -> None:
    with pytest.raises(HeadgraphError, match="with MLPs.*attention-only"):
        get_ground_truth("ioi-wang2022").circuit(ComponentGraph(12, 12, has_mlps=False))


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="valid ground truths: .*ioi-wang2022"):
        get_ground_truth("ioi-nobody2099")


@pytest.mark.parametrize(
    "patch",
    [
        {"schema": "other"},
        {"schema_version": 99},
        {"groups": {"x": ["L12H0"]}},  # no layer 12 in GPT-2 small
        {"groups": {"x": ["not a node"]}},
        {"edge_rules": [{"from": ["nowhere"], "to": ["logits"]}]},
        {"edges": ["L5H0->L3H0<q>"]},  # backwards
        {"model": {"name": "gpt2"}},
    ],
)
def test_malformed_files_are_rejected(patch: dict[str, object]) -> None:
    text = json.dumps({**_doc("ioi-wang2022"), **patch})
    with pytest.raises(CircuitFileError):
        from_dict(json.loads(text), source="test.json")


def _doc(name: str) -> dict[str, object]:
    from importlib import resources

    path = resources.files("circuits.groundtruth").joinpath(f"data/published/{name}.json")
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return data
