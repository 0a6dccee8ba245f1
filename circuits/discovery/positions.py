"""Position-aware edge scores: each edge's attribution split over a task's named positions.

Haklay et al. 2025 ("Position-aware Automatic Circuit Discovery", arXiv 2502.04577) score an edge
separately at each position of a templated prompt, so a circuit says *where* as well as *which*:
in IOI, a name mover at the final token reading the S2 token's S-inhibition output through its key
is a different edge from the same heads at another position. Here an edge's EAP (or EAP-IG, or RelP)
score, which is a sum over token positions of ``(a_u^ablated − a_u^clean) · ∂m/∂x_v`` at the same
position, is kept per position *label* instead of summed:

* a token at one of the dataset's named positions (:attr:`tasks.PromptPairDataset.positions`, e.g.
  IOI's ``IO``, ``S1``, ``S2``) gets that name;
* the answer position gets ``END`` (where the metric is read);
* every other token gets ``other``.

The position of an edge u → v is the residual-stream position where v reads u's output: for a
receiver's query and for an MLP, the position v computes at; for a key or value, the *key* position
(the head at a later query position reads it there: ``L9H6<k> @ S2`` is "at END, name mover
L9H6 reads S2's key"). The labels partition the positions, so the per-label scores of an edge sum
to its position-blind score exactly (tested).

:func:`top_position_edges` lists the strongest (edge, position) pairs. The registered methods'
``positions=named`` setting is :mod:`.position_setting`; selection and faithfulness at position
level (an edge ablated at some positions only) are :mod:`.position_circuits`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.discovery.eap import dense_scores, gradient_run
from circuits.engine.ablation import Ablation, check_positive
from circuits.engine.edges import ActivePositions, EdgeLayout, corrupt_run, prefix_length
from circuits.errors import HeadgraphError
from circuits.graph import ComponentGraph, Edge
from circuits.model import (
    HookFn,
    PrefixGuard,
    check_edge_support,
    embeddings,
    graph_of,
    head_term_weights,
    receiver_inputs,
)
from tasks import PromptPairDataset
from tasks.metrics import Metric

__all__ = ["END", "OTHER", "PositionEdgeScores", "position_edge_scores", "position_labels", "top_position_edges"]

END = "END"
"""The label of each example's answer position."""
OTHER = "other"
"""The label of every position that is neither named nor the answer position."""


def position_labels(batch: PromptPairDataset) -> tuple[tuple[str, ...], Int[Tensor, "batch pos"]]:
    """The label names (named positions sorted, then ``END`` and ``other``) and each token's label index.

    The answer position is ``END`` even where a named position falls on it.

    Examples:
        >>> from tests.helpers.data import random_dataset
        >>> import dataclasses, torch
        >>> d = dataclasses.replace(random_dataset(n=1, length=4), positions={"S": torch.tensor([1])})
        >>> names, idx = position_labels(d)
        >>> names, idx.tolist()
        (('S', 'END', 'other'), [[2, 0, 2, 1]])
    """
    names = (*sorted(batch.positions), END, OTHER)
    b, width = batch.clean.shape
    out = torch.full((b, width), len(names) - 1, dtype=torch.long, device=batch.clean.device)
    rows = torch.arange(b, device=batch.clean.device)
    for i, name in enumerate(names[:-2]):
        out[rows, batch.positions[name]] = i
    out[rows, batch.answer_pos] = len(names) - 2
    return names, out


@dataclass(frozen=True)
class PositionEdgeScores:
    """Edge scores per position label, averaged over examples like :class:`~circuits.scores.Scores`.

    Attributes:
        graph: the graph scored.
        labels: the position labels (:func:`position_labels`).
        values: ``values[l, e]``: edge ``e``'s score at positions labelled ``labels[l]``.
        method: ``eap``, ``eap-ig`` or ``relp``.
        seconds: wall time.
    """

    graph: ComponentGraph
    labels: tuple[str, ...]
    values: Float[Tensor, "labels n_edges"]
    method: str
    seconds: float

    def blind(self) -> Float[Tensor, " n_edges"]:
        """The position-blind score of every edge (the sum over labels)."""
        return self.values.sum(0)


def position_edge_scores(
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    *,
    method: str = "eap-ig",
    ig_steps: int = 5,
    batch_size: int = 32,
    relp_qk: object = None,
) -> PositionEdgeScores:
    """EAP, EAP-IG (inputs) or RelP edge scores split over ``data``'s position labels (resample ablation).

    ``relp_qk``: RelP's :class:`~.relp.QKRule` (default ``local``).

    Raises:
        HeadgraphError: an unknown ``method``, a non-positive setting, or a dataset without named positions.
    """
    from circuits.discovery.relp import relevance_hooks

    check_positive(ig_steps=ig_steps, batch_size=batch_size)
    if method not in ("eap", "eap-ig", "relp"):
        raise HeadgraphError(f"position-aware scores are for eap, eap-ig or relp, got {method!r}")
    if not data.positions:
        raise HeadgraphError(f"task {data.task!r} has no named positions to split edges over")
    check_edge_support(model)
    start = time.perf_counter()
    graph = graph_of(model)
    layout = EdgeLayout(graph)
    steps = ig_steps if method == "eap-ig" else 1
    from circuits.discovery.relp import QKRule

    qk = relp_qk if isinstance(relp_qk, QKRule) else QKRule.LOCAL
    hooks = relevance_hooks(model, qk) if method == "relp" else []
    names, _ = position_labels(data)
    total = torch.zeros(len(names), layout.n_senders, layout.n_receivers, dtype=torch.float64)
    guard = PrefixGuard()
    for batch in data.batches(batch_size):
        total += _batch(model, layout, batch, metric, steps, hooks, guard, len(names))
    values = layout.to_edges(total) / len(data)
    return PositionEdgeScores(graph, names, values.float(), method, time.perf_counter() - start)


def _batch(
    model: HookedTransformer,
    layout: EdgeLayout,
    batch: PromptPairDataset,
    metric: Metric,
    steps: int,
    hooks: Sequence[tuple[str, HookFn]],
    guard: PrefixGuard,
    n_labels: int,
) -> Float[Tensor, "labels senders receivers"]:
    """Summed dense scores of one batch, one matrix per position label (as :func:`.eap._batch_scores`)."""
    _, labels = position_labels(batch)
    with receiver_inputs(model, split_qkv=False):
        prefix = guard.prefix(model, batch.clean, prefix_length(batch, Ablation.RESAMPLE), batch.answer_pos)
        absolute = ActivePositions.of(batch, from_first_difference=True)
        pos = absolute.shift(prefix.length)
        corrupt = corrupt_run(model, batch, pos, Ablation.RESAMPLE, None, prefix, terms=True)
        clean_embed = embeddings(model, batch.clean)[:, prefix.length :]
        grads: Tensor | None = None
        for k in range(1, steps + 1):
            embed = clean_embed if k == steps else corrupt.embed + (k / steps) * (clean_embed - corrupt.embed)
            run = gradient_run(model, layout, batch, pos, metric, embed, prefix, hooks)
            grads = run.grads if grads is None else grads.add_(run.grads)
    assert grads is not None
    grads /= steps
    w_o = [head_term_weights(model, layer) for layer in range(model.cfg.n_layers)]
    diff = corrupt.ablated.minus(run.acts).dense(layout, w_o)
    of = labels[absolute.rows, absolute.cols]  # label of each active position
    out = torch.zeros(n_labels, layout.n_senders, layout.n_receivers, dtype=torch.float64)
    for label in of.unique().tolist():
        keep = of == label
        out[label] = dense_scores(layout, diff[:, keep].contiguous(), grads[:, keep].contiguous()).double().cpu()
    return out


def top_position_edges(scores: PositionEdgeScores, k: int = 10) -> list[tuple[Edge, str, float]]:
    """The ``k`` (edge, position label, score) triples of largest |score|."""
    flat = scores.values.abs().flatten()
    top = torch.topk(torch.nan_to_num(flat), min(k, flat.numel())).indices
    n = scores.values.shape[1]
    return [
        (scores.graph.edges[int(i) % n], scores.labels[int(i) // n], float(scores.values.flatten()[int(i)]))
        for i in top
    ]
