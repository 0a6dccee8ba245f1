"""A planted model for the SAE methods: only the :data:`LIVE` heads write, and only on marked prompts."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

from circuits.graph import Node
from tasks import PromptPair, PromptPairDataset, Targets
from tests.helpers.models import TinyFactory

MARK, OTHER = 7, 9
"""Token that every clean prompt has at position 2, and its replacement in the corrupt prompts."""

FAST = {"d_sae": 16, "epochs": 200, "lr": 1e-2, "train_prompts": 10}
"""SAE settings that train in well under a second on tiny models."""


LIVE = (Node.of_head(0, 1), Node.of_head(1, 2))
"""The only heads whose ``W_O`` is not zero in :func:`planted`."""


def planted(tiny_model: TinyFactory) -> HookedTransformer:
    """Two attention-only layers in which only the :data:`LIVE` heads write anything (``W_O = 0``
    elsewhere), and they read only a direction ``u`` that nothing but token MARK writes.

    ``u`` is orthogonal to the all-ones vector, so LayerNorm's centring adds no ``u`` component:
    on prompts without MARK every head writes (numerically) zero, on prompts with it the live heads
    write large vectors.
    """
    model = tiny_model(n_layers=2, attn_only=True)
    d = model.cfg.d_model
    g = torch.Generator().manual_seed(1)
    u = torch.randn(d, generator=g)
    u = torch.nn.functional.normalize(u - u.mean(), dim=0)  # unit, orthogonal to ones

    def without_u(w: torch.Tensor) -> torch.Tensor:
        return w - (w @ u)[..., None] * u

    with torch.no_grad():
        model.W_E.copy_(without_u(model.W_E))
        model.W_E[MARK] += 30 * u
        model.W_pos.copy_(without_u(model.W_pos))
        for layer, block in enumerate(model.blocks):
            block.attn.b_O.copy_(without_u(block.attn.b_O))
            for h in range(model.cfg.n_heads):
                if Node.of_head(layer, h) in LIVE:
                    w = block.attn.W_V[h]  # (d_model, d_head): keep only what it reads along u
                    block.attn.W_V[h] = u[:, None] * (u @ w)[None, :] * 10
                else:
                    block.attn.W_O[h] = 0
    return model


def marked_dataset(n: int = 16, length: int = 6, seed: int = 0) -> PromptPairDataset:
    """Random prompts that differ only at position 2: MARK in the clean, OTHER in the corrupt one."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(10, 50, (n, length), generator=g)
    clean[:, 2] = MARK
    corrupt = clean.clone()
    corrupt[:, 2] = OTHER
    targets = Targets(torch.full((n, 1), 11), torch.full((n, 1), 12), torch.tensor([[11, 12]] * n))
    pairs = tuple(PromptPair(f"clean {i}", f"corrupt {i}", ("a",), ("b",), ("a", "b")) for i in range(n))
    return PromptPairDataset("marked", seed, "none", pairs, clean, corrupt, torch.full((n,), length), targets, {})
