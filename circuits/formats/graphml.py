"""GraphML: a head graph for graph tools (networkx ``read_graphml``, Gephi, yEd, Cytoscape).

One directed ``<graph>``; its data give the candidate graph's shape (``n_layers``, ``n_heads``,
``has_mlps``, ``split_qkv``), the score level and the headgraph facts (JSON, see
:mod:`circuits.formats.document`). Every node of the candidate graph is a ``<node>`` whose id is
its headgraph name (``L3H4``) with data ``kind``, ``layer``, ``head`` (-1 for non-heads),
``in_circuit`` and, when scored, ``score``. Each scored edge and each circuit edge is an ``<edge>``
whose id is its headgraph name (``L0H1->L3H4<q>``), with ``qkv`` ("" for MLP and logits
receivers), ``in_circuit`` and, when scored, ``score``. Scores keep headgraph's sign (the metric
change when the item is ablated) and are written with Python's shortest exact ``repr``, so they
read back bit for bit. Several edges join the same two nodes (q, k and v), which GraphML allows.

Specification: the GraphML Primer, http://graphml.graphdrawing.org/primer/graphml-primer.html
(``key`` declarations with ``attr.name``/``attr.type``, ``edgedefault="directed"``).
"""

from __future__ import annotations

import json
import math
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import torch

from circuits.errors import CircuitFileError, HeadgraphError
from circuits.formats.document import EXTENSION_KEY, assemble, extension, foreign_meta, parse_extension
from circuits.graph import QKV, ComponentGraph, Edge, Node
from circuits.headgraph import HeadGraph
from circuits.scores import Level

__all__ = ["read_graphml", "write_graphml"]

NS = "http://graphml.graphdrawing.org/xmlns"
_KEYS = (
    ("g_n_layers", "graph", "n_layers", "int"),
    ("g_n_heads", "graph", "n_heads", "int"),
    ("g_has_mlps", "graph", "has_mlps", "boolean"),
    ("g_split_qkv", "graph", "split_qkv", "boolean"),
    ("g_level", "graph", "level", "string"),
    ("g_headgraph", "graph", EXTENSION_KEY, "string"),
    ("n_kind", "node", "kind", "string"),
    ("n_layer", "node", "layer", "int"),
    ("n_head", "node", "head", "int"),
    ("n_in", "node", "in_circuit", "boolean"),
    ("n_score", "node", "score", "double"),
    ("e_qkv", "edge", "qkv", "string"),
    ("e_in", "edge", "in_circuit", "boolean"),
    ("e_score", "edge", "score", "double"),
)


def _data(parent: ET.Element, key: str, value: Any) -> None:
    el = ET.SubElement(parent, f"{{{NS}}}data", key=key)
    el.text = ("true" if value else "false") if isinstance(value, bool) else str(value)


def _tree(hg: HeadGraph) -> ET.ElementTree:
    s, c = hg.scores, hg.circuit
    g = s.graph
    ET.register_namespace("", NS)
    root = ET.Element(f"{{{NS}}}graphml")
    for kid, for_, name, typ in _KEYS:
        ET.SubElement(root, f"{{{NS}}}key", {"id": kid, "for": for_, "attr.name": name, "attr.type": typ})
    graph = ET.SubElement(root, f"{{{NS}}}graph", id="headgraph", edgedefault="directed")
    for key, value in (("g_n_layers", g.n_layers), ("g_n_heads", g.n_heads), ("g_has_mlps", g.has_mlps),
                       ("g_split_qkv", g.split_qkv), ("g_level", s.level.value),
                       ("g_headgraph", json.dumps(extension(hg))) ):  # fmt: skip
        _data(graph, key, value)
    vals = s.values.tolist()
    for i, n in enumerate(g.nodes):
        el = ET.SubElement(graph, f"{{{NS}}}node", id=str(n))
        _data(el, "n_kind", n.kind.value)
        _data(el, "n_layer", n.layer)
        _data(el, "n_head", -1 if n.head is None else n.head)
        _data(el, "n_in", n in c.nodes)
        if s.level is Level.NODE and not math.isnan(vals[i]):
            _data(el, "n_score", repr(vals[i]))
    for i, e in enumerate(g.edges):
        scored = s.level is Level.EDGE and not math.isnan(vals[i])
        if not scored and e not in c.edges:
            continue
        el = ET.SubElement(graph, f"{{{NS}}}edge", id=str(e), source=str(e.src), target=str(e.dst))
        _data(el, "e_qkv", e.qkv.value if e.qkv else "")
        _data(el, "e_in", e in c.edges)
        if scored:
            _data(el, "e_score", repr(vals[i]))
    ET.indent(root, space=" ")
    return ET.ElementTree(root)


def write_graphml(hg: HeadGraph, path: str | Path) -> Path:
    """Write ``hg`` as GraphML (whole or not at all)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        _tree(hg).write(tmp, encoding="utf-8", xml_declaration=True)
    Path(tmp.name).replace(path)
    return path


def _datas(el: ET.Element, keys: dict[str, str]) -> dict[str, str]:
    return {keys.get(d.get("key", ""), d.get("key", "")): d.text or "" for d in el.findall(f"{{{NS}}}data")}


def _bool(text: str) -> bool:
    if text.strip().lower() not in ("true", "false"):
        raise ValueError(f"not a GraphML boolean: {text!r}")
    return text.strip().lower() == "true"


def read_graphml(path: str | Path) -> HeadGraph:
    """Read a GraphML file written by :func:`write_graphml` (or by a tool that kept its data keys).

    Raises:
        CircuitFileError: missing, not GraphML, or without the graph shape.
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise CircuitFileError(f"{src}: no such file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise CircuitFileError(f"{src}: not XML ({err})") from None
    graph_el = root.find(f"{{{NS}}}graph")
    if root.tag != f"{{{NS}}}graphml" or graph_el is None:
        raise CircuitFileError(f"{src}: not a GraphML file (no graphml/graph element)")
    keys = {k.get("id", ""): k.get("attr.name", "") for k in root.findall(f"{{{NS}}}key")}
    try:
        gd = _datas(graph_el, keys)
        graph = ComponentGraph(int(gd["n_layers"]), int(gd["n_heads"]), _bool(gd["has_mlps"]), _bool(gd["split_qkv"]))
        level = Level(gd.get("level", "edge"))
        vals = [math.nan] * (len(graph.nodes) if level is Level.NODE else len(graph.edges))
        nodes: list[Node] = []
        for el in graph_el.findall(f"{{{NS}}}node"):
            node = Node.parse(el.get("id", ""), graph.n_layers)
            i = graph.node_index(node)
            d = _datas(el, keys)
            if _bool(d.get("in_circuit", "false")):
                nodes.append(node)
            if level is Level.NODE and "score" in d:
                vals[i] = float(d["score"])
        edges: list[Edge] = []
        for el in graph_el.findall(f"{{{NS}}}edge"):
            d = _datas(el, keys)
            qkv = QKV(d["qkv"]) if d.get("qkv") else None
            edge = Edge(
                Node.parse(el.get("source", ""), graph.n_layers), Node.parse(el.get("target", ""), graph.n_layers), qkv
            )
            i = graph.edge_index(edge)
            if _bool(d.get("in_circuit", "false")):
                edges.append(edge)
            if level is Level.EDGE and "score" in d:
                vals[i] = float(d["score"])
        ext = gd.get(EXTENSION_KEY)
        meta = (
            parse_extension(ext, src)
            if ext
            else foreign_meta(graph, level, n_kv_heads=graph.n_heads, d_model=0, method="graphml-file")
        )
    except (KeyError, TypeError, ValueError, HeadgraphError) as err:
        raise CircuitFileError(f"{src}: malformed headgraph GraphML ({type(err).__name__}: {err})") from None
    values = torch.tensor(vals, dtype=torch.float32)
    order = {n: i for i, n in enumerate(graph.nodes)}
    nodes.sort(key=order.__getitem__)
    return assemble(meta, graph, values, nodes, edges, source=src)
