"""The ablation vocabulary every intervention shares: what replaces a component's clean activation.

Used by the discovery methods, faithfulness, knock-outs, interventions, repair edits and planted
ground truth alike (auto-circuit's lesson: every ablation type named in one Enum).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.model import run_to_logits, run_with_cache
from circuits.scores import Baseline
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = ["Ablation", "baseline", "check_ablation", "check_positive", "corrupt_means"]


class Ablation(Enum):
    """What replaces a component's clean activation when it is ablated.

    * ``RESAMPLE``: its activation on the paired corrupt prompt (the default; "patching").
    * ``MEAN``: its mean activation over the corrupt prompts of the dataset, over examples and
      (unpadded) positions.
    * ``ZERO``: zero.
    """

    RESAMPLE = "resample"
    MEAN = "mean"
    ZERO = "zero"


def check_positive(**values: int) -> None:
    """Raise :class:`HeadgraphError` naming the first setting that is not a positive integer."""
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise HeadgraphError(f"{name} must be a positive integer, got {v!r}")


def check_ablation(ablation: object) -> None:
    """Raise :class:`HeadgraphError` unless ``ablation`` is an :class:`Ablation`."""
    if not isinstance(ablation, Ablation):
        raise HeadgraphError(f"ablation must be an Ablation, got {ablation!r}")


@torch.inference_mode()
def corrupt_means(
    model: HookedTransformer,
    data: PromptPairDataset,
    names: Sequence[str],
    batch_size: int,
    transform: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> dict[str, Tensor]:
    """The mean of each hooked activation over the corrupt prompts' real (unpadded) tokens.

    ``transform`` maps each batch's cache before averaging (e.g. outputs to residual-stream terms).
    Means are accumulated in float64 and returned in the model's dtype, one entry per cache entry.
    """
    sums: dict[str, Tensor] = {}
    count = 0
    for batch in data.batches(batch_size):
        _, cache = run_with_cache(model, batch.corrupt, list(names))
        cache = transform(cache) if transform is not None else cache
        valid = torch.arange(batch.corrupt.shape[1], device=batch.corrupt.device)[None] < batch.lengths[:, None]
        count += int(valid.sum())
        for name, act in cache.items():
            s = act[valid].double().sum(0)
            sums[name] = sums[name] + s if name in sums else s
    return {name: (s / count).to(model.cfg.dtype) for name, s in sums.items()}


@torch.inference_mode()
def baseline(model: HookedTransformer, data: PromptPairDataset, metric: Metric, batch_size: int = 32) -> Baseline:
    """Mean metric and accuracy on the clean and the corrupt prompts."""
    sums = torch.zeros(4, dtype=torch.float64)
    acc = Accuracy()
    for b in data.batches(batch_size):
        for i, tokens in enumerate((b.clean, b.corrupt)):
            logits = run_to_logits(model, tokens, b.answer_pos)
            sums[i] += metric(logits, b.targets).double().sum()
            sums[2 + i] += acc(logits, b.targets).double().sum()
    m = (sums / len(data)).tolist()
    return Baseline(metric.name, clean=m[0], corrupt=m[1], clean_accuracy=m[2], corrupt_accuracy=m[3])
