"""Planted induction circuit: a previous-token head feeds the keys of an induction head.

Prompt: ``BOS x0 … x{n-1} x0 … x{k-1}`` (distinct random symbols, the first ``n = half`` repeated up
to ``k``); answer ``x{k}``. Mechanism (Elhage et al. 2021, Olsson et al. 2022):

* previous-token head (query position ``p`` attends to ``p − 1`` through one-hot positions) copies
  the token it attends to into ``PREV``;
* induction head: its query (the current token, ``TOK``) matches keys whose ``PREV`` holds the same
  token, i.e. the position right after the earlier occurrence; it copies that position's token into
  ``OUT``, which the unembedding reads (logit ``ALPHA``).

Corruption: two tokens of the first copy swap places, the one before the answer (``x{k-1}``) and
another one at least two positions away, so the induction head finds the query token elsewhere and
copies a different token, the corrupt answer. Clean logit difference ``≈ ALPHA``, corrupt ``≈ −ALPHA``.
The swap changes the previous-token head's output at the two positions after the swapped tokens, so
patching either circuit head changes the metric, and nothing else does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from circuits.errors import HeadgraphError
from circuits.graph import QKV, Edge, Node, NodeKind
from circuits.groundtruth.planted import (
    ALPHA,
    PLANTED,
    SHARP,
    Layout,
    Planted,
    ReadSpec,
    check_placement,
    plant_distractors_,
    truth_circuit,
)
from circuits.groundtruth.tokens import TokenPair, TokenPairStream
from circuits.model import attention_only_model, attention_weights, embedding_weights
from tasks.metrics import LogitDiff, Metric

__all__ = ["InductionConfig", "PlantedInductionTask", "induction_model"]

BOS = 0


@dataclass(frozen=True)
class PlantedInductionTask(TokenPairStream):
    """Repeated random symbols with a swap corruption (module docstring).

    Attributes:
        n_symbols: symbols other than BOS (token ids ``1 … n_symbols``).
        half: length of the repeated sequence.
    """

    name: ClassVar[str] = "planted-induction"
    pad_id: ClassVar[int] = BOS
    metric: ClassVar[Metric] = LogitDiff()
    n_symbols: int = 12
    half: int = 8

    def __post_init__(self) -> None:
        if self.half < 5:
            raise HeadgraphError(f"half must be at least 5 (room for the swap), got {self.half}")
        if self.n_symbols < self.half:
            raise HeadgraphError(f"n_symbols ({self.n_symbols}) must be at least half ({self.half})")

    def pair(self, rng: random.Random) -> TokenPair:
        """One clean/corrupt pair drawn from ``rng``."""
        xs = rng.sample(range(1, self.n_symbols + 1), self.half)
        while True:
            k = rng.randint(1, self.half - 1)  # the prompt repeats x0 … x{k-1}; the answer is x{k}
            a = k  # position of x{k-1} in the first copy (x{i} sits at 1 + i)
            others = [b for b in range(1, self.half) if abs(b - a) >= 2]
            if others:
                break
        b = rng.choice(others)
        clean = [BOS, *xs, *xs[:k]]
        corrupt = list(clean)
        corrupt[a], corrupt[b] = clean[b], clean[a]
        return TokenPair(
            clean=tuple(clean),
            corrupt=tuple(corrupt),
            answers=(clean[a + 1],),
            wrong=(clean[b + 1],),
            positions={"source": a + 1, "corrupt_source": b + 1, "query": len(clean) - 1},
        )


@dataclass(frozen=True)
class InductionConfig:
    """Shape of a planted induction model and where its circuit sits.

    Attributes:
        n_layers: layers.
        n_heads: heads per layer.
        previous_token: (layer, head) of the previous-token head.
        induction: (layer, head) of the induction head, in a later layer.
        seed: seed of the distractor heads.
        task: the prompt distribution (symbols, length).
        junk: dimensions of the subspace only distractors write to.
    """

    n_layers: int = 2
    n_heads: int = 4
    previous_token: tuple[int, int] = (0, 1)
    induction: tuple[int, int] = (1, 2)
    seed: int = 0
    task: PlantedInductionTask = field(default_factory=PlantedInductionTask)
    junk: int = 8

    def __post_init__(self) -> None:
        check_placement(
            self.n_layers, self.n_heads, {"previous-token": self.previous_token, "induction": self.induction}
        )
        if self.junk <= 0:
            raise HeadgraphError(f"junk must be positive, got {self.junk}")


def induction_model(config: InductionConfig | None = None) -> Planted:
    """Build the planted induction model of ``config`` (the defaults if None)."""
    c = config or InductionConfig()
    vocab = c.task.n_symbols + 1
    n_ctx = 2 * c.task.half
    lay = Layout({"TOK": vocab, "POS": n_ctx, "PREV": vocab, "OUT": vocab, Layout.JUNK: c.junk})
    model = attention_only_model(
        n_layers=c.n_layers,
        n_heads=c.n_heads,
        d_model=lay.d_model,
        d_head=max(vocab, n_ctx),
        d_vocab=vocab,
        n_ctx=n_ctx,
        name=f"planted-induction-{c.n_layers}x{c.n_heads}",
        dtype=torch.float64,
    )
    prev, ind = Node.of_head(*c.previous_token), Node.of_head(*c.induction)
    emb = embedding_weights(model)
    with torch.no_grad():
        for v in range(vocab):
            emb.W_E[v, lay.dim("TOK", v)] = 1.0
            emb.W_U[lay.dim("OUT", v), v] = ALPHA
        assert emb.W_pos is not None
        for p in range(n_ctx):
            emb.W_pos[p, lay.dim("POS", p)] = 1.0

        w = attention_weights(model, prev.layer)
        h = prev.head
        for p in range(n_ctx):
            w.W_Q[h, lay.dim("POS", p), p] = SHARP  # query at p ...
            if p + 1 < n_ctx:
                w.W_K[h, lay.dim("POS", p), p + 1] = 1.0  # ... matches the key at p - 1
        for v in range(vocab):
            w.W_V[h, lay.dim("TOK", v), v] = 1.0
            w.W_O[h, v, lay.dim("PREV", v)] = 1.0

        w = attention_weights(model, ind.layer)
        h = ind.head
        for v in range(vocab):
            w.W_Q[h, lay.dim("TOK", v), v] = SHARP  # current token ...
            w.W_K[h, lay.dim("PREV", v), v] = 1.0  # ... matches a key whose previous token it is
            w.W_V[h, lay.dim("TOK", v), v] = 1.0
            w.W_O[h, v, lay.dim("OUT", v)] = 1.0
    plant_distractors_(model, lay, {prev: prev.layer, ind: ind.layer}, c.seed)

    inp = Node(NodeKind.INPUT, -1)
    reads = {prev: ReadSpec(q=(inp,), k=(inp,), v=(inp,)), ind: ReadSpec(q=(inp,), k=(prev,), v=(inp,))}
    truth = truth_circuit(model, reads, output=[ind])
    # the swap changes which token precedes the answer's source: what the previous-token head reads
    # (its values) and writes (the induction head's keys); positions and the query token stay
    active = {Edge(inp, prev, QKV.V), Edge(prev, ind, QKV.K), Edge(ind, truth.graph.nodes[-1])}
    return Planted("induction", model, c.task, truth, {"previous-token": prev, "induction": ind}, frozenset(active))


PLANTED.add("induction", induction_model)
