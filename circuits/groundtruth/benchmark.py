"""Every registered discovery method, scored on the planted-circuit models.

:func:`score_methods` builds each method of :data:`circuits.discovery.METHODS` with its default
settings, runs it on every model of a suite of planted placements, and scores it against the
ground truth that its ablation can recover (:meth:`Planted.truth_for`: under resample ablation,
the heads and edges the corruption reaches). Node ROC AUC always; edge ROC AUC for edge-level
methods. New methods are covered as soon as they are registered. ``headgraph score --planted``
prints the table.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from circuits.discovery.base import METHODS, Ablation, build_method
from circuits.graph import Node
from circuits.groundtruth.planted import Planted
from circuits.groundtruth.planted_induction import InductionConfig, induction_model
from circuits.groundtruth.planted_ioi import IOIConfig, ioi_model
from circuits.groundtruth.planted_threshold import SINK_CONFIG, ThresholdConfig, threshold_model
from circuits.measures.roc import evaluate

__all__ = ["MethodResult", "default_suite", "format_results", "score_methods"]


def default_suite() -> list[Planted]:
    """Two placements of the induction and IOI circuits and the two threshold routes (through a step
    MLP; through sinks with junk-reading distractors), as fresh models: methods may not share state."""
    return [
        induction_model(),
        induction_model(InductionConfig(n_layers=3, n_heads=3, previous_token=(0, 0), induction=(2, 2), seed=1)),
        ioi_model(),
        ioi_model(
            IOIConfig(n_layers=4, n_heads=3, duplicate_token=(0, 0), s_inhibition=(2, 1), name_mover=(3, 2), seed=1)
        ),
        threshold_model(ThresholdConfig()),
        threshold_model(SINK_CONFIG),
    ]


@dataclass(frozen=True)
class MethodResult:
    """One method on one planted model.

    Attributes:
        method: registered name.
        planted: which planted model (name and circuit heads).
        node_auc: trapezoid node ROC AUC.
        node_auc_pessimistic: ACDC's pessimistic node ROC AUC.
        edge_auc: trapezoid edge ROC AUC (NaN for node-level methods).
        edge_auc_pessimistic: pessimistic edge ROC AUC (NaN likewise).
        seconds: the method's wall time.
        error: the exception, if the method failed (then the AUCs are NaN).
        notes: why an AUC is undefined (NaN) although the method ran, and warnings about its scores.
    """

    method: str
    planted: str
    node_auc: float
    node_auc_pessimistic: float
    edge_auc: float
    edge_auc_pessimistic: float
    seconds: float
    error: str = ""
    notes: str = ""


def _label(p: Planted) -> str:
    return f"{p.name} {'→'.join(str(n) for n in sorted(p.circuit_heads, key=Node.sort_key))}"


def score_methods(
    methods: Sequence[str] | None = None, suite: Sequence[Planted] | None = None, *, n_pairs: int = 16, seed: int = 0
) -> list[MethodResult]:
    """Run ``methods`` (default: all registered) on ``suite`` (default: :func:`default_suite`)."""
    names = list(methods) if methods is not None else METHODS.names()
    planted = list(suite) if suite is not None else default_suite()
    out: list[MethodResult] = []
    for name in names:
        method = build_method(name)
        ablation = getattr(method, "ablation", Ablation.RESAMPLE)
        for p in planted:
            data = p.task.dataset(n_pairs, seed=seed)
            start = time.perf_counter()
            try:
                scores = method(p.model, data, p.task.metric, progress=False)
                r = evaluate(scores, p.truth_for(ablation))
            except Exception as err:  # a method that fails on a planted model is a result to report
                nan = math.nan
                out.append(MethodResult(name, _label(p), nan, nan, nan, nan, time.perf_counter() - start, repr(err)))
                continue
            seconds = time.perf_counter() - start
            notes = [f"{part} AUC undefined: {why}" for part, why in r.undefined.items() if not _expected(part, why)]
            notes += list(scores.warnings)
            out.append(
                MethodResult(
                    name,
                    _label(p),
                    r.node_auc,
                    r.node_auc_pessimistic,
                    r.edge_auc,
                    r.edge_auc_pessimistic,
                    seconds,
                    notes="; ".join(notes),
                )
            )
    return out


def _expected(part: str, why: str) -> bool:
    """Whether an undefined part needs no note (a node-level method has no edge AUC)."""
    return part == "edge" and why.startswith("node-level")


def format_results(results: Sequence[MethodResult]) -> str:
    """A markdown table, one row per method and planted model; NaN parts say why in the notes."""

    def f(x: float) -> str:
        return "—" if math.isnan(x) else f"{x:.3f}"

    lines = [
        "| method | planted model | node AUC | node AUC (pessimistic) | edge AUC | edge AUC (pessimistic) | seconds "
        "| notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.method} | {r.planted} | failed: {r.error} | | | | {r.seconds:.2f} | |")
        else:
            lines.append(
                f"| {r.method} | {r.planted} | {f(r.node_auc)} | {f(r.node_auc_pessimistic)} | {f(r.edge_auc)} "
                f"| {f(r.edge_auc_pessimistic)} | {r.seconds:.2f} | {r.notes} |"
            )
    return "\n".join(lines)
