"""auto-circuit's prune scores: edge scores as one tensor per destination module, in a ``.pt`` file.

auto-circuit (Miller, Chughtai & Saunders 2024, "Transformer Circuit Faithfulness Metrics are not
Robust", arXiv:2407.08734) keeps a graph's edges as *patch masks*, one tensor per destination
module, and a method's edge scores in the same layout, ``PruneScores = Dict[str, Tensor]``
keyed by the destination's module name. For a factorized TransformerLens model:

* sources, in ``src_idx`` order: ``Resid Start`` (``blocks.0.hook_resid_pre``), then per block
  its heads ``A{b}.{h}`` (``attn.hook_result``) and its ``MLP {b}`` (``hook_mlp_out``) — headgraph's
  node order;
* destinations: per block ``blocks.{b}.hook_{q,k,v}_input`` (``A{b}.{h}.Q`` ...; or
  ``hook_attn_in`` without split q/k/v) with a tensor of shape ``(n_heads, n_sources_before)``
  indexed ``[head, src_idx]``, ``blocks.{b}.hook_mlp_in`` with ``(n_sources_before,)``, and
  ``Resid End`` at ``blocks.{L-1}.hook_resid_post`` with every source. "Before" is auto-circuit's
  layer rule (``src.layer < dest.layer``: a head reads earlier blocks, an MLP also its own
  block's heads), the same edges as :class:`~circuits.graph.ComponentGraph`.

Sign: auto-circuit's gradient scores differentiate the *loss* ``-answer_diff`` with respect to
the patch mask (1 = edge patched), so a score estimates the loss change when the edge is
ablated: the negative of headgraph's score. Export negates; import negates back.

File written here: ``torch.save({"prune_scores": PruneScores, "circuit": [edge names],
"headgraph": facts})``; ``circuit`` uses auto-circuit's ``Edge.name`` (``A0.1->A2.3.Q``) and
lists the edges *kept* (auto-circuit patches the others). Unscored edges are NaN. Only edge scores
exist in auto-circuit; node-level head graphs are refused.

Sources: ``UFO-101/auto-circuit`` @ 98db58c: ``auto_circuit/types.py`` (``PruneScores``,
``Edge.patch_idx``, ``Edge.name``), ``auto_circuit/model_utils/transformer_lens_utils.py``
(``factorized_src_nodes``, ``factorized_dest_nodes``), ``auto_circuit/utils/graph_utils.py``
(mask shapes), ``auto_circuit/prune_algos/mask_gradient.py`` (the sign).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from circuits.errors import CircuitFileError, HeadgraphError
from circuits.formats.document import EXTENSION_KEY, assemble, extension, foreign_meta, nan_values, parse_extension
from circuits.formats.names import autocircuit_edge_name, parse_autocircuit_edge
from circuits.graph import ComponentGraph, Edge, Node, NodeKind
from circuits.headgraph import HeadGraph
from circuits.scores import Level

__all__ = ["dest_module", "read_autocircuit", "write_autocircuit"]

EXTRA_NODES = "extra_nodes"

_HEAD_IN = re.compile(r"^blocks\.(\d+)\.hook_([qkv])_input$")
_ATTN_IN = re.compile(r"^blocks\.(\d+)\.hook_attn_in$")
_MLP_IN = re.compile(r"^blocks\.(\d+)\.hook_mlp_in$")
_RESID_END = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")


def dest_module(edge: Edge, graph: ComponentGraph) -> str:
    """The module name auto-circuit keys ``edge``'s scores by.

    Examples:
        >>> from circuits.graph import QKV
        >>> dest_module(Edge(Node.of_mlp(0), Node.of_head(2, 1), QKV.K), ComponentGraph(3, 2))
        'blocks.2.hook_k_input'
    """
    dst = edge.dst
    if dst.kind is NodeKind.LOGITS:
        return f"blocks.{graph.n_layers - 1}.hook_resid_post"
    if dst.kind is NodeKind.MLP:
        return f"blocks.{dst.layer}.hook_mlp_in"
    return f"blocks.{dst.layer}.hook_{edge.qkv.value}_input" if edge.qkv else f"blocks.{dst.layer}.hook_attn_in"


def _index(edge: Edge, graph: ComponentGraph) -> tuple[int, ...]:
    """``Edge.patch_idx``: ``[head, src_idx]`` into a head input's tensor, ``[src_idx]`` otherwise."""
    src_idx = graph.node_index(edge.src)  # headgraph's node order is auto-circuit's src_idx order
    return (int(edge.dst.head or 0), src_idx) if edge.dst.kind is NodeKind.HEAD else (src_idx,)


def _n_sources(dst: Node, graph: ComponentGraph) -> int:
    """Sources before ``dst`` (the input, then per block its heads and its MLP)."""
    per_block = graph.n_heads + (1 if graph.has_mlps else 0)
    if dst.kind is NodeKind.LOGITS:
        return 1 + graph.n_layers * per_block
    return 1 + dst.layer * per_block + (graph.n_heads if dst.kind is NodeKind.MLP else 0)


def _empty(graph: ComponentGraph) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for e in graph.edges:
        name = dest_module(e, graph)
        if name not in out:
            n = _n_sources(e.dst, graph)
            out[name] = torch.full((graph.n_heads, n) if e.dst.kind is NodeKind.HEAD else (n,), math.nan)
    return out


def write_autocircuit(hg: HeadGraph, path: str | Path) -> Path:
    """Write ``hg``'s edge scores as auto-circuit prune scores (whole or not at all).

    Raises:
        HeadgraphError: node-level scores (auto-circuit scores edges only).
    """
    s, g = hg.scores, hg.scores.graph
    if s.level is not Level.EDGE:
        raise HeadgraphError("auto-circuit keeps edge scores only; this circuit file has node scores")
    scores = _empty(g)
    for e, v in zip(g.edges, s.values.tolist(), strict=True):
        scores[dest_module(e, g)][_index(e, g)] = -v
    ext = extension(hg)
    ends = {n for e in hg.circuit.edges for n in (e.src, e.dst)}
    ext[EXTRA_NODES] = [str(n) for n in g.nodes if n in hg.circuit.nodes and n not in ends]
    doc = {
        "prune_scores": scores,
        "circuit": sorted(autocircuit_edge_name(e) for e in hg.circuit.edges),
        EXTENSION_KEY: json.dumps(ext),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        torch.save(doc, tmp)
    Path(tmp.name).replace(path)
    return path


def _graph(scores: dict[str, Any], source: str) -> ComponentGraph:
    layers, split, heads, mlps = set(), None, set(), False
    for name, t in scores.items():
        if m := _HEAD_IN.match(name) or _ATTN_IN.match(name):
            layers.add(int(m[1]))
            split = bool(_HEAD_IN.match(name)) if split is None else split
            heads.add(int(t.shape[0]))
        elif m := _MLP_IN.match(name):
            mlps = True
            layers.add(int(m[1]))
        elif not _RESID_END.match(name):
            raise CircuitFileError(f"{source}: {name!r} is not an auto-circuit destination module")
    if not layers or len(heads) != 1 or layers != set(range(max(layers) + 1)):
        raise CircuitFileError(f"{source}: the prune scores do not describe every block of a model")
    return ComponentGraph(max(layers) + 1, heads.pop(), has_mlps=mlps, split_qkv=bool(split))


def read_autocircuit(path: str | Path) -> HeadGraph:
    """Read auto-circuit prune scores written by :func:`write_autocircuit`, or a bare ``PruneScores`` dict.

    Raises:
        CircuitFileError: missing, not a torch file, or tensors of the wrong shapes.
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise CircuitFileError(f"{src}: no such file")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise CircuitFileError(f"{src}: not a torch file ({type(err).__name__})") from None
    if not isinstance(d, dict):
        raise CircuitFileError(f"{src}: not auto-circuit prune scores (a dict of tensors)")
    scores = d.get("prune_scores", d)
    if not isinstance(scores, dict) or not all(isinstance(t, torch.Tensor) for t in scores.values()):
        raise CircuitFileError(f"{src}: not auto-circuit prune scores (a dict of tensors)")
    graph = _graph(scores, src)
    for name, t in _empty(graph).items():
        if name not in scores or tuple(scores[name].shape) != tuple(t.shape):
            got = tuple(scores[name].shape) if name in scores else "nothing"
            raise CircuitFileError(f"{src}: {name} needs a tensor of shape {tuple(t.shape)}, got {got}")
    values = nan_values(len(graph.edges))
    for i, e in enumerate(graph.edges):
        values[i] = -float(scores[dest_module(e, graph)][_index(e, graph)])
    try:
        edges = [parse_autocircuit_edge(n, graph.n_layers) for n in d.get("circuit", [])]
        for e in edges:
            graph.edge_index(e)
    except HeadgraphError as err:
        raise CircuitFileError(f"{src}: {err}") from None
    ends = {n for e in edges for n in (e.src, e.dst)}
    ext = d.get(EXTENSION_KEY)
    if ext is not None:
        meta = parse_extension(ext, src)
    else:
        meta = foreign_meta(graph, Level.EDGE, n_kv_heads=graph.n_heads, d_model=0, method="auto-circuit-file")
    try:  # the circuit's nodes: its edges' endpoints, plus loose nodes the facts list
        extra = {Node.parse(n, graph.n_layers) for n in meta.pop(EXTRA_NODES, [])}
    except HeadgraphError as err:
        raise CircuitFileError(f"{src}: {err}") from None
    nodes = [n for n in graph.nodes if n in ends or n in extra]
    return assemble(meta, graph, values, nodes, edges, source=src)
