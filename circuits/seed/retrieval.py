"""Retrieval heads: the heads that copy a needle from the context (Wu et al. 2024, arXiv 2404.15574).

Retrieval score, as in the authors' ``retrieval_head_detection.py``: decode greedily from a prompt
that holds a needle at token span ``[s, e)``; at each step ``t`` with generated token ``w_t``, a head
*copies* when its top-1 attended key from the last query is inside the needle and holds ``w_t``:

    for each head (l, h):  j* = argmax_j attn[l, h, last query, j]
                           if s <= j* < e and prompt[j*] == w_t:  score[l, h] += 1 / (e - s)

A test counts only when the model retrieves the needle: the token-level unigram recall of the
needle in the continuation exceeds :data:`SUCCESS_RECALL` (the paper: ROUGE-1 recall over 50 %).
A head's retrieval score is its mean over the successful tests; a *retrieval head* scores above
:data:`RETRIEVAL_THRESHOLD` (copies at least 10 % of the needle). The paper finds fewer than 5 % of
heads above it.

The score reads attention only; whether the heads matter is the knockout
(:func:`retrieval_knockout`): the top heads' attention is made uniform (query × 0, the paper's
masking; :class:`~circuits.interventions.ScaleQuery`), against as many random heads drawn among the
others, and the retrieval accuracy (the whole needle reproduced) is compared.

Decoding is greedy with TransformerLens's key/value cache, one prompt at a time (prompts differ in
length; nothing is padded).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.interventions import Intervention, ScaleQuery, intervene
from circuits.model import HookFn, hook_pattern, logits_at, with_hooks
from tasks import PromptPairDataset
from tasks.retrieval import needle_positions

__all__ = [
    "RETRIEVAL_THRESHOLD",
    "SUCCESS_RECALL",
    "Decoded",
    "KnockoutResult",
    "NeedlePrompt",
    "RetrievalScores",
    "decode",
    "needle_prompts",
    "retrieval_knockout",
    "retrieval_scores",
]

RETRIEVAL_THRESHOLD = 0.1
"""A head whose retrieval score exceeds this is a retrieval head (Wu et al.: copies ≥ 10 % of the needle)."""

SUCCESS_RECALL = 0.5
"""A needle test counts when more than this fraction of the needle's tokens appear in the continuation."""


@dataclass(frozen=True)
class NeedlePrompt:
    """A prompt holding a needle at token span ``[start, end)``.

    Attributes:
        tokens: the prompt's token ids (BOS included when the model uses one).
        start: the needle's first token position.
        end: one past its last token position.
    """

    tokens: Int[Tensor, " pos"]
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.tokens.ndim != 1:
            raise HeadgraphError(f"a needle prompt is one row of tokens, got shape {tuple(self.tokens.shape)}")
        if not 0 <= self.start < self.end <= self.tokens.shape[0]:
            raise HeadgraphError(f"needle span [{self.start}, {self.end}) is not inside {self.tokens.shape[0]} tokens")

    @property
    def needle(self) -> Int[Tensor, " needle"]:
        return self.tokens[self.start : self.end]


def needle_prompts(data: PromptPairDataset) -> list[NeedlePrompt]:
    """The clean prompts of a ``retrieval`` dataset, with their needle spans.

    Raises:
        HeadgraphError: the dataset has no ``needle0`` position (not the retrieval task).
    """
    names = [n for n in needle_positions(len(data.positions)) if n in data.positions]
    if not names:
        raise HeadgraphError(f"task {data.task!r} has no needle positions; use the retrieval task")
    first, last = data.positions[names[0]], data.positions[names[-1]]
    return [
        NeedlePrompt(data.clean[i, : int(data.lengths[i])], int(first[i]), int(last[i]) + 1) for i in range(len(data))
    ]


@dataclass(frozen=True)
class Decoded:
    """One greedy continuation and what each head copied while it was produced.

    Attributes:
        tokens: the generated token ids.
        copies: per head, the fraction of the needle it copied (sum of ``1/(e-s)`` per copy step).
        recall: the fraction of distinct needle tokens that appear in ``tokens``.
        exact: whether the continuation starts with the whole needle.
    """

    tokens: tuple[int, ...]
    copies: Float[Tensor, "layer head"]
    recall: float
    exact: bool


@torch.inference_mode()
def decode(
    model: HookedTransformer,
    prompt: NeedlePrompt,
    max_new_tokens: int,
    interventions: Sequence[Intervention] = (),
) -> Decoded:
    """Decode ``max_new_tokens`` greedily from ``prompt`` (under ``interventions``) and count copies.

    Raises:
        HeadgraphError: the prompt and its continuation do not fit the model's context.
    """
    if max_new_tokens <= 0:
        raise HeadgraphError(f"max_new_tokens must be positive, got {max_new_tokens}")
    total = prompt.tokens.shape[0] + max_new_tokens - 1  # the last new token is not fed back
    if total > model.cfg.n_ctx:
        raise HeadgraphError(
            f"a {prompt.tokens.shape[0]}-token prompt and {max_new_tokens} new tokens do not fit the "
            f"{model.cfg.n_ctx}-token context of {model.cfg.model_name}; use a shorter haystack"
        )
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    top = torch.zeros(n_layers, n_heads, dtype=torch.long)  # top-1 key of the last query, per head

    def grab(layer: int) -> HookFn:
        def fn(pattern: Float[Tensor, "batch head q k"]) -> None:
            top[layer] = pattern[0, :, -1].argmax(-1).cpu()

        return fn

    hooks = [(hook_pattern(layer), grab(layer)) for layer in range(n_layers)]
    device = model.cfg.device
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, 1)
    prompt_ids = prompt.tokens.cpu()
    copies = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    generated: list[int] = []
    step_input = prompt.tokens[None].to(device)
    with intervene(model, *interventions), with_hooks(model, hooks):
        for _ in range(max_new_tokens):
            resid = model(
                step_input,
                past_kv_cache=cache,
                attention_mask=torch.ones_like(step_input),
                stop_at_layer=n_layers,
            )  # (1, pos, d_model): only the last position is unembedded
            last = torch.tensor([resid.shape[1] - 1], device=resid.device)
            w = int(logits_at(model, resid, last)[0].argmax())
            inside = (top >= prompt.start) & (top < prompt.end)
            copied = inside & (prompt_ids[top.clamp(max=prompt_ids.shape[0] - 1)] == w)
            copies += copied.double() / (prompt.end - prompt.start)
            generated.append(w)
            step_input = torch.tensor([[w]], device=device)
    needle = prompt.needle.tolist()
    recall = len(set(needle) & set(generated)) / len(set(needle))
    return Decoded(tuple(generated), copies, recall, generated[: len(needle)] == needle)


@dataclass(frozen=True)
class RetrievalScores:
    """Retrieval scores of every head over a set of needle tests.

    Attributes:
        scores: mean copy fraction over the successful tests (zero where none succeeded).
        n_prompts: needle tests run.
        n_success: tests whose continuation recalled the needle (the mean's denominator).
        recall: per test, the needle recall of the continuation.
        exact: per test, whether the continuation reproduced the whole needle.
    """

    scores: Float[Tensor, "layer head"]
    n_prompts: int
    n_success: int
    recall: tuple[float, ...]
    exact: tuple[bool, ...]

    def heads(self, threshold: float = RETRIEVAL_THRESHOLD) -> list[tuple[Node, float]]:
        """Heads scoring above ``threshold``, highest first."""
        flat = self.scores.flatten()
        n_heads = self.scores.shape[1]
        order = sorted(range(flat.numel()), key=lambda i: (-float(flat[i]), i))
        return [(Node.of_head(i // n_heads, i % n_heads), float(flat[i])) for i in order if flat[i] > threshold]

    def top(self, k: int) -> list[Node]:
        """The ``k`` highest-scoring heads (ties in graph order)."""
        flat = self.scores.flatten()
        n_heads = self.scores.shape[1]
        order = sorted(range(flat.numel()), key=lambda i: (-float(flat[i]), i))[:k]
        return [Node.of_head(i // n_heads, i % n_heads) for i in order]

    def fraction(self, threshold: float = RETRIEVAL_THRESHOLD) -> float:
        """The share of all heads that are retrieval heads."""
        return len(self.heads(threshold)) / self.scores.numel()


def retrieval_scores(
    model: HookedTransformer, prompts: Sequence[NeedlePrompt], *, extra_tokens: int = 1
) -> RetrievalScores:
    """Score every head over ``prompts``: decode ``needle length + extra_tokens`` tokens from each.

    Raises:
        HeadgraphError: no prompts.
    """
    if not prompts:
        raise HeadgraphError("retrieval scores need at least one needle prompt")
    total = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.float64)
    recall: list[float] = []
    exact: list[bool] = []
    n_success = 0
    for p in prompts:
        d = decode(model, p, p.end - p.start + extra_tokens)
        recall.append(d.recall)
        exact.append(d.exact)
        if d.recall > SUCCESS_RECALL:
            total += d.copies
            n_success += 1
    scores = total / max(n_success, 1)
    return RetrievalScores(scores, len(prompts), n_success, tuple(recall), tuple(exact))


@dataclass(frozen=True)
class KnockoutResult:
    """Retrieval accuracy with heads knocked out (their attention made uniform).

    Attributes:
        heads: the knocked-out top retrieval heads.
        accuracy: the share of prompts whose continuation reproduces the whole needle, unedited.
        recall: the mean needle recall, unedited.
        top_accuracy: accuracy with ``heads`` knocked out; ``top_recall`` likewise.
        random_accuracy: accuracy with as many random heads knocked out, per draw; ``random_recall`` likewise.
        random_heads: the heads of each random draw.
    """

    heads: tuple[Node, ...]
    accuracy: float
    recall: float
    top_accuracy: float
    top_recall: float
    random_accuracy: tuple[float, ...]
    random_recall: tuple[float, ...]
    random_heads: tuple[tuple[Node, ...], ...]


def _accuracy(
    model: HookedTransformer, prompts: Sequence[NeedlePrompt], heads: Sequence[Node], extra_tokens: int
) -> tuple[float, float]:
    edits = [ScaleQuery(h.layer, h.head, 0.0) for h in heads if h.head is not None]
    runs = [decode(model, p, p.end - p.start + extra_tokens, edits) for p in prompts]
    return sum(r.exact for r in runs) / len(runs), sum(r.recall for r in runs) / len(runs)


def retrieval_knockout(
    model: HookedTransformer,
    prompts: Sequence[NeedlePrompt],
    heads: Sequence[Node],
    *,
    draws: int = 3,
    seed: int = 0,
    exclude: Sequence[Node] = (),
    extra_tokens: int = 1,
) -> KnockoutResult:
    """Retrieval accuracy unedited, with ``heads`` knocked out, and with ``draws`` random sets of as
    many heads drawn (seeded) among the heads not in ``heads`` or ``exclude``.

    Raises:
        HeadgraphError: no prompts, no heads, or too few heads left to draw from.
    """
    if not prompts or not heads:
        raise HeadgraphError("a knockout needs needle prompts and at least one head")
    pool = [
        Node.of_head(layer, h)
        for layer in range(model.cfg.n_layers)
        for h in range(model.cfg.n_heads)
        if Node.of_head(layer, h) not in set(heads) | set(exclude)
    ]
    if len(pool) < len(heads):
        raise HeadgraphError(f"only {len(pool)} heads are left to draw {len(heads)} random heads from")
    rng = random.Random(seed)
    acc, rec = _accuracy(model, prompts, [], extra_tokens)
    top_acc, top_rec = _accuracy(model, prompts, heads, extra_tokens)
    random_heads = tuple(tuple(sorted(rng.sample(pool, len(heads)), key=str)) for _ in range(draws))
    randoms = [_accuracy(model, prompts, hs, extra_tokens) for hs in random_heads]
    return KnockoutResult(
        tuple(heads),
        acc,
        rec,
        top_acc,
        top_rec,
        tuple(a for a, _ in randoms),
        tuple(r for _, r in randoms),
        random_heads,
    )
