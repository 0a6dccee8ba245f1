"""Evaluation against ground truth: ROC AUC (two areas), precision/recall at k, Jaccard, task overlap."""

from __future__ import annotations

import math

import pytest
import torch

from circuits.discovery import ActivationPatching
from circuits.errors import HeadgraphError
from circuits.graph import ComponentGraph, Node, NodeKind
from circuits.groundtruth import induction_model, ioi_model
from circuits.measures.roc import (
    AucVariant,
    RocCurve,
    auc,
    evaluate,
    importance,
    jaccard,
    overlap_curve,
    precision_recall_at_k,
    roc_auc,
    roc_curve,
    stage_heads,
    task_overlap,
)
from circuits.scores import Baseline, Circuit, Level, Scores

BASE = Baseline("logit-diff", 1.0, 0.0)


def _mann_whitney(imp: list[float], lab: list[bool], tie: float) -> float:
    """P(positive > negative) + tie · P(equal), by brute force over all pairs."""
    pos = [v for v, y in zip(imp, lab, strict=True) if y]
    neg = [v for v, y in zip(imp, lab, strict=True) if not y]
    total = sum((p > n) + tie * (p == n) for p in pos for n in neg)
    return total / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_pairwise_probabilities_with_ties(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    imp = torch.randint(0, 5, (40,), generator=g).double()  # many ties
    lab = torch.rand(40, generator=g) < 0.3
    lab[0], lab[1] = True, False
    args = (imp.tolist(), lab.tolist())
    assert roc_auc(imp, lab) == pytest.approx(_mann_whitney(*args, tie=0.5))
    assert roc_auc(imp, lab, AucVariant.PESSIMISTIC) == pytest.approx(_mann_whitney(*args, tie=0.0))


@pytest.mark.parametrize(
    ("xs", "ys", "expected"),
    [  # the assertions under ACDC's pessimistic_auc (acdc/acdc_graphics.py)
        ([0, 1], [0, 1], 0.0),
        ([0, 0.5, 1], [0, 0.5, 1], 0.25),
        ([0, 0.25, 1], [0, 0.25, 1], 0.25 * 0.75),
        ([0, 0.25, 0.5, 1], [0, 0.25, 0.5, 1], 5 / 16),
        ([0, 0.25, 0.75, 1], [0, 0.25, 0.5, 1], 4 / 16),
    ],
)
def test_pessimistic_area_reproduces_acdc(xs: list[float], ys: list[float], expected: float) -> None:
    curve = RocCurve(tuple(float(x) for x in xs), tuple(float(y) for y in ys), 1, 1)
    assert auc(curve, AucVariant.PESSIMISTIC) == pytest.approx(expected)


def test_curve_starts_at_origin_ends_at_one_and_merges_ties() -> None:
    c = roc_curve(torch.tensor([5.0, 5.0, 1.0, 0.0]), torch.tensor([True, False, True, False]))
    assert c.fpr == (0.0, 0.5, 0.5, 1.0) and c.tpr == (0.0, 0.5, 1.0, 1.0)


def test_tiny_importance_ties_with_zero() -> None:
    """Below zero_tol × the largest, importance counts as unscored: a 1e-12 blip is no ranking."""
    imp, lab = torch.tensor([1.0, 1e-12, 0.0, 0.0]), torch.tensor([True, True, False, False])
    assert roc_auc(imp, lab, AucVariant.PESSIMISTIC) == 0.5
    assert roc_auc(imp, lab, AucVariant.PESSIMISTIC, zero_tol=0.0) == 1.0


def test_sign_does_not_matter() -> None:
    lab = torch.tensor([True, False, False])
    assert roc_auc(torch.tensor([-3.0, 1.0, 0.5]), lab) == 1.0


def test_curve_needs_both_classes() -> None:
    with pytest.raises(HeadgraphError, match="positives and negatives"):
        roc_curve(torch.tensor([1.0, 2.0]), torch.tensor([True, True]))


def test_precision_recall_at_k() -> None:
    imp = torch.tensor([0.9, 0.8, 0.7, 0.1, 0.0])
    lab = torch.tensor([True, False, True, True, False])
    pr = precision_recall_at_k(imp, lab, 3)
    assert (pr.true_positives, pr.precision, pr.recall) == (2, 2 / 3, 2 / 3)
    assert pr.f1 == pytest.approx(2 / 3) and pr.tnr == 0.5
    assert pr.oneill_f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    with pytest.raises(HeadgraphError):
        precision_recall_at_k(imp, lab, 0)


def test_jaccard() -> None:
    assert jaccard(set(), set()) == 1.0
    assert jaccard({1}, {2}) == 0.0
    assert jaccard(["a", "b"], ["b", "c", "d"]) == 0.25


def test_node_importance_from_edge_scores_sums_outgoing_edges() -> None:
    graph = ComponentGraph(2, 2, has_mlps=False)
    values = torch.full((len(graph.edges),), math.nan)
    for i, e in enumerate(graph.edges):
        if str(e) in ("L0H1->L1H0<q>", "L0H1->logits"):
            values[i] = -1.5 if "logits" in str(e) else 0.5
    imp = importance(Scores(graph, Level.EDGE, values, "m", BASE), Level.NODE)
    assert float(imp[graph.node_index(Node.of_head(0, 1))]) == 2.0
    assert math.isnan(float(imp[graph.node_index(Node.of_head(0, 0))]))


def _node_scores(graph: ComponentGraph, top: dict[str, float]) -> Scores:
    values = torch.full((len(graph.nodes),), 0.0)
    for name, v in top.items():
        values[graph.node_index(Node.parse(name))] = v
    return Scores(graph, Level.NODE, values, "m", BASE)


def test_merullo_overlap_keeps_two_percent_of_heads_per_stage() -> None:
    graph = ComponentGraph(24, 16)  # GPT-2 medium: 384 heads, 2% → 8 per stage
    a_stages = [_node_scores(graph, {f"L{s}H{h}": 1.0 + h for h in range(10)}) for s in range(4)]
    b_stages = [_node_scores(graph, {f"L{s}H{h}": 10.0 - h for h in range(10)}) for s in range(4)]
    assert len(stage_heads(a_stages)) == 32  # 4 stages × 8, as Merullo's "25/32"
    ov = task_overlap(a_stages, b_stages)
    assert ov.per_stage == 8
    assert {n.head for n in ov.a} == set(range(2, 10)) and {n.head for n in ov.b} == set(range(8))
    assert len(ov.shared) == 4 * 6 and ov.a_in_b == 0.75 and ov.jaccard == pytest.approx(24 / 40)
    curve = overlap_curve(a_stages, b_stages)
    assert [o.fraction for o in curve] == [0.01, 0.02, 0.05, 0.10]
    assert [o.per_stage for o in curve] == [4, 8, 20, 39]


def test_overlap_needs_one_model_shape() -> None:
    with pytest.raises(HeadgraphError, match="one model shape"):
        task_overlap([_node_scores(ComponentGraph(2, 2), {})], [_node_scores(ComponentGraph(3, 2), {})])
    with pytest.raises(HeadgraphError):
        stage_heads([_node_scores(ComponentGraph(2, 2), {})], fraction=0.0)


@pytest.mark.parametrize("planted", [induction_model(), ioi_model()], ids=["induction", "ioi"])
def test_exact_patching_scores_perfectly_on_planted_models(planted: object) -> None:
    from circuits.groundtruth import Planted

    assert isinstance(planted, Planted)
    data = planted.task.dataset(8, seed=0)
    scores = ActivationPatching()(planted.model, data, planted.task.metric, progress=False)
    result = evaluate(scores, planted.truth)
    assert result.node_auc == result.node_auc_pessimistic == 1.0
    assert result.at_k is not None and result.at_k.precision == result.at_k.recall == 1.0
    assert result.n_truth_nodes == len(planted.circuit_heads)


def test_an_undefined_edge_auc_keeps_the_defined_node_auc() -> None:
    """A method that scores only edges into the logits, against a truth that reaches them only
    through an MLP: no scored edge is a positive, so the edge AUC is NaN (with the reason), while
    the node AUC, from the same edges' senders, is defined and kept."""
    g = ComponentGraph(2, 2, has_mlps=True)
    logits = g.nodes[-1]
    values = torch.full((len(g.edges),), math.nan)
    senders = []
    for i, e in enumerate(g.edges):
        if e.dst == logits and e.src.kind is NodeKind.HEAD:
            values[i] = -3.0 if e.src == Node.of_head(0, 1) else -0.1 * (i % 5 + 1)
            senders.append(e.src)
    scores = Scores(g, Level.EDGE, values, "path-patching", BASE)
    mlp = Node.of_mlp(1)
    truth_edges = [e for e in g.edges if (e.src, e.dst) in {(Node.of_head(0, 1), mlp), (mlp, logits)}]
    truth = Circuit.from_items(g, truth_edges, {"rule": "hand"})
    r = evaluate(scores, truth)
    assert math.isnan(r.edge_auc) and math.isnan(r.edge_auc_pessimistic)
    assert "0 of the" in r.undefined["edge"] and "scored edges" in r.undefined["edge"]
    assert r.node_auc == 1.0 and "node" not in r.undefined


def test_a_truth_with_no_evaluated_node_gives_nan_and_a_reason() -> None:
    g = ComponentGraph(2, 2)
    scores = _node_scores(g, {"L0H0": -1.0, "L1H1": -0.5})
    r = evaluate(scores, Circuit(g, frozenset({g.nodes[0], g.nodes[-1]}), frozenset()))  # input and logits only
    assert math.isnan(r.node_auc) and r.at_k is None and r.n_truth_nodes == 0
    assert (
        r.undefined["node"].startswith("0 of the 4 nodes") and r.undefined["edge"] == "node-level scores have no edges"
    )


def test_score_planted_prints_the_reason_instead_of_failing() -> None:
    from circuits.groundtruth.benchmark import MethodResult, format_results

    row = MethodResult("path-patching", "ioi L0H1", 1.0, 1.0, math.nan, math.nan, 0.1, notes="edge AUC undefined: x")
    table = format_results([row])
    assert "failed" not in table and "edge AUC undefined: x" in table and "| 1.000 |" in table
