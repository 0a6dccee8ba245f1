"""A third planted family, built apart from induction and IOI: a threshold task whose circuit runs
through a saturated step-function MLP, or through heads steered by query biases and first-token sinks.

Prompt (length ``length``): ``BOS``, the number ``x``, filler numbers, ``QUERY``. Answer ``YES`` if
``x`` is big (in the upper half of the numbers), else ``NO``; the corrupt prompt replaces ``x`` by a
number on the other side. Metric: logit difference (about ``ALPHA`` clean, ``−ALPHA`` corrupt).

Two variants (:class:`Route`):

* ``MLP`` ("mlp-routed"): the **mover** head (query bias · position-1 key, BOS as a weaker sink)
  copies ``x``'s token into ``MOVED`` at every later position; the **step MLP** of a later or the
  same layer writes ``FLAG = relu(S·(s−½)+½) − relu(S·(s−½)−½)`` where ``s`` is the mass of big
  numbers in ``MOVED`` (the saturated two-ReLU step that compiled RASP programs use for numerical
  MLPs, Lindner et al. 2023, "Tracr", §4); the **reader** head at ``QUERY`` attends to itself
  (``ISQ`` · ``ISQ``, BOS as sink through its query bias) and writes ``±ALPHA`` into ``OUT`` from
  ``FLAG``. The step is flat away from ½, so the gradient of the metric with respect to the mover's
  output is exactly zero: gradient methods (attribution patching, EAP, EAP-IG) cannot see the
  mover, while every exact method must. Other MLPs are distractors that write only ``JUNK``.
* ``SINK`` ("sink", attention-only, float32): the mover copies ``x``'s ``BIG`` flag straight into
  ``FLAG``; every distractor's queries, keys and values read every dimension, ``JUNK`` included, so
  ``JUNK`` grows by orders of magnitude through the layers, while the circuit heads work only
  through query biases and first-token sinks. Exact methods must still give every distractor an
  effect of exactly 0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

import torch
from transformer_lens import HookedTransformer

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
from circuits.model import attention_only_model, attention_weights, embedding_weights, mlp_weights
from circuits.scores import Circuit
from tasks.metrics import LogitDiff, Metric

__all__ = ["SINK_CONFIG", "Route", "ThresholdConfig", "ThresholdTask", "threshold_model"]

BOS, QUERY, YES, NO = 0, 1, 2, 3
FIRST_NUMBER = 4

STEP = 50.0
"""Slope of the step MLP's ramp: the step rises over ``1/STEP`` around ½ and is flat elsewhere."""

JUNK_GROWTH = 3.0
"""Standard deviation of the SINK variant's distractor value weights (JUNK grows about this much per layer)."""


class Route(Enum):
    """How the planted circuit carries ``x``'s size to the reader (module docstring)."""

    MLP = "mlp-routed"
    SINK = "sink"


@dataclass(frozen=True)
class ThresholdTask(TokenPairStream):
    """Is the number after BOS big? (module docstring).

    Attributes:
        n_numbers: number tokens (even: the lower half is small, the upper half big).
        length: prompt length (BOS, x, fillers, QUERY).
    """

    name: ClassVar[str] = "planted-threshold"
    pad_id: ClassVar[int] = BOS
    metric: ClassVar[Metric] = LogitDiff()
    n_numbers: int = 8
    length: int = 6

    def __post_init__(self) -> None:
        if self.n_numbers < 2 or self.n_numbers % 2:
            raise HeadgraphError(f"n_numbers must be even and at least 2, got {self.n_numbers}")
        if self.length < 3:
            raise HeadgraphError(f"length must be at least 3 (BOS, x, QUERY), got {self.length}")

    @property
    def vocab(self) -> int:
        return FIRST_NUMBER + self.n_numbers

    @property
    def big(self) -> range:
        return range(FIRST_NUMBER + self.n_numbers // 2, self.vocab)

    @property
    def small(self) -> range:
        return range(FIRST_NUMBER, FIRST_NUMBER + self.n_numbers // 2)

    def pair(self, rng: random.Random) -> TokenPair:
        """One clean/corrupt pair drawn from ``rng``."""
        is_big = rng.random() < 0.5
        x, other = (rng.choice(self.big), rng.choice(self.small))
        if not is_big:
            x, other = other, x
        fillers = [rng.randrange(FIRST_NUMBER, self.vocab) for _ in range(self.length - 3)]
        clean = (BOS, x, *fillers, QUERY)
        corrupt = (BOS, other, *fillers, QUERY)
        answer, wrong = (YES, NO) if is_big else (NO, YES)
        return TokenPair(clean, corrupt, (answer,), (wrong,), {"x": 1, "QUERY": self.length - 1})


@dataclass(frozen=True)
class ThresholdConfig:
    """Shape of a planted threshold model and where its circuit sits.

    Attributes:
        route: through the step MLP or through sinks only.
        n_layers: layers.
        n_heads: heads per layer.
        mover: (layer, head) of the head that moves ``x`` to later positions.
        mlp_layer: layer of the step MLP (``MLP`` route; at or after the mover's layer).
        reader: (layer, head) of the head that writes the answer (after the MLP / the mover).
        seed: seed of the distractors.
        task: the prompt distribution.
        junk: dimensions of the subspace only distractors write to.
    """

    route: Route = Route.MLP
    n_layers: int = 3
    n_heads: int = 3
    mover: tuple[int, int] = (0, 1)
    mlp_layer: int = 1
    reader: tuple[int, int] = (2, 0)
    seed: int = 0
    task: ThresholdTask = field(default_factory=ThresholdTask)
    junk: int = 6

    def __post_init__(self) -> None:
        if not isinstance(self.route, Route):
            raise HeadgraphError(f"route must be a Route, got {self.route!r}")
        check_placement(self.n_layers, self.n_heads, {"mover": self.mover, "reader": self.reader})
        if self.route is Route.MLP and not self.mover[0] <= self.mlp_layer < self.reader[0]:
            raise HeadgraphError(
                f"the step MLP must sit at or after the mover's layer {self.mover[0]} and before the reader's "
                f"layer {self.reader[0]}, got layer {self.mlp_layer}"
            )
        if self.junk <= 0:
            raise HeadgraphError(f"junk must be positive, got {self.junk}")


def _layout(c: ThresholdConfig) -> Layout:
    t = c.task
    flags = {"CONST": 1, "ISBOS": 1, "ISQ": 1, "BIG": 1, "FLAG": 1}
    moved = {"MOVED": t.vocab} if c.route is Route.MLP else {}
    return Layout({"TOK": t.vocab, "POS": t.length, **flags, **moved, "OUT": t.vocab, Layout.JUNK: c.junk})


def threshold_model(config: ThresholdConfig | None = None) -> Planted:
    """Build the planted threshold model of ``config`` (the defaults if None: the MLP route)."""
    c = config or ThresholdConfig()
    t, lay = c.task, _layout(c)
    mlp = c.route is Route.MLP
    model = attention_only_model(
        n_layers=c.n_layers,
        n_heads=c.n_heads,
        d_model=lay.d_model,
        d_head=t.vocab,
        d_vocab=t.vocab,
        n_ctx=t.length,
        name=f"planted-{c.route.value}-{c.n_layers}x{c.n_heads}",
        dtype=torch.float64 if mlp else torch.float32,
        d_mlp=2 if mlp else None,
    )
    mover, reader = Node.of_head(*c.mover), Node.of_head(*c.reader)
    emb = embedding_weights(model)
    with torch.no_grad():
        for v in range(t.vocab):
            emb.W_E[v, lay.dim("TOK", v)] = 1.0
            emb.W_E[v, lay.dim("CONST")] = 1.0
            emb.W_E[v, lay.dim("ISBOS")] = float(v == BOS)
            emb.W_E[v, lay.dim("ISQ")] = float(v == QUERY)
            emb.W_E[v, lay.dim("BIG")] = float(v in t.big)
        assert emb.W_pos is not None
        for p in range(t.length):
            emb.W_pos[p, lay.dim("POS", p)] = 1.0
        emb.W_U[lay.dim("OUT", YES), YES] = 1.0
        emb.W_U[lay.dim("OUT", NO), NO] = 1.0

        # mover: query bias only; score SHARP·[key at position 1] + SHARP/2·[key is BOS] (the sink)
        w, h = attention_weights(model, mover.layer), mover.head
        w.b_Q[h, 0] = SHARP
        w.W_K[h, lay.dim("POS", 1), 0] = 1.0
        w.W_K[h, lay.dim("ISBOS"), 0] = 0.5
        if mlp:  # copy x's token into MOVED
            for v in range(t.vocab):
                w.W_V[h, lay.dim("TOK", v), v] = 1.0
                w.W_O[h, v, lay.dim("MOVED", v)] = 1.0
        else:  # copy x's BIG flag into FLAG
            w.W_V[h, lay.dim("BIG"), 0] = 1.0
            w.W_O[h, 0, lay.dim("FLAG")] = 1.0

        if mlp:  # FLAG = relu(S(s − ½) + ½) − relu(S(s − ½) − ½), s = Σ_big MOVED
            m = mlp_weights(model, c.mlp_layer)
            for v in t.big:
                m.W_in[lay.dim("MOVED", v), :] = STEP
            m.b_in[0], m.b_in[1] = -STEP / 2 + 0.5, -STEP / 2 - 0.5
            m.W_out[0, lay.dim("FLAG")], m.W_out[1, lay.dim("FLAG")] = 1.0, -1.0

        # reader: score SHARP·ISQ_q·ISQ_k + SHARP/2·[key is BOS] (query bias: the sink);
        # writes ALPHA·FLAG into OUT[YES] and ALPHA·(1 − FLAG) into OUT[NO]
        w, h = attention_weights(model, reader.layer), reader.head
        w.W_Q[h, lay.dim("ISQ"), 0] = SHARP
        w.W_K[h, lay.dim("ISQ"), 0] = 1.0
        w.b_Q[h, 1] = SHARP / 2
        w.W_K[h, lay.dim("ISBOS"), 1] = 1.0
        w.W_V[h, lay.dim("FLAG"), 0] = 1.0
        w.W_V[h, lay.dim("CONST"), 1] = 1.0
        w.W_O[h, 0, lay.dim("OUT", YES)] = ALPHA
        w.W_O[h, 0, lay.dim("OUT", NO)] = -ALPHA
        w.W_O[h, 1, lay.dim("OUT", NO)] = ALPHA
    plant_distractors_(model, lay, {mover: mover.layer, reader: reader.layer}, c.seed, read_junk=not mlp)
    if mlp:
        _plant_mlp_distractors_(model, lay, c.mlp_layer, c.seed)
    return _planted(model, c, mover, reader)


def _plant_mlp_distractors_(model: HookedTransformer, lay: Layout, circuit_layer: int, seed: int) -> None:
    """Every MLP but the step MLP reads every read dimension at random and writes only JUNK."""
    g = torch.Generator().manual_seed(seed + 1)
    read = torch.tensor(lay.read_rows())
    junk = lay[Layout.JUNK]
    with torch.no_grad():
        for layer in range(model.cfg.n_layers):
            if layer == circuit_layer:
                continue
            m = mlp_weights(model, layer)
            dtype = m.W_in.dtype
            m.W_in[read] = torch.randn(len(read), m.W_in.shape[1], generator=g, dtype=torch.float64).to(dtype)
            m.b_in.copy_(torch.randn(m.b_in.shape, generator=g, dtype=torch.float64).to(dtype))
            m.W_out[:, junk] = torch.randn(m.W_out.shape[0], junk.stop - junk.start, generator=g).to(dtype)


def _planted(model: HookedTransformer, c: ThresholdConfig, mover: Node, reader: Node) -> Planted:
    """The ground truth: mover (k: position, v: x) → [step MLP →] reader (q/k: flags, v: FLAG) → logits."""
    inp = Node(NodeKind.INPUT, -1)
    if c.route is Route.MLP:
        step = Node.of_mlp(c.mlp_layer)
        reads = {mover: ReadSpec(k=(inp,), v=(inp,)), reader: ReadSpec(q=(inp,), k=(inp,), v=(inp, step))}
        heads = truth_circuit(model, reads, output=[reader])
        edges = set(heads.edges) | {Edge(mover, step)}
        truth = Circuit.from_items(heads.graph, sorted(edges, key=str), {"rule": "planted"})
        active = {Edge(inp, mover, QKV.V), Edge(mover, step), Edge(step, reader, QKV.V)}
        roles = {"mover": mover, "step-mlp": step, "reader": reader}
    else:
        reads = {mover: ReadSpec(k=(inp,), v=(inp,)), reader: ReadSpec(q=(inp,), k=(inp,), v=(inp, mover))}
        truth = truth_circuit(model, reads, output=[reader])
        active = {Edge(inp, mover, QKV.V), Edge(mover, reader, QKV.V)}
        roles = {"mover": mover, "reader": reader}
    active.add(Edge(reader, truth.graph.nodes[-1]))
    # The reader's value reads CONST from the input too (ALPHA·(1 − FLAG) into OUT[NO]); that edge
    # carries nothing the corruption changes, like the position and flag edges of the queries and keys.
    return Planted(c.route.value, model, c.task, truth, roles, frozenset(active))


SINK_CONFIG = ThresholdConfig(route=Route.SINK, n_layers=4, reader=(3, 2))
"""The default placement of the SINK route: four layers, so that JUNK grows through three of them."""

PLANTED.add(Route.MLP.value, lambda: threshold_model(ThresholdConfig(route=Route.MLP)))
PLANTED.add(Route.SINK.value, lambda: threshold_model(SINK_CONFIG))
