"""The ``positions`` setting of the gradient edge methods: position-blind or split over named task positions.

``--set positions=named`` on ``eap``, ``eap-ig`` and ``relp`` scores every edge per position label
(:mod:`circuits.discovery.positions`, Haklay et al. 2025, "Position-aware Automatic Circuit
Discovery", arXiv 2502.04577) and returns :class:`PositionScores`: ordinary position-blind
:class:`~circuits.scores.Scores` (each edge's score summed over labels, equal to the blind run's
score) that also carry the per-label scores. ``discover`` then selects the top-k (edge, position)
pairs (:func:`position_selection`) and the head-graph file stores them (``positions``, optional, so
older files still load). ``eap-ig-activations`` has no per-position variant: its interpolation is
per sender block and would need one run per (block, label); it refuses ``positions=named``
by having no such setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from circuits.engine.ablation import Ablation
from circuits.errors import HeadgraphError
from circuits.scores import Baseline, Circuit, Level, Scores

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from circuits.discovery.positions import PositionEdgeScores
    from tasks import PromptPairDataset
    from tasks.metrics import Metric

__all__ = ["EdgePositions", "PositionScores", "check_positions", "named_position_scores", "position_selection"]


class EdgePositions(Enum):
    """``blind``: one score per edge (summed over positions); ``named``: also one per position label."""

    BLIND = "blind"
    NAMED = "named"


@dataclass(frozen=True)
class PositionScores(Scores):
    """Position-blind edge :class:`~circuits.scores.Scores` that also hold the per-label scores.

    Attributes:
        by_position: the scores per position label (:class:`.positions.PositionEdgeScores`); its
            sum over labels equals ``values``.
    """

    by_position: PositionEdgeScores | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.by_position is None or self.by_position.values.shape[1] != len(self.graph.edges):
            raise HeadgraphError("position scores need one value per (label, edge) of the graph")


def check_positions(positions: EdgePositions, ablation: Ablation = Ablation.RESAMPLE) -> None:
    """Refuse a bad ``positions`` value, or ``positions=named`` with another ablation than resample."""
    if not isinstance(positions, EdgePositions):
        raise HeadgraphError(f"positions must be blind or named, got {positions!r}")
    if positions is EdgePositions.NAMED and ablation is not Ablation.RESAMPLE:
        raise HeadgraphError(f"positions=named needs ablation=resample, got ablation={ablation.value}")


def named_position_scores(
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    method: str,
    params: dict[str, Any],
    *,
    ig_steps: int = 1,
    batch_size: int = 32,
    relp_qk: Any = None,
) -> PositionScores:
    """Score ``data`` with ``method`` (``eap``, ``eap-ig``, ``relp``) per position label, as :class:`PositionScores`."""
    from circuits.discovery.positions import position_edge_scores
    from circuits.engine.ablation import baseline

    split = position_edge_scores(
        model, data, metric, method=method, ig_steps=ig_steps, batch_size=batch_size, relp_qk=relp_qk
    )
    base: Baseline = baseline(model, data, metric, batch_size)
    return PositionScores(
        graph=split.graph,
        level=Level.EDGE,
        values=split.blind(),
        method=method,
        baseline=base,
        params=params,
        seconds=split.seconds,
        by_position=split,
    )


def position_selection(scores: PositionScores, k: int) -> tuple[Circuit, dict[str, Any]]:
    """The top ``k`` (edge, position label) pairs by |score|: the circuit of their edges and the file's ``positions``.

    The circuit (not pruned) holds every edge kept at one label at least; ``positions`` is the
    JSON-ready record: the labels, the kept pairs (edge, label, score, normalized score), best first.
    """
    from circuits.discovery.position_circuits import top_pairs
    from circuits.selection import Ranking

    split = scores.by_position
    assert split is not None
    keep = top_pairs(split, min(k, split.values.numel()), Ranking.ABSOLUTE)
    labels, edges = keep.nonzero(as_tuple=True)
    vals = split.values[labels, edges].tolist()
    gap = scores.baseline.gap
    pairs = sorted(
        (
            (str(scores.graph.edges[e]), split.labels[lab], v, v / gap if gap else float("nan"))
            for lab, e, v in zip(labels.tolist(), edges.tolist(), vals, strict=True)
        ),
        key=lambda p: -abs(p[2]),
    )
    circuit = Circuit.from_items(
        scores.graph,
        [scores.graph.edges[e] for e in sorted(set(edges.tolist()))],
        {"rule": "top_k", "k": k, "ranking": "absolute", "over": "(edge, position) pairs"},
    )
    record = {"labels": list(split.labels), "pairs": [list(p) for p in pairs]}
    return circuit, record
