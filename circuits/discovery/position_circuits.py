"""Circuits of (edge, position) pairs: selection and faithfulness at position level.

Haklay et al. 2025 ("Position-aware Automatic Circuit Discovery", arXiv 2502.04577) keep an edge
at some positions of a templated prompt and not at others. Here a *position circuit* is a boolean
mask ``keep[label, edge]`` over the position labels of :func:`.positions.position_labels`
(a task's named positions, ``END``, ``other``): the edge u → v is kept at the positions with that
label and ablated at every other active position (v reads u's ablated output there; for a key or
value the position is the key position, as in the scores of :mod:`.positions`).

* :func:`top_pairs` selects the top-k (edge, label) pairs of :class:`.positions.PositionEdgeScores`
  (signed for CPR, by |score| for CMD, like the position-blind curves; no pruning of dangling edges).
* :class:`PositionRunner` evaluates a position circuit with the edge-ablation engine
  (:func:`circuits.engine.edge_ablation.ablated_logits` with per-label masks); a mask equal at
  every label is the position-blind circuit (tested exactly, and against a per-position brute force).
* :func:`position_report` gives MIB's CPR and CMD over the (edge, label) pairs: the circuit of
  fraction f keeps ``f · n_labels · n_edges`` pairs, the same pair budget as a position-blind circuit
  of ``f · n_edges`` edges (each kept at every label).
"""

from __future__ import annotations

import time

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from circuits.discovery.positions import PositionEdgeScores, position_labels
from circuits.engine.edge_ablation import AblationBatch, ablated_logits
from circuits.errors import HeadgraphError
from circuits.measures.faithfulness import (
    MIB_FRACTIONS,
    CircuitRunner,
    CurvePoint,
    CurveRule,
    FaithfulnessCurve,
    FaithfulnessReport,
    Selection,
)
from circuits.scores import Level
from circuits.selection import Ranking

__all__ = ["PositionRunner", "active_labels", "position_report", "top_pairs"]


def active_labels(prepared: AblationBatch) -> Int[Tensor, " n"]:
    """The position label index of each of ``prepared``'s active positions (engine order)."""
    _, labels = position_labels(prepared.batch)
    return labels[prepared.pos.rows, prepared.pos.cols + prepared.prefix.length]


def top_pairs(scores: PositionEdgeScores, k: int, ranking: Ranking) -> Bool[Tensor, "labels n_edges"]:
    """The ``k`` best (label, edge) pairs as a keep mask, ranked like :func:`circuits.selection.ranked`.

    Signed ranking puts the most negative score first (ablating it hurts the metric most); absolute
    ranking the largest |score|.

    Raises:
        HeadgraphError: ``k`` outside ``[0, labels · edges]``.
    """
    flat = scores.values.flatten()
    if not 0 <= k <= flat.numel():
        raise HeadgraphError(f"k must be in [0, {flat.numel()}], got {k}")
    key = flat.abs() if ranking is Ranking.ABSOLUTE else -flat
    key = torch.nan_to_num(key, nan=-torch.inf)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.topk(key, k).indices] = True
    return keep.view_as(scores.values)


class PositionRunner:
    """Mean metric of position circuits on one dataset.

    Wraps a :class:`~circuits.measures.faithfulness.CircuitRunner`.
    """

    def __init__(self, runner: CircuitRunner, n_labels: int) -> None:
        self.runner = runner
        self.n_labels = n_labels
        self.labels = [active_labels(p) for p in runner.batches]
        self._memo: dict[bytes, float] = {}

    @property
    def clean(self) -> float:
        """m(full): the clean metric."""
        return self.runner.clean

    @property
    def empty(self) -> float:
        """m(∅): every edge ablated at every position."""
        return self.runner.empty

    def metrics(self, keep: Bool[Tensor, "variants labels n_edges"]) -> Float[Tensor, "variants batch"]:
        """Per-example metric of each variant: edge e ablated at label l's positions where not ``keep[v, l, e]``."""
        r = self.runner
        if keep.ndim != 3 or keep.shape[1] != self.n_labels:
            raise HeadgraphError(f"keep must be (variants, {self.n_labels}, n_edges), got {tuple(keep.shape)}")
        out = []
        for p, labels in zip(r.batches, self.labels, strict=True):
            logits = ablated_logits(r.model, r.layout, p, ~keep, labels)
            v = keep.shape[0]
            out.append(r.metric(logits.flatten(0, 1), p.batch.targets.repeat(v)).view(v, -1))
        return torch.cat(out, dim=1)

    def metric_of(self, keep: Bool[Tensor, "labels n_edges"]) -> float:
        """Mean metric of one position circuit (memoized)."""
        key = keep.numpy().tobytes()
        if key not in self._memo:
            self._memo[key] = self.clean if bool(keep.all()) else float(self.metrics(keep[None])[0].double().mean())
        return self._memo[key]

    def faithfulness(self, keep: Bool[Tensor, "labels n_edges"]) -> float:
        """Normalized faithfulness ``(m(C) − m(∅)) / (m(full) − m(∅))``."""
        return (self.metric_of(keep) - self.empty) / (self.clean - self.empty)


def _curve(runner: PositionRunner, scores: PositionEdgeScores, ranking: Ranking) -> FaithfulnessCurve:
    n_items = scores.values.numel()
    points = []
    for f in MIB_FRACTIONS:
        k = int(f * n_items)
        keep = top_pairs(scores, k, ranking)
        m = runner.metric_of(keep)
        points.append(CurvePoint(f * 100, k, k, m, (m - runner.empty) / (runner.clean - runner.empty), f))
    return FaithfulnessCurve(
        ranking, Selection.TOP_K, Level.EDGE, tuple(points), runner.clean, runner.empty, CurveRule.MIB
    )


def position_report(runner: PositionRunner, scores: PositionEdgeScores) -> FaithfulnessReport:
    """MIB's signed (CPR) and absolute (CMD) curves over (edge, label) pairs of ``scores``.

    Raises:
        HeadgraphError: scores for another graph or with another number of labels than the runner's.
    """
    if scores.graph != runner.runner.graph or len(scores.labels) != runner.n_labels:
        raise HeadgraphError("position scores are for another graph or another set of position labels")
    start = time.perf_counter()
    curves = [_curve(runner, scores, r) for r in (Ranking.SIGNED, Ranking.ABSOLUTE)]
    return FaithfulnessReport(
        curves[0], curves[1], runner.runner.ablation, len(runner.runner.data), time.perf_counter() - start
    )
