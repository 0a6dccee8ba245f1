"""One lookup for every named ground truth: published circuits and golden circuits.

``ioi-wang2022`` names a published circuit (:mod:`.published`); ``golden/ioi-smollm2-135m`` names
the top-k heads of a shipped golden circuit (:mod:`.golden`), as a ground truth on the embedded
model. Both become a :class:`~circuits.scores.Circuit` on a graph of the right shape.
"""

from __future__ import annotations

from circuits.groundtruth.golden import GOLDEN_RECIPES, Golden, load_golden
from circuits.groundtruth.published import GroundTruth, ModelShape, load_published, published_names
from tasks.errors import UnknownNameError

__all__ = ["GOLDEN_PREFIX", "get_ground_truth", "golden_truth", "truth_names"]

GOLDEN_PREFIX = "golden/"


def truth_names() -> list[str]:
    """Every name :func:`get_ground_truth` accepts."""
    return published_names() + [GOLDEN_PREFIX + n for n in GOLDEN_RECIPES.names()]


def golden_truth(golden: Golden) -> GroundTruth:
    """A golden circuit's top-k heads as a ground truth on its model."""
    m = golden.pooled.model
    r = golden.recipe
    return GroundTruth(
        name=GOLDEN_PREFIX + golden.name,
        task=r.task,
        variant=f"top {r.top_k} heads by exact {r.method}, {r.n_pairs} pairs × {len(r.seeds)} seeds pooled",
        model=ModelShape(m.name, m.n_layers, m.n_heads, m.d_model, m.attn_only),
        citation="headgraph golden circuit (computed, not published)",
        source=str(golden.made.get("command", "headgraph golden build")),
        notes=f"made {golden.made.get('created', '?')}",
        groups={f"golden top {r.top_k}": tuple(str(n) for n in golden.circuit_heads())},
    )


def get_ground_truth(name: str) -> GroundTruth:
    """The ground truth called ``name`` (see :func:`truth_names`).

    Raises:
        UnknownNameError: no such ground truth (the message lists them all).
    """
    if name.startswith(GOLDEN_PREFIX) and name[len(GOLDEN_PREFIX) :] in GOLDEN_RECIPES:
        return golden_truth(load_golden(name[len(GOLDEN_PREFIX) :]))
    if name in published_names():
        return load_published(name)
    raise UnknownNameError("ground truth", name, truth_names())
