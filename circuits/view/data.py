"""What the head-graph page shows, as one JSON-ready dict: nodes, scored items, diff, curve, attention.

The page (:mod:`circuits.view.page`) draws and prunes from this data in the browser, so everything
the slider needs travels here in compact, exact form:

* ``items``: the *scored* edges (or nodes) in graph order, each as sender / receiver node index and
  its normalized score. Graph order matters: the page's pruning is :func:`circuits.selection.prune_mask`
  written again in JavaScript, one forward and one backward pass in that order.
* ``order``: the items ranked by ``|score|`` (:func:`circuits.selection.ranked`, ties in graph
  order), so top-k takes a prefix; a threshold compares ``|normalized|`` exactly as
  :func:`circuits.selection.threshold` does (the float32 scores' exact values survive JSON).

A full edge graph (SmolLM2: 123k edges) is shipped whole and filtered on the page; only the kept
edges are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from circuits.errors import HeadgraphError
from circuits.graph import QKV, NodeKind
from circuits.headgraph import HeadGraph
from circuits.scores import Level
from circuits.selection import ranked
from circuits.view.attention import AttentionExamples

__all__ = ["DEFAULT_K", "Annotation", "annotations_from_json", "page_data"]

DEFAULT_K = {Level.NODE: 20, Level.EDGE: 100}
"""Slider start when the file's circuit does not say how it was selected."""

Annotation = Mapping[str, Any]
"""Extra facts about one node shown on hover: ``{"role": str, "labels": [str, ...]}`` (both optional)."""

_QKV_CODE = {None: 0, QKV.Q: 1, QKV.K: 2, QKV.V: 3}


def _num(x: float) -> float | None:
    """JSON has no NaN or infinity: they travel as null."""
    return x if math.isfinite(x) else None


def _meta(hg: HeadGraph) -> dict[str, Any]:
    b = hg.scores.baseline
    return {
        "model": hg.model.name,
        "task": hg.task.name,
        "n_pairs": hg.task.n_pairs,
        "seed": hg.task.seed,
        "method": hg.scores.method,
        "level": hg.scores.level.value,
        "metric": b.metric,
        "clean": _num(b.clean),
        "corrupt": _num(b.corrupt),
        "gap": _num(b.gap),
        "created": hg.created,
        "selection": dict(hg.circuit.selection),
        "circuit_nodes": len(hg.circuit.nodes),
        "circuit_edges": len(hg.circuit.edges),
    }


def _initial(hg: HeadGraph) -> dict[str, Any]:
    """Where the slider starts: the file's own rule when the page can replay it, else top-k."""
    sel = dict(hg.circuit.selection)
    if sel.get("rule") == "threshold" and isinstance(sel.get("t"), int | float):
        return {"mode": "threshold", "k": DEFAULT_K[hg.scores.level], "t": float(sel["t"])}
    k = sel.get("k") if sel.get("rule") in ("top_k", "greedy") else None
    if not isinstance(k, int) or isinstance(k, bool):
        k = DEFAULT_K[hg.scores.level]
    return {"mode": "top_k", "k": k, "t": None}


def _nodes(hg: HeadGraph, annotations: Mapping[str, Annotation]) -> dict[str, Any]:
    """Every node of the graph with its layout cell and its node score (edge scores: summed per sender)."""
    graph = hg.scores.graph
    node_scores = hg.scores.to_nodes()
    norm, vals = node_scores.normalized.tolist(), node_scores.values.tolist()
    rank = {i: r for r, i in enumerate(ranked(node_scores), 1)}
    col = {NodeKind.INPUT: -1, NodeKind.LOGITS: -1, NodeKind.MLP: graph.n_heads}
    out: dict[str, Any] = {"name": [], "kind": [], "layer": [], "col": [], "norm": [], "value": [], "rank": []}
    for i, n in enumerate(graph.nodes):
        out["name"].append(str(n))
        out["kind"].append(n.kind.value)
        out["layer"].append(n.layer)
        out["col"].append(n.head if n.kind is NodeKind.HEAD else col[n.kind])
        out["norm"].append(_num(norm[i]))
        out["value"].append(_num(vals[i]))
        out["rank"].append(rank.get(i))
    names = set(out["name"])
    unknown = sorted(set(annotations) - names)
    if unknown:
        raise HeadgraphError(f"annotations name nodes that are not in the graph: {', '.join(unknown[:5])}")
    out["annotations"] = {
        k: {"role": v.get("role"), "labels": list(v.get("labels", ()))} for k, v in annotations.items()
    }
    return out


def _items(hg: HeadGraph) -> tuple[dict[str, Any], list[int]]:
    """The scored items in graph order, and their ranking by |score| as positions in that list."""
    s = hg.scores
    graph = s.graph
    norm = s.normalized.tolist()
    vals = s.values.tolist()
    scored = [i for i, v in enumerate(vals) if not math.isnan(v)]
    pos = {gi: p for p, gi in enumerate(scored)}
    order = [pos[gi] for gi in ranked(s)]
    if s.level is Level.NODE:
        return {"node": scored, "norm": [_num(norm[i]) for i in scored]}, order
    index = {n: i for i, n in enumerate(graph.nodes)}
    edges = graph.edges
    items = {
        "src": [index[edges[i].src] for i in scored],
        "dst": [index[edges[i].dst] for i in scored],
        "qkv": [_QKV_CODE[edges[i].qkv] for i in scored],
        "norm": [_num(norm[i]) for i in scored],
    }
    return items, order


def _diff(a: HeadGraph, b: HeadGraph, top_k: int) -> dict[str, Any]:
    """Heads and edges B gained, lost or moved against A (the heads as ``headgraph compare`` prints them)."""
    from circuits.measures.regression import describe, diff_circuits

    ga, gb = a.scores.graph, b.scores.graph
    if (ga.n_layers, ga.n_heads) != (gb.n_layers, gb.n_heads):
        raise HeadgraphError(
            f"cannot diff circuits of a {ga.n_layers}×{ga.n_heads} and a {gb.n_layers}×{gb.n_heads} model head by head"
        )
    # Heads are ranked by node score; edge scores are summed per sender first (Scores.to_nodes), so
    # two edge files are compared by their heads too (for node files this is headgraph compare's diff).
    diff = diff_circuits(b.scores.to_nodes(), a.scores.to_nodes(), top_k)

    def row(c: Any) -> dict[str, Any]:
        return {
            "node": str(c.node),
            "rank_a": c.golden_rank,
            "rank_b": c.found_rank,
            "score_a": _num(c.golden_score),
            "score_b": _num(c.found_score),
        }

    moved = [c for c in diff.kept if c.golden_rank != c.found_rank]
    same = [c for c in diff.kept if c.golden_rank == c.found_rank]
    ea, eb = {str(e) for e in a.circuit.edges}, {str(e) for e in b.circuit.edges}
    na, nb = {str(n) for n in a.circuit.nodes}, {str(n) for n in b.circuit.nodes}
    return {
        "a": describe(a),
        "b": describe(b),
        "top_k": top_k,
        "jaccard": diff.jaccard,
        "text": diff.format(found="B", golden="A"),
        "heads": {
            "lost": [row(c) for c in diff.lost],
            "gained": [row(c) for c in diff.gained],
            "moved": [row(c) for c in moved],
            "kept": [row(c) for c in same],
        },
        "nodes": {"both": sorted(na & nb), "lost": sorted(na - nb), "gained": sorted(nb - na)},
        "edges": {"both": sorted(ea & eb), "lost": sorted(ea - eb), "gained": sorted(eb - ea)},
    }


def page_data(
    hg: HeadGraph,
    other: HeadGraph | None = None,
    *,
    attention: AttentionExamples | None = None,
    faithfulness: Mapping[str, Any] | None = None,
    annotations: Mapping[str, Annotation] | None = None,
    diff_top_k: int = 20,
    title: str = "",
) -> dict[str, Any]:
    """Everything the page shows, JSON-ready.

    Args:
        hg: the circuit file drawn.
        other: a second file: the page adds the diff of ``other`` (B) against ``hg`` (A).
        attention: stored attention patterns of some heads on example prompts (click a head).
        faithfulness: a ``faithfulness.json`` written by ``headgraph evaluate`` (its curve is drawn).
        annotations: per node name, a role and code labels shown on hover.
        diff_top_k: heads compared in the diff (``headgraph compare --top-k``).
        title: page title (default: model · task · method).

    Raises:
        HeadgraphError: the annotations name unknown nodes, the attention's heads are not in the
            graph, or the two files are of models of different shapes.
    """
    graph = hg.scores.graph
    items, order = _items(hg)
    if attention is not None:
        attention.check(graph.n_layers, graph.n_heads)
    if diff_top_k <= 0:
        raise HeadgraphError(f"the diff's top-k must be positive, got {diff_top_k}")
    return {
        "title": title or f"{hg.model.name} · {hg.task.name} · {hg.scores.method}",
        "meta": _meta(hg),
        "graph": {"n_layers": graph.n_layers, "n_heads": graph.n_heads, "has_mlps": graph.has_mlps},
        "nodes": _nodes(hg, annotations or {}),
        "level": hg.scores.level.value,
        "items": items,
        "order": order,
        "initial": _initial(hg),
        "attention": attention.to_dict() if attention is not None else None,
        "diff": _diff(hg, other, diff_top_k) if other is not None else None,
        "faithfulness": _faithfulness(faithfulness) if faithfulness is not None else None,
    }


def _faithfulness(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The two curves of a ``faithfulness.json`` (``headgraph evaluate``), checked for the fields drawn."""
    try:
        curves = {
            name: [(float(p["percent"]), float(p["faithfulness"]), int(p["kept"])) for p in doc[name]["points"]]
            for name in ("signed", "absolute")
        }
        out: dict[str, Any] = {
            "cpr": _num(float(doc["cpr"])),
            "cmd": _num(float(doc["cmd"])),
            "ablation": str(doc.get("ablation", "")),
            "level": str(doc["signed"].get("level", "")),
            "own": _num(float(doc["own_circuit_faithfulness"])) if "own_circuit_faithfulness" in doc else None,
        }
    except (KeyError, TypeError, ValueError) as err:
        raise HeadgraphError(f"not a faithfulness file of headgraph evaluate ({type(err).__name__}: {err})") from None
    out["curves"] = {k: [{"percent": p, "f": _num(f), "kept": n} for p, f, n in v] for k, v in curves.items()}
    return out


def annotations_from_json(doc: Any, model: str) -> dict[str, Annotation]:
    """Hover annotations from a JSON document: ``{"L9H9": {"role": ..., "labels": [...]}}``, or a
    ``headgraph.roles`` file of ``headgraph compare --roles`` (the roles of the side whose model is ``model``).

    Examples:
        >>> annotations_from_json({"schema": "headgraph.roles", "a": {"model": "m", "heads": [
        ...     {"head": "L1H2", "role": "name mover"}, {"head": "L0H0", "role": None}]}}, "m")
        {'L1H2': {'role': 'name mover'}}
    """
    if isinstance(doc, dict) and doc.get("schema") == "headgraph.roles":
        sides = [doc[s] for s in ("a", "b") if isinstance(doc.get(s), dict) and doc[s].get("model") == model]
        if not sides:
            raise HeadgraphError(f"the roles file has no side for model {model!r}")
        return {str(h["head"]): {"role": h["role"]} for h in sides[0].get("heads", []) if h.get("role")}
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise HeadgraphError('annotations must be a JSON object {"L9H9": {"role": "...", "labels": ["..."]}}')
    return {str(k): v for k, v in doc.items()}
