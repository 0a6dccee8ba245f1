"""One call from a task name to a head graph: tokenize, discover, select, package."""

from __future__ import annotations

import warnings
from typing import Any

from transformer_lens import HookedTransformer

from circuits import selection
from circuits.discovery.base import DiscoveryMethod
from circuits.discovery.position_setting import PositionScores, position_selection
from circuits.errors import HeadgraphError, HeadgraphWarning
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import model_info, text_tokenizer
from circuits.result_checks import result_warnings
from circuits.scores import Level
from circuits.settings import to_json
from tasks import PromptPairDataset, Task
from tasks.metrics import candidate_chance

__all__ = ["discover", "task_settings"]


def task_settings(task: Task) -> dict[str, Any]:
    """A task's settings (its dataclass fields), JSON-ready (:func:`circuits.settings.to_json`)."""
    return to_json(task)


def discover(
    model: HookedTransformer,
    task: Task,
    method: DiscoveryMethod,
    *,
    n: int,
    seed: int,
    top_k: int = 10,
    progress: bool = True,
    data: PromptPairDataset | None = None,
    strict: bool = False,
) -> HeadGraph:
    """Generate ``n`` pairs of ``task`` for ``model``, score them with ``method``, keep the top ``k``.

    The result is checked before it is returned (:mod:`circuits.result_checks`): a non-finite
    baseline or score, or a zero clean − corrupt gap, raises; a degenerate baseline (at chance, a
    negative gap, a gap too small to normalize by) is warned about (:class:`HeadgraphWarning`) and
    recorded in the head graph's ``warnings``.

    Args:
        data: already tokenized pairs to use instead of generating them (they must be ``n`` pairs
            of ``task`` drawn with ``seed``, tokenized for ``model``).
        strict: make a degenerate baseline an error instead of a warning.

    Raises:
        HeadgraphError: an argument of the wrong type or value, ``data`` that does not match
            ``task``, ``n``, ``seed`` or the model's tokenizer, or a result that must not be saved.
    """
    _check_arguments(model, task, method, n=n, seed=seed, top_k=top_k, progress=progress, strict=strict)
    if data is None:
        data = task.dataset(text_tokenizer(model), n, seed=seed).to(
            model.cfg.device or "cpu"
        )  # tensors follow the model
    else:
        _check_data(data, model, task, n=n, seed=seed)
    scores = method(model, data, task.metric, progress=progress)
    problems = result_warnings(scores, chance=float(candidate_chance(data.targets).mean()), n=len(data))
    if problems and strict:
        raise HeadgraphError(f"{problems[0]} (strict: nothing was written)")
    for text in problems:
        warnings.warn(text, HeadgraphWarning, stacklevel=2)
    run = TaskRun(
        name=task.name,
        seed=seed,
        n_pairs=len(data),
        tokenizer=data.tokenizer,
        settings=task_settings(task),
        dropped=dict(data.dropped),
    )
    if isinstance(scores, PositionScores):  # --set positions=named: top-k (edge, position) pairs
        circuit, positions = position_selection(scores, top_k)
        return HeadGraph(model_info(model), run, scores, circuit, warnings=problems, positions=positions)
    circuit = selection.top_k(scores, top_k) if scores.level is Level.EDGE else scores.top_k(top_k)  # edges: pruned
    return HeadGraph(model_info(model), run, scores, circuit, warnings=problems)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_arguments(model: object, task: object, method: object, **values: object) -> None:
    """Type checks of :func:`discover`'s arguments, at run time (one-line errors)."""
    expected = (("model", model, HookedTransformer), ("task", task, Task), ("method", method, DiscoveryMethod))
    for name, value, kind in expected:
        if not isinstance(value, kind):
            raise HeadgraphError(f"discover: {name} must be a {kind.__name__}, got {type(value).__name__}")
    for name in ("n", "seed", "top_k"):
        if not _is_int(values[name]):
            raise HeadgraphError(f"discover: {name} must be an int, got {type(values[name]).__name__} {values[name]!r}")
    for name in ("progress", "strict"):
        if not isinstance(values[name], bool):
            raise HeadgraphError(f"discover: {name} must be a bool, got {type(values[name]).__name__}")
    if values["n"] <= 0 or values["top_k"] <= 0:  # type: ignore[operator]
        raise HeadgraphError(f"discover: n and top_k must be positive, got n={values['n']}, top_k={values['top_k']}")


def _check_data(data: object, model: HookedTransformer, task: Task, *, n: int, seed: int) -> None:
    """``data`` must be what ``task.dataset(tokenizer, n, seed=seed)`` gives for ``model``."""
    if not isinstance(data, PromptPairDataset):
        raise HeadgraphError(f"discover: data must be a PromptPairDataset, got {type(data).__name__}")
    if data.task != task.name:
        raise HeadgraphError(f"discover: data holds pairs of task {data.task!r}, not of {task.name!r}")
    if data.seed != seed or len(data) != n:
        raise HeadgraphError(
            f"discover: data holds {len(data)} pairs drawn with seed {data.seed}, but n={n} and seed={seed} "
            "were given (they are saved with the result)"
        )
    if model.tokenizer is not None and data.tokenizer != text_tokenizer(model).name:
        raise HeadgraphError(
            f"discover: data was tokenized for {data.tokenizer!r}, the model is {text_tokenizer(model).name!r}"
        )
    top = max(int(data.clean.max()), int(data.corrupt.max()), int(data.targets.answers.max()))
    if top >= model.cfg.d_vocab:
        raise HeadgraphError(
            f"discover: data holds token id {top}, beyond the model's vocabulary of {model.cfg.d_vocab} "
            f"(tokenized for {data.tokenizer!r})"
        )
