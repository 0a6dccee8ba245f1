"""Naming maps between headgraph's graph and the field's tools: EAP-IG/MIB, auto-circuit, InterpBench.

Every tool names the same components of a TransformerLens model; only the spelling differs. One
row per component (``l`` a layer, ``h`` a *query* head, ``L`` the number of layers):

================  ==================  ======================  ====================================
headgraph         EAP-IG / MIB        auto-circuit            InterpBench (``edges.pkl``)
================  ==================  ======================  ====================================
``input``         ``input``           ``Resid Start``         ``hook_embed``, ``hook_pos_embed``
``L{l}H{h}``      ``a{l}.h{h}``       ``A{l}.{h}``            ``blocks.{l}.attn.hook_result[{h}]``
``MLP{l}``        ``m{l}``            ``MLP {l}``             ``blocks.{l}.hook_mlp_out`` (sender),
                                                              ``blocks.{l}.hook_mlp_in`` (receiver)
``logits``        ``logits``          ``Resid End``           ``blocks.{L-1}.hook_resid_post``
q input of head   ``...->a{l}.h{h}<q>`` ``...->A{l}.{h}.Q``   ``blocks.{l}.hook_q_input[{h}]``
================  ==================  ======================  ====================================

Edges: headgraph ``L0H1->L2H3<q>`` is EAP-IG's ``a0.h1->a2.h3<q>`` and auto-circuit's
``A0.1->A2.3.Q``; an edge into an MLP or the logits has no suffix in all three.

Grouped-query attention: all three tools, like headgraph, have one node per *query* head and one
q, k and v input per query head (EAP-IG and MIB run GQA models with TransformerLens's
``ungroup_grouped_query_attention``, which gives every query head its own copy of its group's
key/value input). So ``u->a5.h3<k>`` is the path from ``u`` through query head 3's use of its
group's keys, exactly headgraph's ``u->L5H3<k>``: the maps are one to one, whatever the number of
key/value heads. The number of key/value heads is recorded beside the graph (``n_key_value_heads``
in an exported ``cfg``), never folded into the names.

Sources: ``hannamw/EAP-IG`` ``src/eap/graph.py`` @ 795f560 (``InputNode``, ``AttentionNode``,
``MLPNode``, ``LogitNode``, ``Edge.name``); ``UFO-101/auto-circuit``
``auto_circuit/model_utils/transformer_lens_utils.py`` @ 98db58c (``factorized_src_nodes``,
``factorized_dest_nodes``); ``FlyingPumba/circuits-benchmark``
``circuits_benchmark/transformers/tracr_circuits_builder.py`` and ``utils/circuit/edges_list.py``
@ 0cfd831 (``acdc_hooks`` granularity, ``name[index]`` strings).
"""

from __future__ import annotations

import re

from circuits.errors import CircuitFileError
from circuits.graph import QKV, Edge, Node, NodeKind

__all__ = [
    "autocircuit_dest_name",
    "autocircuit_edge_name",
    "autocircuit_src_name",
    "eapig_edge_name",
    "eapig_node_name",
    "parse_autocircuit_edge",
    "parse_eapig_edge",
    "parse_eapig_node",
]

_EAPIG_HEAD = re.compile(r"^a(\d+)\.h(\d+)$")
_EAPIG_MLP = re.compile(r"^m(\d+)$")
_EAPIG_EDGE = re.compile(r"^([^<>]+?)->([^<>]+?)(?:<([qkv])>)?$")
_AC_HEAD = re.compile(r"^A(\d+)\.(\d+)$")
_AC_HEAD_IN = re.compile(r"^A(\d+)\.(\d+)\.([QKV])$")
_AC_MLP = re.compile(r"^MLP (\d+)$")


def eapig_node_name(node: Node) -> str:
    """EAP-IG's (and MIB's) name of ``node``.

    Examples:
        >>> eapig_node_name(Node.of_head(3, 4)), eapig_node_name(Node.of_mlp(2))
        ('a3.h4', 'm2')
    """
    if node.kind is NodeKind.HEAD:
        return f"a{node.layer}.h{node.head}"
    if node.kind is NodeKind.MLP:
        return f"m{node.layer}"
    return node.kind.value  # input, logits


def parse_eapig_node(name: str, n_layers: int) -> Node:
    """Inverse of :func:`eapig_node_name`.

    Raises:
        CircuitFileError: not an EAP-IG node name.
    """
    if name == "input":
        return Node(NodeKind.INPUT, -1)
    if name == "logits":
        return Node(NodeKind.LOGITS, n_layers)
    if m := _EAPIG_HEAD.match(name):
        return Node.of_head(int(m[1]), int(m[2]))
    if m := _EAPIG_MLP.match(name):
        return Node.of_mlp(int(m[1]))
    raise CircuitFileError(f"not an EAP-IG node name: {name!r} (expected input, a<layer>.h<head>, m<layer>, logits)")


def eapig_edge_name(edge: Edge) -> str:
    """EAP-IG's name of ``edge``: ``parent->child`` with ``<q|k|v>`` into attention heads.

    Examples:
        >>> eapig_edge_name(Edge(Node.of_head(0, 1), Node.of_head(2, 3), QKV.Q))
        'a0.h1->a2.h3<q>'
    """
    suffix = f"<{edge.qkv.value}>" if edge.qkv else ""
    return f"{eapig_node_name(edge.src)}->{eapig_node_name(edge.dst)}{suffix}"


def parse_eapig_edge(name: str, n_layers: int) -> Edge:
    """Inverse of :func:`eapig_edge_name`.

    Raises:
        CircuitFileError: not an EAP-IG edge name.
    """
    m = _EAPIG_EDGE.match(name)
    if not m:
        raise CircuitFileError(f"not an EAP-IG edge name: {name!r} (expected PARENT->CHILD or PARENT->CHILD<q|k|v>)")
    return Edge(parse_eapig_node(m[1], n_layers), parse_eapig_node(m[2], n_layers), QKV(m[3]) if m[3] else None)


def autocircuit_src_name(node: Node) -> str:
    """auto-circuit's name of ``node`` as an edge source (``Resid Start``, ``A3.4``, ``MLP 2``).

    Examples:
        >>> autocircuit_src_name(Node.of_head(3, 4)), autocircuit_src_name(Node.of_mlp(2))
        ('A3.4', 'MLP 2')
    """
    if node.kind is NodeKind.INPUT:
        return "Resid Start"
    if node.kind is NodeKind.HEAD:
        return f"A{node.layer}.{node.head}"
    if node.kind is NodeKind.MLP:
        return f"MLP {node.layer}"
    raise CircuitFileError("the logits send nothing in auto-circuit's graph")


def autocircuit_dest_name(node: Node, qkv: QKV | None) -> str:
    """auto-circuit's name of ``node``'s input (``A3.4.Q``, ``A3.4`` unsplit, ``MLP 2``, ``Resid End``)."""
    if node.kind is NodeKind.LOGITS:
        return "Resid End"
    if node.kind is NodeKind.HEAD:
        return f"A{node.layer}.{node.head}" + (f".{qkv.value.upper()}" if qkv else "")
    if node.kind is NodeKind.MLP:
        return f"MLP {node.layer}"
    raise CircuitFileError("the input receives nothing in auto-circuit's graph")


def autocircuit_edge_name(edge: Edge) -> str:
    """auto-circuit's ``Edge.name``: ``{src.name}->{dest.name}``.

    Examples:
        >>> autocircuit_edge_name(Edge(Node(NodeKind.INPUT, -1), Node.of_head(1, 0), QKV.K))
        'Resid Start->A1.0.K'
    """
    return f"{autocircuit_src_name(edge.src)}->{autocircuit_dest_name(edge.dst, edge.qkv)}"


def parse_autocircuit_edge(name: str, n_layers: int) -> Edge:
    """Inverse of :func:`autocircuit_edge_name`.

    Raises:
        CircuitFileError: not an auto-circuit edge name.
    """
    src_name, sep, dst_name = name.partition("->")
    if not sep:
        raise CircuitFileError(f"not an auto-circuit edge name: {name!r} (expected SRC->DEST)")
    if src_name == "Resid Start":
        src = Node(NodeKind.INPUT, -1)
    elif m := _AC_HEAD.match(src_name):
        src = Node.of_head(int(m[1]), int(m[2]))
    elif m := _AC_MLP.match(src_name):
        src = Node.of_mlp(int(m[1]))
    else:
        raise CircuitFileError(f"not an auto-circuit source node: {src_name!r} in {name!r}")
    qkv = None
    if dst_name == "Resid End":
        dst = Node(NodeKind.LOGITS, n_layers)
    elif m := _AC_HEAD_IN.match(dst_name):
        dst, qkv = Node.of_head(int(m[1]), int(m[2])), QKV(m[3].lower())
    elif m := _AC_HEAD.match(dst_name):
        dst = Node.of_head(int(m[1]), int(m[2]))
    elif m := _AC_MLP.match(dst_name):
        dst = Node.of_mlp(int(m[1]))
    else:
        raise CircuitFileError(f"not an auto-circuit destination node: {dst_name!r} in {name!r}")
    return Edge(src, dst, qkv)
