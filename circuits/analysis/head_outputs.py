"""Per-head attention outputs after ``W_O``, pooled to one ``d_model`` vector per (prompt, head).

O'Neill & Bui (2024, "Sparse autoencoders enable scalable and reliable circuit identification in
language models", arXiv 2405.12522) describe each head on each prompt by its output in the residual
stream, TransformerLens's ``hook_result`` (``z_h @ W_O[h]``, no ``b_O``), averaged over the prompt's
positions. The output is linear in ``z``, so pooling ``z`` first and multiplying by ``W_O`` once per
(prompt, head) gives the same vector as pooling ``hook_result``, without materialising the
``[batch, pos, head, d_model]`` tensor that ``hook_result`` needs. Positions after a prompt's end
(right padding) are left out of the mean. ``hook_z`` has one slot per *query* head, also under
grouped-query attention, so every query head gets its own vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.model import HookFn, hook_z, logits_at, output_weights, with_hooks

__all__ = ["HeadOutputs", "Pooling", "head_outputs"]


class Pooling(Enum):
    """How a head's outputs over a prompt's positions become one vector."""

    MEAN = "mean"  # mean over the unpadded positions (O'Neill & Bui)
    LAST = "last"  # the answer position only (the prompt's last token)


@dataclass(frozen=True)
class HeadOutputs:
    """Pooled head outputs and the answer-position logits of the same forward passes.

    Attributes:
        outputs: per prompt and head, the pooled output after ``W_O``; heads are layer-major
            (``head = layer · n_heads + h``, the order of ``ComponentGraph.heads``).
        logits: per prompt, the logits at its answer position (its last unpadded token).
    """

    outputs: Float[Tensor, "batch head d_model"]
    logits: Float[Tensor, "batch d_vocab"]


@torch.inference_mode()
def head_outputs(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    *,
    pooling: Pooling = Pooling.MEAN,
    batch_size: int = 32,
    progress: bool = False,
) -> HeadOutputs:
    """Every query head's output after ``W_O`` on each prompt, pooled over positions.

    Args:
        model: the model.
        tokens: right-padded prompts.
        lengths: number of real tokens per prompt; the answer is predicted at ``lengths - 1``.
        pooling: mean over the real positions, or the last real position only.
        batch_size: prompts per forward pass.
        progress: show a progress bar over the batches.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    outs: list[Tensor] = []
    logits: list[Tensor] = []
    starts = range(0, tokens.shape[0], batch_size)
    for start in tqdm(starts, desc="head outputs", unit="batch", disable=not progress):
        toks, lens = tokens[start : start + batch_size], lengths[start : start + batch_size]
        weights = _position_weights(lens, toks.shape[1], pooling).to(model.cfg.dtype)  # (b, pos)
        pooled: list[Tensor | None] = [None] * n_layers

        def keep(z: Tensor, layer: int, weights: Tensor = weights, pooled: list[Tensor | None] = pooled) -> None:
            pooled[layer] = torch.einsum("bphd,bp->bhd", z, weights)  # (b, head, d_head)

        hooks: list[tuple[str, HookFn]] = [
            (hook_z(layer), lambda z, layer=layer: keep(z, layer)) for layer in range(n_layers)
        ]
        with with_hooks(model, hooks):
            resid = model(toks, stop_at_layer=n_layers)
        z = torch.stack([p for p in pooled if p is not None], 1)  # (b, layer, head, d_head)
        out = torch.einsum("blhd,lhdm->blhm", z, output_weights(model))  # (b, layer, head, d_model)
        outs.append(out.reshape(out.shape[0], n_layers * n_heads, -1))
        logits.append(logits_at(model, resid, lens - 1))
    return HeadOutputs(outputs=torch.cat(outs), logits=torch.cat(logits))


def _position_weights(lengths: Int[Tensor, " batch"], width: int, pooling: Pooling) -> Float[Tensor, "batch pos"]:
    """Per-position pooling weights: uniform over the real tokens, or one-hot at the last.

    Examples:
        >>> _position_weights(torch.tensor([2, 3]), 3, Pooling.MEAN)
        tensor([[0.5000, 0.5000, 0.0000],
                [0.3333, 0.3333, 0.3333]])
        >>> _position_weights(torch.tensor([2, 3]), 3, Pooling.LAST)
        tensor([[0., 1., 0.],
                [0., 0., 1.]])
    """
    pos = torch.arange(width, device=lengths.device)[None, :]
    if pooling is Pooling.LAST:
        return (pos == lengths[:, None] - 1).float()
    valid = (pos < lengths[:, None]).float()
    return valid / valid.sum(1, keepdim=True)
