"""``headgraph sweep report``: a markdown summary of a sweep's results table, with plots.

Three views of the grid:
  * **top-k stability across seeds**: for each model × task × method × n, the mean Jaccard overlap
    of the top-k sets of every two seeds (1: the same circuit whatever the prompts drawn);
  * **method agreement**: Spearman's rank correlation of two methods' node importance (``|score|``,
    edge scores summed onto their sender nodes) over the heads both score, averaged over the
    model × task × seed × n groups they share;
  * **faithfulness curves** (when the spec asked for them): faithfulness of the top-x % circuit,
    mean over seeds, per method.
Plots use matplotlib's object interface (no pyplot state).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits.measures.roc import jaccard
from circuits.sweep.results import TABLE, query

__all__ = ["REPORT", "Report", "agreement", "markdown_table", "spearman", "stability", "write_report"]

REPORT = "report.md"


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get their mean rank); NaN when either side is constant.

    Examples:
        >>> spearman([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]), spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
        (1.0, -1.0)
    """
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if len(ra) < 2 or np.all(ra == ra[0]) or np.all(rb == rb[0]):
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def stability(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str, int], float]:
    """Mean pairwise Jaccard of the top-k sets across seeds, per (model, task, label, n) with ≥ 2 seeds."""
    groups: dict[tuple[str, str, str, int], list[set[str]]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["task"], r["label"], r["n"])].append(set(r["top_k"] or []))
    return {
        key: float(np.mean([jaccard(a, b) for a, b in itertools.combinations(sets, 2)]))
        for key, sets in groups.items()
        if len(sets) >= 2
    }


def _importance(path: Path) -> dict[str, float]:
    from circuits.headgraph import HeadGraph

    scores = HeadGraph.load(path).scores.to_nodes()
    return {str(node): abs(v) for node, v in zip(scores.graph.nodes, scores.values.tolist(), strict=True)
            if node in scores.graph.heads and not math.isnan(v)}  # fmt: skip


def agreement(out: Path, rows: Sequence[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    """Method labels and their mean Spearman correlation matrix (NaN where they share no group)."""
    groups: dict[tuple[str, str, int, int], dict[str, dict[str, float]]] = defaultdict(dict)
    for r in rows:
        path = out / "cells" / r["cell"] / "circuit.json"
        if path.is_file():
            groups[(r["model"], r["task"], r["seed"], r["n"])][r["label"]] = _importance(path)
    labels = sorted({label for g in groups.values() for label in g})
    sums = np.zeros((len(labels), len(labels)))
    counts = np.zeros((len(labels), len(labels)))
    for g in groups.values():
        for (i, a), (j, b) in itertools.product(enumerate(labels), repeat=2):
            if a in g and b in g:
                shared = sorted(set(g[a]) & set(g[b]))
                rho = spearman([g[a][h] for h in shared], [g[b][h] for h in shared])
                if not math.isnan(rho):
                    sums[i, j] += rho
                    counts[i, j] += 1
    with np.errstate(invalid="ignore"):
        return labels, np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


@dataclass(frozen=True)
class Report:
    """The markdown text and the plots written."""

    markdown: str
    plots: tuple[Path, ...]


SUMMARY_SQL = """
SELECT model, task, label AS method, n, count(*) AS seeds,
       avg(baseline_gap) AS gap, avg(node_auc) AS node_auc, avg(edge_auc) AS edge_auc,
       avg(cpr) AS cpr, avg(cmd) AS cmd, avg(method_seconds) AS seconds, max(peak_memory_mb) AS peak_mb
FROM results WHERE status = 'ok' GROUP BY ALL ORDER BY ALL
"""
"""The report's main table, as a DuckDB query over the results table (means over seeds)."""


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows]


def write_report(out: str | Path) -> Report:
    """Write ``report.md`` and its plots beside the sweep's results table.

    Raises:
        HeadgraphError: ``out`` holds no results table.
    """
    out = Path(out)
    rows = query(out / TABLE, "SELECT * FROM results ORDER BY cell")
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    summary = query(out / TABLE, SUMMARY_SQL)
    lines = [
        "# Sweep report",
        "",
        f"{len(rows)} cells: {len(ok)} finished, {len(failed)} failed. Table: `{TABLE}` (query it with DuckDB).",
        "",
        "## Results (means over seeds)",
        "",
        *markdown_table(list(summary[0]) if summary else ["model"], [list(s.values()) for s in summary]),
    ]
    plots: list[Path] = []
    stab = stability(ok)
    if stab:
        lines += ["", "## Top-k stability across seeds (mean pairwise Jaccard)", ""]
        lines += markdown_table(
            ["model", "task", "method", "n", "stability"], [[*k, v] for k, v in sorted(stab.items())]
        )
        plots.append(_bar(out / "stability.png", stab))
        lines += ["", f"![top-k stability]({plots[-1].name})"]
    labels, matrix = agreement(out, ok)
    if len(labels) >= 2:
        lines += ["", "## Method agreement (Spearman rank correlation of head importance)", ""]
        lines += markdown_table(["", *labels], [[a, *matrix[i]] for i, a in enumerate(labels)])
        plots.append(_heatmap(out / "agreement.png", labels, matrix))
        lines += ["", f"![method agreement]({plots[-1].name})"]
    curves = [r for r in ok if r.get("curve_x")]
    if curves:
        plots.append(_curves(out / "faithfulness.png", curves))
        lines += ["", "## Faithfulness curves (mean over seeds)", "", f"![faithfulness]({plots[-1].name})"]
    if failed:
        lines += ["", "## Failed cells", ""]
        lines += markdown_table(
            ["cell", "error"], [[r["cell"], (r["error"] or "").replace("|", "\\|")] for r in failed]
        )
    text = "\n".join(lines) + "\n"
    (out / REPORT).write_text(text)
    return Report(text, tuple(plots))


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _bar(path: Path, stab: dict[tuple[str, str, str, int], float]) -> Path:
    fig = Figure(figsize=(7, 0.45 * len(stab) + 1.5))
    ax = fig.add_subplot()
    keys = sorted(stab)
    ax.barh([f"{m} · {t} · {label} · n={n}" for m, t, label, n in keys], [stab[k] for k in keys])
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean pairwise Jaccard of the top-k sets across seeds")
    ax.invert_yaxis()
    return _save(fig, path)


def _heatmap(path: Path, labels: list[str], matrix: np.ndarray) -> Path:
    fig = Figure(figsize=(1.2 * len(labels) + 2.5, 1.0 * len(labels) + 1.5))
    ax = fig.add_subplot()
    im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i, j in itertools.product(range(len(labels)), repeat=2):
        ax.text(j, i, _fmt(float(matrix[i, j])), ha="center", va="center")
    fig.colorbar(im, ax=ax, label="Spearman ρ")
    return _save(fig, path)


def _curves(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[f"{r['model']} · {r['task']} · {r['label']}"].append(r)
    for name, group in sorted(by.items()):
        xs = np.array(group[0]["curve_x"]) * 100
        ys = np.mean([r["curve_y"] for r in group if len(r["curve_y"]) == len(xs)], axis=0)
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("circuit size (% of scored items)")
    ax.set_ylabel("faithfulness")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.legend(fontsize=7)
    return _save(fig, path)
