"""Direct logit attribution (DLA) of attention heads onto a task's logit-difference direction.

A head's output at the answer position, ``z_h @ W_O[h]``, is one additive term of the residual
stream the unembedding reads. Passed through the norms on its direct path with their scales held
fixed and dotted with ``W_U[:, answer] − W_U[:, wrong]`` (:func:`circuits.model.head_direct_logits`,
the direction :class:`~tasks.metrics.LogitDiff` reads), it gives the head's *direct* contribution
to the logit difference: the part that does not pass through any later layer. This module gives it
per task dataset, with rankings. Elhage et al. (2021, "A Mathematical Framework for Transformer Circuits"); Wang et al.
(2023, arXiv 2211.00593, §3: name movers by their direct effect); Lieberum et al. (2023,
arXiv 2307.09458: the "correct letter" heads of multiple-choice answering, found this way).

DLA is not a patching score: a head can write the direction and still have little total effect
(later heads compensate), or act only through later heads (DLA ≈ 0). It is read next to
activation patching, not instead of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import head_direct_logits, run_to_logits
from tasks import PromptPairDataset
from tasks.metrics import LogitDiff

__all__ = ["HeadAttribution", "direct_logit_attribution"]


@dataclass(frozen=True)
class HeadAttribution:
    """Direct contribution of every head to the logit difference, per example.

    Attributes:
        values: ``values[b, l, h]``: head ``LlHh``'s direct contribution on example ``b``.
        logit_diff: the model's logit difference on each example (the metric DLA decomposes).
    """

    values: Float[Tensor, "batch layer head"]
    logit_diff: Float[Tensor, " batch"]

    def mean(self) -> Float[Tensor, "layer head"]:
        """Mean contribution over examples."""
        return self.values.mean(0)

    def ranked(self) -> list[tuple[Node, float]]:
        """Heads by decreasing ``|mean contribution|``, with their mean contribution.

        Examples:
            >>> a = HeadAttribution(torch.tensor([[[0.5, -2.0], [1.0, 0.0]]]), torch.tensor([0.0]))
            >>> [(str(n), v) for n, v in a.ranked()[:2]]
            [('L0H1', -2.0), ('L1H0', 1.0)]
        """
        m = self.mean()
        flat = m.flatten().tolist()
        order = sorted(range(len(flat)), key=lambda i: -abs(flat[i]))
        n_heads = m.shape[1]
        return [(Node.of_head(i // n_heads, i % n_heads), flat[i]) for i in order]

    def of(self, node: Node) -> Float[Tensor, " batch"]:
        """One head's contribution on each example."""
        return self.values[:, node.layer, node.head or 0]


@torch.inference_mode()
def direct_logit_attribution(
    model: HookedTransformer, data: PromptPairDataset, *, corrupt: bool = False, batch_size: int = 32
) -> HeadAttribution:
    """Direct logit attribution of every head on the clean (or ``corrupt``) prompts of ``data``.

    The direction is the clean answer minus the wrong token (:func:`circuits.model.head_direct_logits`)
    in both cases, so on corrupt prompts a negative value means "pushes toward the corrupt answer".

    Raises:
        HeadgraphError: an example has more than one answer or wrong token (greater-than).
    """
    t = data.targets
    if bool((t.answers[:, 1:] >= 0).any()) or bool((t.wrong[:, 1:] >= 0).any()):
        raise HeadgraphError(f"direct logit attribution needs one answer and one wrong token per example ({data.task})")
    values, diffs = [], []
    for batch in data.batches(batch_size):
        tokens = batch.corrupt if corrupt else batch.clean
        pos, tg = batch.answer_pos, batch.targets
        values.append(head_direct_logits(model, tokens, pos, tg.answers[:, 0], tg.wrong[:, 0]))
        diffs.append(LogitDiff()(run_to_logits(model, tokens, pos), tg))
    return HeadAttribution(torch.cat(values), torch.cat(diffs))
