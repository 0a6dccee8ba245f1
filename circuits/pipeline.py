"""One call from a task name to a head graph: tokenize, discover, select, package."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

from transformer_lens import HookedTransformer

from circuits import selection
from circuits.discovery.base import DiscoveryMethod
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import model_info, text_tokenizer
from circuits.scores import Level
from tasks import PromptPairDataset, Task

__all__ = ["discover", "task_settings"]


def task_settings(task: Task) -> dict[str, Any]:
    """A task's settings (its dataclass fields), JSON-ready."""
    if not dataclasses.is_dataclass(task):
        return {}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(task):
        v = getattr(task, f.name)
        if isinstance(v, tuple):
            out[f.name] = [x.value if isinstance(x, Enum) else x for x in v]
        else:
            out[f.name] = v.value if isinstance(v, Enum) else v
    return out


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
) -> HeadGraph:
    """Generate ``n`` pairs of ``task`` for ``model``, score them with ``method``, keep the top ``k``.

    Args:
        data: already tokenized pairs to use instead of generating them (``n`` and ``seed`` must
            describe them).
    """
    if data is None:
        data = task.dataset(text_tokenizer(model), n, seed=seed)
    scores = method(model, data, task.metric, progress=progress)
    run = TaskRun(
        name=task.name,
        seed=seed,
        n_pairs=len(data),
        tokenizer=data.tokenizer,
        settings=task_settings(task),
        dropped=dict(data.dropped),
    )
    circuit = selection.top_k(scores, top_k) if scores.level is Level.EDGE else scores.top_k(top_k)  # edges: pruned
    return HeadGraph(model_info(model), run, scores, circuit)
