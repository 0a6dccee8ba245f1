"""The candidate graph of a transformer: nodes (input, heads, MLPs, logits) and the edges between them.

Every discovery method scores the same :class:`ComponentGraph` for a model, nodes or edges, in a fixed
order, so every method is evaluated by the same code. (Named ``Graph`` before the architecture pass,
issue 17; the old name still imports, with a DeprecationWarning, for one release. The *result* file
of a run is :class:`circuits.headgraph.HeadGraph`.) Node names: ``input``, ``L{layer}H{head}`` (one per
*query* head, also under grouped-query attention), ``MLP{layer}``, ``logits``.

Edges run from every upstream component to every downstream one that reads the residual stream
after it: a head at layer ``l`` reads what the input, the heads and MLPs of layers ``< l`` wrote; an
MLP at layer ``l`` also reads layer ``l``'s heads; the logits read everything. With ``split_qkv``
each head receiver has three inputs (q, k, v), as in ACDC and EAP.

Grouped-query attention: the query heads of one group read the same key and value input. The
graph still has one k (and one v) edge per *query* head, and ``u -> L5H3<k>`` means the path from
``u`` through query head 3's *use* of its group's keys: ablating it changes the keys query head 3
attends with and leaves the group's other query heads alone (the edge methods compute keys and
values per query head, :func:`circuits.model.receiver_inputs`). Gradient scores of the query heads
of a group sum exactly to the score of the shared key/value input; nothing is averaged or copied.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Any

from circuits.errors import HeadgraphError

__all__ = ["QKV", "ComponentGraph", "Edge", "Node", "NodeKind"]


class NodeKind(Enum):
    """What a node of the graph is."""

    INPUT = "input"
    HEAD = "head"
    MLP = "mlp"
    LOGITS = "logits"


class QKV(Enum):
    """Which input of an attention head an edge enters."""

    Q = "q"
    K = "k"
    V = "v"


_KIND_ORDER = {NodeKind.INPUT: 0, NodeKind.HEAD: 1, NodeKind.MLP: 2, NodeKind.LOGITS: 3}
_HEAD_RE = re.compile(r"^L(\d+)H(\d+)$")
_MLP_RE = re.compile(r"^MLP(\d+)$")
_EDGE_RE = re.compile(r"^([^-<>]+)->([^-<>]+)(?:<([qkv])>)?$")


@dataclass(frozen=True)
class Node:
    """One component. ``layer`` is -1 for the input; the logits use the number of layers.

    Examples:
        >>> str(Node.of_head(3, 4)), str(Node.of_mlp(2)), Node.parse("L3H4") == Node.of_head(3, 4)
        ('L3H4', 'MLP2', True)
    """

    kind: NodeKind
    layer: int
    head: int | None = None

    @staticmethod
    def of_head(layer: int, head: int) -> Node:
        return Node(NodeKind.HEAD, layer, head)

    @staticmethod
    def of_mlp(layer: int) -> Node:
        return Node(NodeKind.MLP, layer)

    @staticmethod
    def parse(name: str, n_layers: int | None = None) -> Node:
        """Inverse of ``str(node)``; ``logits`` needs ``n_layers``."""
        if name == "input":
            return Node(NodeKind.INPUT, -1)
        if name == "logits":
            if n_layers is None:
                raise HeadgraphError("parsing 'logits' needs the number of layers")
            return Node(NodeKind.LOGITS, n_layers)
        if m := _HEAD_RE.match(name):
            return Node.of_head(int(m[1]), int(m[2]))
        if m := _MLP_RE.match(name):
            return Node.of_mlp(int(m[1]))
        raise HeadgraphError(f"not a node name: {name!r} (expected input, L<layer>H<head>, MLP<layer>, logits)")

    def __str__(self) -> str:
        if self.kind is NodeKind.HEAD:
            return f"L{self.layer}H{self.head}"
        if self.kind is NodeKind.MLP:
            return f"MLP{self.layer}"
        return self.kind.value

    def sort_key(self) -> tuple[int, int, int]:
        """Topological order: by layer, heads before the MLP of the same layer."""
        return (self.layer, _KIND_ORDER[self.kind], -1 if self.head is None else self.head)


@dataclass(frozen=True)
class Edge:
    """A path from ``src``'s output to ``dst``'s input (``qkv`` names the input of a head)."""

    src: Node
    dst: Node
    qkv: QKV | None = None

    def __str__(self) -> str:
        suffix = f"<{self.qkv.value}>" if self.qkv else ""
        return f"{self.src}->{self.dst}{suffix}"

    @staticmethod
    def parse(name: str, n_layers: int) -> Edge:
        """Inverse of ``str(edge)``.

        Examples:
            >>> str(Edge.parse("L0H1->L2H3<q>", 4))
            'L0H1->L2H3<q>'
        """
        m = _EDGE_RE.match(name)
        if not m:
            raise HeadgraphError(f"not an edge name: {name!r} (expected SRC->DST or SRC->DST<q|k|v>)")
        qkv = QKV(m[3]) if m[3] else None
        return Edge(Node.parse(m[1], n_layers), Node.parse(m[2], n_layers), qkv)


@dataclass(frozen=True)
class ComponentGraph:
    """Candidate nodes and edges of one model shape, in a fixed order.

    Attributes:
        n_layers: transformer blocks.
        n_heads: query heads per layer.
        has_mlps: False for attention-only models.
        split_qkv: whether head receivers have separate q/k/v edges.
    """

    n_layers: int
    n_heads: int
    has_mlps: bool = True
    split_qkv: bool = True

    def __post_init__(self) -> None:
        if self.n_layers <= 0 or self.n_heads <= 0:
            raise HeadgraphError(f"a graph needs layers and heads, got {self.n_layers} × {self.n_heads}")

    @cached_property
    def nodes(self) -> tuple[Node, ...]:
        """Input, then per layer its heads and MLP, then the logits."""
        out = [Node(NodeKind.INPUT, -1)]
        for layer in range(self.n_layers):
            out += [Node.of_head(layer, h) for h in range(self.n_heads)]
            if self.has_mlps:
                out.append(Node.of_mlp(layer))
        out.append(Node(NodeKind.LOGITS, self.n_layers))
        return tuple(out)

    @cached_property
    def heads(self) -> tuple[Node, ...]:
        """The head nodes, layer-major."""
        return tuple(n for n in self.nodes if n.kind is NodeKind.HEAD)

    @cached_property
    def _node_index(self) -> dict[Node, int]:
        return {n: i for i, n in enumerate(self.nodes)}

    def node_index(self, node: Node) -> int:
        """Position of ``node`` in :attr:`nodes`."""
        try:
            return self._node_index[node]
        except KeyError:
            raise HeadgraphError(f"node {node} is not in a {self.n_layers}×{self.n_heads} graph") from None

    def senders(self) -> tuple[Node, ...]:
        """Nodes that write to the residual stream (all but the logits)."""
        return self.nodes[:-1]

    @cached_property
    def edges(self) -> tuple[Edge, ...]:
        """Every upstream → downstream edge, ordered by receiver then sender."""
        out: list[Edge] = []
        for dst in self.nodes[1:]:
            srcs = [s for s in self.senders() if _feeds(s, dst)]
            if dst.kind is NodeKind.HEAD and self.split_qkv:
                out += [Edge(s, dst, qkv) for qkv in QKV for s in srcs]
            else:
                out += [Edge(s, dst) for s in srcs]
        return tuple(out)

    @cached_property
    def _edge_index(self) -> dict[Edge, int]:
        return {e: i for i, e in enumerate(self.edges)}

    def edge_index(self, edge: Edge) -> int:
        """Position of ``edge`` in :attr:`edges`."""
        try:
            return self._edge_index[edge]
        except KeyError:
            raise HeadgraphError(f"edge {edge} is not in this graph") from None


def _feeds(src: Node, dst: Node) -> bool:
    """Whether ``src``'s output is in the residual stream that ``dst`` reads."""
    if src.kind is NodeKind.INPUT or dst.kind is NodeKind.LOGITS:
        return True
    if dst.kind is NodeKind.HEAD:
        return src.layer < dst.layer
    # dst is an MLP: it reads its own layer's attention output too
    return src.layer < dst.layer or (src.layer == dst.layer and src.kind is NodeKind.HEAD)


def __getattr__(name: str) -> Any:
    if name == "Graph":
        warnings.warn(
            "circuits.graph.Graph is now circuits.graph.ComponentGraph; the old name goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return ComponentGraph
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
