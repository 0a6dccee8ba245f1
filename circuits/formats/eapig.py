"""EAP-IG's ``Graph`` files, which MIB's circuit track takes as submissions: JSON and ``.pt``.

JSON (``Graph.to_json`` / ``from_json``; MIB ``circuit_loading.load_graph_from_json``)::

    {"cfg": {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": false, "d_model": 768},
     "nodes": {"input": {"in_graph": true}, "a0.h0": {"in_graph": false, "score": 0.1}, ...,
               "m11": {...}, "logits": {"in_graph": true}},
     "edges": {"input->a0.h0<q>": {"score": -0.0003, "in_graph": false}, ..., "m11->logits": {...}}}

``.pt`` (``Graph.to_pt`` / ``from_pt``; MIB ``load_graph_from_pt``): a ``torch.save``d dict with
``cfg``, ``src_nodes`` (forward nodes: input, per layer its heads then its MLP), ``dst_nodes``
(per layer ``a{l}.h{h}<q>`` for every head, then ``<k>``, then ``<v>``, then ``m{l}``; last
``logits``), ``edges_scores`` and ``edges_in_graph`` of shape (forward, backward),
``nodes_in_graph`` (forward) and, for node scores, ``nodes_scores`` (forward).

Mapping to headgraph (names: :mod:`circuits.formats.names`):

* **Sign.** EAP-IG attributes the *loss* (MIB: ``loss=True``, the negated logit difference) and its
  activation difference is corrupt − clean, so its score estimates the loss change when the edge
  is patched: the negative of headgraph's score (the metric change). Export writes
  ``score = −value``; import negates back. So MIB's signed ranking (``absolute=False``, highest
  first) picks the same edges first as headgraph's :attr:`~circuits.selection.Ranking.SIGNED`.
* **Scores.** Edge-level head graphs give each scored edge its score; unscored (NaN) edges are left
  out of the JSON (EAP-IG keeps its default 0 there) and are NaN in ``.pt``. Node-level head
  graphs give nodes a ``score`` (EAP-IG's node scores; NaN = unscored, always kept, as EAP-IG
  says) and every edge score 0.
* **Circuit.** ``in_graph`` of a node is its membership of the circuit, also for ``logits``
  (EAP-IG ignores the logits' entry and treats them as always in); ``in_graph`` of an edge is its
  membership (node-level circuits have no edges). MIB re-selects circuits from the scores, so the
  flags matter only to tools that read them.
* **Shape.** EAP-IG graphs always split head inputs into q/k/v and have serial blocks: a head graph
  without split q/k/v is refused, a file with ``parallel_attn_mlp`` true is refused. An
  attention-only head graph is written without ``m{l}`` entries and with ``"attn_only": true`` in
  ``cfg`` (EAP-IG's loaders accept the absent entries). ``cfg`` also records
  ``n_key_value_heads``; EAP-IG ignores both keys.

Sources: ``hannamw/EAP-IG`` ``src/eap/graph.py`` and ``src/eap/attribute.py`` @ 795f560;
``hannamw/MIB-circuit-track`` ``MIB_circuit_track/circuit_loading.py``, ``run_attribution.py``
and ``circuits/ioi-eap-ig.json`` @ b759df3.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from circuits.errors import CircuitFileError, HeadgraphError
from circuits.formats.document import EXTENSION_KEY, assemble, extension, foreign_meta, nan_values, parse_extension
from circuits.formats.names import eapig_edge_name, eapig_node_name, parse_eapig_edge, parse_eapig_node
from circuits.graph import QKV, ComponentGraph, Edge, Node, NodeKind
from circuits.headgraph import HeadGraph
from circuits.scores import Level

UNSCORED_CIRCUIT_EDGES = "unscored_circuit_edges"

__all__ = ["backward_index", "dst_node_names", "forward_index", "read_eapig", "write_eapig"]


def _check_exportable(graph: ComponentGraph) -> None:
    if not graph.split_qkv:
        raise HeadgraphError("EAP-IG and MIB graphs split head inputs into q, k and v; this circuit's graph does not")


def _cfg(hg: HeadGraph) -> dict[str, Any]:
    g = hg.scores.graph
    cfg: dict[str, Any] = {
        "n_layers": g.n_layers,
        "n_heads": g.n_heads,
        "parallel_attn_mlp": False,
        "d_model": hg.model.d_model,
        "n_key_value_heads": hg.model.n_kv_heads,
    }
    if not g.has_mlps:
        cfg["attn_only"] = True
    return cfg


def _edge_order_key(graph: ComponentGraph) -> Any:
    """EAP-IG's insertion order of edges (``Graph.from_model``): per layer, each sender into every
    head's q, k, v, then every sender into the MLP; the logits last."""
    src_pos = {n: i for i, n in enumerate(graph.nodes)}
    qkv_pos = {QKV.Q: 0, QKV.K: 1, QKV.V: 2, None: 0}

    def key(e: Edge) -> tuple[int, int, int, int, int]:
        kind = {NodeKind.HEAD: 0, NodeKind.MLP: 1, NodeKind.LOGITS: 2}[e.dst.kind]
        return (e.dst.layer, kind, src_pos[e.src], e.dst.head or 0, qkv_pos[e.qkv])

    return key


def _mib_values(hg: HeadGraph) -> list[float]:
    """Scores in EAP-IG's sign (module docstring)."""
    return [-v for v in hg.scores.values.tolist()]


def _to_json(hg: HeadGraph) -> dict[str, Any]:
    s, c = hg.scores, hg.circuit
    g = s.graph
    vals = _mib_values(hg)
    nodes: dict[str, dict[str, Any]] = {}
    for i, n in enumerate(g.nodes):
        entry: dict[str, Any] = {"in_graph": n in c.nodes}
        if s.level is Level.NODE and not math.isnan(vals[i]):
            entry["score"] = vals[i]
        nodes[eapig_node_name(n)] = entry
    edges: dict[str, dict[str, Any]] = {}
    unscored_in: list[str] = []
    for e in sorted(g.edges, key=_edge_order_key(g)):
        if s.level is Level.EDGE:
            v = vals[g.edge_index(e)]
            if math.isnan(v):
                if e in c.edges:
                    unscored_in.append(str(e))
                continue
        else:
            v = 0.0
        edges[eapig_edge_name(e)] = {"score": v, "in_graph": e in c.edges}
    ext = extension(hg)
    if unscored_in:  # circuit edges without a score have no place in EAP-IG's file
        ext[UNSCORED_CIRCUIT_EDGES] = unscored_in
    return {"cfg": _cfg(hg), "nodes": nodes, "edges": edges, EXTENSION_KEY: ext}


def forward_index(graph: ComponentGraph, node: Node) -> int:
    """EAP-IG's forward (sender) index: input 0, then per layer its heads and its MLP slot."""
    if node.kind is NodeKind.INPUT:
        return 0
    if node.kind is NodeKind.LOGITS:
        return 1 + graph.n_layers * (graph.n_heads + 1)
    base = 1 + node.layer * (graph.n_heads + 1)
    return base + (graph.n_heads if node.kind is NodeKind.MLP else int(node.head or 0))


def backward_index(graph: ComponentGraph, node: Node, qkv: QKV | None) -> int:
    """EAP-IG's backward (receiver) index: per layer the q, k, v inputs of every head, then the MLP."""
    h = graph.n_heads
    if node.kind is NodeKind.LOGITS:
        return graph.n_layers * (3 * h + 1)
    base = node.layer * (3 * h + 1)
    if node.kind is NodeKind.MLP:
        return base + 3 * h
    if node.kind is NodeKind.HEAD and qkv is not None:
        return base + "qkv".index(qkv.value) * h + int(node.head or 0)
    raise CircuitFileError(f"{node} has no EAP-IG backward index (qkv={qkv})")


def dst_node_names(graph: ComponentGraph) -> list[str]:
    """EAP-IG's ``Graph.get_dst_nodes()``: receivers in backward-index order."""
    out = []
    for layer in range(graph.n_layers):
        for letter in "qkv":
            out += [f"a{layer}.h{h}<{letter}>" for h in range(graph.n_heads)]
        out.append(f"m{layer}")
    return out + ["logits"]


def _to_pt(hg: HeadGraph) -> dict[str, Any]:
    s, c = hg.scores, hg.circuit
    g = s.graph
    n_fwd, n_bwd = 1 + g.n_layers * (g.n_heads + 1), g.n_layers * (3 * g.n_heads + 1) + 1
    vals = _mib_values(hg)
    scores = torch.zeros(n_fwd, n_bwd)
    in_graph = torch.zeros(n_fwd, n_bwd, dtype=torch.bool)
    for i, e in enumerate(g.edges):
        f, b = forward_index(g, e.src), backward_index(g, e.dst, e.qkv)
        scores[f, b] = vals[i] if s.level is Level.EDGE else 0.0
        in_graph[f, b] = e in c.edges
    all_src = ["input"]  # EAP-IG's forward slots; an attention-only graph keeps empty MLP slots
    for layer in range(g.n_layers):
        all_src += [f"a{layer}.h{h}" for h in range(g.n_heads)] + [f"m{layer}"]
    nodes_in = torch.zeros(n_fwd, dtype=torch.bool)
    for n in c.nodes:
        if n.kind is not NodeKind.LOGITS:
            nodes_in[forward_index(g, n)] = True
    d: dict[str, Any] = {
        "cfg": _cfg(hg),
        "src_nodes": all_src,
        "dst_nodes": dst_node_names(g),
        "edges_scores": scores,
        "edges_in_graph": in_graph,
        "nodes_in_graph": nodes_in,
        EXTENSION_KEY: json.dumps(extension(hg)),
    }
    if s.level is Level.NODE:
        node_scores = torch.full((n_fwd,), math.nan)
        for i, n in enumerate(g.nodes):
            if n.kind is not NodeKind.LOGITS:
                node_scores[forward_index(g, n)] = vals[i]
        d["nodes_scores"] = node_scores
        d["headgraph_logits_score"] = vals[-1]
    d["headgraph_logits_in_graph"] = g.nodes[-1] in c.nodes
    return d


def write_eapig(hg: HeadGraph, path: str | Path) -> Path:
    """Write ``hg`` as an EAP-IG/MIB graph: ``.pt`` if the name ends so, else JSON.

    The file is written whole or not at all (a temporary file renamed into place).

    Raises:
        HeadgraphError: the graph has no split q/k/v inputs.
    """
    _check_exportable(hg.scores.graph)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        if path.suffix == ".pt":
            torch.save(_to_pt(hg), tmp)
        else:
            tmp.write((json.dumps(_to_json(hg)) + "\n").encode("utf-8"))
    Path(tmp.name).replace(path)
    return path


def _graph_of_cfg(cfg: Any, source: str) -> tuple[ComponentGraph, int, int]:
    if not isinstance(cfg, dict):
        raise CircuitFileError(f"{source}: not an EAP-IG graph file (no 'cfg' object)")
    if cfg.get("parallel_attn_mlp"):
        raise CircuitFileError(f"{source}: parallel attention/MLP blocks are not supported (parallel_attn_mlp true)")
    try:
        n_layers, n_heads = int(cfg["n_layers"]), int(cfg["n_heads"])
        graph = ComponentGraph(n_layers, n_heads, has_mlps=not cfg.get("attn_only", False))
    except (KeyError, TypeError, ValueError, HeadgraphError) as err:
        raise CircuitFileError(f"{source}: bad 'cfg' ({type(err).__name__}: {err})") from None
    return graph, int(cfg.get("n_key_value_heads") or n_heads), int(cfg.get("d_model") or 0)


def _meta(d: Any, graph: ComponentGraph, level: Level, kv: int, d_model: int, source: str) -> dict[str, Any]:
    ext = d.get(EXTENSION_KEY)
    if isinstance(ext, str):
        ext = parse_extension(ext, source)
    if ext is None:
        return foreign_meta(graph, level, n_kv_heads=kv, d_model=d_model, method="eap-ig-file")
    if not isinstance(ext, dict) or ext.get("level") != level.value:
        raise CircuitFileError(f"{source}: the '{EXTENSION_KEY}' facts do not match the file's scores")
    return ext


def _node(graph: ComponentGraph, name: str, source: str) -> Node:
    node = parse_eapig_node(name, graph.n_layers)
    if node not in set(graph.nodes):
        raise CircuitFileError(f"{source}: node {name!r} is not in a {graph.n_layers}×{graph.n_heads} graph")
    return node


def _edge(graph: ComponentGraph, name: str, source: str) -> int:
    """The index of a name that is not spelled as :func:`eapig_edge_name` spells it (or raise)."""
    edge = parse_eapig_edge(name, graph.n_layers)
    try:
        return graph.edge_index(edge)
    except HeadgraphError:
        raise CircuitFileError(f"{source}: edge {name!r} is not in a {graph.n_layers}×{graph.n_heads} graph") from None


def _from_json(d: Any, source: str) -> HeadGraph:
    if not isinstance(d, dict) or not all(k in d for k in ("cfg", "nodes", "edges")):
        raise CircuitFileError(f"{source}: not an EAP-IG/MIB graph file (needs 'cfg', 'nodes' and 'edges')")
    graph, kv, d_model = _graph_of_cfg(d["cfg"], source)
    node_names = {eapig_node_name(n): n for n in graph.nodes}
    edge_names = {eapig_edge_name(e): i for i, e in enumerate(graph.edges)}
    try:
        node_entries = {(node_names.get(k) or _node(graph, k, source)): v for k, v in d["nodes"].items()}
        edge_entries = {
            (edge_names[k] if k in edge_names else _edge(graph, k, source)): v for k, v in d["edges"].items()
        }
        ext = d.get(EXTENSION_KEY)
        if isinstance(ext, dict) and ext.get("level") in ("node", "edge"):
            level = Level(ext["level"])  # a node-level file whose nodes are all unscored has no 'score'
        else:
            level = Level.NODE if any("score" in v for v in node_entries.values()) else Level.EDGE
        vals = [math.nan] * (len(graph.nodes) if level is Level.NODE else len(graph.edges))
        if level is Level.NODE:
            for n, v in node_entries.items():
                if "score" in v and v["score"] is not None:
                    vals[graph.node_index(n)] = -float(v["score"])
        else:
            for i, v in edge_entries.items():
                vals[i] = -float(v["score"])
        values = torch.tensor(vals, dtype=torch.float32)
        nodes = [n for n in graph.nodes if n in node_entries and bool(node_entries[n]["in_graph"])]
        edges = [graph.edges[i] for i, v in edge_entries.items() if bool(v["in_graph"])]
        if isinstance(ext, dict):
            edges += [Edge.parse(x, graph.n_layers) for x in ext.pop(UNSCORED_CIRCUIT_EDGES, [])]
        if d.get(EXTENSION_KEY) is None:  # another tool: EAP-IG's logits are always in
            nodes = _foreign_nodes(graph, level, nodes, edges)
    except (KeyError, TypeError, ValueError, AttributeError, HeadgraphError) as err:
        raise CircuitFileError(f"{source}: malformed EAP-IG graph ({type(err).__name__}: {err})") from None
    return assemble(_meta(d, graph, level, kv, d_model, source), graph, values, nodes, edges, source=source)


def _foreign_nodes(graph: ComponentGraph, level: Level, nodes: list[Node], edges: list[Edge]) -> list[Node]:
    """A foreign file's circuit nodes as headgraph keeps them: an edge circuit's nodes are its edges'
    endpoints; a node circuit has no logits node (EAP-IG marks the logits always in)."""
    if level is Level.EDGE:
        ends = {n for e in edges for n in (e.src, e.dst)}
        return [n for n in graph.nodes if n in ends]
    return [n for n in nodes if n.kind is not NodeKind.LOGITS]


def _from_pt(d: Any, source: str) -> HeadGraph:
    need = ("cfg", "src_nodes", "dst_nodes", "edges_scores", "edges_in_graph", "nodes_in_graph")
    if not isinstance(d, dict) or not all(k in d for k in need):
        raise CircuitFileError(f"{source}: not an EAP-IG/MIB .pt graph (needs {', '.join(need)})")
    graph, kv, d_model = _graph_of_cfg(d["cfg"], source)
    n_fwd, n_bwd = 1 + graph.n_layers * (graph.n_heads + 1), graph.n_layers * (3 * graph.n_heads + 1) + 1
    scores, in_graph, nodes_in = d["edges_scores"], d["edges_in_graph"], d["nodes_in_graph"]
    if tuple(scores.shape) != (n_fwd, n_bwd) or tuple(in_graph.shape) != (n_fwd, n_bwd):
        raise CircuitFileError(f"{source}: edge tensors of shape {tuple(scores.shape)}, expected {(n_fwd, n_bwd)}")
    if list(d["dst_nodes"]) != dst_node_names(graph):
        raise CircuitFileError(f"{source}: 'dst_nodes' are not in EAP-IG's order for this cfg")
    level = Level.NODE if "nodes_scores" in d else Level.EDGE
    if level is Level.NODE:
        values = nan_values(len(graph.nodes))
        ns = d["nodes_scores"]
        for i, n in enumerate(graph.nodes):
            if n.kind is not NodeKind.LOGITS:
                values[i] = -float(ns[forward_index(graph, n)])
        if "headgraph_logits_score" in d:
            values[-1] = -float(d["headgraph_logits_score"])
    else:
        f = torch.tensor([forward_index(graph, e.src) for e in graph.edges])
        b = torch.tensor([backward_index(graph, e.dst, e.qkv) for e in graph.edges])
        values = -scores[f, b].float()
    edges = [e for e in graph.edges if bool(in_graph[forward_index(graph, e.src), backward_index(graph, e.dst, e.qkv)])]
    nodes = [n for n in graph.nodes if n.kind is not NodeKind.LOGITS and bool(nodes_in[forward_index(graph, n)])]
    if d.get("headgraph_logits_in_graph"):
        nodes.append(graph.nodes[-1])
    if d.get(EXTENSION_KEY) is None:
        nodes = _foreign_nodes(graph, level, nodes, edges)
    return assemble(_meta(d, graph, level, kv, d_model, source), graph, values, nodes, edges, source=source)


def read_eapig(path: str | Path) -> HeadGraph:
    """Read an EAP-IG/MIB graph file (``.pt`` by its name, else JSON) as a head graph.

    Raises:
        CircuitFileError: missing, unreadable, or not an EAP-IG graph of a supported shape.
    """
    path = Path(path)
    if not path.is_file():
        raise CircuitFileError(f"{path}: no such file")
    if path.suffix == ".pt":
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
            raise CircuitFileError(f"{path}: not a torch file ({type(err).__name__})") from None
        return _from_pt(d, str(path))
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CircuitFileError(f"{path}: not JSON ({err})") from None
    return _from_json(d, str(path))
