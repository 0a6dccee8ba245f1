"""One lookup for every ground truth: published, golden, InterpBench case folders and user files.

``ioi-wang2022`` names a published circuit (:mod:`.published`); ``golden/ioi-smollm2-135m`` names
the top-k heads of a shipped golden circuit (:mod:`.golden`), as a ground truth on the embedded
model; ``interpbench:FOLDER`` reads an InterpBench case folder's ``edges.pkl``
(:mod:`circuits.formats.interpbench`); a path ending in ``.json``, ``.yaml`` or ``.yml`` is a
user's ground-truth file (:mod:`.user`). Each becomes a :class:`~circuits.scores.Circuit` on a
graph of the right shape.
"""

from __future__ import annotations

from pathlib import Path

from circuits.errors import CircuitFileError
from circuits.graph import ComponentGraph
from circuits.groundtruth.golden import GOLDEN_RECIPES, Golden, load_golden
from circuits.groundtruth.published import GroundTruth, ModelShape, load_published, published_names
from tasks.errors import UnknownNameError

__all__ = ["GOLDEN_PREFIX", "INTERPBENCH_PREFIX", "check_truth_spec", "get_ground_truth", "golden_truth",
           "is_named_truth", "resolve_truth", "truth_names"]  # fmt: skip

GOLDEN_PREFIX = "golden/"
INTERPBENCH_PREFIX = "interpbench:"


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


def _is_file_spec(spec: str) -> bool:
    from circuits.groundtruth.user import TRUTH_SUFFIXES

    return Path(spec).suffix in TRUTH_SUFFIXES


def is_named_truth(spec: str) -> bool:
    """Whether ``spec`` names a registered truth (published or golden), not a file or an InterpBench folder."""
    return not spec.startswith(INTERPBENCH_PREFIX) and not _is_file_spec(spec)


def check_truth_spec(spec: str) -> None:
    """Fail fast on a ``--truth`` value: an unknown name, a missing file or folder.

    Raises:
        UnknownNameError: not a known name, file or ``interpbench:`` folder.
        CircuitFileError: the file or folder named does not exist.
    """
    if spec.startswith(INTERPBENCH_PREFIX):
        if not Path(spec[len(INTERPBENCH_PREFIX) :]).is_dir():
            raise CircuitFileError(f"{spec[len(INTERPBENCH_PREFIX) :]}: no such InterpBench case folder")
    elif _is_file_spec(spec):
        if not Path(spec).is_file():
            raise CircuitFileError(f"{spec}: no such ground-truth file")
    else:
        get_ground_truth(spec)


def resolve_truth(spec: str, graph: ComponentGraph | None = None) -> GroundTruth:
    """The ground truth ``spec`` names: a name, ``interpbench:FOLDER`` or a JSON/YAML file.

    ``graph`` gives a user file without a ``model`` its shape (the circuit being scored).

    Raises:
        UnknownNameError: no such name.
        CircuitFileError: the folder or file cannot be read as a ground truth.
    """
    if spec.startswith(INTERPBENCH_PREFIX):
        from circuits.formats.interpbench import read_interpbench_truth

        return read_interpbench_truth(spec[len(INTERPBENCH_PREFIX) :])
    if _is_file_spec(spec):
        from circuits.groundtruth.user import load_truth_file

        return load_truth_file(spec, graph)
    return get_ground_truth(spec)
