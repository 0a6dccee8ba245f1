"""Planted-circuit models: hand-set attention-only transformers whose circuit is known exactly.

A planted model is a norm-free, attention-only ``HookedTransformer`` (float64) whose residual stream is
cut into named one-hot subspaces (token identity, position, flags, and one subspace per piece of
information a circuit head writes). Circuit heads read and write only their own subspaces, with
attention made sharp by large query-key products (:data:`SHARP`). The unembedding reads only the
``OUT`` subspace that the last circuit head writes.

Every other head is a **distractor**: a real head with non-trivial attention (random query, key and
value weights over every subspace that is read, or a *decoy* copy of a circuit head's query-key and
value weights) whose output matrix ``W_O`` writes only into ``JUNK``, a subspace that no query, key
or value weight and no unembedding row reads. Its output therefore never reaches the logits: patching
it (resample, mean or zero) leaves every logit bit-for-bit unchanged, so its exact effect is 0 by
construction, while its activations differ between clean and corrupt prompts and its attention may
copy a circuit head's, so methods can be fooled if they are wrong.

The models (:mod:`.planted_induction`, :mod:`.planted_ioi`) are built from a frozen config (layers,
heads, where each circuit head sits, distractor seed) and come as a :class:`Planted` bundle: the
model, its token-level task, and the exact ground-truth :class:`~circuits.scores.Circuit` (nodes and
q/k/v edges that the hand-set weights read). Tracr (Lindner et al. 2023) and InterpBench (Gupta et
al. 2024) are the published relatives; these are smaller and exact by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from transformer_lens import HookedTransformer

from circuits.engine.ablation import Ablation
from circuits.errors import HeadgraphError
from circuits.graph import QKV, Edge, Node, NodeKind
from circuits.model import attention_weights, graph_of
from circuits.scores import Circuit
from tasks import PromptPairDataset
from tasks.metrics import Metric
from tasks.registry import Registry

__all__ = [
    "ALPHA",
    "PLANTED",
    "SHARP",
    "Layout",
    "Planted",
    "PlantedTask",
    "ReadSpec",
    "check_placement",
    "plant_distractors_",
    "truth_circuit",
]

SHARP = 40.0
"""Query-key product of an intended match; a competitor scoring 0 gets weight about ``exp(-40)``."""

ALPHA = 4.0
"""Logit of a fully copied answer token (the clean logit difference is about this)."""

DISTRACTOR_QK_STD = 1.0
"""Standard deviation of random distractor query/key weights (scores of a few units: uneven attention)."""


class Layout:
    """Named, consecutive blocks of residual-stream dimensions.

    Examples:
        >>> lay = Layout({"TOK": 3, "POS": 2, "JUNK": 4})
        >>> lay.d_model, lay["POS"], lay.read_rows()
        (9, slice(3, 5, None), [0, 1, 2, 3, 4])
    """

    JUNK = "JUNK"

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.slices: dict[str, slice] = {}
        start = 0
        for name, size in sizes.items():
            self.slices[name] = slice(start, start + size)
            start += size
        self.d_model = start

    def __getitem__(self, name: str) -> slice:
        return self.slices[name]

    def dim(self, name: str, i: int = 0) -> int:
        """The ``i``-th dimension of block ``name``."""
        s = self.slices[name]
        if not 0 <= i < s.stop - s.start:
            raise IndexError(f"{name} has {s.stop - s.start} dimensions, not {i + 1}")
        return s.start + i

    def read_rows(self) -> list[int]:
        """Every dimension except ``JUNK``: what weights may read."""
        junk = self.slices.get(self.JUNK, slice(0, 0))
        return [d for d in range(self.d_model) if not junk.start <= d < junk.stop]


@runtime_checkable
class PlantedTask(Protocol):
    """A token-level task: clean/corrupt token pairs for one planted model."""

    name: ClassVar[str]
    metric: ClassVar[Metric]

    def dataset(self, n: int, *, seed: int) -> PromptPairDataset: ...


@dataclass(frozen=True)
class Planted:
    """A planted-circuit model with its task and its exact ground truth.

    Attributes:
        name: what it plants (``induction``, ``ioi``).
        model: the hand-set model (prepared: eval mode, frozen).
        task: its token-level task.
        truth: the ground-truth circuit on the model's graph (heads, input, logits, q/k/v edges).
        roles: each circuit head by role (``previous-token``: ``L0H1``, ...).
        active_edges: the ground-truth edges that carry what the task's corruption changes (the
            others carry only what clean and corrupt prompts share: positions, constant flags,
            tokens left alone). Resample ablation sees exactly these edges, and the heads that
            send them; mean and zero ablation see the whole mechanism.
    """

    name: str
    model: HookedTransformer
    task: PlantedTask
    truth: Circuit
    roles: Mapping[str, Node]
    active_edges: frozenset[Edge]

    def __post_init__(self) -> None:
        if not self.active_edges <= self.truth.edges:
            raise HeadgraphError(
                f"active edges outside the ground truth: {sorted(map(str, self.active_edges - self.truth.edges))}"
            )

    @property
    def circuit_heads(self) -> frozenset[Node]:
        return frozenset(n for n in self.truth.nodes if n.kind is NodeKind.HEAD)

    def expected_heads(self, ablation: Ablation = Ablation.RESAMPLE) -> frozenset[Node]:
        """The heads exact activation patching must find (non-zero effect) under ``ablation``."""
        if ablation is Ablation.RESAMPLE:
            return frozenset(e.src for e in self.active_edges if e.src.kind is NodeKind.HEAD)
        return self.circuit_heads

    def truth_for(self, ablation: Ablation = Ablation.RESAMPLE) -> Circuit:
        """The ground truth a method using ``ablation`` can recover: under resample ablation the
        heads and edges the corruption reaches, otherwise the whole mechanism."""
        if ablation is not Ablation.RESAMPLE:
            return self.truth
        g = self.truth.graph
        nodes = self.expected_heads(ablation) | {g.nodes[0], g.nodes[-1]}
        return Circuit(g, nodes, self.active_edges, {"rule": "planted, resample-visible"})

    @property
    def distractors(self) -> list[Node]:
        """Every head that is not in the circuit, in graph order."""
        return [h for h in self.truth.graph.heads if h not in self.circuit_heads]


PLANTED: Registry[Callable[[], Planted]] = Registry("planted model")
"""Builders of the planted models at their default placement, by name."""


def check_placement(n_layers: int, n_heads: int, placement: Mapping[str, tuple[int, int]]) -> None:
    """Raise unless every role sits on a distinct head of the model, in strictly increasing layers
    (in the order given: each role reads what the previous one wrote)."""
    if n_layers <= 0 or n_heads <= 0:
        raise HeadgraphError(f"a planted model needs layers and heads, got {n_layers} × {n_heads}")
    layers = []
    for role, (layer, head) in placement.items():
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise HeadgraphError(f"{role} head L{layer}H{head} is outside a {n_layers}-layer × {n_heads}-head model")
        layers.append(layer)
    if any(b <= a for a, b in zip(layers, layers[1:], strict=False)):
        roles = ", ".join(f"{r} in layer {layer}" for r, (layer, _) in placement.items())
        raise HeadgraphError(f"each circuit head must sit in a later layer than the one it reads: {roles}")


@dataclass(frozen=True)
class ReadSpec:
    """What a circuit head reads: the senders of each of its inputs (for the ground-truth edges)."""

    q: tuple[Node, ...] = ()
    k: tuple[Node, ...] = ()
    v: tuple[Node, ...] = ()


def truth_circuit(model: HookedTransformer, reads: Mapping[Node, ReadSpec], output: Sequence[Node]) -> Circuit:
    """The ground truth: every circuit head's q/k/v edges from what it reads, and ``output`` → logits."""
    graph = graph_of(model)
    logits = graph.nodes[-1]
    edges = {
        Edge(src, dst, QKV(letter)) for dst, spec in reads.items() for letter in "qkv" for src in getattr(spec, letter)
    }
    edges |= {Edge(src, logits) for src in output}
    for e in edges:
        graph.edge_index(e)  # every edge must exist in the graph
    return Circuit.from_items(graph, sorted(edges, key=str), {"rule": "planted"})


def plant_distractors_(
    model: HookedTransformer,
    layout: Layout,
    circuit: Mapping[Node, int],
    seed: int,
    *,
    read_junk: bool = False,
) -> None:
    """Fill every head not in ``circuit`` with a distractor (random or decoy) that writes only JUNK.

    Args:
        model: the planted model; its circuit heads are already set.
        layout: the residual layout (must have a ``JUNK`` block).
        circuit: the circuit heads, mapped to their layers.
        seed: seed of the distractors' random weights and of the decoy choice.
        read_junk: random distractors' queries, keys and values read every dimension, JUNK too, so
            that JUNK grows from layer to layer (it still reaches no circuit head and no logit).

    Warning:
        Mutates ``model``'s attention weights.
    """
    g = torch.Generator().manual_seed(seed)
    dtype = model.cfg.dtype
    read = torch.arange(layout.d_model) if read_junk else torch.tensor(layout.read_rows())
    junk = layout[Layout.JUNK]
    n_junk = junk.stop - junk.start
    d_head = model.cfg.d_head

    def randn(*shape: int, std: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * std).to(dtype)

    with torch.no_grad():
        for layer in range(model.cfg.n_layers):
            w = attention_weights(model, layer)
            for head in range(model.cfg.n_heads):
                node = Node.of_head(layer, head)
                if node in circuit:
                    continue
                sources = [c for c, c_layer in circuit.items() if c_layer <= layer]
                decoy = bool(sources) and bool(torch.rand(1, generator=g) < 0.5)
                if decoy:
                    src = sources[int(torch.randint(len(sources), (1,), generator=g))]
                    ws = attention_weights(model, src.layer)
                    for name in ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V"):
                        getattr(w, name)[head] = getattr(ws, name)[src.head]
                else:
                    for name, std in (("W_Q", DISTRACTOR_QK_STD), ("W_K", DISTRACTOR_QK_STD), ("W_V", 1.0)):
                        getattr(w, name)[head].zero_()
                        getattr(w, name)[head][read] = randn(len(read), d_head, std=std)
                    for name in ("b_Q", "b_K", "b_V"):
                        getattr(w, name)[head] = randn(d_head, std=0.5)
                w.W_O[head].zero_()
                w.W_O[head][:, junk] = randn(d_head, n_junk)
