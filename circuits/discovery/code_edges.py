"""Edges from discrete codes, weighted by effect: does a sender head's code *cause* a receiver's code?

O'Neill & Bui (2024, arXiv 2405.12522) draw an edge between two heads whose discrete SAE codes
co-occur on positive prompts. Co-occurrence alone cannot tell a head that reads another from two
heads that read the same token. Here a pair (sender → receiver, sender in an earlier layer) is an
edge only with both:

* **co-occurrence** (``cooccurrence``): how much the sender's code says about the receiver's code at
  the answer position, over the clean and corrupt prompts: the purity of the receiver's code given
  the sender's (:func:`saes.code_purity`) minus the share of the receiver's most common code (0 when
  the sender's code tells nothing beyond the majority guess; at most ``1 −`` that share), taken at
  the sender position (counted back from the answer, over positions every prompt has) where it is
  largest: a sender may act where the receiver reads it, not at the answer (a duplicate-token head
  at S2);
* **effect** (``effect``): code patching of the sender (:mod:`.code_patching`: its output on the clean
  prompt replaced by the vector of its code on the corrupt prompt, positions from the first that
  differs) and the share of clean prompts on which the receiver's answer-position code changes.

A pair is kept when ``cooccurrence > min_cooccurrence`` and ``effect >= min_effect``; its weight is
the effect. A co-occurrence without effect (a common cause, or a sender nobody reads) is dropped.
Codes come from one code book per head (:func:`.code_patching.train_codebooks`). The codes cannot
say whether the receiver reads the sender through q, k or v: an edge here is head → head.

:func:`edge_agreement` compares the pairs' weights with another method's edge scores (EAP-IG) over
the same head pairs: Spearman correlation (:func:`circuits.measures.rank_agreement.spearman`) and top-k
overlap, a pair's score in the other method being the sum of ``|score|`` over its q, k and v edges.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.discovery.code_patching import (
    CodePatchingSettings,
    _check_heads,
    _first_diff,
    _out,
    _pinv,
    train_codebooks,
)
from circuits.errors import HeadgraphError
from circuits.graph import Node, NodeKind
from circuits.measures.rank_agreement import spearman
from circuits.model import HookFn, hook_z, output_weights, with_hooks
from circuits.scores import Level, Scores
from saes import Codebook, code_purity
from tasks import PromptPairDataset

__all__ = ["CodeEdge", "CodeEdgeSettings", "CodeEdges", "EdgeAgreement", "code_edges", "edge_agreement", "pair_scores"]


@dataclass(frozen=True)
class CodeEdgeSettings:
    """Settings of :func:`code_edges`.

    Attributes:
        patching: code books and batching (:class:`.code_patching.CodePatchingSettings`).
        min_effect: least share of clean prompts whose receiver code must change under code patching
            of the sender for the pair to be kept.
        min_cooccurrence: the co-occurrence must exceed this.
    """

    patching: CodePatchingSettings = field(default_factory=CodePatchingSettings)
    min_effect: float = 0.05
    min_cooccurrence: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.patching, CodePatchingSettings):
            raise HeadgraphError(f"patching must be a CodePatchingSettings, got {self.patching!r}")
        if not 0.0 <= self.min_effect <= 1.0:
            raise HeadgraphError(f"min_effect must be in [0, 1], got {self.min_effect}")
        if not -1.0 <= self.min_cooccurrence < 1.0:
            raise HeadgraphError(f"min_cooccurrence must be in [-1, 1), got {self.min_cooccurrence}")


@dataclass(frozen=True)
class CodeEdge:
    """One sender → receiver pair of heads.

    Attributes:
        sender: the earlier head.
        receiver: the later head.
        cooccurrence: what the sender's code says about the receiver's (module docstring).
        effect: share of clean prompts whose receiver code changes when the sender is code-patched.
        kept: whether the pair is an edge.
    """

    sender: Node
    receiver: Node
    cooccurrence: float
    effect: float
    kept: bool

    @property
    def weight(self) -> float:
        """The edge's weight: its effect if kept, else 0."""
        return self.effect if self.kept else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "sender": str(self.sender),
            "receiver": str(self.receiver),
            "cooccurrence": self.cooccurrence,
            "effect": self.effect,
            "kept": self.kept,
        }


@dataclass(frozen=True)
class CodeEdges:
    """Every ordered head pair's co-occurrence and effect, and which pairs are edges.

    Attributes:
        pairs: every (sender, receiver) pair with the sender in an earlier layer.
        codebooks: the code books used.
        seconds: wall time per phase (``train``, ``patch``).
    """

    pairs: tuple[CodeEdge, ...]
    codebooks: Mapping[Node, Codebook]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def edges(self) -> tuple[CodeEdge, ...]:
        """The kept pairs, strongest effect first."""
        return tuple(sorted((p for p in self.pairs if p.kept), key=lambda p: -p.effect))

    def __getitem__(self, key: tuple[Node, Node]) -> CodeEdge:
        for p in self.pairs:
            if (p.sender, p.receiver) == key:
                return p
        raise KeyError(f"no pair {key[0]} → {key[1]}")


def code_edges(
    settings: CodeEdgeSettings,
    model: HookedTransformer,
    data: PromptPairDataset,
    heads: Sequence[Node],
    *,
    codebooks: Mapping[Node, Codebook] | None = None,
) -> CodeEdges:
    """Co-occurrence and code-patching effect of every pair of ``heads`` in different layers.

    Args:
        settings: thresholds, code books and batching.
        model: the model.
        data: the pairs (all are used; ``settings.patching.train_pairs`` of them train the code books).
        heads: the heads (e.g. a circuit's).
        codebooks: already trained code books (trained here when None).
    """
    _check_heads(model, heads)
    start = time.perf_counter()
    books = dict(codebooks) if codebooks is not None else train_codebooks(settings.patching, model, data, heads)
    missing = [str(h) for h in heads if h not in books]
    if missing:
        raise HeadgraphError(f"no code book for {missing}")
    seconds = {"train": time.perf_counter() - start}
    start = time.perf_counter()
    pairs = [(s, r) for s in heads for r in heads if s.layer < r.layer]
    with torch.inference_mode():
        observed, changed = _observe(settings.patching, model, data, heads, books, pairs)
    seconds["patch"] = time.perf_counter() - start
    out = []
    for (s, r), n_changed in zip(pairs, changed, strict=True):
        co = max(_dependence(observed[s][:, k], observed[r][:, 0]) for k in range(observed[s].shape[1]))
        eff = n_changed / len(data)
        out.append(CodeEdge(s, r, co, eff, co > settings.min_cooccurrence and eff >= settings.min_effect))
    return CodeEdges(tuple(out), books, seconds)


def _dependence(sender: Int[Tensor, " n"], receiver: Int[Tensor, " n"]) -> float:
    """Purity of the receiver's codes given the sender's, minus the receiver's majority share.

    Examples:
        >>> _dependence(torch.tensor([0, 0, 1, 1]), torch.tensor([5, 5, 6, 6]))
        0.5
        >>> _dependence(torch.tensor([0, 1, 0, 1]), torch.tensor([5, 5, 6, 6]))
        0.0
    """
    majority = float(torch.unique(receiver, return_counts=True)[1].max()) / len(receiver)
    return code_purity(sender, receiver) - majority


def _codes_at(book: Codebook, out: Tensor, pos: Tensor) -> Int[Tensor, " batch"]:
    return book.codes(out[torch.arange(out.shape[0], device=out.device), pos])


def _observe(
    settings: CodePatchingSettings,
    model: HookedTransformer,
    data: PromptPairDataset,
    heads: Sequence[Node],
    books: Mapping[Node, Codebook],
    pairs: Sequence[tuple[Node, Node]],
) -> tuple[dict[Node, Tensor], list[int]]:
    """Codes of every head on clean then corrupt prompts at the answer position and the positions
    before it (``[prompt, back]``, column 0 the answer), and per pair the number of clean prompts whose
    receiver code changes when the sender is code-patched."""
    device = output_weights(model).device
    back = int(data.answer_pos.min()) + 1
    layers = sorted({h.layer for h in heads})
    codes: dict[Node, list[Tensor]] = {h: [] for h in heads}
    changed = [0] * len(pairs)
    senders = sorted({s for s, _ in pairs}, key=lambda h: (h.layer, int(h.head or 0)))
    for batch in data.batches(settings.batch_size):
        pos = batch.answer_pos.to(device)
        clean, corrupt = batch.clean.to(device), batch.corrupt.to(device)
        base: dict[str, dict[Node, Tensor]] = {}
        for name, toks in (("clean", clean), ("corrupt", corrupt)):
            cache = _run_z(model, toks, layers, [])
            base[name] = {h: _out(model, cache[h.layer], h) for h in heads}
            for h in heads:
                at = [_codes_at(books[h], base[name][h], pos - k) for k in range(back)]
                codes[h].append(torch.stack(at, 1).cpu())
        clean_codes = {h: _codes_at(books[h], base["clean"][h], pos) for h in heads}
        width = clean.shape[1]
        mask = (torch.arange(width, device=device)[None, :] >= _first_diff(batch).to(device)[:, None])[:, :, None]
        for s in senders:
            hh = int(s.head or 0)
            vec = books[s].vectors(base["corrupt"][s]) @ _pinv(model, s)  # the corrupt code's vector, as z

            def patch(z: Tensor, hh: int = hh, vec: Tensor = vec, mask: Tensor = mask) -> Tensor:
                z = z.clone()
                z[:, :, hh] = torch.where(mask, vec, z[:, :, hh])
                return z

            later = sorted({r.layer for t, r in pairs if t == s})
            cache = _run_z(model, clean, later, [(hook_z(s.layer), patch)])
            for i, (t, r) in enumerate(pairs):
                if t == s:
                    new = _codes_at(books[r], _out(model, cache[r.layer], r), pos)
                    changed[i] += int((new != clean_codes[r]).sum())
    return {h: torch.cat(c) for h, c in codes.items()}, changed


def _run_z(
    model: HookedTransformer, tokens: Tensor, layers: Sequence[int], hooks: Sequence[tuple[str, HookFn]]
) -> dict[int, Float[Tensor, "batch pos head d_head"]]:
    """``hook_z`` of ``layers`` (after ``hooks``), running only as far as the last of them."""
    kept: dict[int, Tensor] = {}

    def keep(z: Tensor, layer: int) -> None:
        kept[layer] = z.clone()

    capture: list[tuple[str, HookFn]] = [(hook_z(la), lambda z, la=la: keep(z, la)) for la in layers]
    with with_hooks(model, [*hooks, *capture]):
        model(tokens, stop_at_layer=max(layers) + 1)
    return kept


@dataclass(frozen=True)
class EdgeAgreement:
    """Rank agreement of code edges with another method's edges over the same head pairs.

    Attributes:
        spearman: rank correlation of code-edge weight (0 for dropped pairs) with the other
            method's ``|score|`` summed over the pair's q, k, v edges.
        top_overlap: per ``k``, the share of the top-``k`` pairs of one ranking in the other's.
        n_pairs: head pairs compared.
        n_kept: pairs kept as code edges.
    """

    spearman: float
    top_overlap: dict[int, float]
    n_pairs: int
    n_kept: int


def pair_scores(scores: Scores, pairs: Sequence[tuple[Node, Node]]) -> Float[Tensor, " pair"]:
    """Per head pair, the sum of ``|score|`` over the edges from the sender to the receiver (NaN if none)."""
    if scores.level is not Level.EDGE:
        raise HeadgraphError(f"edge agreement needs edge scores, got {scores.level.value} scores of {scores.method}")
    index = {pair: i for i, pair in enumerate(pairs)}
    out = torch.zeros(len(pairs), dtype=torch.float64)
    seen = torch.zeros(len(pairs), dtype=torch.bool)
    values = scores.values.double().abs()
    for j, e in enumerate(scores.graph.edges):
        if e.src.kind is NodeKind.HEAD and e.dst.kind is NodeKind.HEAD:
            i = index.get((e.src, e.dst))
            if i is not None and not math.isnan(float(values[j])):
                out[i] += values[j]
                seen[i] = True
    return torch.where(seen, out, torch.full_like(out, math.nan))


def edge_agreement(edges: CodeEdges, other: Scores, ks: tuple[int, ...] = (5, 10, 20)) -> EdgeAgreement:
    """Compare the code edges' weights with ``other``'s edge scores on the same head pairs."""
    pairs = [(p.sender, p.receiver) for p in edges.pairs]
    theirs = pair_scores(other, pairs)
    ours = torch.tensor([p.weight for p in edges.pairs], dtype=torch.float64)
    both = ~theirs.isnan()
    ours, theirs = ours[both], theirs[both]
    overlap = {}
    for k in ks:
        if k <= ours.shape[0]:
            ta = set(ours.argsort(descending=True, stable=True)[:k].tolist())
            tb = set(theirs.argsort(descending=True, stable=True)[:k].tolist())
            overlap[k] = len(ta & tb) / k
    rho = spearman(ours, theirs) if ours.shape[0] > 1 else math.nan
    return EdgeAgreement(rho, overlap, int(ours.shape[0]), sum(p.kept for p in edges.pairs))
