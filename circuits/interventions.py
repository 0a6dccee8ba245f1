"""Interventions on heads and attention, applied through scoped, exception-safe hooks.

Each intervention is a frozen dataclass describing an edit; :func:`intervene` attaches the hooks of
one or several of them for the duration of a ``with`` block and removes exactly those hooks on exit,
also after an exception. Edits on the same activation compose in the order given.

Edits:
  * :class:`AblateHead`: replace a head's output (``hook_z``) by zero, a mean, or another run's value.
  * :class:`ScaleHead`: multiply a head's output by a factor.
  * :class:`SteerHead`: LoFiT-style (Yin et al. 2024, arXiv 2406.01563) ``z' = (1 + a) ⊙ z + v`` on the
    head's output before ``W_O``.
  * :class:`ForceAttention`: overwrite a head's post-softmax attention from one query position so it
    attends only to chosen key positions (Merullo et al. 2023, arXiv 2310.08744, the Colored Objects
    repair: inhibition heads forced onto the wrong colour tokens).
  * :class:`ScaleAttention`: multiply the attention to chosen key positions by ``γ`` and renormalise
    each row: ``a'_j = γ a_j / D`` for keys in the set, ``a'_j = a_j / D`` otherwise, with
    ``D = (γ − 1) Σ_set a + 1`` (ZeroTuning, Han et al. 2025, arXiv 2505.11739, for the first token;
    ACT, Yu et al. 2024, likewise for sink tokens).
  * :class:`CalibrateSinks`: ACT's calibration (Yu et al. 2024, arXiv 2406.15765): keys that receive
    more than ``τ`` mean attention, except the first of them, keep ``β`` of their attention and the
    rest goes to the other keys in proportion.
  * :class:`ScaleQuery`: multiply a head's query by ``ε`` ("undifferentiated attention": Ships,
    Zhou et al. 2025, arXiv 2410.13708; ``ε = 0`` is the retrieval-head masking of Wu et al. 2024,
    arXiv 2404.15574): its attention tends to uniform over the causal context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.engine.ablation import Ablation
from circuits.errors import HeadgraphError
from circuits.model import HookFn, hook_attn_scores, hook_pattern, hook_z, with_hooks

__all__ = [
    "AblateHead",
    "CalibrateSinks",
    "ForceAttention",
    "Intervention",
    "ScaleAttention",
    "ScaleHead",
    "ScaleQuery",
    "SteerHead",
    "calibrate_sinks",
    "intervene",
]


@runtime_checkable
class Intervention(Protocol):
    """An edit of a model's forward pass, expressed as forward hooks."""

    def hooks(self, model: HookedTransformer) -> list[tuple[str, HookFn]]:
        """The (hook name, hook function) pairs that perform the edit on ``model``."""
        ...


def _check_head(model: HookedTransformer, layer: int, head: int) -> None:
    if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
        raise HeadgraphError(
            f"head L{layer}H{head} does not exist in a {model.cfg.n_layers}-layer, {model.cfg.n_heads}-head model"
        )


@dataclass(frozen=True)
class AblateHead:
    """Replace head ``(layer, head)``'s output at every position, or at one position per example.

    Attributes:
        layer: the head's layer.
        head: the (query) head index.
        ablation: ZERO needs no reference; MEAN takes ``reference`` of shape ``[d_head]``; RESAMPLE
            takes ``reference`` of shape ``[batch, pos, d_head]`` (the head's ``hook_z`` on other inputs).
        reference: the replacement value (see ``ablation``).
        positions: when given ``[batch]``, only this position of each example is replaced, counted
            along the positions the hook sees: absolute in a full forward pass, minus
            ``run.prefix`` in a pass resumed by :func:`circuits.model.resume_to_logits`.
    """

    layer: int
    head: int
    ablation: Ablation = Ablation.ZERO
    reference: Tensor | None = None
    positions: Int[Tensor, " batch"] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ablation, Ablation):
            raise HeadgraphError(f"ablation must be an Ablation, got {self.ablation!r}")
        needs = {Ablation.ZERO: None, Ablation.MEAN: 1, Ablation.RESAMPLE: 3}[self.ablation]
        got = None if self.reference is None else self.reference.ndim
        if self.positions is not None and self.positions.ndim != 1:
            raise HeadgraphError(f"positions must have one entry per example, got shape {tuple(self.positions.shape)}")
        if got != needs:
            raise HeadgraphError(
                f"{self.ablation.value} ablation needs a reference with {needs} dimensions, got {got}"
                if needs
                else "zero ablation takes no reference"
            )

    def hooks(self, model: HookedTransformer) -> list[tuple[str, HookFn]]:
        _check_head(model, self.layer, self.head)

        def fn(z: Float[Tensor, "batch pos head d_head"]) -> Tensor:
            z = z.clone()
            ref = torch.zeros(z.shape[-1]).to(z) if self.reference is None else self.reference.to(z)
            if self.positions is None:
                z[:, :, self.head] = ref if ref.ndim == 1 else ref[:, : z.shape[1]]
            else:
                rows = torch.arange(z.shape[0], device=z.device)
                pos = self.positions.to(z.device)
                z[rows, pos, self.head] = ref if ref.ndim == 1 else ref[rows, pos]
            return z

        return [(hook_z(self.layer), fn)]


@dataclass(frozen=True)
class ScaleHead:
    """Multiply head ``(layer, head)``'s output by ``factor`` at every position."""

    layer: int
    head: int
    factor: float

    def hooks(self, model: HookedTransformer) -> list[tuple[str, HookFn]]:
        _check_head(model, self.layer, self.head)

        def fn(z: Float[Tensor, "batch pos head d_head"]) -> Tensor:
            z = z.clone()
            z[:, :, self.head] *= self.factor
            return z

        return [(hook_z(self.layer), fn)]


@dataclass(frozen=True)
class SteerHead:
    """LoFiT edit ``z' = (1 + scale) ⊙ z + bias`` on head ``(layer, head)``'s output (``[d_head]`` each)."""

    layer: int
    head: int
    bias: Float[Tensor, " d_head"]
    scale: Float[Tensor, " d_head"] | None = None

    def hooks(self, model: HookedTransformer) -> list[tuple[str, HookFn]]:
        _check_head(model, self.layer, self.head)
        for name, t in (("bias", self.bias), ("scale", self.scale)):
            if t is not None and t.shape != (model.cfg.d_head,):
                raise HeadgraphError(f"{name} must have shape ({model.cfg.d_head},), got {tuple(t.shape)}")

        def fn(z: Float[Tensor, "batch pos head d_head"]) -> Tensor:
            z = z.clone()
            h = z[:, :, self.head]
            if self.scale is not None:
                h = h * (1 + self.scale.to(z))
            z[:, :, self.head] = h + self.bias.to(z)
            return z

        return [(hook_z(self.layer), fn)]


def _query_rows(query_pos: Int[Tensor, " batch"], pattern: Tensor) -> Tensor:
    """Row of each example's (absolute) query position in ``pattern`` ``[batch, head, q, k]``.

    A forward pass that resumes from a key/value cache (:func:`circuits.model.resume_to_logits`)
    computes only the last ``q`` of ``k`` positions, so absolute position ``p`` is row ``p - (k - q)``.
    """
    rows = query_pos.to(pattern.device) - (pattern.shape[-1] - pattern.shape[-2])
    if bool((rows < 0).any()):
        raise HeadgraphError("an edited query position lies before the positions this forward pass computes")
    return rows


def _key_mask(key_pos: Int[Tensor, "batch k"], n_keys: int) -> Tensor:
    """Boolean ``[batch, n_keys]`` marking the listed key positions (``-1`` entries are padding)."""
    mask = torch.zeros(key_pos.shape[0], n_keys + 1, dtype=torch.bool, device=key_pos.device)
    mask.scatter_(1, torch.where(key_pos < 0, n_keys, key_pos), True)
    return mask[:, :n_keys]


@dataclass(frozen=True)
class ForceAttention:
    """Make head ``(layer, head)`` attend from ``query_pos`` only to ``key_pos`` (uniformly).

    Attributes:
        query_pos: the query position per example ``[batch]`` (e.g. the answer position).
        key_pos: the key positions per example ``[batch, k]``; ``-1`` pads rows with fewer keys.

    Positions are absolute, also in a pass resumed from a key/value cache.
    """

    layer: int
    head: int
    query_pos: Int[Tensor, " batch"]
    key_pos: Int[Tensor, "batch k"]

    def __post_init__(self) -> None:
        if self.key_pos.shape[0] != self.query_pos.shape[0]:
            raise HeadgraphError("query_pos and key_pos need one row per example")
        if bool(((self.key_pos >= 0).sum(1) == 0).any()):
            raise HeadgraphError("every example needs at least one key position to attend to")
        if bool((self.key_pos > self.query_pos[:, None]).any()):
            raise HeadgraphError("a query cannot attend to a later key position (causal attention)")

    def hooks(self, model: HookedTransformer) -> list[tuple[str, HookFn]]:
        _check_head(model, self.layer, self.head)

        def fn(pattern: Float[Tensor, "batch head q k"]) -> Tensor:
            pattern = pattern.clone()
            rows = torch.arange(pattern.shape[0], device=pattern.device)
            mask = _key_mask(self.key_pos.to(pattern.device), pattern.shape[-1]).to(pattern.dtype)
            pattern[rows, self.head, _query_rows(self.query_pos, pattern)] = mask / mask.sum(-1, keepdim=True)
            return pattern

        return [(hook_pattern(self.layer), fn)]


@dataclass(frozen=True)
class ScaleAttention:
    """Scale head ``(layer, head)``'s attention to ``key_pos`` by ``gamma`` and renormalise each row.

    Attributes:
        key_pos: key positions per example ``[batch, k]`` (``-1`` pads); ZeroTuning uses position 0.
        gamma: the factor; 1 leaves the pattern unchanged, 0 removes the keys' share (a row whose
            whole mass is on the keys has nothing to renormalise to and is left unchanged).
        query_pos: when given ``[batch]``, only that query row is edited; else every row.

    Positions are absolute, also in a pass resumed from a key/value cache.
    """

    layer: int
    head: int
    key_pos: Int[Tensor, "batch k"]
    gamma: float
    query_pos: Int[Tensor, " batch"] | None = None

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise HeadgraphError(f"gamma must be non-negative, got {self.gamma}")

    def hooks(self, model: HookedTransformer) -> list[tuple[str, HookFn]]:
        _check_head(model, self.layer, self.head)

        def fn(pattern: Float[Tensor, "batch head q k"]) -> Tensor:
            pattern = pattern.clone()
            a = pattern[:, self.head]  # (batch, q, k)
            mask = _key_mask(self.key_pos.to(a.device), a.shape[-1])[:, None, :]  # (batch, 1, k)
            in_set = (a * mask).sum(-1, keepdim=True)  # (batch, q, 1)
            denom = (self.gamma - 1) * in_set + 1  # 0 only when γ = 0 and the row's mass is all in the set
            scaled = torch.where(denom > 0, torch.where(mask, self.gamma * a, a) / denom.clamp(min=1e-30), a)
            if self.query_pos is None:
                pattern[:, self.head] = scaled
            else:
                rows = torch.arange(a.shape[0], device=a.device)
                q = _query_rows(self.query_pos, pattern)
                pattern[rows, self.head, q] = scaled[rows, q]
            return pattern

        return [(hook_pattern(self.layer), fn)]


def calibrate_sinks(a: Float[Tensor, "batch q k"], beta: float, tau: float) -> Float[Tensor, "batch q k"]:
    """ACT on one head's post-softmax pattern (``atten_process_eval`` of github.com/GATECH-EIC/ACT).

    Sinks: keys ``j`` whose mean received attention ``Σ_i a[i, j] / (N − j)`` exceeds ``tau``, minus
    the first of them (the BOS-like sink is kept). Each row keeps ``beta`` of its sink attention and
    gives the removed mass ``m_i`` to its other keys in proportion to their attention. A row with no
    other attention is left unchanged.

    Examples:
        >>> a = torch.tensor([[[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.6, 0.2]]])
        >>> [round(x, 4) for x in calibrate_sinks(a, 0.5, 0.3)[0, 2].tolist()]  # key 1 is a second sink
        [0.35, 0.3, 0.35]
    """
    n = a.shape[-1]
    received = a.sum(-2) / torch.arange(n, 0, -1, device=a.device, dtype=a.dtype)  # (batch, k)
    sink = received > tau
    first = torch.where(sink.any(-1), sink.int().argmax(-1), n)  # (batch,)
    sink &= torch.arange(n, device=a.device)[None] != first[:, None]
    sink = sink[:, None, :]  # (batch, 1, k)
    removed = (1 - beta) * (a * sink).sum(-1, keepdim=True)  # (batch, q, 1)
    others = (a * ~sink).sum(-1, keepdim=True)
    out = torch.where(sink, beta * a, a + removed * a / others.clamp(min=1e-30))
    return torch.where(others > 0, out, a)


@dataclass(frozen=True)
class CalibrateSinks:
    """Apply :func:`calibrate_sinks` to head ``(layer, head)``'s pattern (every query row).

    Sinks are found per example over every query row of the pass, so run it on unpadded prompts or
    prompts whose padding follows the answer position (right padding), as the datasets here are.
    """

    layer: int
    head: int
    beta: float = 0.4
    tau: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.beta <= 1 or not 0 < self.tau < 1:
            raise HeadgraphError(f"beta must lie in [0, 1] and tau in (0, 1), got {self.beta} and {self.tau}")

    def hooks(self, model: HookedTransformer) -> list[tuple[str, HookFn]]:
        _check_head(model, self.layer, self.head)

        def fn(pattern: Float[Tensor, "batch head q k"]) -> Tensor:
            pattern = pattern.clone()
            pattern[:, self.head] = calibrate_sinks(pattern[:, self.head], self.beta, self.tau)
            return pattern

        return [(hook_pattern(self.layer), fn)]


@dataclass(frozen=True)
class ScaleQuery:
    """Multiply head ``(layer, head)``'s query by ``factor`` at every position.

    The pre-softmax scores ``q·k / s`` are linear in the query, so the edit multiplies the head's
    scores by ``factor`` (masked keys stay ``-inf``). Scaling the scores rather than ``hook_q`` makes
    it the same edit on every architecture: it equals scaling the query before rotary (rotary is
    linear), and, on models that normalise queries (Gemma 3's ``q_norm``, applied after ``hook_q``),
    scaling the normalised query, where a pre-norm scaling would be undone. ``factor`` = 1e-4 is
    Ships' ablation; 0 makes the attention exactly uniform over the causal context.
    """

    layer: int
    head: int
    factor: float

    def __post_init__(self) -> None:
        if not isinstance(self.factor, int | float) or isinstance(self.factor, bool) or not self.factor >= 0:
            raise HeadgraphError(f"factor must be a non-negative number, got {self.factor!r}")

    def hooks(self, model: HookedTransformer) -> list[tuple[str, HookFn]]:
        _check_head(model, self.layer, self.head)

        def fn(scores: Float[Tensor, "batch head q k"]) -> Tensor:
            scores = scores.clone()
            s = scores[:, self.head]
            scores[:, self.head] = torch.where(torch.isneginf(s), s, s * self.factor)
            return scores

        return [(hook_attn_scores(self.layer), fn)]


@contextmanager
def intervene(model: HookedTransformer, *interventions: Intervention) -> Iterator[HookedTransformer]:
    """Apply ``interventions`` (in order) to every forward pass inside the block.

    Only the hooks added here are removed on exit, also when the block raises.

    Examples:
        >>> # with intervene(model, ScaleHead(9, 6, 0.0), ForceAttention(10, 7, q, k)):
        >>> #     logits = model(tokens)
    """
    hooks = [h for iv in interventions for h in iv.hooks(model)]
    with with_hooks(model, hooks):
        yield model
