"""Picture of a faithfulness report: both MIB curves over circuit size, with CPR and CMD.

Uses matplotlib's object interface (``Figure``, no pyplot state), as :mod:`circuits.plot`.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits.measures.faithfulness import FaithfulnessReport
from circuits.scores import Level

__all__ = ["draw_faithfulness", "plot_faithfulness"]


def draw_faithfulness(ax: Axes, report: FaithfulnessReport) -> None:
    """Faithfulness against circuit size (log x axis) for the signed and the absolute ranking."""
    unit = "edges" if report.signed.level is Level.EDGE else "scored nodes"
    for curve, label, marker in (
        (report.signed, f"ranked by signed score: CPR {report.cpr:.3f} (higher is better)", "o"),
        (report.absolute, f"ranked by |score|: CMD {report.cmd:.3f} (lower is better)", "s"),
    ):
        xs = [p.percent for p in curve.points]
        ax.plot(xs, [p.faithfulness for p in curve.points], marker=marker, label=label)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="full model")
    ax.axhline(0.0, color="grey", linestyle=":", linewidth=1, label="everything ablated")
    ax.set_xscale("log")
    ax.set_xlabel(f"circuit size (% of {unit}, log scale)")
    ax.set_ylabel("normalized faithfulness  (m(C) − m(∅)) / (m(full) − m(∅))")
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, which="both", alpha=0.3)


def plot_faithfulness(report: FaithfulnessReport, path: str | Path, title: str = "") -> Path:
    """Write the faithfulness curves to ``path`` (PNG, SVG or PDF)."""
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    draw_faithfulness(ax, report)
    ax.set_title(
        (title + "\n" if title else "")
        + f"{report.n_pairs} pairs · {report.ablation.value} ablation · {report.signed.selection.value} selection",
        fontsize=10,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
