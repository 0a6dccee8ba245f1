"""Helpers shared by several subcommands."""

from __future__ import annotations

from typing import Any

from circuits.errors import HeadgraphError
from circuits.headgraph import HeadGraph
from circuits.model.precision import DEFAULT_PRECISION, Precision

__all__ = ["add_dtype_option", "dtype_words", "format_table", "parse_settings"]


def add_dtype_option(parser: Any) -> None:
    """``--dtype float32|bfloat16`` on a command that loads a model (parsed by :class:`Precision`)."""
    parser.add_argument(
        "--dtype",
        default=DEFAULT_PRECISION.value,
        choices=Precision.names(),
        help="precision of the model (default: float32, the precision of the exactness checks; bfloat16 is "
        "faster on CPU)",
    )


def dtype_words(dtype: str) -> list[str]:
    """The ``--dtype`` words of a reproducing command line (none for the default).

    Examples:
        >>> dtype_words("bfloat16"), dtype_words("float32")
        (['--dtype', 'bfloat16'], [])
    """
    precision = Precision.parse(dtype)
    return [] if precision is DEFAULT_PRECISION else ["--dtype", precision.value]


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` from repeated ``--set`` options as a dict."""
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise HeadgraphError(f"--set expects KEY=VALUE, got {p!r}")
        out[key] = value
    return out


def format_table(hg: HeadGraph, top: int) -> str:
    """The baseline and the ``top`` highest-ranked items of a head graph, as text."""
    b = hg.scores.baseline
    lines = [
        f"model {hg.model.name} · task {hg.task.name} · {hg.task.n_pairs} pairs (seed {hg.task.seed})"
        f" · method {hg.scores.method}",
        f"{b.metric}: clean {b.clean:.3f}, corrupt {b.corrupt:.3f} · accuracy: clean {b.clean_accuracy:.1%},"
        f" corrupt {b.corrupt_accuracy:.1%}",
        "",
        f"{'rank':>4}  {'component':<16} {'Δ ' + b.metric:>14} {'normalized':>11}",
    ]
    norm = hg.scores.normalized.tolist()
    values = hg.scores.values.tolist()
    for rank, i in enumerate(hg.scores.order()[:top], 1):
        lines.append(f"{rank:>4}  {hg.scores.items[i]!s:<16} {values[i]:>14.4f} {norm[i]:>11.4f}")
    return "\n".join(lines)
