"""Faithfulness of circuits: run the model with every edge outside the circuit ablated.

Definitions (Hanna, Pezzelle & Belinkov 2024; MIB circuit track, Mueller et al. 2025,
``MIB_circuit_track/evaluation.py``):

* m(C): the mean metric when every edge outside circuit C is ablated
  (:mod:`circuits.engine.edge_ablation`: a receiver reads the ablated output of every sender
  whose edge to it is not in C); m(full) is the clean metric, m(∅) the metric with every edge
  ablated (the corrupt metric under resample ablation).
* normalized faithfulness f(C) = (m(C) − m(∅)) / (m(full) − m(∅)).
* the curve: f of the top k % of the graph's edges (``int(k/100 · n_edges)`` edges, then pruned,
  so the kept count can be lower) for k in :data:`PERCENTAGES`; node scores give node circuits
  (k % of the scored nodes; unscored nodes such as MLPs are always kept).
* CPR = Σ trapezoids of f over the edge fraction (higher is better), from circuits ranked by
  signed score (:attr:`Ranking.SIGNED`); CMD = Σ trapezoids of |1 − f| (lower is better), from
  circuits ranked by |score|. The x axis is linear, as MIB's: 80 % of the area comes from circuits
  of 20 % of the edges or more (anchors-discovery.md §4.2).

Two rules for the curve (:class:`CurveRule`), selectable everywhere a curve is computed:

* ``HEADGRAPH`` (the default): sizes are percentages of the *scored* items,
  ``int(k/100 · n_scored)``, and the area uses ``k/100`` as x.
* ``MIB``: MIB's ``evaluate_area_under_curve`` to the letter. Sizes are the fractions
  :data:`MIB_FRACTIONS` of ``len(graph.edges)`` for edge scores (every edge, scored or not: MIB's
  graphs score all of them) or of the scored nodes for node scores, ``int(fraction · n)``; the
  area is the trapezoid rule over those raw fractions (:func:`mib_areas`), CPR from the signed
  ranking and CMD = area of |1 − f| from the absolute ranking. The two rules differ only where
  ``int`` rounds ``k/100 · n`` and ``fraction · n`` differently or where some edges are unscored.

Cost: the corrupt forward of each batch is shared by every circuit; each circuit then costs one
forward pass with per-head inputs and one batched product per block.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.engine.ablation import Ablation
from circuits.engine.edge_ablation import AblationBatch, ablated_logits, prepare_batch
from circuits.engine.edges import EdgeLayout, mean_sender_acts
from circuits.errors import HeadgraphError
from circuits.graph import ComponentGraph, Node
from circuits.model import PrefixGuard, check_edge_support, graph_of, run_to_logits
from circuits.scores import Circuit, Level, Scores
from circuits.selection import Ranking, edge_mask, greedy, top_k
from tasks import PromptPairDataset
from tasks.metrics import Metric

__all__ = [
    "MIB_FRACTIONS",
    "PERCENTAGES",
    "CircuitRunner",
    "CurvePoint",
    "CurveRule",
    "MIBAreas",
    "FaithfulnessCurve",
    "FaithfulnessReport",
    "Selection",
    "area",
    "evaluate_faithfulness",
    "faithfulness_curve",
    "mib_areas",
]

PERCENTAGES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
"""Circuit sizes of MIB's faithfulness curves, in percent of the graph's edges."""


MIB_FRACTIONS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""MIB's ``percentages`` tuple, as written in ``MIB_circuit_track/evaluation.py`` (fractions)."""


class CurveRule(Enum):
    """Whose definition of the curve's sizes and x axis (module docstring)."""

    HEADGRAPH = "headgraph"
    MIB = "mib"


@dataclass(frozen=True)
class MIBAreas:
    """What MIB's ``evaluate_area_under_curve`` returns besides the edge counts.

    Attributes:
        area_under: trapezoid area under f (CPR when the curve was ranked signed).
        area_from_1: trapezoid area of |1 − f| (CMD when ranked by absolute value).
        average: plain mean of the faithfulness values.
    """

    area_under: float
    area_from_1: float
    average: float


def mib_areas(
    faithfulnesses: Sequence[float], fractions: Sequence[float] = MIB_FRACTIONS, *, log_x: bool = False
) -> MIBAreas:
    """MIB's areas of one curve: trapezoids over consecutive ``fractions`` (natural log of x if ``log_x``).

    Examples:
        >>> a = mib_areas([0.0, 0.5, 1.0], [0.0, 0.5, 1.0])
        >>> a.area_under, a.area_from_1, a.average
        (0.5, 0.5, 0.5)
    """
    if len(faithfulnesses) != len(fractions):
        raise HeadgraphError(f"{len(faithfulnesses)} faithfulness values for {len(fractions)} circuit sizes")
    under = from_1 = 0.0
    for i in range(len(fractions) - 1):
        x1, x2 = fractions[i], fractions[i + 1]
        if log_x:
            x1, x2 = math.log(x1), math.log(x2)
        f1, f2 = faithfulnesses[i], faithfulnesses[i + 1]
        from_1 += (x2 - x1) * ((abs(1.0 - f1) + abs(1.0 - f2)) / 2)
        under += (x2 - x1) * ((f1 + f2) / 2)
    return MIBAreas(under, from_1, sum(faithfulnesses) / len(faithfulnesses))


class Selection(Enum):
    """How the circuit of each curve point is chosen from the scores."""

    TOP_K = "top-k"
    GREEDY = "greedy"


@dataclass(frozen=True)
class CurvePoint:
    """One circuit of a faithfulness curve.

    Attributes:
        percent: asked size, in percent of the scored items.
        asked: items asked for (``int(percent/100 · n)``).
        kept: items in the circuit after pruning (edges, or nodes for node scores).
        metric: mean metric with everything outside the circuit ablated.
        faithfulness: normalized faithfulness (module docstring).
        fraction: the x value of the area: ``percent/100``, or MIB's fraction as written.
    """

    percent: float
    asked: int
    kept: int
    metric: float
    faithfulness: float
    fraction: float = math.nan

    def x(self) -> float:
        """The point's x for the area (``fraction``, else ``percent/100``)."""
        return self.percent / 100 if math.isnan(self.fraction) else self.fraction


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Faithfulness over circuit sizes for one ranking of the scores.

    Attributes:
        ranking: signed (for CPR) or absolute (for CMD).
        selection: top-k or greedy.
        level: whether the sizes count edges or nodes.
        points: one per size, increasing.
        clean: m(full), the clean metric.
        empty: m(∅), the metric with every edge ablated.
        rule: headgraph's or MIB's sizes and x axis.
    """

    ranking: Ranking
    selection: Selection
    level: Level
    points: tuple[CurvePoint, ...]
    clean: float
    empty: float
    rule: CurveRule = CurveRule.HEADGRAPH

    def at(self, percent: float) -> CurvePoint:
        """The point of size ``percent``."""
        for p in self.points:
            if math.isclose(p.percent, percent):
                return p
        raise HeadgraphError(f"no curve point at {percent}% (points: {[p.percent for p in self.points]})")

    def area(self, *, from_one: bool = False) -> float:
        """Trapezoid area under f over the fraction of items (``from_one``: under |1 − f|)."""
        if self.rule is CurveRule.MIB:
            a = mib_areas([p.faithfulness for p in self.points], [p.x() for p in self.points])
            return a.area_from_1 if from_one else a.area_under
        xs = [p.x() for p in self.points]
        ys = [abs(1 - p.faithfulness) if from_one else p.faithfulness for p in self.points]
        return area(xs, ys)


def area(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Trapezoid rule, as MIB's ``evaluate_area_under_curve``.

    Examples:
        >>> area([0.0, 0.5, 1.0], [0.0, 1.0, 1.0])
        0.75
    """
    return sum((x2 - x1) * (y1 + y2) / 2 for x1, x2, y1, y2 in zip(xs, xs[1:], ys, ys[1:], strict=False))


@dataclass(frozen=True)
class FaithfulnessReport:
    """MIB's circuit-localization numbers for one set of scores.

    Attributes:
        signed: the curve of circuits ranked by signed score (CPR).
        absolute: the curve of circuits ranked by |score| (CMD).
        ablation: how edges outside the circuit were ablated.
        n_pairs: prompt pairs evaluated.
        seconds: wall time.
    """

    signed: FaithfulnessCurve
    absolute: FaithfulnessCurve
    ablation: Ablation
    n_pairs: int
    seconds: float = math.nan

    @property
    def cpr(self) -> float:
        """Area under the signed curve (higher is better; can exceed 1)."""
        return self.signed.area()

    @property
    def cmd(self) -> float:
        """Area between the absolute curve and 1 (lower is better; 0 is ideal)."""
        return self.absolute.area(from_one=True)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""

        def curve(c: FaithfulnessCurve) -> dict[str, object]:
            return {
                "ranking": c.ranking.value,
                "rule": c.rule.value,
                "selection": c.selection.value,
                "level": c.level.value,
                "clean": c.clean,
                "empty": c.empty,
                "points": [p.__dict__ for p in c.points],
            }

        return {
            "cpr": self.cpr,
            "cmd": self.cmd,
            "ablation": self.ablation.value,
            "n_pairs": self.n_pairs,
            "seconds": self.seconds,
            "signed": curve(self.signed),
            "absolute": curve(self.absolute),
        }


class CircuitRunner:
    """Evaluates many circuits on one dataset, sharing every batch's corrupt forward pass.

    Args:
        model: the model (edge support is checked).
        data: the prompt pairs.
        metric: the task metric.
        ablation: how edges outside a circuit are ablated.
        batch_size: prompts per forward pass.
    """

    def __init__(
        self,
        model: HookedTransformer,
        data: PromptPairDataset,
        metric: Metric,
        ablation: Ablation = Ablation.RESAMPLE,
        batch_size: int = 32,
    ) -> None:
        check_edge_support(model)
        self.model, self.data, self.metric, self.ablation = model, data, metric, ablation
        self.graph: ComponentGraph = graph_of(model)
        self.layout = EdgeLayout(self.graph)
        means = mean_sender_acts(model, data, batch_size, terms=True) if ablation is Ablation.MEAN else None
        guard = PrefixGuard()
        self.batches: list[AblationBatch] = [
            prepare_batch(model, b, ablation, means, guard) for b in data.batches(batch_size)
        ]
        with torch.inference_mode():
            clean = [
                metric(run_to_logits(model, p.batch.clean, p.batch.answer_pos), p.batch.targets) for p in self.batches
            ]
        self.clean = float(torch.cat(clean).double().mean())
        self._memo: dict[bytes, float] = {}
        self.empty = self.metric_of(torch.zeros(len(self.graph.edges), dtype=torch.bool))

    def metric_of(self, keep: Bool[Tensor, " n_edges"]) -> float:
        """Mean metric with every edge outside ``keep`` ablated (memoized per edge set)."""
        key = keep.numpy().tobytes()
        if key not in self._memo:
            if bool(keep.all()):
                self._memo[key] = self.clean
            else:
                self._memo[key] = float(self.metrics(keep[None])[0].double().mean())
        return self._memo[key]

    def metrics(self, keep: Bool[Tensor, "variants n_edges"]) -> Float[Tensor, "variants batch"]:
        """Per-example metric of each variant's circuit (edges outside ``keep[v]`` ablated)."""
        out = []
        for p in self.batches:
            logits = ablated_logits(self.model, self.layout, p, ~keep)  # (V, b, vocab)
            out.append(self.metric(logits.flatten(0, 1), p.batch.targets.repeat(keep.shape[0])).view(keep.shape[0], -1))
        return torch.cat(out, dim=1)

    def faithfulness(self, keep: Bool[Tensor, " n_edges"]) -> float:
        """Normalized faithfulness of the circuit ``keep``."""
        return (self.metric_of(keep) - self.empty) / (self.clean - self.empty)

    def circuit_faithfulness(self, circuit: Circuit, scores: Scores) -> float:
        """Normalized faithfulness of a circuit chosen from ``scores`` (node circuits keep unscored nodes)."""
        return self.faithfulness(edge_mask(circuit, scores.level, _unscored(scores)))


def faithfulness_curve(
    runner: CircuitRunner,
    scores: Scores,
    ranking: Ranking,
    *,
    selection: Selection = Selection.TOP_K,
    percentages: Sequence[float] = PERCENTAGES,
    progress: bool = True,
    rule: CurveRule = CurveRule.HEADGRAPH,
) -> FaithfulnessCurve:
    """f of the top ``k`` % of ``scores`` for each ``k`` (see the module docstring).

    Raises:
        HeadgraphError: another graph than the runner's; greedy selection of node scores; other
            sizes than MIB's with :attr:`CurveRule.MIB`.
    """
    if scores.graph != runner.graph:
        raise HeadgraphError(f"scores are for a {scores.graph} graph, the model's is {runner.graph}")
    if selection is Selection.GREEDY and scores.level is not Level.EDGE:
        raise HeadgraphError("greedy selection needs edge scores")
    n_scored = int((~torch.isnan(scores.values)).sum())
    if rule is CurveRule.MIB:
        if tuple(percentages) != PERCENTAGES:
            raise HeadgraphError("MIB's curve rule fixes the circuit sizes to MIB's ten; give no other percentages")
        n_items = len(scores.graph.edges) if scores.level is Level.EDGE else n_scored
        sizes = [(f * 100, int(f * n_items), f) for f in MIB_FRACTIONS]
    else:
        sizes = [(float(p), int(p / 100 * n_scored), math.nan) for p in percentages]
    always = _unscored(scores)
    points = []
    for percent, asked, fraction in tqdm(
        sizes, desc=f"faithfulness ({ranking.value})", unit="circuit", disable=not progress
    ):
        select = greedy if selection is Selection.GREEDY else top_k
        circuit = select(scores, asked, ranking)
        keep = edge_mask(circuit, scores.level, always)
        m = runner.metric_of(keep)
        kept = len(circuit.edges) if scores.level is Level.EDGE else len(circuit.nodes)
        f = (m - runner.empty) / (runner.clean - runner.empty)
        points.append(CurvePoint(percent, asked, kept, m, f, fraction))
    return FaithfulnessCurve(ranking, selection, scores.level, tuple(points), runner.clean, runner.empty, rule)


def evaluate_faithfulness(
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    scores: Scores,
    *,
    ablation: Ablation = Ablation.RESAMPLE,
    selection: Selection = Selection.TOP_K,
    percentages: Sequence[float] = PERCENTAGES,
    batch_size: int = 32,
    progress: bool = True,
    rule: CurveRule = CurveRule.HEADGRAPH,
) -> FaithfulnessReport:
    """Both MIB curves of ``scores`` (signed for CPR, absolute for CMD) on ``data``."""
    start = time.perf_counter()
    runner = CircuitRunner(model, data, metric, ablation, batch_size)
    curves = [
        faithfulness_curve(
            runner, scores, r, selection=selection, percentages=percentages, progress=progress, rule=rule
        )
        for r in (Ranking.SIGNED, Ranking.ABSOLUTE)
    ]
    return FaithfulnessReport(curves[0], curves[1], ablation, len(data), time.perf_counter() - start)


def _unscored(scores: Scores) -> frozenset[Node]:
    """Nodes a node-level method did not score (kept in every node circuit)."""
    if scores.level is not Level.NODE:
        return frozenset()
    nan = torch.isnan(scores.values).tolist()
    return frozenset(n for n, is_nan in zip(scores.graph.nodes, nan, strict=True) if is_nan)
