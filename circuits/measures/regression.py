"""Circuit regression: compare a recomputed circuit with a golden one and say what changed.

:func:`assert_circuit_matches` is the assertion the pytest plugin offers (``circuit_regression``
fixture, entry point ``pytest11: headgraph``; see ``pytest_headgraph.py``) and ``headgraph regress``
runs. It ranks the heads of both circuits by importance (heads whose score is zero have no rank),
compares their top ``k`` (Jaccard), and,
when that falls below ``min_jaccard`` (or a head's score moved more than ``max_score_change``),
fails with a readable diff: heads lost from the top ``k``, heads gained, and heads whose rank or
score changed, each with its rank and normalized score (metric change ÷ clean−corrupt gap) in the
golden and the found circuit.

Accepted inputs: :class:`~circuits.scores.Scores`, a :class:`~circuits.headgraph.HeadGraph`, or a
:class:`~circuits.groundtruth.golden.Golden` (its pooled scores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.errors import HeadgraphError
from circuits.graph import Node, NodeKind
from circuits.headgraph import HeadGraph
from circuits.measures.roc import ZERO_TOL, jaccard
from circuits.scores import Scores

if TYPE_CHECKING:
    from circuits.groundtruth.golden import Golden

__all__ = [
    "CircuitDiff",
    "Origin",
    "check_same_origin",
    "describe",
    "read_circuit",
    "CircuitRegression",
    "CircuitRegressionError",
    "HeadChange",
    "assert_circuit_matches",
    "diff_circuits",
]

DIFF_ROWS = 40
"""Most rows a diff prints (the rest are counted)."""

SCORE_NOTE = 0.01
"""A kept head whose normalized score moved at least this much is listed even if its rank did not."""


class CircuitRegressionError(AssertionError):
    """A recomputed circuit no longer matches its golden circuit (the message is the diff)."""


def _scores(x: Any) -> Scores:
    if isinstance(x, Scores):
        return x
    if isinstance(x, HeadGraph):
        return x.scores
    pooled = getattr(x, "pooled", None)  # a Golden
    if isinstance(pooled, HeadGraph):
        return pooled.scores
    raise HeadgraphError(f"cannot compare a {type(x).__name__}: expected Scores, HeadGraph or Golden")


@dataclass(frozen=True)
class HeadChange:
    """One head in the golden and the found ranking (ranks count from 1; None: zero or unscored).

    Attributes:
        node: the head.
        golden_rank: its rank among the golden circuit's heads.
        found_rank: its rank among the found circuit's heads.
        golden_score: its normalized golden score.
        found_score: its normalized found score.
    """

    node: Node
    golden_rank: int | None
    found_rank: int | None
    golden_score: float
    found_score: float

    @property
    def score_change(self) -> float:
        return abs(self.found_score - self.golden_score)


@dataclass(frozen=True)
class CircuitDiff:
    """The difference between the top-``k`` heads of a found and a golden circuit.

    Attributes:
        top_k: heads compared.
        jaccard: Jaccard of the two top-k sets.
        lost: golden top-k heads missing from the found top-k, by golden rank.
        gained: found top-k heads missing from the golden top-k, by found rank.
        kept: heads in both, by golden rank.
    """

    top_k: int
    jaccard: float
    lost: tuple[HeadChange, ...]
    gained: tuple[HeadChange, ...]
    kept: tuple[HeadChange, ...]

    @property
    def max_score_change(self) -> float:
        """Largest normalized score change over the golden top-k heads."""
        changes = [c.score_change for c in (*self.kept, *self.lost) if not math.isnan(c.score_change)]
        return max(changes, default=0.0)

    def format(self, limit: int = DIFF_ROWS, *, found: str = "found", golden: str = "golden") -> str:
        """The diff, one head per line: lost, gained, then kept heads whose rank or score changed.

        ``found`` and ``golden`` name the two circuits in the text.
        """

        def rank(r: int | None) -> str:
            return f"#{r}" if r is not None else "zero"

        w = max(len(found), len(golden))
        fo, go = found.ljust(w), golden.ljust(w)
        rows = [
            f"  lost    {c.node!s:<8} {go} {rank(c.golden_rank):>5} {c.golden_score:+.4f}  →  "
            f"{fo} {rank(c.found_rank):>5} {c.found_score:+.4f}"
            for c in self.lost
        ]
        rows += [
            f"  gained  {c.node!s:<8} {fo} {rank(c.found_rank):>5} {c.found_score:+.4f}  ←  "
            f"{go} {rank(c.golden_rank):>5} {c.golden_score:+.4f}"
            for c in self.gained
        ]
        moved = [c for c in self.kept if c.golden_rank != c.found_rank or c.score_change >= SCORE_NOTE]
        rows += [
            f"  {'moved' if c.golden_rank != c.found_rank else 'changed':<7} {c.node!s:<8} rank "
            f"{rank(c.golden_rank)} → {rank(c.found_rank)}, score {c.golden_score:+.4f} → {c.found_score:+.4f}"
            for c in moved
        ]
        shown = rows[:limit] + ([f"  ... {len(rows) - limit} more"] if len(rows) > limit else [])
        same = sum(c.golden_rank == c.found_rank for c in self.kept)
        summary = (
            f"  {same} of the {golden} top {self.top_k} kept their rank; largest score change "
            f"{self.max_score_change:.4f} (normalized)"
        )
        return "\n".join([*shown, summary])


def _head_ranking(scores: Scores) -> tuple[dict[Node, int], dict[Node, float]]:
    """Ranks of the heads with a non-zero score (ties in graph order), and every scored head's
    normalized score. A score at most ``ZERO_TOL`` × the largest counts as zero: such a head has no
    rank and is never in a top k (ranks among exact zeros would be arbitrary). Edge scores rank heads
    by the sum of their outgoing edges (:meth:`Scores.to_nodes`)."""
    scores = scores.to_nodes()
    ranked = [(n, v) for n, v in scores.ranked() if isinstance(n, Node) and n.kind is NodeKind.HEAD]
    gap = scores.baseline.gap
    norm = {n: (v / gap if gap else math.nan) for n, v in ranked}
    top = max((abs(v) for _, v in ranked), default=0.0)
    nonzero = [n for n, v in ranked if abs(v) > ZERO_TOL * top]
    return {n: i + 1 for i, n in enumerate(nonzero)}, norm


def diff_circuits(found: Any, golden: Any, top_k: int = 20) -> CircuitDiff:
    """Compare the top-``top_k`` heads of ``found`` with those of ``golden`` (see module docstring).

    Raises:
        HeadgraphError: the two are on models of different shapes, or ``top_k`` is not positive.
    """
    f, g = _scores(found), _scores(golden)
    if (f.graph.n_layers, f.graph.n_heads) != (g.graph.n_layers, g.graph.n_heads):
        raise HeadgraphError(
            f"cannot compare circuits of a {f.graph.n_layers}×{f.graph.n_heads} and a "
            f"{g.graph.n_layers}×{g.graph.n_heads} model"
        )
    if top_k <= 0:
        raise HeadgraphError(f"top_k must be positive, got {top_k}")
    f_rank, f_score = _head_ranking(f)
    g_rank, g_score = _head_ranking(g)
    f_top = {n for n, r in f_rank.items() if r <= top_k}
    g_top = {n for n, r in g_rank.items() if r <= top_k}  # fewer than k when fewer heads matter

    def change(n: Node) -> HeadChange:
        return HeadChange(n, g_rank.get(n), f_rank.get(n), g_score.get(n, math.nan), f_score.get(n, math.nan))

    by_golden = sorted(g_top, key=lambda n: g_rank[n])
    return CircuitDiff(
        top_k=top_k,
        jaccard=jaccard(f_top, g_top),
        lost=tuple(change(n) for n in by_golden if n not in f_top),
        gained=tuple(change(n) for n in sorted(f_top - g_top, key=lambda n: f_rank[n])),
        kept=tuple(change(n) for n in by_golden if n in f_top),
    )


def assert_circuit_matches(
    found: Any,
    golden: Any,
    top_k: int = 20,
    min_jaccard: float = 0.8,
    max_score_change: float | None = None,
) -> CircuitDiff:
    """Fail with a readable diff unless ``found``'s top-k heads match ``golden``'s.

    Args:
        found: the recomputed circuit (Scores, HeadGraph or Golden).
        golden: the reference circuit.
        top_k: heads compared.
        min_jaccard: least Jaccard of the two top-k sets.
        max_score_change: if given, the largest allowed change of a golden top-k head's normalized
            score.

    Returns:
        The diff (also when it passes).

    Raises:
        CircuitRegressionError: the circuits differ beyond the thresholds.
    """
    if not 0.0 <= min_jaccard <= 1.0:
        raise HeadgraphError(f"min_jaccard must be in [0, 1], got {min_jaccard}")
    diff = diff_circuits(found, golden, top_k)
    problems = []
    if diff.jaccard < min_jaccard:
        problems.append(f"top-{top_k} heads Jaccard {diff.jaccard:.3f} < {min_jaccard:.3f}")
    if max_score_change is not None and diff.max_score_change > max_score_change:
        problems.append(f"a head's normalized score moved {diff.max_score_change:.4f} > {max_score_change:.4f}")
    if problems:
        raise CircuitRegressionError("circuit regression: " + "; ".join(problems) + "\n" + diff.format())
    return diff


def read_circuit(path: str | Path) -> HeadGraph:
    """A head-graph file (``headgraph discover``), or a golden file (its pooled circuit).

    Raises:
        CircuitFileError: neither kind of file.
    """
    import json

    from circuits.errors import CircuitFileError

    path = Path(path)
    try:
        schema = json.loads(path.read_text(encoding="utf-8")).get("schema")
    except FileNotFoundError:
        raise CircuitFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        schema = None  # HeadGraph.load says what is wrong
    if schema == "headgraph.golden":
        from circuits.groundtruth.golden import load_golden

        return load_golden(path).pooled
    return HeadGraph.load(path)


def describe(hg: HeadGraph) -> str:
    """One line: model, task, pairs and seed, method."""
    pooled = hg.task.settings.get("pooled_seeds")
    seeds = f"seeds {pooled}" if pooled else f"seed {hg.task.seed}"
    return f"{hg.task.name} on {hg.model.name} · {hg.scores.method} · {hg.task.n_pairs} pairs ({seeds})"


@dataclass(frozen=True)
class Origin:
    """What a result was computed on, for refusing comparisons across models or tasks.

    Attributes:
        label: how messages name it (a file name, ``the golden circuit``).
        model: the model's name.
        config_hash: :class:`~circuits.model.ModelInfo`'s hash (None: unknown, not compared).
        task: the task's name (None: not compared).
    """

    label: str
    model: str
    config_hash: str | None
    task: str | None

    @staticmethod
    def of(hg: HeadGraph, label: str) -> Origin:
        return Origin(label, hg.model.name, hg.model.config_hash, hg.task.name)


def check_same_origin(a: Origin, b: Origin, *, force: bool = False) -> list[str]:
    """The ways ``a`` and ``b`` differ in model name, config hash or task (fields None are skipped).

    Returns:
        The differences (empty when none), when ``force`` is set; the caller reports them.

    Raises:
        HeadgraphError: they differ and ``force`` is not set.
    """
    diffs = []
    if a.model != b.model:
        diffs.append(f"model {a.model!r} vs {b.model!r}")
    if a.config_hash is not None and b.config_hash is not None and a.config_hash != b.config_hash:
        diffs.append(f"model config hash {a.config_hash} vs {b.config_hash}")
    if a.task is not None and b.task is not None and a.task != b.task:
        diffs.append(f"task {a.task!r} vs {b.task!r}")
    if diffs and not force:
        raise HeadgraphError(
            f"{a.label} and {b.label} were not computed on the same model and task ({'; '.join(diffs)}); "
            "--force compares them anyway"
        )
    return diffs


class CircuitRegression:
    """What the ``circuit_regression`` pytest fixture gives a test: golden files and the assertion."""

    def golden(self, name_or_path: str | Path) -> Golden:
        """A shipped golden circuit by name, or a golden file by path."""
        from circuits.groundtruth.golden import load_golden

        return load_golden(name_or_path)

    def assert_matches(
        self,
        found: Any,
        golden: Any,
        top_k: int = 20,
        min_jaccard: float = 0.8,
        max_score_change: float | None = None,
    ) -> CircuitDiff:
        """:func:`assert_circuit_matches`."""
        return assert_circuit_matches(found, golden, top_k, min_jaccard, max_score_change)
