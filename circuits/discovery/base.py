"""The discovery-method contract and the registry the CLI looks methods up in.

A method is a frozen dataclass whose fields are its hyper-parameters; calling it on a model, a
tokenized dataset and a metric returns :class:`~circuits.scores.Scores` over the model's candidate
graph. New methods are one file plus ``@METHODS.register(name)``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.graph import Graph
from circuits.model import run_to_logits, run_with_cache
from circuits.scores import Baseline, Level, Scores, flag_uninformative
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric
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


class Ablation(Enum):
    """What replaces a component's clean activation when it is ablated.

    * ``RESAMPLE``: its activation on the paired corrupt prompt (the default; "patching").
    * ``MEAN``: its mean activation over the corrupt prompts of the dataset, over examples and
      (unpadded) positions.
    * ``ZERO``: zero.
    """

    RESAMPLE = "resample"
    MEAN = "mean"
    ZERO = "zero"


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


def check_positive(**values: int) -> None:
    """Raise :class:`HeadgraphError` naming the first setting that is not a positive integer."""
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise HeadgraphError(f"{name} must be a positive integer, got {v!r}")


def check_ablation(ablation: object) -> None:
    """Raise :class:`HeadgraphError` unless ``ablation`` is an :class:`Ablation`."""
    if not isinstance(ablation, Ablation):
        raise HeadgraphError(f"ablation must be an Ablation, got {ablation!r}")


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


@torch.inference_mode()
def corrupt_means(
    model: HookedTransformer,
    data: PromptPairDataset,
    names: Sequence[str],
    batch_size: int,
    transform: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> dict[str, Tensor]:
    """The mean of each hooked activation over the corrupt prompts' real (unpadded) tokens.

    ``transform`` maps each batch's cache before averaging (e.g. outputs to residual-stream terms).
    Means are accumulated in float64 and returned in the model's dtype, one entry per cache entry.
    """
    sums: dict[str, Tensor] = {}
    count = 0
    for batch in data.batches(batch_size):
        _, cache = run_with_cache(model, batch.corrupt, list(names))
        cache = transform(cache) if transform is not None else cache
        valid = torch.arange(batch.corrupt.shape[1], device=batch.corrupt.device)[None] < batch.lengths[:, None]
        count += int(valid.sum())
        for name, act in cache.items():
            s = act[valid].double().sum(0)
            sums[name] = sums[name] + s if name in sums else s
    return {name: (s / count).to(model.cfg.dtype) for name, s in sums.items()}


@torch.inference_mode()
def baseline(model: HookedTransformer, data: PromptPairDataset, metric: Metric, batch_size: int = 32) -> Baseline:
    """Mean metric and accuracy on the clean and the corrupt prompts."""
    sums = torch.zeros(4, dtype=torch.float64)
    acc = Accuracy()
    for b in data.batches(batch_size):
        for i, tokens in enumerate((b.clean, b.corrupt)):
            logits = run_to_logits(model, tokens, b.answer_pos)
            sums[i] += metric(logits, b.targets).double().sum()
            sums[2 + i] += acc(logits, b.targets).double().sum()
    m = (sums / len(data)).tolist()
    return Baseline(metric.name, clean=m[0], corrupt=m[1], clean_accuracy=m[2], corrupt_accuracy=m[3])


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
