"""Counting the discrete codes that only positive prompts show (O'Neill & Bui 2024, arXiv 2405.12522).

Given the code of every (prompt, head) on positive prompts (the model does the task) and on
negative ones (it cannot), the paper scores

* a head by the number of distinct codes it shows on some positive prompt and on no negative
  prompt (``src/node.py``: ``len(set(pos) - set(neg))``);
* a pair of heads ``(h1, h2)`` by the number of distinct code pairs ``(c1, c2)`` that co-occur on
  some positive prompt and on no negative prompt (``src/edge.py``); the pair count is symmetric;
* and, for its "edge" node ranking, a head by how often it is an endpoint of the highest-scoring
  pairs (:func:`pair_endpoint_counts`).

All three are exact set computations done with ``torch.unique`` on combined integer keys, so a
270-head model's 72,900 head pairs cost one sort, not a Python loop.
"""

from __future__ import annotations

import torch
from jaxtyping import Int
from torch import Tensor

from saes.errors import SAEError
from saes.head_saes import NO_CODE

__all__ = ["pair_endpoint_counts", "unique_code_counts", "unique_pair_counts"]


def unique_code_counts(
    positives: Int[Tensor, "n_pos head"], negatives: Int[Tensor, "n_neg head"]
) -> Int[Tensor, " head"]:
    """Per head, the number of distinct codes seen on positives and never on negatives.

    Examples:
        >>> pos = torch.tensor([[0, 5], [1, 5], [2, 5]])
        >>> neg = torch.tensor([[0, 5], [0, 6]])
        >>> unique_code_counts(pos, neg)  # head 0: {1, 2}; head 1: nothing new
        tensor([2, 0])
    """
    n_heads, base = _check(positives, negatives)
    heads = torch.arange(n_heads, device=positives.device)
    pos_keys = torch.unique(heads * base + (positives - NO_CODE))
    neg_keys = torch.unique(heads * base + (negatives - NO_CODE))
    only_pos = pos_keys[~torch.isin(pos_keys, neg_keys)]
    return torch.bincount(only_pos // base, minlength=n_heads)


def unique_pair_counts(
    positives: Int[Tensor, "n_pos head"], negatives: Int[Tensor, "n_neg head"]
) -> Int[Tensor, "head head"]:
    """Per ordered pair of distinct heads, the number of distinct code pairs seen only on positives.

    Entry ``[h1, h2]`` counts the pairs ``(c1, c2)`` with ``code[p, h1] = c1`` and
    ``code[p, h2] = c2`` on some positive prompt ``p`` and on no negative prompt. The matrix is
    symmetric; the diagonal is zero.

    Examples:
        >>> pos = torch.tensor([[0, 1, 7], [1, 1, 7]])
        >>> neg = torch.tensor([[0, 1, 7], [1, 0, 7]])
        >>> unique_pair_counts(pos, neg)  # only (head 0 = 1, head 1 = 1) is new
        tensor([[0, 1, 0],
                [1, 0, 0],
                [0, 0, 0]])
    """
    n_heads, base = _check(positives, negatives)
    pair = torch.arange(n_heads * n_heads, device=positives.device).view(n_heads, n_heads)

    def keys(codes: Tensor) -> Tensor:
        c = codes - NO_CODE  # (n, head), non-negative
        joint = c[:, :, None] * base + c[:, None, :]  # (n, head, head): the code pair of (h1, h2)
        return torch.unique(pair * (base * base) + joint)

    pos_keys, neg_keys = keys(positives), keys(negatives)
    only_pos = pos_keys[~torch.isin(pos_keys, neg_keys)]
    counts = torch.bincount(only_pos // (base * base), minlength=n_heads * n_heads).view(n_heads, n_heads)
    return counts.fill_diagonal_(0)


def pair_endpoint_counts(pair_counts: Int[Tensor, "head head"], keep: int | None = None) -> Int[Tensor, " head"]:
    """How often each head is an endpoint of the ``keep`` highest-scoring head pairs.

    The paper's "edge" node ranking (``src/edge.py``): unordered pairs sorted by decreasing count
    (ties by index), the first ``keep`` taken, each of its two heads credited once. The default
    ``keep`` is the paper's ``n_heads² // 4`` pairs (``n_heads² // 2`` endpoints). Pairs with a
    zero count are never credited.

    Examples:
        >>> c = torch.tensor([[0, 3, 1], [3, 0, 0], [1, 0, 0]])
        >>> pair_endpoint_counts(c, keep=1)
        tensor([1, 1, 0])
        >>> pair_endpoint_counts(c)
        tensor([2, 1, 1])
    """
    n_heads = pair_counts.shape[0]
    if keep is None:
        keep = n_heads * n_heads // 4
    rows, cols = torch.triu_indices(n_heads, n_heads, offset=1, device=pair_counts.device)
    values = pair_counts[rows, cols]
    order = torch.sort(-values, stable=True).indices[:keep]
    order = order[values[order] > 0]
    return torch.bincount(torch.cat([rows[order], cols[order]]), minlength=n_heads)


def _check(positives: Tensor, negatives: Tensor) -> tuple[int, int]:
    """Number of heads and the key base (codes are shifted by ``-NO_CODE`` to be non-negative)."""
    if positives.ndim != 2 or negatives.ndim != 2 or positives.shape[1] != negatives.shape[1]:
        raise SAEError(f"codes must be [prompts, head] with the same heads, got {tuple(positives.shape)} "
                       f"and {tuple(negatives.shape)}")  # fmt: skip
    both = torch.cat([positives.flatten(), negatives.flatten()])
    if both.numel() and int(both.min()) < NO_CODE:
        raise SAEError(f"codes must be latent indices or NO_CODE ({NO_CODE}), got {int(both.min())}")
    return int(positives.shape[1]), int(both.max()) - NO_CODE + 1 if both.numel() else 1
