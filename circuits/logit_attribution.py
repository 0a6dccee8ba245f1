"""Direct logit attribution (DLA) of attention heads onto a task's logit-difference direction.

A head's output at the answer position, ``z_h @ W_O[h]``, is one additive term of the residual
stream the unembedding reads. Passed through the final norm with the scale of the whole stream held
fixed (:func:`circuits.model.final_norm_frozen`) and dotted with the direction

    d = mean_{a ∈ answers} W_U[:, a] − mean_{w ∈ wrong} W_U[:, w]

(the direction :class:`~tasks.metrics.LogitDiff` reads), it gives the head's *direct* contribution to
the logit difference: the part that does not pass through any later layer. The contributions of all
components, plus the norm's bias and the unembedding bias, add up to the logit difference exactly
(tested). Elhage et al. (2021, "A Mathematical Framework for Transformer Circuits"); Wang et al.
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

from circuits.graph import Node
from circuits.model import (
    HookFn,
    embedding_weights,
    final_norm_frozen,
    head_weights,
    hook_final_scale,
    hook_z,
    logits_at,
    run_with_cache,
    with_hooks,
)
from tasks import PromptPairDataset, Targets
from tasks.metrics import LogitDiff

__all__ = ["HeadAttribution", "direct_logit_attribution", "logit_diff_directions"]


def logit_diff_directions(model: HookedTransformer, targets: Targets) -> Float[Tensor, "batch d_model"]:
    """Per example, the residual direction whose dot product with the normed stream is the logit difference
    (up to the unembedding bias): mean of the answers' unembedding columns minus mean of the wrong ones'."""
    w_u = embedding_weights(model).W_U.detach()  # (d_model, d_vocab)

    def mean_columns(ids: Tensor) -> Tensor:
        mask = (ids >= 0).to(w_u.dtype)  # (batch, k)
        cols = w_u[:, ids.clamp(min=0)]  # (d_model, batch, k)
        return (cols * mask).sum(-1).T / mask.sum(-1, keepdim=True).clamp(min=1)  # (batch, d_model)

    return mean_columns(targets.answers) - mean_columns(targets.wrong)


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

    The direction is the clean answers minus the wrong tokens (:func:`logit_diff_directions`) in both
    cases, so on corrupt prompts a negative value means "pushes toward the corrupt answer".
    """
    n_layers = model.cfg.n_layers
    has_norm = model.cfg.normalization_type is not None
    names = [hook_z(layer) for layer in range(n_layers)]
    w_o = torch.stack([head_weights(model, layer).W_O for layer in range(n_layers)])  # (layer, head, d_head, d_model)
    values, diffs = [], []
    for batch in data.batches(batch_size):
        tokens = batch.corrupt if corrupt else batch.clean
        pos = batch.answer_pos
        rows = torch.arange(len(batch), device=tokens.device)
        resid, cache = run_with_cache(model, tokens, names)
        z = torch.stack([cache[hook_z(layer)][rows, pos] for layer in range(n_layers)], 1)  # (b, layer, head, d_head)
        out = torch.einsum("blhe,lhed->blhd", z, w_o)  # each head's output at the answer position
        # The final norm runs only on the answer position (logits_at); its scale is captured there.
        scales: list[Tensor] = []
        grab: list[tuple[str, HookFn]] = [(hook_final_scale(), scales.append)] if has_norm else []
        with with_hooks(model, grab):
            logits = logits_at(model, resid, pos)
        scale = scales[0][:, :, None] if has_norm else None  # (b, 1, 1, 1)
        normed = final_norm_frozen(model, out, scale)
        direction = logit_diff_directions(model, batch.targets).to(normed)  # (b, d_model)
        values.append(torch.einsum("blhd,bd->blh", normed, direction))
        diffs.append(LogitDiff()(logits, batch.targets))
    return HeadAttribution(torch.cat(values), torch.cat(diffs))
