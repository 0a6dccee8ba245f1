"""The discovery-method contract and the registry the CLI looks methods up in.

A method is a frozen dataclass whose fields are its hyper-parameters; calling it on a model, a
tokenized dataset and a metric returns :class:`~circuits.scores.Scores` over the model's candidate
graph. New methods are one file plus ``@METHODS.register(name)``.
"""

from __future__ import annotations

import dataclasses
import time
from enum import Enum
from typing import Any, ClassVar, Protocol, runtime_checkable

from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.engine.ablation import Ablation, baseline, check_ablation, check_positive, corrupt_means
from circuits.errors import HeadgraphError
from circuits.graph import Graph
from circuits.scores import Baseline, Level, Scores, flag_uninformative
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
    """A method's hyper-parameters, JSON-ready (enums by value)."""
    if not dataclasses.is_dataclass(method):
        raise HeadgraphError(f"{type(method).__name__} is not a dataclass method")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(method):
        v = getattr(method, f.name)
        out[f.name] = v.value if isinstance(v, Enum) else v
    return out


def summed_scores(
    name: str,
    params: dict[str, Any],
    graph: Graph,
    level: Level,
    totals: Tensor,
    sums: Float[Tensor, " 4"],
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
        sums: summed clean metric, corrupt metric, clean accuracy and corrupt accuracy.
        n: the number of examples summed.
        metric: the metric.
        start: ``time.perf_counter()`` when the method started.
    """
    m = (sums / n).tolist()
    scores = Scores(
        graph=graph,
        level=level,
        values=(totals / n).float(),
        method=name,
        baseline=Baseline(metric.name, m[0], m[1], m[2], m[3]),
        params=params,
        seconds=time.perf_counter() - start,
    )
    return flag_uninformative(scores)


def _convert(field: dataclasses.Field[Any], text: str) -> Any:
    """Parse ``text`` as the type of a method field (enums by value, bools as true/false, tuples
    as comma-separated strings)."""
    default = field.default
    if "tuple[" in str(field.type):  # a list setting: comma-separated (heads=L23H3,L20H0)
        items = tuple(x.strip() for x in text.split(",") if x.strip())
        if not items:
            raise HeadgraphError(f"{field.name} expects comma-separated values, got {text!r}")
        return items
    if isinstance(default, Enum):
        enum = type(default)
        try:
            return enum(text)
        except ValueError:
            raise HeadgraphError(
                f"{field.name} must be one of {', '.join(str(e.value) for e in enum)}, got {text!r}"
            ) from None
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise HeadgraphError(f"{field.name} must be true or false, got {text!r}")
        return text.lower() in ("true", "1")
    try:
        return type(default)(text) if isinstance(default, int | float) else text
    except ValueError:
        raise HeadgraphError(f"{field.name} must be a {type(default).__name__}, got {text!r}") from None


def build_method(name: str, settings: dict[str, str] | None = None) -> DiscoveryMethod:
    """The method registered as ``name`` with hyper-parameters given as strings (CLI, JSON).

    Raises:
        UnknownNameError: no such method.
        HeadgraphError: an unknown setting or a value of the wrong type.
    """
    cls = METHODS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, text in (settings or {}).items():
        key = key.replace("-", "_")
        if key not in fields:
            raise HeadgraphError(f"method {name!r} has no setting {key!r}; its settings: {', '.join(fields)}")
        kwargs[key] = _convert(fields[key], text)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise HeadgraphError(f"method {name!r}: {err}") from None
