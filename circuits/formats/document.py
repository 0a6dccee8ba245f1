"""What other formats cannot say about a head graph, and how a head graph is rebuilt from them.

An EAP-IG / MIB file or a GraphML file holds the graph, the scores and the circuit; it has no place
for the model's name, the task, the method's settings or the clean/corrupt baseline. Exports put
those in one extra key, ``"headgraph"`` (:data:`EXTENSION_KEY`), that the other tools ignore (EAP-IG's
``Graph.from_json`` and MIB's ``load_graph_from_json`` read only ``cfg``, ``nodes`` and ``edges``;
``Graph.from_pt`` only its named keys). With it, export then import gives the same head graph
back; without it (a file another tool wrote) the missing facts get the neutral values of
:func:`foreign_meta`: unknown model name and task, NaN baseline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.errors import CircuitFileError
from circuits.graph import ComponentGraph, Edge, Node
from circuits.headgraph import SCHEMA, SCHEMA_VERSION, HeadGraph
from circuits.scores import Level

__all__ = ["EXTENSION_KEY", "assemble", "extension", "foreign_meta", "nan_values", "parse_extension"]

EXTENSION_KEY = "headgraph"
"""Top-level key of the headgraph facts in an exported file."""


def extension(hg: HeadGraph) -> dict[str, Any]:
    """The head graph's JSON form without its scores and circuit members (those the format holds)."""
    d = hg.to_dict()
    d.pop("scores")
    circuit = d.pop("circuit")
    d["level"] = hg.scores.level.value
    d["selection"] = circuit["selection"]
    return d


def foreign_meta(graph: ComponentGraph, level: Level, *, n_kv_heads: int, d_model: int, method: str) -> dict[str, Any]:
    """Neutral facts for a file written by another tool (nothing is invented: unknowns are NaN or '')."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "headgraph_version": "unknown",
        "created": "",
        "model": {
            "name": "unknown",
            "n_layers": graph.n_layers,
            "n_heads": graph.n_heads,
            "n_kv_heads": n_kv_heads,
            "d_model": d_model,
            "d_head": d_model // graph.n_heads if d_model else 0,
            "d_vocab": 0,
            "attn_only": not graph.has_mlps,
            "config_hash": "",
        },
        "task": {"name": "unknown", "seed": 0, "n_pairs": 0},
        "method": {"name": method, "params": {}, "seconds": None},
        "baseline": {"metric": "unknown", "clean": None, "corrupt": None},
        "graph": {
            "n_layers": graph.n_layers,
            "n_heads": graph.n_heads,
            "has_mlps": graph.has_mlps,
            "split_qkv": graph.split_qkv,
        },
        "level": level.value,
        "selection": {},
    }


def assemble(
    meta: Mapping[str, Any],
    graph: ComponentGraph,
    values: Float[Tensor, " n"],
    nodes: Sequence[Node],
    edges: Sequence[Edge],
    *,
    source: str,
) -> HeadGraph:
    """A head graph from a format's scores and circuit plus ``meta`` (:func:`extension` or :func:`foreign_meta`).

    Raises:
        CircuitFileError: the facts do not fit together (another graph shape, a malformed field).
    """
    g = meta.get("graph", {})
    declared = (g.get("n_layers"), g.get("n_heads"), g.get("has_mlps"), g.get("split_qkv"))
    if declared != (graph.n_layers, graph.n_heads, graph.has_mlps, graph.split_qkv):
        raise CircuitFileError(f"{source}: the headgraph facts describe another graph than the file's ({declared})")
    level = Level(meta["level"])
    items = graph.nodes if level is Level.NODE else graph.edges
    vals = values.tolist()
    order = sorted((i for i, v in enumerate(vals) if not math.isnan(v)), key=lambda i: -abs(vals[i]))
    d = {k: v for k, v in meta.items() if k not in ("level", "selection")}
    b = meta.get("baseline", {})
    clean, corrupt = b.get("clean"), b.get("corrupt")
    gap = clean - corrupt if isinstance(clean, int | float) and isinstance(corrupt, int | float) else 0.0
    d["scores"] = {
        "level": level.value,
        "ids": [str(items[i]) for i in order],
        "values": [vals[i] for i in order],
        "normalized": [vals[i] / gap if gap else math.nan for i in order],  # redundant with values; checked for length
    }
    d["circuit"] = {
        "nodes": [str(n) for n in nodes],
        "edges": [str(e) for e in edges],
        "selection": dict(meta.get("selection", {})),
    }
    return HeadGraph.from_dict(d, source=source)


def nan_values(n: int) -> Float[Tensor, " n"]:
    """``n`` unscored values."""
    return torch.full((n,), math.nan)


def parse_extension(text: Any, source: str) -> dict[str, Any]:
    """The headgraph facts stored as a JSON string (``.pt`` files, GraphML).

    Raises:
        CircuitFileError: not a JSON object.
    """
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as err:
        raise CircuitFileError(f"{source}: the '{EXTENSION_KEY}' facts are not JSON ({err})") from None
    if not isinstance(data, dict):
        raise CircuitFileError(f"{source}: the '{EXTENSION_KEY}' facts are not a JSON object")
    return data
