"""From scores to circuits: top-k, threshold and greedy selection, with pruning of dangling parts.

An edge circuit is only meaningful when each of its edges lies on a path from the input to the
logits: an edge out of a node that nothing in the circuit feeds, or into a node that feeds nothing,
carries no information of the circuit. :func:`prune` removes such edges (repeatedly, as one
reachability pass each way), as EAP-IG's ``Graph.prune`` and MIB's evaluation do; every selection
here prunes by default, so the kept count can be lower than asked (on IOI, EAP's top-100 edges of
GPT-2 prune to 41, Hanna et al. 2024).

Ranking (:class:`Ranking`):
  * ``ABSOLUTE``: by importance ``|value|`` (MIB's CMD, ``abs=True``);
  * ``SIGNED``: most negative value first, i.e. the edges whose ablation lowers the metric most
    (MIB's CPR, ``abs=False``; MIB's scores are gradients of the *loss*, the negative of ours).

Greedy selection (EAP-IG's ``apply_greedy``) grows the circuit backwards from the logits: the
candidates are the edges into nodes already in the circuit, and the best candidate joins next.
"""

from __future__ import annotations

import heapq
import math
from enum import Enum
from functools import cache

import torch
from jaxtyping import Bool
from torch import Tensor

from circuits.errors import HeadgraphError
from circuits.graph import ComponentGraph, Node, NodeKind
from circuits.scores import Circuit, Level, Scores

__all__ = ["Ranking", "edge_mask", "greedy", "prune", "prune_mask", "ranked", "threshold", "top_k"]


class Ranking(Enum):
    """Which scored items come first."""

    ABSOLUTE = "abs"
    SIGNED = "signed"


def ranked(scores: Scores, ranking: Ranking = Ranking.ABSOLUTE) -> list[int]:
    """Indices of the scored (non-NaN) items, best first; ties keep graph order.

    Examples:
        >>> from circuits.scores import Baseline
        >>> s = Scores(ComponentGraph(1, 2), Level.NODE, torch.tensor([math.nan, -1.0, 3.0, 0.5, math.nan]), "x",
        ...            Baseline("m", 1.0, 0.0))
        >>> ranked(s), ranked(s, Ranking.SIGNED)
        ([2, 1, 3], [1, 3, 2])
    """
    vals = scores.values.tolist()
    key = (lambda i: -abs(vals[i])) if ranking is Ranking.ABSOLUTE else (lambda i: vals[i])
    return sorted((i for i, v in enumerate(vals) if not math.isnan(v)), key=key)


def top_k(
    scores: Scores,
    k: int,
    ranking: Ranking = Ranking.ABSOLUTE,
    *,
    pruned: bool = True,
    record: dict[str, object] | None = None,
) -> Circuit:
    """The ``k`` best scored items (edges, then pruned; or nodes).

    ``record`` replaces the selection written into the circuit (``Scores.top_k`` keeps its
    historical ``{"rule": "top_k", "k": k}`` so stored results do not change).
    """
    _check_k(k)
    chosen = ranked(scores, ranking)[:k]
    made = {"rule": "top_k", "k": k, "ranking": ranking.value} if record is None else record
    return _circuit(scores, chosen, made, pruned)


def threshold(scores: Scores, t: float, *, pruned: bool = True) -> Circuit:
    """The items whose ``|normalized value|`` is at least ``t`` (edges then pruned)."""
    norm = scores.normalized.tolist()
    chosen = [i for i in ranked(scores) if abs(norm[i]) >= t]
    return _circuit(scores, chosen, {"rule": "threshold", "t": t}, pruned)


def greedy(scores: Scores, k: int, ranking: Ranking = Ranking.ABSOLUTE) -> Circuit:
    """``k`` edges grown backwards from the logits, best candidate first, then pruned."""
    _check_k(k)
    if scores.level is not Level.EDGE:
        raise HeadgraphError("greedy selection needs edge scores")
    graph = scores.graph
    vals = scores.values.tolist()
    incoming = _incoming(graph)

    def priority(i: int) -> float:
        return -abs(vals[i]) if ranking is Ranking.ABSOLUTE else vals[i]

    heap: list[tuple[float, int]] = []
    in_circuit = {graph.node_index(_logits(graph))}

    def offer(node: int) -> None:
        for i in incoming[node]:
            if not math.isnan(vals[i]):
                heapq.heappush(heap, (priority(i), i))

    offer(graph.node_index(_logits(graph)))
    node_of = _src_index(graph)
    chosen: list[int] = []
    while heap and len(chosen) < k:
        _, i = heapq.heappop(heap)
        chosen.append(i)
        src = node_of[i]
        if src not in in_circuit:
            in_circuit.add(src)
            offer(src)
    return _circuit(scores, chosen, {"rule": "greedy", "k": k, "ranking": ranking.value}, True)


def edge_mask(circuit: Circuit, level: Level, always: frozenset[Node] = frozenset()) -> Bool[Tensor, " n_edges"]:
    """Which edges of the graph a circuit keeps.

    An edge-level circuit keeps its edges. A node-level circuit keeps every edge between its nodes,
    the input, the logits and the nodes in ``always`` (e.g. the nodes its method did not score).
    """
    graph = circuit.graph
    mask = torch.zeros(len(graph.edges), dtype=torch.bool)
    if level is Level.EDGE:
        if circuit.edges:
            mask[torch.tensor([graph.edge_index(e) for e in circuit.edges])] = True
        return mask
    kept = set(circuit.nodes) | set(always) | {Node(NodeKind.INPUT, -1), _logits(graph)}
    for i, e in enumerate(graph.edges):
        mask[i] = e.src in kept and e.dst in kept
    return mask


def prune_mask(graph: ComponentGraph, keep: Bool[Tensor, " n_edges"]) -> Bool[Tensor, " n_edges"]:
    """``keep`` without the edges that lie on no input → logits path of kept edges."""
    src, dst = _src_index(graph), _dst_index(graph)
    keep_list = keep.tolist()
    n_nodes = len(graph.nodes)
    reached = [False] * n_nodes  # from the input
    reached[0] = True
    for i in range(len(keep_list)):  # edges are ordered by receiver, receivers topologically
        if keep_list[i] and reached[src[i]]:
            reached[dst[i]] = True
    feeds = [False] * n_nodes  # into the logits
    feeds[n_nodes - 1] = True
    for i in reversed(range(len(keep_list))):  # a receiver's outputs come after its inputs
        if keep_list[i] and feeds[dst[i]]:
            feeds[src[i]] = True
    return torch.tensor([k and reached[s] and feeds[d] for k, s, d in zip(keep_list, src, dst, strict=True)])


def prune(circuit: Circuit) -> Circuit:
    """An edge circuit without its dangling edges and nodes; node circuits are returned unchanged."""
    if not circuit.edges:
        return circuit
    graph = circuit.graph
    kept = prune_mask(graph, edge_mask(circuit, Level.EDGE)).nonzero().flatten().tolist()
    return Circuit.from_items(graph, [graph.edges[i] for i in kept], {**circuit.selection, "pruned": True})


def _circuit(scores: Scores, chosen: list[int], selection: dict[str, object], pruned: bool) -> Circuit:
    items = scores.items
    circuit = Circuit.from_items(scores.graph, [items[i] for i in chosen], selection)
    return prune(circuit) if pruned and scores.level is Level.EDGE else circuit


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise HeadgraphError(f"k must be a non-negative integer, got {k!r}")


def _logits(graph: ComponentGraph) -> Node:
    return Node(NodeKind.LOGITS, graph.n_layers)


@cache
def _src_index(graph: ComponentGraph) -> tuple[int, ...]:
    return tuple(graph.node_index(e.src) for e in graph.edges)


@cache
def _dst_index(graph: ComponentGraph) -> tuple[int, ...]:
    return tuple(graph.node_index(e.dst) for e in graph.edges)


@cache
def _incoming(graph: ComponentGraph) -> tuple[tuple[int, ...], ...]:
    """Per node, the indices of the edges into it."""
    out: list[list[int]] = [[] for _ in graph.nodes]
    for i, d in enumerate(_dst_index(graph)):
        out[d].append(i)
    return tuple(tuple(x) for x in out)
