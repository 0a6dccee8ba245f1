"""Checks of a discovery result before it is reported or saved: numbers that must not be written.

Two kinds of problem:

* **Errors** (:class:`~circuits.errors.HeadgraphError`): a non-finite clean or corrupt metric (e.g.
  weights that are damaged), an infinite score, or a clean − corrupt gap of zero (normalized scores
  are then undefined, and a "circuit" would be heads picked by index). No file is written.
* **Warnings** (strings, recorded in the head-graph file and shown by the CLI; ``--strict`` makes
  them errors): a degenerate baseline whose normalized scores do not mean what they say:

  - the corrupt prompts score at least as high as the clean ones (a negative gap flips every sign);
  - clean accuracy is not :data:`CHANCE_Z` binomial standard errors above the chance level of a
    random pick among the task's candidates (the task report's test, on the accuracy over the whole
    vocabulary, which never exceeds the candidate accuracy): the model cannot do the task, so the
    gap is a small bias (SmolLM2 on MCQA: 53 % with 2 options, gap 0.02);
  - one ablation moves the metric more than :data:`MAX_NORMALIZED` times the whole gap: the gap is
    too small to normalize by (normalized scores of −6 on MCQA).
"""

from __future__ import annotations

import math

import torch

from circuits.errors import HeadgraphError
from circuits.scores import Scores

__all__ = ["CHANCE_Z", "MAX_NORMALIZED", "result_warnings"]

CHANCE_Z = 2.0
"""Binomial standard errors above chance that clean accuracy needs not to be called "at chance"."""

MAX_NORMALIZED = 3.0
"""Largest plausible |normalized score|: one component moving the metric three times the whole gap."""


def result_warnings(scores: Scores, *, chance: float, n: int) -> tuple[str, ...]:
    """What is wrong with ``scores`` as a result, as one-line warnings (empty: nothing).

    Args:
        scores: a method's scores with their baseline.
        chance: mean chance accuracy of a random pick among each pair's candidates.
        n: the number of pairs the baseline was measured on.

    Raises:
        HeadgraphError: a non-finite baseline metric, an infinite score, or a zero gap.

    Examples:
        >>> from circuits.graph import ComponentGraph
        >>> from circuits.scores import Baseline, Level
        >>> g = ComponentGraph(1, 1, False, False)
        >>> s = Scores(g, Level.NODE, torch.full((len(g.nodes),), -0.5), "m", Baseline("logit-diff", 2.0, 0.0, 0.9))
        >>> result_warnings(s, chance=0.5, n=64)
        ()
    """
    b = scores.baseline
    for name, value in (("clean", b.clean), ("corrupt", b.corrupt)):
        if not math.isfinite(value):
            raise HeadgraphError(
                f"the {name} {b.metric} is {value}: the model's outputs are not finite (damaged weights or an "
                "overflow), so no scores can be trusted; nothing was written"
            )
    if bool(torch.isinf(scores.values).any()):
        raise HeadgraphError(f"{scores.method} produced infinite scores; nothing was written")
    gap = b.gap
    if gap == 0:
        raise HeadgraphError(
            f"clean and corrupt {b.metric} are equal ({b.clean:.4g}): there is no behaviour to explain and "
            "normalized scores are undefined (are the corrupt prompts the clean ones?); nothing was written"
        )
    out: list[str] = []
    if gap < 0:
        out.append(
            f"the corrupt prompts score higher than the clean ones ({b.metric} {b.corrupt:.3f} > {b.clean:.3f}): "
            "normalized scores have flipped signs"
        )
    if n > 0 and 0 < chance < 1 and not math.isnan(b.clean_accuracy):
        z = (b.clean_accuracy - chance) / math.sqrt(chance * (1 - chance) / n)
        if z < CHANCE_Z:
            out.append(
                f"clean accuracy {b.clean_accuracy:.1%} is at chance ({chance:.1%}; {z:+.1f} standard errors from it "
                f"on {n} pairs): the model does not do this task, so its circuit is noise"
            )
    values = scores.values[~torch.isnan(scores.values)]
    if len(values):
        largest = float(values.abs().max()) / abs(gap)
        if largest > MAX_NORMALIZED:
            out.append(
                f"the clean − corrupt gap ({gap:.4g}) is too small to normalize by: one ablation moves the "
                f"metric {largest:.1f} × the gap"
            )
    return tuple(out)
