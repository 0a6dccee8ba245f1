"""Where heads attend: full patterns of one prompt, and attention from the answer position to named tokens.

The pattern is TransformerLens's post-softmax ``hook_pattern`` (one per *query* head, also under
grouped-query attention). :func:`attention_to_positions` reads, for each example, the row of the
answer position (where the task's metric is read) at the task's named positions (IOI: ``IO``,
``S1``, ``S2``), the view Wang et al. (2023, arXiv 2211.00593, Fig. 3) use to tell name movers
(attend to IO) from S-inhibition heads. Attention to the first token is reported too, because many
heads park their attention there when they have nothing to do (Xiao et al. 2024, "attention sinks").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import hook_pattern, run_with_cache
from tasks import PromptPairDataset

__all__ = ["FIRST_TOKEN", "AttentionToPositions", "attention_to_positions", "head_patterns"]

FIRST_TOKEN = "first token"
"""Name of position 0 in :class:`AttentionToPositions` (BOS where the model prepends one)."""


def _check_heads(model: HookedTransformer, heads: Sequence[Node]) -> None:
    bad = [
        str(n)
        for n in heads
        if n.head is None or not (0 <= n.layer < model.cfg.n_layers and 0 <= n.head < model.cfg.n_heads)
    ]
    if bad or not heads:
        raise HeadgraphError(f"need heads of a {model.cfg.n_layers}×{model.cfg.n_heads} model, got {bad or 'none'}")


def _patterns(model: HookedTransformer, tokens: Int[Tensor, "batch pos"], heads: Sequence[Node]) -> Tensor:
    """``[batch, len(heads), q, k]`` patterns of the chosen heads."""
    layers = sorted({n.layer for n in heads})
    _, cache = run_with_cache(model, tokens, [hook_pattern(layer) for layer in layers])
    return torch.stack([cache[hook_pattern(n.layer)][:, n.head or 0] for n in heads], 1)


@torch.inference_mode()
def head_patterns(
    model: HookedTransformer, tokens: Int[Tensor, " pos"], heads: Sequence[Node]
) -> Float[Tensor, "head q k"]:
    """The attention patterns of ``heads`` (in the order given) on one prompt."""
    _check_heads(model, heads)
    return _patterns(model, tokens[None], heads)[0]


@dataclass(frozen=True)
class AttentionToPositions:
    """Attention of chosen heads from each example's answer position to named positions.

    Attributes:
        heads: the heads, in the order of ``weights``' second axis.
        names: the positions: :data:`FIRST_TOKEN`, then the dataset's named positions (sorted).
        weights: ``weights[b, i, j]``: attention of head ``heads[i]`` on example ``b`` to ``names[j]``.
    """

    heads: tuple[Node, ...]
    names: tuple[str, ...]
    weights: Float[Tensor, "batch head n_names"]

    def mean(self) -> Float[Tensor, "head n_names"]:
        """Mean over examples."""
        return self.weights.mean(0)

    def of(self, head: Node, name: str) -> float:
        """Mean attention of ``head`` to position ``name``.

        Examples:
            >>> a = AttentionToPositions((Node.of_head(0, 1),), ("IO", "S2"), torch.tensor([[[0.75, 0.25]]]))
            >>> a.of(Node.of_head(0, 1), "IO")
            0.75
        """
        return float(self.weights[:, self.heads.index(head), self.names.index(name)].mean())


@torch.inference_mode()
def attention_to_positions(
    model: HookedTransformer,
    data: PromptPairDataset,
    heads: Sequence[Node],
    *,
    corrupt: bool = False,
    batch_size: int = 32,
) -> AttentionToPositions:
    """Attention of ``heads`` from the answer position to the first token and every named position."""
    _check_heads(model, heads)
    names = (FIRST_TOKEN, *sorted(data.positions))
    out = []
    for batch in data.batches(batch_size):
        tokens = batch.corrupt if corrupt else batch.clean
        rows = torch.arange(len(batch), device=tokens.device)
        pattern = _patterns(model, tokens, heads)[rows, :, batch.answer_pos]  # (b, head, k)
        keys = torch.stack([torch.zeros_like(batch.answer_pos), *(batch.positions[n] for n in names[1:])], 1)
        out.append(pattern.gather(-1, keys[:, None, :].expand(-1, len(heads), -1)))
    return AttentionToPositions(tuple(heads), names, torch.cat(out))
