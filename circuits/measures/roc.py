"""Scoring discovered circuits against a ground truth, and comparing the circuits of two tasks.

Every method returns :class:`~circuits.scores.Scores` over the same graph and every ground truth is a
:class:`~circuits.scores.Circuit`, so one code path evaluates them all:

* **ROC AUC** over the score threshold, at node level (heads, and MLPs where the ground truth names
  any) and at edge level. Two areas are reported:

  - ``TRAPEZOID``: the usual area (auto-circuit, MIB, scikit-learn): tied scores contribute a
    diagonal segment, i.e. half credit. It equals P(score of a positive > score of a negative) +
    ½ P(tie).
  - ``PESSIMISTIC``: ACDC's ``pessimistic_auc`` (Conmy et al. 2023, ``acdc/acdc_graphics.py``):
    the ROC curve is a staircase that moves right before it moves up, after dropping points that
    are not Pareto-optimal. For a sweep over per-item scores this is P(positive > negative)
    strictly: ties earn nothing.

  Items whose importance is at most ``zero_tol`` times the largest count as unscored (importance
  0): ACDC drops scores below 1e-6 the same way, and exact zeros (inert heads) must tie exactly.
* **Precision, recall and F1 at k** (top-k items by importance), plus O'Neill & Bui's
  TPR/TNR harmonic mean ("F1" in their code), for comparison with their numbers.
* **Jaccard** of two sets.
* **Task overlap** (Merullo, Eickhoff & Pavlick 2023, "Circuit component reuse across tasks", §4):
  a task's circuit is the union over path-patching stages of each stage's top 2% of heads; the
  overlap of two tasks is reported as Jaccard and as containment both ways, and as a curve over the
  threshold (1, 2, 5, 10%).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import Enum

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuits.errors import HeadgraphError
from circuits.graph import ComponentGraph, Node, NodeKind
from circuits.scores import Circuit, Level, Scores

__all__ = [
    "MERULLO_FRACTION",
    "OVERLAP_FRACTIONS",
    "ZERO_TOL",
    "AucVariant",
    "Evaluation",
    "Overlap",
    "PrecisionRecall",
    "RocCurve",
    "auc",
    "evaluate",
    "importance",
    "jaccard",
    "labels",
    "overlap_curve",
    "precision_recall_at_k",
    "roc_auc",
    "roc_curve",
    "stage_heads",
    "task_overlap",
]

ZERO_TOL = 1e-6
"""Importance at or below this fraction of the largest importance counts as 0 (unscored)."""

MERULLO_FRACTION = 0.02
"""Merullo et al.'s threshold: the top 2% of heads per path-patching stage."""

OVERLAP_FRACTIONS = (0.01, 0.02, 0.05, 0.10)
"""Thresholds of the overlap curve."""


class AucVariant(Enum):
    """How the area under a ROC curve is taken (module docstring)."""

    TRAPEZOID = "trapezoid"
    PESSIMISTIC = "pessimistic"


@dataclass(frozen=True)
class RocCurve:
    """ROC points from the highest score threshold down, starting at (0, 0) and ending at (1, 1).

    Attributes:
        fpr: false-positive rate at each distinct threshold.
        tpr: true-positive rate at each distinct threshold.
        n_positive: items in the ground truth.
        n_negative: items not in it.
    """

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    n_positive: int
    n_negative: int


def _quantized(values: Float[Tensor, " n"], zero_tol: float) -> Tensor:
    v = values.detach().double().abs()
    top = float(v.max()) if v.numel() else 0.0
    return torch.where(v <= zero_tol * top, torch.zeros_like(v), v)


def roc_curve(importance: Float[Tensor, " n"], truth: Bool[Tensor, " n"], *, zero_tol: float = ZERO_TOL) -> RocCurve:
    """The ROC curve of ranking items by ``importance`` against the labels ``truth``.

    Tied items enter together (one point per distinct value).

    Raises:
        HeadgraphError: no positives or no negatives (the curve is undefined).
    """
    if importance.shape != truth.shape:
        raise HeadgraphError(f"importance {tuple(importance.shape)} and labels {tuple(truth.shape)} differ")
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        raise HeadgraphError(f"a ROC curve needs positives and negatives, got {n_pos} and {n_neg}")
    v = _quantized(importance, zero_tol)
    order = torch.argsort(v, descending=True, stable=True)
    v, t = v[order], truth[order]
    tp = torch.cumsum(t.double(), 0)
    fp = torch.cumsum((~t).double(), 0)
    last_of_value = torch.ones_like(t)
    last_of_value[:-1] = v[1:] != v[:-1]  # the last item of each run of equal values
    fpr = [0.0] + (fp[last_of_value] / n_neg).tolist()
    tpr = [0.0] + (tp[last_of_value] / n_pos).tolist()
    return RocCurve(tuple(fpr), tuple(tpr), n_pos, n_neg)


def auc(curve: RocCurve, variant: AucVariant = AucVariant.TRAPEZOID) -> float:
    """Area under ``curve``.

    Examples:
        >>> c = RocCurve((0.0, 0.5, 1.0), (0.0, 0.5, 1.0), 2, 2)
        >>> auc(c), auc(c, AucVariant.PESSIMISTIC)
        (0.5, 0.25)
    """
    x, y = curve.fpr, curve.tpr
    if variant is AucVariant.TRAPEZOID:
        return sum((x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2 for i in range(1, len(x)))
    # ACDC's staircase: every rise in TPR is credited only from its own (rightmost) FPR on.
    return sum((1 - x[i]) * (y[i] - y[i - 1]) for i in range(1, len(x)))


def roc_auc(
    importance: Float[Tensor, " n"],
    truth: Bool[Tensor, " n"],
    variant: AucVariant = AucVariant.TRAPEZOID,
    *,
    zero_tol: float = ZERO_TOL,
) -> float:
    """Area under the ROC curve of ``importance`` against ``truth``.

    Examples:
        >>> imp, lab = torch.tensor([3.0, 2.0, 2.0, 0.0]), torch.tensor([True, True, False, False])
        >>> roc_auc(imp, lab), roc_auc(imp, lab, AucVariant.PESSIMISTIC)
        (0.875, 0.75)
    """
    return auc(roc_curve(importance, truth, zero_tol=zero_tol), variant)


def importance(scores: Scores, level: Level | None = None) -> Float[Tensor, " n"]:
    """``|value|`` per node or edge of ``scores.graph`` (NaN where not scored).

    Node importance from edge-level scores is the sum of ``|score|`` over a node's outgoing edges
    (what it sends downstream), NaN for nodes that send nothing scored.
    """
    level = level or scores.level
    values = scores.values.detach().double()
    if level is scores.level:
        return values.abs()
    if level is Level.EDGE:
        raise HeadgraphError("edge importance needs edge-level scores; these are node scores")
    graph = scores.graph
    src = torch.tensor([graph.node_index(e.src) for e in graph.edges], dtype=torch.long)
    scored = ~torch.isnan(values)
    out = torch.zeros(len(graph.nodes), dtype=torch.float64).index_add_(0, src[scored], values[scored].abs())
    seen = torch.zeros(len(graph.nodes), dtype=torch.bool)
    seen[src[scored]] = True
    return torch.where(seen, out, torch.full_like(out, math.nan))


def _evaluated_nodes(graph: ComponentGraph, truth: Circuit) -> list[int]:
    """Heads, plus MLPs when the ground truth names any (a head-only truth says nothing of MLPs)."""
    kinds = {NodeKind.HEAD} | ({NodeKind.MLP} if any(n.kind is NodeKind.MLP for n in truth.nodes) else set())
    return [i for i, n in enumerate(graph.nodes) if n.kind in kinds]


def labels(scores: Scores, truth: Circuit, level: Level) -> tuple[Float[Tensor, " m"], Bool[Tensor, " m"], list[int]]:
    """The importance of the evaluated items, whether each is in ``truth``, and their indices.

    Evaluated at node level: the heads (and MLPs, see :func:`_evaluated_nodes`). Node-level scores
    that leave a head unscored (NaN: e.g. off ``sae-patching``'s shortlist) rank it last, as
    importance 0: the method did not pick it, so it is graded as not finding it rather than left
    out (which would grade a shortlist only on what it chose, and leave no ground-truth head to
    rank when it missed them all). A kind a method does not score at all (MLPs, for head-only
    methods) is left out. For edge-level scores, node importance comes from outgoing
    edges (:func:`importance`) and only nodes that send a scored edge are evaluated. At edge level,
    the scored edges are evaluated.

    Raises:
        HeadgraphError: the graphs' shapes differ, or an edge evaluation of a truth without edges.
    """
    g = scores.graph
    if (g.n_layers, g.n_heads, g.has_mlps) != (truth.graph.n_layers, truth.graph.n_heads, truth.graph.has_mlps):
        raise HeadgraphError(
            f"scores are on a {g.n_layers}×{g.n_heads} graph, the ground truth on a "
            f"{truth.graph.n_layers}×{truth.graph.n_heads} graph"
        )
    imp = importance(scores, level)
    if level is Level.NODE:
        idx = _evaluated_nodes(g, truth)
        if scores.level is Level.NODE:  # unscored nodes rank last, unless their whole kind is unscored
            scored_kinds = {g.nodes[i].kind for i in idx if not math.isnan(float(imp[i]))}
            idx = [i for i in idx if g.nodes[i].kind in scored_kinds]
            imp = imp.nan_to_num(0.0)
        idx = [i for i in idx if not math.isnan(float(imp[i]))]
        lab = torch.tensor([g.nodes[i] in truth.nodes for i in idx], dtype=torch.bool)
    else:
        if not truth.edges:
            raise HeadgraphError("this ground truth has no edges: edge-level scores cannot be evaluated against it")
        if not g.split_qkv and truth.graph.split_qkv:
            raise HeadgraphError("edge scores without q/k/v inputs cannot be evaluated against q/k/v edges")
        idx = torch.nonzero(~torch.isnan(imp)).flatten().tolist()
        lab = torch.tensor([g.edges[i] in truth.edges for i in idx], dtype=torch.bool)
    return imp[idx], lab, idx


@dataclass(frozen=True)
class PrecisionRecall:
    """How well the top ``k`` items match a ground truth.

    Attributes:
        k: items selected.
        true_positives: selected items in the ground truth.
        precision: ``true_positives / k``.
        recall: ``true_positives / positives`` (also the true-positive rate).
        f1: harmonic mean of precision and recall.
        tnr: true-negative rate.
        oneill_f1: harmonic mean of TPR and TNR (what O'Neill & Bui's code calls F1).
    """

    k: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    tnr: float
    oneill_f1: float


def _harmonic(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def precision_recall_at_k(importance: Float[Tensor, " n"], truth: Bool[Tensor, " n"], k: int) -> PrecisionRecall:
    """Precision, recall and F1 of the ``k`` most important items (ties in index order).

    Examples:
        >>> pr = precision_recall_at_k(torch.tensor([3.0, 2.0, 1.0, 0.0]), torch.tensor([True, False, True, False]), 2)
        >>> pr.precision, pr.recall, pr.f1
        (0.5, 0.5, 0.5)
    """
    n = importance.shape[0]
    if not 0 < k <= n:
        raise HeadgraphError(f"k must be between 1 and the {n} evaluated items, got {k}")
    order = torch.argsort(importance.double().nan_to_num(-1.0), descending=True, stable=True)
    chosen = torch.zeros(n, dtype=torch.bool)
    chosen[order[:k]] = True
    tp = int((chosen & truth).sum())
    pos, neg = int(truth.sum()), int((~truth).sum())
    recall = tp / pos if pos else math.nan
    tnr = int((~chosen & ~truth).sum()) / neg if neg else math.nan
    return PrecisionRecall(k, tp, tp / k, recall, _harmonic(tp / k, recall), tnr, _harmonic(recall, tnr))


def jaccard(a: Collection[object], b: Collection[object]) -> float:
    """``|a ∩ b| / |a ∪ b|`` (1 for two empty sets).

    Examples:
        >>> jaccard({1, 2, 3}, {2, 3, 4})
        0.5
    """
    sa, sb = set(a), set(b)
    return 1.0 if not sa | sb else len(sa & sb) / len(sa | sb)


@dataclass(frozen=True)
class Evaluation:
    """Scores of one method against one ground truth.

    A part that is undefined for this pair of scores and truth is NaN (``at_k``: None), never an
    error that would throw away the parts that are defined; :attr:`undefined` says why.

    Attributes:
        node_auc: trapezoid node ROC AUC.
        node_auc_pessimistic: ACDC's pessimistic node ROC AUC.
        edge_auc: trapezoid edge ROC AUC.
        edge_auc_pessimistic: pessimistic edge ROC AUC.
        at_k: node precision/recall at k = the number of ground-truth nodes evaluated (None when
            no ground-truth node is evaluated).
        n_nodes: nodes evaluated.
        n_truth_nodes: ground-truth nodes among them.
        undefined: why each NaN part is undefined: ``{"node": reason, "edge": reason}``.
    """

    node_auc: float
    node_auc_pessimistic: float
    edge_auc: float
    edge_auc_pessimistic: float
    at_k: PrecisionRecall | None
    n_nodes: int
    n_truth_nodes: int
    undefined: dict[str, str] = field(default_factory=dict)


def _aucs(imp: Tensor, lab: Tensor, zero_tol: float, what: str) -> tuple[float, float, str]:
    """Trapezoid and pessimistic AUC, or NaN and the reason the curve is undefined."""
    n_pos, n_neg = int(lab.sum()), int((~lab).sum())
    if n_pos == 0 or n_neg == 0:
        reason = f"{n_pos} of the {n_pos + n_neg} {what} evaluated are in the ground truth: a ROC curve needs both"
        return math.nan, math.nan, reason
    curve = roc_curve(imp, lab, zero_tol=zero_tol)
    return auc(curve), auc(curve, AucVariant.PESSIMISTIC), ""


def evaluate(scores: Scores, truth: Circuit, *, zero_tol: float = ZERO_TOL) -> Evaluation:
    """Node (and, for edge scores against a truth with edges, edge) ROC AUC and precision/recall.

    Examples:
        >>> from circuits.scores import Baseline
        >>> g = ComponentGraph(n_layers=1, n_heads=2, has_mlps=False)
        >>> s = Scores(g, Level.NODE, torch.tensor([0.0, 2.0, 1.0, 0.0]), "toy", Baseline("logit-diff", 1.0, 0.0))
        >>> r = evaluate(s, Circuit(g, frozenset({g.nodes[1]}), frozenset()))
        >>> r.node_auc, math.isnan(r.edge_auc), r.undefined["edge"]
        (1.0, True, 'node-level scores have no edges')
    """
    imp, lab, _ = labels(scores, truth, Level.NODE)
    undefined: dict[str, str] = {}
    node_t, node_p, why = _aucs(imp, lab, zero_tol, "nodes")
    if why:
        undefined["node"] = why
    edge_t = edge_p = math.nan
    if scores.level is not Level.EDGE:
        undefined["edge"] = "node-level scores have no edges"
    elif not truth.edges:
        undefined["edge"] = "the ground truth names no edges"
    else:
        e_imp, e_lab, _ = labels(scores, truth, Level.EDGE)
        edge_t, edge_p, why = _aucs(e_imp, e_lab, zero_tol, "scored edges")
        if why:
            undefined["edge"] = why
    n_truth = int(lab.sum())
    return Evaluation(
        node_auc=node_t,
        node_auc_pessimistic=node_p,
        edge_auc=edge_t,
        edge_auc_pessimistic=edge_p,
        at_k=precision_recall_at_k(imp, lab, n_truth) if n_truth else None,
        n_nodes=int(lab.numel()),
        n_truth_nodes=n_truth,
        undefined=undefined,
    )


# --------------------------------------------------------------------------------------------
# Overlap between the circuits of two tasks (Merullo et al. 2023).


def stage_heads(stages: Sequence[Scores], fraction: float = MERULLO_FRACTION) -> frozenset[Node]:
    """Union over stages of each stage's top ``ceil(fraction · heads)`` heads by importance.

    A stage's edge scores count through their senders (:func:`importance`).
    """
    if not stages:
        raise HeadgraphError("a task's circuit needs at least one stage of scores")
    if not 0 < fraction <= 1:
        raise HeadgraphError(f"the fraction of heads must be in (0, 1], got {fraction}")
    out: set[Node] = set()
    for s in stages:
        graph = s.graph
        k = math.ceil(fraction * len(graph.heads))
        imp = importance(s, Level.NODE)
        heads = [(float(imp[graph.node_index(h)]), i, h) for i, h in enumerate(graph.heads)]
        ranked = sorted((x for x in heads if not math.isnan(x[0])), key=lambda x: (-x[0], x[1]))
        out |= {h for _, _, h in ranked[:k]}
    return frozenset(out)


@dataclass(frozen=True)
class Overlap:
    """Heads shared by two tasks' circuits at one threshold.

    Attributes:
        fraction: share of the model's heads kept per stage.
        per_stage: heads kept per stage (``ceil(fraction · heads)``).
        a: task A's circuit (union over its stages).
        b: task B's circuit.
        shared: heads in both.
        jaccard: ``|A ∩ B| / |A ∪ B|``.
        a_in_b: ``|A ∩ B| / |A|``: the share of A's circuit that B reuses (Merullo's "78%").
        b_in_a: ``|A ∩ B| / |B|``.
    """

    fraction: float
    per_stage: int
    a: frozenset[Node]
    b: frozenset[Node]
    shared: frozenset[Node]
    jaccard: float
    a_in_b: float
    b_in_a: float


def task_overlap(a: Sequence[Scores], b: Sequence[Scores], fraction: float = MERULLO_FRACTION) -> Overlap:
    """Overlap of two tasks' circuits, each given as its path-patching stages (or one score set).

    Raises:
        HeadgraphError: the stages are not all on graphs of one shape.
    """
    shapes = {(s.graph.n_layers, s.graph.n_heads) for s in (*a, *b)}
    if len(shapes) > 1:
        raise HeadgraphError(f"overlap needs scores of one model shape, got {sorted(shapes)} (layers, heads)")
    ca, cb = stage_heads(a, fraction), stage_heads(b, fraction)
    shared = ca & cb
    return Overlap(
        fraction=fraction,
        per_stage=math.ceil(fraction * len(a[0].graph.heads)),
        a=ca,
        b=cb,
        shared=shared,
        jaccard=jaccard(ca, cb),
        a_in_b=len(shared) / len(ca) if ca else math.nan,
        b_in_a=len(shared) / len(cb) if cb else math.nan,
    )


def overlap_curve(
    a: Sequence[Scores], b: Sequence[Scores], fractions: Sequence[float] = OVERLAP_FRACTIONS
) -> list[Overlap]:
    """:func:`task_overlap` at each threshold of ``fractions``."""
    return [task_overlap(a, b, f) for f in fractions]
