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
    sums = BaselineSums()
    acc = Accuracy()
    for b in data.batches(batch_size):
        for add, tokens in ((sums.add_clean, b.clean), (sums.add_corrupt, b.corrupt)):
            logits = run_to_logits(model, tokens, b.answer_pos)
            add(metric(logits, b.targets), acc(logits, b.targets))
    return sums.baseline(metric.name, len(data))


class BaselineSums:
    """Running float64 sums of the clean and corrupt metric and accuracy: the baseline every method reports.

    One accumulator instead of a positional ``zeros(4)`` in each method (slot order: clean metric,
    corrupt metric, clean accuracy, corrupt accuracy, as :func:`circuits.discovery.base.summed_scores`
    reads it).

    Examples:
        >>> s = BaselineSums()
        >>> t = torch.tensor
        >>> s.add(t([1.0, 3.0]), t([0.0, 1.0]), t([1.0, 1.0]), t([0.0, 0.0]))
        >>> s.baseline("m", 2)
        Baseline(metric='m', clean=2.0, corrupt=0.5, clean_accuracy=1.0, corrupt_accuracy=0.0)
    """

    def __init__(self) -> None:
        self.sums = torch.zeros(4, dtype=torch.float64)

    def add(self, clean_metric: Tensor, corrupt_metric: Tensor, clean_acc: Tensor, corrupt_acc: Tensor) -> None:
        """Add one batch's per-example values."""
        parts = (clean_metric, corrupt_metric, clean_acc, corrupt_acc)
        self.sums += torch.stack([x.double().sum() for x in parts]).cpu()

    def add_clean(self, metric: Tensor, accuracy: Tensor) -> None:
        """Add one batch's clean-run metric and accuracy."""
        self.sums[0] += metric.double().sum().cpu()
        self.sums[2] += accuracy.double().sum().cpu()

    def add_corrupt(self, metric: Tensor, accuracy: Tensor) -> None:
        """Add one batch's corrupt-run metric and accuracy."""
        self.sums[1] += metric.double().sum().cpu()
        self.sums[3] += accuracy.double().sum().cpu()

    def baseline(self, metric: str, n: int) -> Baseline:
        """The mean over ``n`` examples."""
        m = (self.sums / n).tolist()
        return Baseline(metric, clean=m[0], corrupt=m[1], clean_accuracy=m[2], corrupt_accuracy=m[3])
