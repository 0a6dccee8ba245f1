"""Planted IOI-like circuit: duplicate-token head → S-inhibition head → name-mover head.

Prompt (length ``length``): ``BOS``, fillers, three names at random positions — the indirect object
(IO) and the subject (S) in either order, then S again (S2) — and ``END`` last; answer IO, competing
answer S, as in Wang et al. 2022 (arXiv 2211.00593), reduced to the mechanism:

* duplicate-token head: each position attends to an earlier position holding the same token (its
  own position is penalised; BOS is the fallback) and copies that position's "is a name" flag into
  ``DUP``: S2 is flagged, nothing else;
* S-inhibition head: from END, attends to the flagged position (BOS is the fallback) and copies its
  token into ``INHIB`` — which name is duplicated;
* name-mover head: from END, its query (``INHIB``) scores every name position up and the inhibited
  name down, so it attends to the name that is not duplicated and copies it into ``OUT``, which
  the unembedding reads.

Corruptions (:class:`PlantedIOICorruption`): ``ABC`` replaces S2 by a third name (nothing is
duplicated; the mover spreads over three names: logit difference 0); ``FLIP`` replaces S2 by IO
(the mover copies S: logit difference ``−ALPHA``). The clean logit difference is about ``ALPHA``.
Under ``FLIP`` a name is duplicated in both prompts, so the duplicate-token head's output does not
change and resample ablation cannot see it (:attr:`Planted.active_edges`): the ground truth a
method can recover depends on the corruption and the ablation (Miller et al. 2024 make the same
point about tracr's ground truths).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
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
from tasks.answers import TOKEN_ROLES, AnswerRoles
from tasks.ioi import IOI
from tasks.metrics import LogitDiff, Metric

__all__ = ["IOIConfig", "PlantedIOICorruption", "PlantedIOITask", "ioi_model"]

BOS, END = 0, 1


class PlantedIOICorruption(Enum):
    """What replaces S2 in the corrupt prompt."""

    ABC = "abc"
    FLIP = "flip"


@dataclass(frozen=True)
class PlantedIOITask(TokenPairStream):
    """Names among fillers; predict the name that is not repeated (module docstring).

    Attributes:
        n_names: name tokens.
        n_fillers: filler tokens.
        length: prompt length (BOS and END included).
        corruption: what replaces S2.
    """

    name: ClassVar[str] = "planted-ioi"
    pad_id: ClassVar[int] = BOS
    metric: ClassVar[Metric] = LogitDiff()
    answer_roles: ClassVar[AnswerRoles | None] = IOI.answer_roles  # the same named positions as IOI's
    n_names: int = 8
    n_fillers: int = 6
    length: int = 10
    corruption: PlantedIOICorruption = PlantedIOICorruption.ABC

    def __post_init__(self) -> None:
        if self.n_names < 3 or self.n_fillers < 1:
            raise HeadgraphError(f"need at least 3 names and 1 filler, got {self.n_names} and {self.n_fillers}")
        if self.length < 5:
            raise HeadgraphError(f"length must be at least 5 (BOS, three names, END), got {self.length}")
        if not isinstance(self.corruption, PlantedIOICorruption):
            raise HeadgraphError(f"corruption must be a PlantedIOICorruption, got {self.corruption!r}")

    @property
    def vocab(self) -> int:
        return 2 + self.n_fillers + self.n_names

    @property
    def names(self) -> range:
        return range(2 + self.n_fillers, self.vocab)

    def pair(self, rng: random.Random) -> TokenPair:
        """One clean/corrupt pair drawn from ``rng``."""
        p1, p2, p3 = sorted(rng.sample(range(1, self.length - 1), 3))
        io, s, c = rng.sample(self.names, 3)
        first, second = (io, s) if rng.random() < 0.5 else (s, io)
        clean = [BOS] + [rng.randrange(2, 2 + self.n_fillers) for _ in range(self.length - 2)] + [END]
        clean[p1], clean[p2], clean[p3] = first, second, s
        corrupt = list(clean)
        corrupt[p3] = c if self.corruption is PlantedIOICorruption.ABC else io
        return TokenPair(
            clean=tuple(clean),
            corrupt=tuple(corrupt),
            answers=(io,),
            wrong=(s,),
            positions={
                "IO": p1 if first == io else p2,
                "S1": p2 if first == io else p1,
                "S2": p3,
                "END": self.length - 1,
            },
        )


@dataclass(frozen=True)
class IOIConfig:
    """Shape of a planted IOI model and where its circuit sits.

    Attributes:
        n_layers: layers.
        n_heads: heads per layer.
        duplicate_token: (layer, head) of the duplicate-token head.
        s_inhibition: (layer, head) of the S-inhibition head (a later layer).
        name_mover: (layer, head) of the name-mover head (a later layer still).
        seed: seed of the distractor heads.
        task: the prompt distribution.
        junk: dimensions of the subspace only distractors write to.
    """

    n_layers: int = 3
    n_heads: int = 4
    duplicate_token: tuple[int, int] = (0, 1)
    s_inhibition: tuple[int, int] = (1, 3)
    name_mover: tuple[int, int] = (2, 0)
    seed: int = 0
    task: PlantedIOITask = field(default_factory=PlantedIOITask)
    junk: int = 8

    def __post_init__(self) -> None:
        check_placement(
            self.n_layers,
            self.n_heads,
            {
                "duplicate-token": self.duplicate_token,
                "s-inhibition": self.s_inhibition,
                "name-mover": self.name_mover,
            },
        )
        if self.junk <= 0:
            raise HeadgraphError(f"junk must be positive, got {self.junk}")


def ioi_model(config: IOIConfig | None = None) -> Planted:
    """Build the planted IOI model of ``config`` (the defaults if None)."""
    c = config or IOIConfig()
    t = c.task
    vocab, n_ctx = t.vocab, t.length
    flags = {"CONST": 1, "ISBOS": 1, "ISNAME": 1, "DUP": 1}
    lay = Layout({"TOK": vocab, "POS": n_ctx, **flags, "INHIB": vocab, "OUT": vocab, Layout.JUNK: c.junk})
    model = attention_only_model(
        n_layers=c.n_layers,
        n_heads=c.n_heads,
        d_model=lay.d_model,
        d_head=vocab + n_ctx + 1,
        d_vocab=vocab,
        n_ctx=n_ctx,
        name=f"planted-ioi-{c.n_layers}x{c.n_heads}",
        dtype=torch.float64,
    )
    dup, inh, mover = (Node.of_head(*c.duplicate_token), Node.of_head(*c.s_inhibition), Node.of_head(*c.name_mover))
    names = set(t.names)
    emb = embedding_weights(model)
    with torch.no_grad():
        for v in range(vocab):
            emb.W_E[v, lay.dim("TOK", v)] = 1.0
            emb.W_E[v, lay.dim("CONST")] = 1.0
            emb.W_E[v, lay.dim("ISBOS")] = float(v == BOS)
            emb.W_E[v, lay.dim("ISNAME")] = float(v in names)
            emb.W_U[lay.dim("OUT", v), v] = ALPHA
        assert emb.W_pos is not None
        for p in range(n_ctx):
            emb.W_pos[p, lay.dim("POS", p)] = 1.0

        # duplicate-token: score SHARP·[same token] − SHARP·[same position] + SHARP/2·[key is BOS]
        w, h = attention_weights(model, dup.layer), dup.head
        for v in range(vocab):
            w.W_Q[h, lay.dim("TOK", v), v] = SHARP
            w.W_K[h, lay.dim("TOK", v), v] = 1.0
        for p in range(n_ctx):
            w.W_Q[h, lay.dim("POS", p), vocab + p] = -SHARP
            w.W_K[h, lay.dim("POS", p), vocab + p] = 1.0
        w.W_Q[h, lay.dim("CONST"), vocab + n_ctx] = SHARP / 2
        w.W_K[h, lay.dim("ISBOS"), vocab + n_ctx] = 1.0
        w.W_V[h, lay.dim("ISNAME"), 0] = 1.0
        w.W_O[h, 0, lay.dim("DUP")] = 1.0

        # S-inhibition: score SHARP·DUP + SHARP/2·[key is BOS]; copies the token into INHIB
        w, h = attention_weights(model, inh.layer), inh.head
        w.W_Q[h, lay.dim("CONST"), 0] = SHARP
        w.W_K[h, lay.dim("DUP"), 0] = 1.0
        w.W_K[h, lay.dim("ISBOS"), 0] = 0.5
        for v in range(vocab):
            w.W_V[h, lay.dim("TOK", v), v] = 1.0
            w.W_O[h, v, lay.dim("INHIB", v)] = 1.0

        # name mover: score SHARP·[key is a name] − 2·SHARP·[key's token is inhibited]; copies into OUT
        w, h = attention_weights(model, mover.layer), mover.head
        w.W_Q[h, lay.dim("CONST"), 0] = SHARP
        w.W_K[h, lay.dim("ISNAME"), 0] = 1.0
        for v in range(vocab):
            w.W_Q[h, lay.dim("INHIB", v), 1 + v] = -2 * SHARP
            w.W_K[h, lay.dim("TOK", v), 1 + v] = 1.0
            w.W_V[h, lay.dim("TOK", v), v] = 1.0
            w.W_O[h, v, lay.dim("OUT", v)] = 1.0
    plant_distractors_(model, lay, {dup: dup.layer, inh: inh.layer, mover: mover.layer}, c.seed)

    inp = Node(NodeKind.INPUT, -1)
    reads = {
        dup: ReadSpec(q=(inp,), k=(inp,), v=(inp,)),
        inh: ReadSpec(q=(inp,), k=(inp, dup), v=(inp,)),
        mover: ReadSpec(q=(inp, inh), k=(inp,), v=(inp,)),
    }
    truth = truth_circuit(model, reads, output=[mover])
    roles = {"duplicate-token": dup, "s-inhibition": inh, "name-mover": mover}
    # What the corruption changes: the token at S2. It reaches the S-inhibition head's values (which
    # name sits at S2), the mover's keys (S2 is no longer an inhibited name) and, under ABC only, the
    # duplicate-token head's query at S2 and the duplicate flag. Under FLIP a name is duplicated in
    # both prompts, so the duplicate-token head's output does not change: resample ablation cannot
    # see it.
    active = {
        Edge(inp, inh, QKV.V),
        Edge(inh, mover, QKV.Q),
        Edge(inp, mover, QKV.K),
        Edge(mover, truth.graph.nodes[-1]),
    }
    if t.corruption is PlantedIOICorruption.ABC:
        active |= {Edge(inp, dup, QKV.Q), Edge(dup, inh, QKV.K)}
    return Planted("ioi", model, t, truth, roles, frozenset(active))


PLANTED.add("ioi", ioi_model)
TOKEN_ROLES.add(PlantedIOITask.name, IOI.answer_roles)  # PlantedIOITask.answer_roles
