"""Published circuits as data: which heads (and MLPs, and edges) a paper says a model uses for a task.

Each circuit is a JSON file in ``data/published/`` (schema ``headgraph.groundtruth``) with its
citation, the source file it was read from, and the variant it is where several are in circulation
(IOI: Wang et al.'s 26 heads with ACDC's edge rules, and O'Neill & Bui's variant; greater-than:
Hanna et al.'s original, ACDC's and Hanna et al. 2024's; docstring: Heimersheim & Janiak's edges and
node sets; Merullo et al.'s GPT-2 medium roles). A file gives:

* ``model``: the model it was found in and its shape (layers, heads, attention-only or not);
* ``groups``: named roles, each a list of nodes (``L9H9``, ``MLP8``): the node-level ground truth;
* ``edge_rules``: group-to-group connections, expanded on the model's :class:`~circuits.graph.ComponentGraph`
  to every edge that exists from a sender of ``from`` to a receiver of ``to`` (on the ``qkv``
  inputs for head receivers; ``within`` connects a list to itself, earlier to later). Besides group
  names, ``from``/``to`` accept node names and ``mlps`` (every MLP of the model);
* ``edges``: explicit edges (``L0H5->L1H4<v>``), with the token positions the paper names, if any.

:meth:`GroundTruth.circuit` turns it into a :class:`~circuits.scores.Circuit` on a graph of the right
shape (nodes: the groups, plus input and logits; edges: rules and explicit edges). MLPs that a rule
treats as pass-through appear in edges but are not nodes. A graph of another shape is a clear error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from circuits.errors import CircuitFileError, HeadgraphError
from circuits.graph import QKV, ComponentGraph, Edge, Node, NodeKind
from circuits.scores import Circuit

__all__ = ["TRUTH_SCHEMA", "EdgeRule", "GroundTruth", "ModelShape", "load_published", "published_names"]

TRUTH_SCHEMA = "headgraph.groundtruth"
TRUTH_SCHEMA_VERSION = 1
ALL_MLPS = "mlps"


@dataclass(frozen=True)
class ModelShape:
    """The model a circuit was found in.

    Attributes:
        name: its TransformerLens (or headgraph) name.
        n_layers: layers.
        n_heads: query heads per layer.
        d_model: residual width (informational; shape checks compare layers, heads and MLPs).
        attn_only: whether it has no MLPs.
    """

    name: str
    n_layers: int
    n_heads: int
    d_model: int
    attn_only: bool

    def describe(self) -> str:
        return f"{self.n_layers} layers × {self.n_heads} heads, {'attention-only' if self.attn_only else 'with MLPs'}"


@dataclass(frozen=True)
class EdgeRule:
    """Every edge from a node of ``src`` to a node of ``dst`` that the graph has.

    Attributes:
        src: group names, node names or ``mlps``.
        dst: the same, for receivers.
        qkv: which inputs of head receivers.
        within: connect ``src`` to itself, each node to the later ones (``dst`` must equal ``src``).
    """

    src: tuple[str, ...]
    dst: tuple[str, ...]
    qkv: tuple[QKV, ...] = (QKV.Q, QKV.K, QKV.V)
    within: bool = False


@dataclass(frozen=True)
class GroundTruth:
    """A published circuit (module docstring).

    Attributes:
        name: file name without ``.json``.
        task: the task it is for.
        variant: which version it is.
        model: where it was found.
        citation: the paper.
        source: the file(s) it was read from.
        notes: caveats.
        groups: role → nodes, in the paper's order.
        edge_rules: rules expanded to edges.
        edges: explicit edges.
        edge_positions: token positions per explicit edge, where the source names them.
    """

    name: str
    task: str
    variant: str
    model: ModelShape
    citation: str
    source: str
    notes: str = ""
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    edge_rules: tuple[EdgeRule, ...] = ()
    edges: tuple[str, ...] = ()
    edge_positions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def check_graph(self, graph: ComponentGraph) -> None:
        """Raise unless ``graph`` has the shape of the model the circuit was found in."""
        m = self.model
        if (graph.n_layers, graph.n_heads, graph.has_mlps) != (m.n_layers, m.n_heads, not m.attn_only):
            mlps = "with MLPs" if graph.has_mlps else "attention-only"
            got = f"{graph.n_layers} layers × {graph.n_heads} heads, {mlps}"
            raise HeadgraphError(
                f"ground truth {self.name!r} is defined on {m.name} ({m.describe()}); this model has {got}"
            )

    def nodes(self, graph: ComponentGraph) -> frozenset[Node]:
        """The groups' nodes (the node-level ground truth)."""
        self.check_graph(graph)
        return frozenset(_node(name, graph) for names in self.groups.values() for name in names)

    def roles(self) -> dict[str, str]:
        """Node name → role."""
        return {n: role for role, names in self.groups.items() for n in names}

    def _resolve(self, refs: tuple[str, ...], graph: ComponentGraph) -> list[Node]:
        out: list[Node] = []
        for ref in refs:
            if ref in self.groups:
                out += [_node(n, graph) for n in self.groups[ref]]
            elif ref == ALL_MLPS:
                out += [n for n in graph.nodes if n.kind is NodeKind.MLP]
            else:
                out.append(_node(ref, graph))
        return out

    def circuit(self, graph: ComponentGraph) -> Circuit:
        """The ground truth on ``graph``: group nodes plus input and logits, and every rule's edges.

        Raises:
            HeadgraphError: ``graph`` is not the shape of the circuit's model.
        """
        self.check_graph(graph)
        edges: set[Edge] = set()
        existing = set(graph.edges) if self.edge_rules else set()
        for rule in self.edge_rules:
            srcs = self._resolve(rule.src, graph)
            dsts = self._resolve(rule.dst, graph)
            pairs = (
                [(a, b) for i, a in enumerate(srcs) for b in srcs[i + 1 :]]
                if rule.within
                else [(a, b) for a in srcs for b in dsts]
            )
            for a, b in pairs:
                candidates = [Edge(a, b, q) for q in rule.qkv] if b.kind is NodeKind.HEAD else [Edge(a, b)]
                edges |= {e for e in candidates if e in existing}
        for text in self.edges:
            edge = Edge.parse(text, graph.n_layers)
            graph.edge_index(edge)  # raises if the graph has no such edge
            edges.add(edge)
        nodes = self.nodes(graph) | {graph.nodes[0], graph.nodes[-1]}
        return Circuit(graph, nodes, frozenset(edges), {"rule": "ground truth", "name": self.name})


def _node(name: str, graph: ComponentGraph) -> Node:
    node = Node.parse(name, graph.n_layers)
    graph.node_index(node)  # raises if out of range
    return node


def _rule(d: Mapping[str, Any]) -> EdgeRule:
    def refs(x: Any) -> tuple[str, ...]:
        return (x,) if isinstance(x, str) else tuple(str(v) for v in x)

    within = bool(d.get("within", False))
    src = refs(d["from"])
    return EdgeRule(
        src=src,
        dst=src if within else refs(d["to"]),
        qkv=tuple(QKV(c) for c in d.get("qkv", "qkv")),
        within=within,
    )


def from_dict(data: Mapping[str, Any], source: str = "<dict>") -> GroundTruth:
    """Parse a ground-truth document; raise :class:`CircuitFileError` if it is not one."""
    if not isinstance(data, Mapping) or data.get("schema") != TRUTH_SCHEMA:
        raise CircuitFileError(f'{source}: not a ground-truth file (no "schema": "{TRUTH_SCHEMA}")')
    if data.get("schema_version") != TRUTH_SCHEMA_VERSION:
        raise CircuitFileError(f"{source}: ground-truth schema version {data.get('schema_version')!r} is not supported")
    try:
        m = data["model"]
        truth = GroundTruth(
            name=str(data["name"]),
            task=str(data["task"]),
            variant=str(data["variant"]),
            model=ModelShape(
                str(m["name"]), int(m["n_layers"]), int(m["n_heads"]), int(m["d_model"]), bool(m["attn_only"])
            ),
            citation=str(data["citation"]),
            source=str(data["source"]),
            notes=str(data.get("notes", "")),
            groups={str(k): tuple(str(n) for n in v) for k, v in data.get("groups", {}).items()},
            edge_rules=tuple(_rule(r) for r in data.get("edge_rules", [])),
            edges=tuple(str(e) for e in data.get("edges", [])),
            edge_positions={str(k): tuple(str(p) for p in v) for k, v in data.get("edge_positions", {}).items()},
        )
        # every name must resolve on a graph of the declared shape
        shape = truth.model
        truth.circuit(ComponentGraph(shape.n_layers, shape.n_heads, has_mlps=not shape.attn_only))
    except (KeyError, TypeError, ValueError, HeadgraphError) as err:
        raise CircuitFileError(f"{source}: malformed ground truth ({type(err).__name__}: {err})") from None
    return truth


def _data_files() -> dict[str, Any]:
    folder = resources.files("circuits.groundtruth").joinpath("data/published")
    return {f.name[: -len(".json")]: f for f in folder.iterdir() if f.name.endswith(".json")}


def published_names() -> list[str]:
    """Names of the shipped published circuits."""
    return sorted(_data_files())


@cache
def load_published(name: str) -> GroundTruth:
    """A shipped published circuit by name.

    Raises:
        UnknownNameError: no such circuit (the message lists the shipped ones).
    """
    from tasks.errors import UnknownNameError

    files = _data_files()
    if name not in files:
        raise UnknownNameError("ground truth", name, sorted(files))
    return from_dict(json.loads(files[name].read_text(encoding="utf-8")), source=f"{name}.json")
