"""Pictures of attention: one head's pattern on one prompt, and where heads attend from the answer position.

Uses matplotlib's object interface (``Figure``, no pyplot state), as :mod:`circuits.plot`.
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxtyping import Float
from matplotlib.axes import Axes
from torch import Tensor

from circuits.analysis.attention import AttentionToPositions

__all__ = ["draw_attention_pattern", "draw_attention_to_positions"]


def draw_attention_pattern(
    ax: Axes, pattern: Float[Tensor, "q k"], tokens: Sequence[str], *, title: str = "", last_rows: int | None = None
) -> None:
    """Heatmap of one head's attention (rows: query tokens, columns: key tokens), labelled with the tokens.

    Args:
        last_rows: draw only the last ``last_rows`` query rows (the answer position's row is the last).
    """
    p = pattern.detach().float().cpu()
    q0 = 0 if last_rows is None else max(0, p.shape[0] - last_rows)
    ax.imshow(p[q0:].numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    labels = [repr(t)[1:-1] for t in tokens]
    ax.set_xticks(range(p.shape[1]), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(p.shape[0] - q0), labels[q0 : p.shape[0]], fontsize=6)
    ax.set_xlabel("key (attended) token", fontsize=8)
    ax.set_ylabel("query token", fontsize=8)
    ax.set_title(title, fontsize=9)


def draw_attention_to_positions(ax: Axes, att: AttentionToPositions) -> None:
    """Grouped bars: each head's mean attention from the answer position to each named position."""
    m = att.mean().detach().float().cpu()  # (head, name)
    n_heads, n_names = m.shape
    width = 0.8 / n_names
    for j, name in enumerate(att.names):
        xs = [i + (j - (n_names - 1) / 2) * width for i in range(n_heads)]
        ax.bar(xs, m[:, j].tolist(), width=width, label=name)
    ax.set_xticks(range(n_heads), [str(h) for h in att.heads])
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean attention from the answer position")
    ax.legend(fontsize=8, ncols=min(n_names, 5))
    ax.grid(True, axis="y", alpha=0.3)
