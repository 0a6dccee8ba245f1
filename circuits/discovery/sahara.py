"""Sahara: greedy dataset-level head attribution by subspace-angle shift (Zhou et al. 2025).

From the authors' ``lib/Sahara/attribution.py`` (github.com/ydyjya/SafetyHeadAttribution,
arXiv 2410.13708). The representation matrix ``H`` stacks the last-layer hidden state (after the
final norm) at the answer position of ``N`` prompts (``N × d_model``). Its top singular direction
is the dataset's dominant representation direction. Greedily, ``steps`` times: for every head not yet
chosen, ablate the chosen heads plus that head (query × ``ε``, :class:`~circuits.interventions.ScaleQuery`)
and measure the angle between the top singular directions of ``H_base`` and the ablated ``H``; add
the head with the largest shift.

Each step costs one forward of the prompts per remaining head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.interventions import ScaleQuery, intervene
from tasks import PromptPairDataset

__all__ = ["SAHARA_EPS", "SaharaResult", "representations", "sahara", "subspace_angle"]

SAHARA_EPS = 1e-5
"""Query scale of Sahara's ablation (the authors' value)."""


def subspace_angle(a: Float[Tensor, "n d"], b: Float[Tensor, "n d"]) -> float:
    """Angle in degrees between the top right-singular directions of ``a`` and ``b`` (sign-free).

    Examples:
        >>> x = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
        >>> subspace_angle(x, x), round(subspace_angle(x, torch.tensor([[0.0, 1.0], [0.0, 3.0]])), 6)
        (0.0, 90.0)
    """
    ua = torch.linalg.svd(a.double(), full_matrices=False).Vh[0]
    ub = torch.linalg.svd(b.double(), full_matrices=False).Vh[0]
    cos = float((ua @ ub).abs().clamp(max=1.0))
    return 0.0 if cos >= 1.0 - 1e-15 else math.degrees(math.acos(cos))


@torch.inference_mode()
def representations(
    model: HookedTransformer, data: PromptPairDataset, heads: list[Node], eps: float = SAHARA_EPS
) -> Float[Tensor, "batch d_model"]:
    """Normalised last-layer hidden state at each clean prompt's answer position, ``heads`` ablated."""
    edits = [ScaleQuery(h.layer, h.head, eps) for h in heads if h.head is not None]
    rows = []
    for b in data.batches(32):
        with intervene(model, *edits):
            resid = model(b.clean, stop_at_layer=model.cfg.n_layers)
        picked = resid[torch.arange(len(b)), b.answer_pos][:, None]
        if hasattr(model, "ln_final"):
            picked = model.ln_final(picked)
        rows.append(picked[:, 0].double())
    return torch.cat(rows)


@dataclass(frozen=True)
class SaharaResult:
    """The greedily chosen heads and the angle shift after each was added.

    Attributes:
        heads: in the order chosen.
        shifts: angle (degrees) with the chosen heads so far ablated, per step.
        candidates: per step, every candidate head's angle (``[layer, head]``, NaN for chosen heads).
    """

    heads: tuple[Node, ...]
    shifts: tuple[float, ...]
    candidates: tuple[Float[Tensor, "layer head"], ...]


def sahara(model: HookedTransformer, data: PromptPairDataset, steps: int = 3, eps: float = SAHARA_EPS) -> SaharaResult:
    """Greedy search of ``steps`` heads by subspace-angle shift (module docstring)."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if not isinstance(steps, int) or not 0 < steps <= n_layers * n_heads:
        raise HeadgraphError(f"steps must be a positive integer of at most {n_layers * n_heads}, got {steps!r}")
    if len(data) < 2:
        raise HeadgraphError("Sahara needs at least 2 prompts for a representation subspace")
    base = representations(model, data, [], eps)
    chosen: list[Node] = []
    shifts: list[float] = []
    grids: list[Tensor] = []
    for _ in range(steps):
        grid = torch.full((n_layers, n_heads), math.nan, dtype=torch.float64)
        for layer in range(n_layers):
            for h in range(n_heads):
                node = Node.of_head(layer, h)
                if node not in chosen:
                    grid[layer, h] = subspace_angle(base, representations(model, data, [*chosen, node], eps))
        best = int(grid.nan_to_num(-1.0).flatten().argmax())
        chosen.append(Node.of_head(best // n_heads, best % n_heads))
        shifts.append(float(grid.flatten()[best]))
        grids.append(grid)
    return SaharaResult(tuple(chosen), tuple(shifts), tuple(grids))
