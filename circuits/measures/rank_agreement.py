"""How two head rankings agree: Spearman's rank correlation and top-k overlap of importance.

Used to compare a cheap head-importance score (Ships, Zhou et al. 2025) with exact activation
patching: both are :class:`~circuits.scores.Scores` over the same graph, importance ``|value|``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.errors import HeadgraphError
from circuits.scores import Scores

__all__ = ["RankAgreement", "average_ranks", "rank_agreement", "spearman"]


def average_ranks(x: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """Ranks from 1 (smallest) to n, ties given their average rank.

    Examples:
        >>> average_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist()
        [3.5, 1.0, 3.5, 2.0]
    """
    order = torch.argsort(x, stable=True)
    ranks = torch.empty(x.shape[0], dtype=torch.float64)
    ranks[order] = torch.arange(1, x.shape[0] + 1, dtype=torch.float64)
    for v in torch.unique(x):
        tied = x == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Float[Tensor, " n"], b: Float[Tensor, " n"]) -> float:
    """Spearman's rank correlation (Pearson on average ranks); NaN when either is constant.

    Examples:
        >>> round(spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0])), 6)
        0.5
    """
    if a.shape != b.shape or a.ndim != 1 or a.shape[0] < 2:
        raise HeadgraphError(f"spearman needs two equal-length vectors of 2+ values, got {a.shape}, {b.shape}")
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denom if denom > 0 else float("nan")


@dataclass(frozen=True)
class RankAgreement:
    """Agreement of two methods' head importances.

    Attributes:
        spearman: rank correlation of ``|value|`` over the heads both score.
        top_overlap: per ``k``, the share of one method's top-``k`` heads in the other's top ``k``.
        n_heads: heads compared.
    """

    spearman: float
    top_overlap: dict[int, float]
    n_heads: int


def rank_agreement(a: Scores, b: Scores, ks: tuple[int, ...] = (5, 10, 20)) -> RankAgreement:
    """Compare the head importances of ``a`` and ``b`` (node scores on the same graph)."""
    if a.graph.heads != b.graph.heads:
        raise HeadgraphError("the two scores are on different graphs")
    ia = a.head_matrix(normalized=False).flatten().abs()
    ib = b.head_matrix(normalized=False).flatten().abs()
    both = ~(ia.isnan() | ib.isnan())
    ia, ib = ia[both].double(), ib[both].double()
    overlap = {}
    for k in ks:
        if k <= ia.shape[0]:
            ta, tb = set(ia.argsort(descending=True)[:k].tolist()), set(ib.argsort(descending=True)[:k].tolist())
            overlap[k] = len(ta & tb) / k
    return RankAgreement(spearman(ia, ib), overlap, int(ia.shape[0]))
