"""What discovery methods return (:class:`Scores`) and what selection makes of it (:class:`Circuit`).

Sign convention, the same for every method: a score is the change of the task metric, in the
metric's raw units and averaged over examples, when the component (or edge) is ablated, i.e. its
clean activation replaced as the method's ablation says. A head the behaviour depends on gets a
negative score; importance is the absolute value. ``normalized`` divides by the clean − corrupt
metric gap, so -1 means "ablating this alone removes the whole behaviour". Components a method does
not score hold NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.errors import HeadgraphError, HeadgraphWarning
from circuits.graph import ComponentGraph, Edge, Node, NodeKind

__all__ = ["Baseline", "Circuit", "Level", "Scores", "UninformativeScoresWarning", "flag_uninformative", "no_signal"]


class UninformativeScoresWarning(HeadgraphWarning):
    """A method's scores carry no ranking information (all equal, none scored, or a dead component)."""


class Level(Enum):
    """Whether scores are per node or per edge of the graph."""

    NODE = "node"
    EDGE = "edge"


@dataclass(frozen=True)
class Baseline:
    """The metric on unpatched clean and corrupt inputs (means over examples).

    Attributes:
        metric: the metric's registered name.
        clean: mean metric on clean prompts.
        corrupt: mean metric on corrupt prompts.
        clean_accuracy: fraction of clean prompts whose argmax is the answer (full vocabulary).
        corrupt_accuracy: the same on corrupt prompts, scored against the clean answer.
    """

    metric: str
    clean: float
    corrupt: float
    clean_accuracy: float = math.nan
    corrupt_accuracy: float = math.nan

    @property
    def gap(self) -> float:
        """``clean - corrupt``: the amount of behaviour there is to explain."""
        return self.clean - self.corrupt


@dataclass(frozen=True)
class Scores:
    """One signed score per node or edge of ``graph`` (NaN where not scored).

    Attributes:
        graph: the candidate graph the values are aligned with.
        level: node or edge scores.
        values: the metric change when the component is ablated (module docstring).
        method: registered method name.
        params: the method's settings, JSON-ready.
        baseline: clean and corrupt metric, for normalization.
        seconds: wall time of the method.
        warnings: what the method found wrong with its own result (recorded in the head-graph file).
    """

    graph: ComponentGraph
    level: Level
    values: Float[Tensor, " n"]
    method: str
    baseline: Baseline
    params: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = math.nan
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        expected = len(self.items)
        if self.values.ndim != 1 or self.values.shape[0] != expected:
            raise HeadgraphError(f"{self.level.value} scores need {expected} values, got {tuple(self.values.shape)}")

    @property
    def items(self) -> tuple[Node, ...] | tuple[Edge, ...]:
        """The nodes or edges the values are aligned with."""
        return self.graph.nodes if self.level is Level.NODE else self.graph.edges

    @property
    def normalized(self) -> Float[Tensor, " n"]:
        """Values divided by the clean − corrupt gap of the metric."""
        return self.values / self.baseline.gap

    def head_matrix(self, *, normalized: bool = True) -> Float[Tensor, "layer head"]:
        """Node scores of the heads as a layer × head matrix (NaN where not scored)."""
        if self.level is not Level.NODE:
            raise HeadgraphError("head_matrix needs node-level scores")
        src = self.normalized if normalized else self.values
        idx = torch.tensor([self.graph.node_index(n) for n in self.graph.heads])
        return src[idx].reshape(self.graph.n_layers, self.graph.n_heads)

    def order(self) -> list[int]:
        """Indices of scored items by decreasing importance ``|value|``, ties in graph order."""
        from circuits.selection import ranked  # the one ranking rule (selection imports this module)

        return ranked(self)

    def ranked(self) -> list[tuple[Node | Edge, float]]:
        """Scored items with their values, by decreasing importance."""
        vals = self.values.tolist()
        return [(self.items[i], vals[i]) for i in self.order()]

    def top_k(self, k: int) -> Circuit:
        """The ``k`` most important scored items as a circuit."""
        from circuits.selection import top_k

        return top_k(self, k, pruned=False, record={"rule": "top_k", "k": k})

    def to_nodes(self) -> Scores:
        """Node-level view: each node's value is the sum of its scored outgoing edges' values.

        For gradient methods (EAP, EAP-IG) this is exactly the node's attribution score: a node's
        output reaches each receiver additively, so its gradient is the sum of theirs. For exact
        edge scores it is the additive (first-order) view of the node's effect. Nodes without a
        scored outgoing edge (the logits) are NaN; node-level scores are returned unchanged.
        """
        if self.level is Level.NODE:
            return self
        g = self.graph
        src = torch.tensor([g.node_index(e.src) for e in g.edges])
        scored = ~torch.isnan(self.values)
        sums = torch.zeros(len(g.nodes), dtype=torch.float64).index_add_(0, src[scored], self.values[scored].double())
        has = torch.zeros(len(g.nodes), dtype=torch.bool)
        has[src[scored]] = True
        values = torch.where(has, sums, torch.full_like(sums, torch.nan)).to(self.values.dtype)
        return Scores(
            g,
            Level.NODE,
            values,
            self.method,
            self.baseline,
            {**self.params, "from_edges": True},
            self.seconds,
            self.warnings,
        )

    def threshold(self, t: float) -> Circuit:
        """Items whose ``|normalized value|`` is at least ``t``."""
        from circuits.selection import threshold

        return threshold(self, t, pruned=False)


def no_signal(values: Float[Tensor, " n"]) -> str:
    """Why ``values`` rank nothing (no value scored, or every scored value equal), else ``""``.

    Examples:
        >>> no_signal(torch.tensor([0.0, 0.0, math.nan]))
        'every scored value is 0 (2 scored): a ranking of ties'
        >>> no_signal(torch.tensor([0.5, -1.0]))
        ''
    """
    scored = values[~torch.isnan(values)]
    if scored.numel() == 0:
        return "no item is scored"
    if scored.numel() > 1 and bool((scored == scored[0]).all()):
        return f"every scored value is {float(scored[0]):g} ({scored.numel()} scored): a ranking of ties"
    return ""


def flag_uninformative(scores: Scores, *reasons: str) -> Scores:
    """``scores``, with a warning recorded and raised if they carry no ranking information.

    Args:
        scores: a method's result.
        reasons: other problems the method found (e.g. a dead sparse autoencoder); empty strings
            are ignored.
    """
    if not (math.isfinite(scores.baseline.clean) and math.isfinite(scores.baseline.corrupt)):
        return scores  # a broken run (non-finite outputs), which the baseline checks refuse outright
    found = [r for r in (no_signal(scores.values), *reasons) if r]
    if not found:
        return scores
    for reason in found:
        warnings.warn(UninformativeScoresWarning(f"{scores.method}: {reason}"), stacklevel=2)
    return replace(scores, warnings=(*scores.warnings, *found))


@dataclass(frozen=True)
class Circuit:
    """A subgraph: the chosen nodes and edges, and the rule that chose them.

    A node-level circuit has no edges; an edge-level circuit's nodes are its edges' endpoints.
    """

    graph: ComponentGraph
    nodes: frozenset[Node]
    edges: frozenset[Edge] = frozenset()
    selection: Mapping[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_items(graph: ComponentGraph, items: Sequence[Node | Edge], selection: Mapping[str, Any]) -> Circuit:
        nodes = {i for i in items if isinstance(i, Node)}
        edges = {i for i in items if isinstance(i, Edge)}
        for e in edges:
            nodes |= {e.src, e.dst}
        return Circuit(graph, frozenset(nodes), frozenset(edges), dict(selection))

    def heads(self) -> list[Node]:
        """The circuit's heads in topological order."""
        return sorted((n for n in self.nodes if n.kind is NodeKind.HEAD), key=Node.sort_key)
