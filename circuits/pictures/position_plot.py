"""Positions in a head graph (``--set positions=named``): the kept (edge, position) pairs as a table and a picture.

A position-aware circuit (Haklay et al. 2025, arXiv 2502.04577) keeps an edge at some named task
positions only; the head-graph file's optional ``positions`` record lists the kept pairs
(:func:`circuits.discovery.position_setting.position_selection`). ``headgraph show`` prints them
(:func:`format_positions`) and the picture gets a third panel (:func:`draw_position_pairs`): one bar
per pair, its normalized score, coloured by position.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.axes import Axes
from matplotlib.patches import Patch

__all__ = ["draw_position_pairs", "format_positions"]

_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:grey")


def format_positions(positions: Mapping[str, Any], top: int) -> str:
    """The ``top`` kept (edge, position) pairs as an aligned table.

    Examples:
        >>> record = {"labels": ["S2", "END", "other"], "pairs": [["L1H2->logits", "END", -2.0, -0.5]]}
        >>> print(format_positions(record, 5))
        edge          position  score    normalized
        L1H2->logits  END       -2.0000  -0.500
    """
    rows = [(str(e), str(lab), f"{float(v):.4f}", f"{float(n):.3f}") for e, lab, v, n in positions["pairs"][:top]]
    head = ("edge", "position", "score", "normalized")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows])


def draw_position_pairs(ax: Axes, positions: Mapping[str, Any], top: int = 20) -> None:
    """Horizontal bars of the ``top`` kept pairs' normalized scores, ``edge @ position``, coloured by position."""
    labels = [str(x) for x in positions["labels"]]
    colour = {lab: _COLOURS[i % len(_COLOURS)] for i, lab in enumerate(labels)}
    pairs = positions["pairs"][:top]
    names = [f"{e} @ {lab}" for e, lab, *_ in pairs]
    ax.barh(range(len(pairs)), [float(p[3]) for p in pairs], color=[colour[p[1]] for p in pairs])
    ax.set_yticks(range(len(pairs)), names, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_xlabel("normalized score (per position)")
    ax.set_title(f"top {len(pairs)} (edge, position) pairs", fontsize=10)
    used = [lab for lab in labels if any(p[1] == lab for p in pairs)]
    ax.legend(handles=[Patch(color=colour[lab], label=lab) for lab in used], fontsize=7, loc="lower right")
