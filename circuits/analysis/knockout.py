"""Knocking out sets of heads: the task's metric and accuracy with the top-k heads ablated, against random heads.

A knockout ablates every position of each chosen head's output (``hook_z``) with
:class:`~circuits.interventions.AblateHead` and runs the clean prompts. ``MEAN`` ablation replaces a
head's output by its mean over the dataset's corrupt prompts and real positions (Wang et al. 2023,
arXiv 2211.00593, use per-template means; one mean per head is the simpler, coarser version);
``ZERO`` by zero. The control for "these heads matter" is the same number of heads drawn at random
(seeded) from the heads not ranked in the top k: if they hurt as much, the top-k ranking adds
nothing beyond "removing k heads hurts" (Wang et al.'s random-head baseline, §4).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from transformer_lens import HookedTransformer

from circuits.engine.ablation import Ablation, baseline, corrupt_means
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.interventions import AblateHead, intervene
from circuits.model import hook_z
from circuits.scores import Baseline
from tasks import PromptPairDataset
from tasks.metrics import Metric

__all__ = ["Knockout", "head_means", "knock_out", "knockout_heads"]


@torch.inference_mode()
def head_means(
    model: HookedTransformer, data: PromptPairDataset, batch_size: int = 32
) -> Float[torch.Tensor, "layer head d_head"]:
    """Every head's mean output (``hook_z``) over the corrupt prompts' real (unpadded) positions."""
    names = [hook_z(layer) for layer in range(model.cfg.n_layers)]
    means = corrupt_means(model, data, names, batch_size)
    return torch.stack([means[n] for n in names])


def knockout_heads(
    heads: Sequence[Node], ablation: Ablation, means: Float[torch.Tensor, "layer head d_head"] | None = None
) -> list[AblateHead]:
    """The interventions that ablate ``heads`` (``MEAN`` needs :func:`head_means`; ``RESAMPLE`` is not a knockout)."""
    if ablation is Ablation.RESAMPLE:
        raise HeadgraphError("a knockout is a zero or mean ablation; resample needs paired prompts (use patching)")
    if ablation is Ablation.MEAN and means is None:
        raise HeadgraphError("mean ablation needs the heads' means (head_means)")
    out = []
    for n in heads:
        if n.head is None:
            raise HeadgraphError(f"{n} is not a head")
        ref = means[n.layer, n.head] if ablation is Ablation.MEAN and means is not None else None
        out.append(AblateHead(n.layer, n.head, ablation, ref))
    return out


@dataclass(frozen=True)
class Knockout:
    """The clean-prompt metric with a set of heads knocked out.

    Attributes:
        heads: the heads ablated.
        result: metric and accuracy on the clean prompts with them ablated (``clean`` fields; the
            corrupt fields are the corrupt prompts under the same ablation).
        intact: the same without any ablation.
        control: the same with as many random heads outside the ranking's top (one per seed).
        control_heads: the heads of each control.
    """

    heads: tuple[Node, ...]
    result: Baseline
    intact: Baseline
    control: tuple[Baseline, ...]
    control_heads: tuple[tuple[Node, ...], ...] = ()

    @property
    def metric_drop(self) -> float:
        """How much knocking out the heads lowers the clean metric."""
        return self.intact.clean - self.result.clean

    @property
    def control_drop(self) -> float:
        """Mean drop of the random-head controls (NaN without controls)."""
        if not self.control:
            return float("nan")
        return self.intact.clean - sum(c.clean for c in self.control) / len(self.control)


def knock_out(
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    ranked: Sequence[Node],
    k: int,
    *,
    ablation: Ablation = Ablation.MEAN,
    means: Float[torch.Tensor, "layer head d_head"] | None = None,
    controls: int = 3,
    seed: int = 0,
    intact: Baseline | None = None,
    batch_size: int = 32,
) -> Knockout:
    """Knock out the first ``k`` heads of ``ranked``, and ``controls`` random sets of ``k`` other heads.

    Args:
        ranked: heads by decreasing importance (e.g. from activation patching).
        means: :func:`head_means` of ``data`` (computed when needed and not given).
        controls: random control sets, drawn with ``random.Random(seed + i)`` from the heads of the
            model not among the first ``k`` of ``ranked``.
        intact: the unablated baseline, when already computed.
    """
    if not 0 < k <= len(ranked):
        raise HeadgraphError(f"k must be between 1 and {len(ranked)}, got {k}")
    if ablation is Ablation.MEAN and means is None:
        means = head_means(model, data, batch_size)
    top = tuple(ranked[:k])
    if intact is None:
        intact = baseline(model, data, metric, batch_size)
    with intervene(model, *knockout_heads(top, ablation, means)):
        result = baseline(model, data, metric, batch_size)
    others = [
        Node.of_head(layer, h)
        for layer in range(model.cfg.n_layers)
        for h in range(model.cfg.n_heads)
        if Node.of_head(layer, h) not in top
    ]
    control, control_heads = [], []
    for i in range(controls):
        heads = tuple(random.Random(seed + i).sample(others, k))
        with intervene(model, *knockout_heads(heads, ablation, means)):
            control.append(baseline(model, data, metric, batch_size))
        control_heads.append(heads)
    return Knockout(top, result, intact, tuple(control), tuple(control_heads))
