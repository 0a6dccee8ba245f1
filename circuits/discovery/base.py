"""The discovery-method contract and the registry the CLI looks methods up in.

A method is a frozen dataclass whose fields are its hyper-parameters; calling it on a model, a
tokenized dataset and a metric returns :class:`~circuits.scores.Scores` over the model's candidate
graph. New methods are one file plus ``@METHODS.register(name)``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar, Protocol, runtime_checkable

from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.engine.ablation import Ablation, BaselineSums, baseline, check_ablation, check_positive, corrupt_means
from circuits.errors import HeadgraphError
from circuits.graph import ComponentGraph
from circuits.scores import Level, Scores, flag_uninformative
from circuits.settings import from_strings, to_json
from tasks import PromptPairDataset
from tasks.metrics import Metric
from tasks.registry import Registry

__all__ = [
    "METHODS",
    "Ablation",
    "DiscoveryMethod",
    "baseline",
    "build_method",
    "check_ablation",
    "check_positive",
    "corrupt_means",
    "method_params",
    "summed_scores",
]


@runtime_checkable
class DiscoveryMethod(Protocol):
    """Scores every node or edge of a model's graph for one task."""

    name: ClassVar[str]
    level: ClassVar[Level]

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores: ...


METHODS: Registry[type[DiscoveryMethod]] = Registry("method")


def method_params(method: object) -> dict[str, Any]:
    """A method's hyper-parameters, JSON-ready (:func:`circuits.settings.to_json`)."""
    if not dataclasses.is_dataclass(method):
        raise HeadgraphError(f"{type(method).__name__} is not a dataclass method")
    return to_json(method)


def summed_scores(
    name: str,
    params: dict[str, Any],
    graph: ComponentGraph,
    level: Level,
    totals: Tensor,
    sums: BaselineSums,
    n: int,
    metric: Metric,
    start: float,
) -> Scores:
    """The :class:`Scores` a method returns from per-example sums over ``n`` examples.

    Args:
        name: the method's registered name.
        params: its settings (:func:`method_params`).
        graph: the graph scored.
        level: nodes or edges.
        totals: one summed value per node or edge (NaN where not scored).
        sums: the summed clean and corrupt metric and accuracy.
        n: the number of examples summed.
        metric: the metric.
        start: ``time.perf_counter()`` when the method started.
    """
    scores = Scores(
        graph=graph,
        level=level,
        values=(totals / n).float(),
        method=name,
        baseline=sums.baseline(metric.name, n),
        params=params,
        seconds=time.perf_counter() - start,
    )
    return flag_uninformative(scores)


def build_method(name: str, settings: dict[str, str] | None = None) -> DiscoveryMethod:
    """The method registered as ``name`` with hyper-parameters given as strings (CLI, JSON).

    Raises:
        UnknownNameError: no such method.
        HeadgraphError: an unknown setting or a value of the wrong type (:func:`circuits.settings.from_strings`).
    """
    return from_strings(METHODS[name], settings or {}, what=f"method {name!r}")
