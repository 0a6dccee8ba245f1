"""Pictures of head graphs: a layer × head heatmap of scores beside a drawing of the circuit.

Uses matplotlib's object interface (``Figure``, no pyplot state), so importing or calling this
module changes no global plotting settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
from jaxtyping import Float
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from torch import Tensor

from circuits.graph import Node, NodeKind
from circuits.headgraph import HeadGraph

__all__ = ["draw_circuit", "draw_head_heatmap", "draw_head_matrix", "plot_headgraph"]

CMAP = "RdBu"
"""Diverging colours: red where ablating a head lowers the metric, blue where it raises it."""


def _limit(values: list[float]) -> float:
    finite = [abs(v) for v in values if not math.isnan(v)]
    return max(finite, default=0.0) or 1.0


def draw_head_matrix(
    ax: Axes,
    matrix: Float[Tensor, "layer head"],
    *,
    ranked: Sequence[Node] = (),
    title: str = "",
    label: str = "",
) -> None:
    """Layer × head heatmap of any per-head value (diverging colours around 0); ``ranked`` heads carry their rank."""
    m = matrix.detach().float().cpu()
    n_layers, n_heads = m.shape
    lim = _limit(m.flatten().tolist())
    image = ax.imshow(
        m.numpy(), cmap=CMAP, norm=TwoSlopeNorm(0.0, -lim, lim), aspect="auto", origin="lower", interpolation="nearest"
    )
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(0, n_layers, max(1, n_layers // 15)))
    for rank, node in enumerate(ranked, 1):
        dark = abs(float(m[node.layer, node.head or 0])) > 0.6 * lim
        ax.text(float(node.head or 0), node.layer, str(rank), ha="center", va="center", fontsize=7,
                color="white" if dark else "black")  # fmt: skip
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(image, ax=ax, fraction=0.05, label=label)


def draw_head_heatmap(ax: Axes, hg: HeadGraph, *, annotate: int = 10) -> None:
    """Layer × head heatmap of normalized node scores; the top ``annotate`` heads carry their rank."""
    nodes = hg.scores.to_nodes()  # edge scores: summed over each head's outgoing edges
    heads = [n for n, _ in nodes.ranked() if isinstance(n, Node) and n.kind is NodeKind.HEAD][:annotate]
    draw_head_matrix(
        ax,
        nodes.head_matrix(normalized=True),
        ranked=heads,
        title="normalized effect of ablating each head\n(numbers: rank by |effect|)",
        label="Δ metric / (clean − corrupt)",
    )


def code_caption(label: Mapping[str, Any], codes: int = 2) -> str:
    """A head's code label (:meth:`circuits.analysis.code_labels.HeadLabel.to_dict`) in at most ``codes + 1``
    short lines: how many codes and the code fidelity, then its main codes with what they attend.

    Examples:
        >>> code_caption({"n_codes": 19, "fidelity": 1.0, "converse_fidelity": 0.94, "codes": [
        ...     {"code": 3, "share": 0.66, "attends": {"S2": 0.9, "BOS": 0.1}, "tokens": [" Mary"]},
        ...     {"code": -1, "share": 0.28, "attends": {}, "tokens": []}]}).splitlines()
        ['19 codes · fid 1.00/0.94', "c3 66% → S2 ' Mary'", 'silent 28%']
    """

    def fid(x: object) -> str:
        return f"{x:.2f}" if isinstance(x, int | float) and math.isfinite(x) else "–"

    head = f"{label.get('n_codes', '?')} codes"
    if label.get("fidelity") is not None or label.get("converse_fidelity") is not None:
        head += f" · fid {fid(label.get('fidelity'))}/{fid(label.get('converse_fidelity'))}"
    lines = [head]
    for c in list(label.get("codes", []))[:codes]:
        name = "silent" if c.get("code", 0) < 0 else f"c{c.get('code')}"
        line = f"{name} {float(c.get('share', 0.0)):.0%}"
        attends = dict(c.get("attends", {}))
        if attends:
            line += f" → {max(attends, key=lambda k: attends[k])}"
        if c.get("tokens"):
            line += f" {str(c['tokens'][0])[:10]!r}"
        lines.append(line)
    return "\n".join(lines)


def draw_circuit(ax: Axes, hg: HeadGraph) -> None:
    """The circuit's nodes placed by layer, coloured by normalized score, with its edges.

    Heads with a code label in the file (``hg.code_labels``, from ``discover --code-labels``) carry
    it under the node (:func:`code_caption`).

    A node-level circuit has no scored edges: it is drawn with the candidate paths every head has
    (from the input, to the logits) in light grey, and the caption says so.
    """
    graph, circuit = hg.scores.graph, hg.circuit
    node_scores = hg.scores.to_nodes()
    norm = node_scores.normalized.tolist()
    score_of = {node: norm[i] for i, node in enumerate(node_scores.items)}
    inp, out = Node(NodeKind.INPUT, -1), Node(NodeKind.LOGITS, graph.n_layers)
    inner = sorted((n for n in circuit.nodes if n.kind in (NodeKind.HEAD, NodeKind.MLP)), key=Node.sort_key)
    g = nx.DiGraph()
    g.add_nodes_from([inp, *inner, out])
    if circuit.edges:
        g.add_edges_from((e.src, e.dst) for e in circuit.edges)
        caption = f"{len(circuit.edges)} edges"
    else:
        g.add_edges_from([(inp, n) for n in inner] + [(n, out) for n in inner])
        caption = "node-level circuit: grey lines are candidate paths, not scored edges"
    by_layer: dict[int, list[Node]] = {}
    for n in inner:
        by_layer.setdefault(n.layer, []).append(n)
    # One row per layer that has circuit nodes, evenly spaced so close layers do not overlap.
    rows = sorted(by_layer)
    pos = {inp: (0.0, 0.0), out: (0.0, float(len(rows) + 1))}
    for row, layer in enumerate(rows, 1):
        nodes = by_layer[layer]
        for i, n in enumerate(nodes):
            pos[n] = (float(i) - (len(nodes) - 1) / 2, float(row))
    lim = _limit([score_of.get(n, math.nan) for n in inner])
    value = {n: (0.0 if math.isnan(score_of.get(n, math.nan)) else score_of[n]) for n in g.nodes}
    nx.draw_networkx_edges(g, pos, ax=ax, edge_color="#bbbbbb", arrows=True, arrowsize=8, node_size=700)
    nx.draw_networkx_nodes(
        g, pos, ax=ax, node_color=[value[n] for n in g.nodes], cmap=CMAP, vmin=-lim, vmax=lim, node_size=700,
        edgecolors="black",
    )  # fmt: skip
    for n, (x, y) in pos.items():
        dark = abs(value[n]) > 0.6 * lim
        ax.text(x, y, str(n), ha="center", va="center", fontsize=7, color="white" if dark else "black")
        if str(n) in hg.code_labels:
            ax.text(x, y - 0.16, code_caption(hg.code_labels[str(n)]), ha="center", va="top", fontsize=5.5,
                    color="#333333", linespacing=1.1)  # fmt: skip
    width = max((len(v) for v in by_layer.values()), default=1)
    ax.set_xlim(-width / 2 - 0.5, width / 2 + 0.5)
    ax.set_ylim(-0.7, len(rows) + 1.7)
    ax.set_yticks(range(len(rows) + 2), ["input", *(str(r) for r in rows), "logits"])
    ax.set_ylabel("layer (only layers with circuit nodes)")
    ax.tick_params(left=True, labelleft=True, bottom=False, labelbottom=False)
    sel = dict(circuit.selection)
    rule = (
        f"top {sel['k']} by |effect|" if sel.get("rule") == "top_k" else ", ".join(f"{k}={v}" for k, v in sel.items())
    )
    ax.set_title(f"circuit: {len(inner)} components ({rule})\n{caption}", fontsize=9)


def plot_headgraph(hg: HeadGraph, path: str | Path) -> Path:
    """Write the heatmap and the circuit drawing side by side to ``path`` (PNG, SVG or PDF)."""
    fig = Figure(figsize=(19 if hg.positions else 13, 8), layout="constrained")
    FigureCanvasAgg(fig)
    if hg.positions:  # --set positions=named: a third panel with the kept (edge, position) pairs
        from circuits.pictures.position_plot import draw_position_pairs

        left, right, third = fig.subplots(1, 3, width_ratios=[1.1, 1, 0.9])
        draw_position_pairs(third, hg.positions)
    else:
        left, right = fig.subplots(1, 2, width_ratios=[1.1, 1])
    draw_head_heatmap(left, hg)
    draw_circuit(right, hg)
    b = hg.scores.baseline
    fig.suptitle(
        f"{hg.model.name} · {hg.task.name} · {hg.scores.method} · {hg.task.n_pairs} pairs (seed {hg.task.seed})"
        f" · {b.metric}: clean {b.clean:.2f}, corrupt {b.corrupt:.2f}",
        fontsize=11,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
