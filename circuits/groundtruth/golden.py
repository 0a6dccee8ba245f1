"""Golden circuits of the embedded model: exact scores pooled over seeds, stored as package data.

A golden circuit is what a regression test compares a recomputed circuit against. It is made by an
exact method (activation patching by default) on ``n_pairs`` prompt pairs for each of several
seeds; the pooled scores (the mean over seeds, i.e. over all ``n_pairs × seeds`` pairs) are the
golden ranking, and the agreement between seeds (Jaccard of their top-k heads) says how far down
that ranking is stable. A cheaper "quick" run (the first ``quick_pairs`` pairs of the first seed)
is stored beside it so a test can reproduce one recorded result exactly in a minute or two.

The file (schema ``headgraph.golden``) records how it was made: the recipe (model, task and its
settings, method and its settings, pairs, seeds), the command, the time taken, the torch version
and threads, and every per-seed result as a head graph. ``headgraph golden build`` regenerates it.

Adding a golden circuit (e.g. Colored Objects once that task exists) is one registration line in
:data:`GOLDEN_RECIPES` and one ``headgraph golden build --name ...`` run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer

from circuits.errors import CircuitFileError, HeadgraphError
from circuits.graph import Node, NodeKind
from circuits.headgraph import HeadGraph, TaskRun
from circuits.measures.roc import ZERO_TOL, jaccard
from circuits.scores import Baseline, Scores
from tasks.registry import Registry

__all__ = [
    "GOLDEN_RECIPES",
    "GOLDEN_SCHEMA",
    "Golden",
    "PLANTED_PREFIX",
    "GoldenRecipe",
    "Stability",
    "build_golden",
    "golden_dir",
    "load_golden",
    "pool",
    "recipe_model",
    "recipe_runner",
    "stability",
    "top_heads",
]

GOLDEN_SCHEMA = "headgraph.golden"
GOLDEN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class GoldenRecipe:
    """How a golden circuit is made.

    Attributes:
        model: model name for :func:`circuits.model.load_model`, or ``planted:<name>`` for a
            planted model (whose own task ``task`` must then name).
        task: registered task name (default settings).
        method: registered discovery method (exact methods only make sense here).
        method_settings: the method's settings as strings, as on the command line.
        n_pairs: prompt pairs per seed.
        seeds: seeds of the prompt pairs; the golden scores are pooled over them.
        top_k: size of the golden circuit (and of the stability measure).
        quick_pairs: pairs of the quick run (first seed), for fast exact regression checks.
    """

    model: str
    task: str
    method: str = "activation-patching"
    method_settings: Mapping[str, str] = field(default_factory=dict)
    n_pairs: int = 64
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    top_k: int = 20
    quick_pairs: int = 16

    def __post_init__(self) -> None:
        for name in ("n_pairs", "top_k", "quick_pairs"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise HeadgraphError(f"{name} must be a positive integer, got {v!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise HeadgraphError(f"seeds must be distinct and at least one, got {self.seeds!r}")
        if self.quick_pairs > self.n_pairs:
            raise HeadgraphError(f"quick_pairs ({self.quick_pairs}) cannot exceed n_pairs ({self.n_pairs})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "task": self.task,
            "method": self.method,
            "method_settings": dict(self.method_settings),
            "n_pairs": self.n_pairs,
            "seeds": list(self.seeds),
            "top_k": self.top_k,
            "quick_pairs": self.quick_pairs,
        }

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> GoldenRecipe:
        """Inverse of :meth:`to_dict`."""
        return GoldenRecipe(
            model=str(d["model"]),
            task=str(d["task"]),
            method=str(d["method"]),
            method_settings={str(k): str(v) for k, v in d.get("method_settings", {}).items()},
            n_pairs=int(d["n_pairs"]),
            seeds=tuple(int(s) for s in d["seeds"]),
            top_k=int(d["top_k"]),
            quick_pairs=int(d["quick_pairs"]),
        )


GOLDEN_RECIPES: Registry[GoldenRecipe] = Registry("golden circuit")
"""Golden circuits this package ships, by name (the file is ``data/golden/<name>.json``)."""
GOLDEN_RECIPES.add("ioi-smollm2-135m", GoldenRecipe(model="smollm2-135m", task="ioi"))


def golden_dir() -> Path:
    """The package-data folder of golden files (in a source checkout: ``circuits/groundtruth/data/golden``)."""
    return Path(str(resources.files("circuits.groundtruth").joinpath("data/golden")))


def top_heads(scores: Scores, k: int) -> list[Node]:
    """The ``k`` most important heads, in rank order; heads whose score is zero (at most
    ``ZERO_TOL`` × the largest) are never among them."""
    heads = [(n, abs(v)) for n, v in scores.ranked() if isinstance(n, Node) and n.kind is NodeKind.HEAD]
    top = max((v for _, v in heads), default=0.0)
    return [n for n, v in heads if v > ZERO_TOL * top][:k]


def pool(runs: Sequence[Scores]) -> Scores:
    """The mean of several runs' scores and baselines (equal numbers of pairs per run).

    Scores are means over examples, so the mean over runs of equal size is the score on all their
    pairs together.
    """
    first = runs[0]
    if any(r.graph != first.graph or r.level is not first.level or r.method != first.method for r in runs):
        raise HeadgraphError("pooled runs must share a graph, a level and a method")
    values = torch.stack([r.values.double() for r in runs]).mean(0).float()
    b = [r.baseline for r in runs]
    baseline = Baseline(
        metric=first.baseline.metric,
        clean=sum(x.clean for x in b) / len(b),
        corrupt=sum(x.corrupt for x in b) / len(b),
        clean_accuracy=sum(x.clean_accuracy for x in b) / len(b),
        corrupt_accuracy=sum(x.corrupt_accuracy for x in b) / len(b),
    )
    return Scores(
        first.graph, first.level, values, first.method, baseline, dict(first.params), sum(r.seconds for r in runs)
    )


@dataclass(frozen=True)
class Stability:
    """How much the top-k heads agree between seeds.

    Attributes:
        top_k: heads compared.
        pairwise: Jaccard of every pair of seeds, as ``(seed_a, seed_b, jaccard)``.
        vs_pooled: Jaccard of each seed's top-k with the pooled top-k, as ``(seed, jaccard)``.
    """

    top_k: int
    pairwise: tuple[tuple[int, int, float], ...]
    vs_pooled: tuple[tuple[int, float], ...]

    @property
    def mean_pairwise(self) -> float:
        return sum(j for *_, j in self.pairwise) / len(self.pairwise) if self.pairwise else math.nan

    @property
    def min_pairwise(self) -> float:
        return min((j for *_, j in self.pairwise), default=math.nan)

    def to_dict(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "mean_pairwise_jaccard": self.mean_pairwise,
            "min_pairwise_jaccard": self.min_pairwise,
            "pairwise": [list(p) for p in self.pairwise],
            "vs_pooled": [list(p) for p in self.vs_pooled],
        }


def stability(runs: Sequence[tuple[int, Scores]], pooled: Scores, top_k: int) -> Stability:
    """Agreement of the runs' (``(seed, scores)``) top-k heads with each other and with the pool."""
    tops = {seed: set(top_heads(s, top_k)) for seed, s in runs}
    pooled_top = set(top_heads(pooled, top_k))
    pairwise = tuple((a, b, jaccard(tops[a], tops[b])) for a, b in combinations(sorted(tops), 2))
    return Stability(top_k, pairwise, tuple((s, jaccard(t, pooled_top)) for s, t in sorted(tops.items())))


@dataclass(frozen=True)
class Golden:
    """A golden circuit with every result it was made from.

    Attributes:
        name: registered name (the file name without ``.json``).
        recipe: how it was made.
        pooled: scores pooled over the seeds, and the top-k circuit (the golden circuit).
        runs: the per-seed results, in seed order.
        quick: the quick run (first seed, ``quick_pairs`` pairs).
        made: provenance: command, date, versions, threads, seconds.
    """

    name: str
    recipe: GoldenRecipe
    pooled: HeadGraph
    runs: tuple[HeadGraph, ...]
    quick: HeadGraph
    made: Mapping[str, Any]

    @property
    def stability(self) -> Stability:
        return stability([(hg.task.seed, hg.scores) for hg in self.runs], self.pooled.scores, self.recipe.top_k)

    def circuit_heads(self) -> list[Node]:
        """The golden circuit's heads in rank order."""
        return top_heads(self.pooled.scores, self.recipe.top_k)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": GOLDEN_SCHEMA,
            "schema_version": GOLDEN_SCHEMA_VERSION,
            "name": self.name,
            "recipe": self.recipe.to_dict(),
            "made": dict(self.made),
            "stability": self.stability.to_dict(),
            "golden_heads": [str(n) for n in self.circuit_heads()],
            "pooled": self.pooled.to_dict(),
            "runs": [hg.to_dict() for hg in self.runs],
            "quick": self.quick.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path


def load_golden(name_or_path: str | Path) -> Golden:
    """A shipped golden circuit by name (``ioi-smollm2-135m``) or any golden file by path.

    Raises:
        UnknownNameError: neither a file nor a shipped golden circuit.
        CircuitFileError: the file is not a golden circuit of a known schema version.
    """
    path = Path(name_or_path)
    if path.suffix != ".json":
        GOLDEN_RECIPES[str(name_or_path)]  # raises, listing the shipped names
        path = golden_dir() / f"{name_or_path}.json"
        if not path.is_file():
            raise CircuitFileError(
                f"golden circuit {name_or_path!r} is registered but {path} is missing; "
                f"make it with: headgraph golden build --name {name_or_path}"
            )
    elif not path.is_file():
        raise CircuitFileError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CircuitFileError(f"{path}: not a golden circuit file (not JSON: {err})") from None
    if not isinstance(data, dict) or data.get("schema") != GOLDEN_SCHEMA:
        raise CircuitFileError(f'{path}: not a golden circuit file (no "schema": "{GOLDEN_SCHEMA}")')
    if data.get("schema_version") != GOLDEN_SCHEMA_VERSION:
        raise CircuitFileError(f"{path}: golden schema version {data.get('schema_version')!r} is not supported")
    try:
        golden = Golden(
            name=str(data["name"]),
            recipe=GoldenRecipe.from_dict(data["recipe"]),
            pooled=HeadGraph.from_dict(data["pooled"], source=str(path)),
            runs=tuple(HeadGraph.from_dict(r, source=str(path)) for r in data["runs"]),
            quick=HeadGraph.from_dict(data["quick"], source=str(path)),
            made=dict(data["made"]),
        )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, HeadgraphError) as err:
        if isinstance(err, CircuitFileError):
            raise
        raise CircuitFileError(f"{path}: malformed golden file ({type(err).__name__}: {err})") from None
    _check_recipe(golden, path)
    return golden


def _check_recipe(golden: Golden, path: Path) -> None:
    """The stored circuits must be what the recipe makes: its task and (unless planted) its model."""
    r = golden.recipe
    for label, hg in (("pooled", golden.pooled), ("quick", golden.quick), *(("run", x) for x in golden.runs)):
        if hg.task.name != r.task:
            raise CircuitFileError(
                f"{path}: the recipe's task is {r.task!r} but its {label} circuit is of {hg.task.name!r}"
            )
        if not r.model.startswith(PLANTED_PREFIX) and hg.model.name != r.model:
            raise CircuitFileError(
                f"{path}: the recipe's model is {r.model!r} but its {label} circuit is of {hg.model.name!r}"
            )


Runner = Callable[[int, int], HeadGraph]
"""``(n_pairs, seed) -> HeadGraph``: one discovery run of a recipe."""

PLANTED_PREFIX = "planted:"
"""Recipe model names ``planted:<name>`` mean a planted model (:data:`PLANTED`) and its own task."""


def recipe_model(recipe: GoldenRecipe, progress: bool = True) -> HookedTransformer:
    """The recipe's model: a planted model, or :func:`circuits.model.load_model`."""
    if recipe.model.startswith(PLANTED_PREFIX):
        from circuits.groundtruth.planted import PLANTED

        return PLANTED[recipe.model[len(PLANTED_PREFIX) :]]().model
    from circuits.model import load_model

    return load_model(recipe.model, progress=progress)


def recipe_runner(recipe: GoldenRecipe, model: HookedTransformer, progress: bool = True) -> Runner:
    """A function running the recipe's method on ``n`` pairs of its task for a seed."""
    from circuits.discovery import build_method, method_params
    from circuits.model import model_info
    from circuits.pipeline import discover
    from tasks import TASKS

    method = build_method(recipe.method, dict(recipe.method_settings))
    if recipe.model.startswith(PLANTED_PREFIX):
        from circuits.groundtruth.planted import PLANTED

        planted = PLANTED[recipe.model[len(PLANTED_PREFIX) :]]()
        if recipe.task != planted.task.name:
            raise HeadgraphError(f"{recipe.model} comes with task {planted.task.name!r}, not {recipe.task!r}")

        def run_planted(n: int, seed: int) -> HeadGraph:
            data = planted.task.dataset(n, seed=seed)
            scores = method(model, data, planted.task.metric, progress=progress)
            settings = method_params(planted.task)  # its dataclass fields, enums by value
            task = TaskRun(planted.task.name, seed, len(data), data.tokenizer, settings)
            return HeadGraph(model_info(model), task, scores, scores.top_k(recipe.top_k))

        return run_planted
    task = TASKS[recipe.task]()

    def run(n: int, seed: int) -> HeadGraph:
        return discover(model, task, method, n=n, seed=seed, top_k=recipe.top_k, progress=progress)

    return run


def build_golden(
    name: str,
    recipe: GoldenRecipe | None = None,
    *,
    model: HookedTransformer | None = None,
    progress: bool = True,
    command: str = "",
    log: Callable[[str], None] | None = None,
) -> Golden:
    """Compute a golden circuit: one run per seed, pooled, plus the quick run.

    Args:
        name: the golden circuit's name (its recipe is looked up unless ``recipe`` is given).
        recipe: overrides the registered recipe.
        model: the model, if already loaded (else :func:`recipe_model`).
        progress: progress bars.
        command: the command line recorded as provenance.
        log: called with one line per finished run.
    """
    recipe = recipe or GOLDEN_RECIPES[name]
    start = time.perf_counter()
    model = model if model is not None else recipe_model(recipe, progress)
    run = recipe_runner(recipe, model, progress)
    runs: list[HeadGraph] = []
    seconds: list[float] = []
    for seed in recipe.seeds:
        t = time.perf_counter()
        runs.append(run(recipe.n_pairs, seed))
        seconds.append(time.perf_counter() - t)
        if log:
            log(f"seed {seed}: {recipe.n_pairs} pairs in {seconds[-1]:.1f} s")
    t = time.perf_counter()
    quick = run(recipe.quick_pairs, recipe.seeds[0])
    quick_seconds = time.perf_counter() - t
    if log:
        log(f"quick run: {recipe.quick_pairs} pairs (seed {recipe.seeds[0]}) in {quick_seconds:.1f} s")
    pooled_scores = pool([hg.scores for hg in runs])
    first = runs[0]
    pooled = HeadGraph(
        first.model,
        TaskRun(
            name=first.task.name,
            seed=recipe.seeds[0],
            n_pairs=sum(hg.task.n_pairs for hg in runs),
            tokenizer=first.task.tokenizer,
            settings={**first.task.settings, "pooled_seeds": list(recipe.seeds)},
        ),
        pooled_scores,
        pooled_scores.top_k(recipe.top_k),
    )
    made = {
        "command": command or f"headgraph golden build --name {name}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "headgraph_version": pooled.headgraph_version,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "seconds_total": time.perf_counter() - start,
        "seconds_per_seed": seconds,
        "seconds_quick": quick_seconds,
    }
    return Golden(name, recipe, pooled, tuple(runs), quick, made)
