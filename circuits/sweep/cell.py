"""One cell of a sweep, run in whatever process holds it (a Ray worker, or this one): load, discover, measure.

:func:`run_cell` never raises for a failure of the cell itself: the error becomes the row's ``error``
(a worker process that dies is Ray's to retry, :mod:`.runner`). It returns the results-table row and
the head-graph file's text; the driver writes both, so workers need no shared file system.
"""

from __future__ import annotations

import json
import math
import os
import resource
import socket
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.model.device import resolve_device
from circuits.scores import Circuit, Level
from circuits.sweep.spec import PLANTED_PREFIX, Cell, SweepSpec

__all__ = ["CellOutput", "load_sweep_model", "run_cell", "set_threads"]


def set_threads(num_cpus: float) -> None:
    """Give torch as many threads as the cell holds cores (at least one)."""
    torch.set_num_threads(max(1, int(num_cpus)))


@dataclass(frozen=True)
class LoadedModel:
    """A model with, for a planted model, its own task and exact ground truth."""

    model: HookedTransformer
    planted: Any = None  # circuits.groundtruth.Planted, or None


def load_sweep_model(name: str, device: str, dtype: str, progress: bool = False) -> LoadedModel:
    """The model a sweep names: ``planted:NAME`` or any name :func:`circuits.model.load_model` knows."""
    if name.startswith(PLANTED_PREFIX):
        from circuits.groundtruth.planted import PLANTED

        planted = PLANTED[name[len(PLANTED_PREFIX) :]]()
        if str(planted.model.cfg.device) != device:
            planted.model.to(device, print_details=False)
        return LoadedModel(planted.model, planted)
    from circuits.model import load_model

    return LoadedModel(load_model(name, device=device, dtype=dtype, progress=progress))


@dataclass(frozen=True)
class CellOutput:
    """What a cell sends back: its row of the results table and its head-graph file (JSON text)."""

    row: dict[str, Any]
    headgraph: str = ""


def _peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def base_row(cell: Cell) -> dict[str, Any]:
    """The columns that name a cell (the same for a finished and a failed cell)."""
    return {
        "cell": cell.key,
        "model": cell.model,
        "task": cell.task,
        "method": cell.method.name,
        "label": cell.method.label,
        "settings": cell.settings_json,
        "seed": cell.seed,
        "n": cell.n,
    }


def run_cell(cell: Cell, spec: SweepSpec) -> CellOutput:
    """Run ``cell`` of ``spec`` here and return its row and head graph (module docstring)."""
    start = time.perf_counter()
    row = base_row(cell) | {"status": "failed", "error": "", "host": socket.gethostname(), "pid": os.getpid()}
    try:
        device = resolve_device(spec.device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        set_threads(spec.resources.num_cpus)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hg, truth, data, metric, model = _discover(cell, spec, device)
            row |= _result_columns(hg, spec, truth)
            if spec.faithfulness:
                row |= _faithfulness_columns(model, data, metric, hg.scores)
        row |= {"status": "ok", "device": device, "dtype": spec.dtype.value}
        text = json.dumps(hg.to_dict(), indent=1)
    except Exception as err:  # noqa: BLE001 - a failed cell is recorded, never raised (the others go on)
        row["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        row["traceback"] = traceback.format_exc()[-4000:]
        text = ""
    row["wall_seconds"] = time.perf_counter() - start
    row["peak_memory_mb"] = _peak_memory_mb(row.get("device", "cpu"))
    return CellOutput(row, text)


def _discover(cell: Cell, spec: SweepSpec, device: str) -> tuple[Any, Circuit | None, Any, Any, HookedTransformer]:
    from circuits.discovery import method_params
    from circuits.headgraph import HeadGraph, TaskRun
    from circuits.model import model_info, text_tokenizer
    from circuits.pipeline import discover
    from tasks import TASKS

    method = cell.method.build()
    loaded = load_sweep_model(cell.model, device, spec.dtype.value)
    if loaded.planted is not None:
        planted = loaded.planted
        data = planted.task.dataset(cell.n, seed=cell.seed).to(device)
        metric = planted.task.metric
        scores = method(loaded.model, data, metric, progress=False)
        run = TaskRun(planted.task.name, cell.seed, len(data), data.tokenizer, method_params(planted.task))
        from circuits import selection

        top = (
            selection.top_k(scores, spec.top_k) if scores.level is Level.EDGE else scores.top_k(spec.top_k)
        )  # as discover
        hg = HeadGraph(model_info(loaded.model), run, scores, top)
        truth = planted.truth_for(getattr(method, "ablation", None) or _resample()) if spec.truth == "planted" else None
        return hg, truth, data, metric, loaded.model
    task = TASKS[cell.task]()
    data = task.dataset(text_tokenizer(loaded.model), cell.n, seed=cell.seed).to(device)
    hg = discover(loaded.model, task, method, n=cell.n, seed=cell.seed, top_k=spec.top_k, progress=False, data=data)
    truth = None
    if spec.truth and spec.truth != "planted":
        from circuits.groundtruth.truth import resolve_truth

        truth = resolve_truth(spec.truth, hg.scores.graph).circuit(hg.scores.graph)
    return hg, truth, data, task.metric, loaded.model


def _resample() -> Any:
    from circuits.engine.ablation import Ablation

    return Ablation.RESAMPLE


def _result_columns(hg: Any, spec: SweepSpec, truth: Circuit | None) -> dict[str, Any]:
    s = hg.scores
    b = s.baseline
    top = [str(s.items[i]) for i in s.order()[: spec.top_k]]
    out: dict[str, Any] = {
        "level": s.level.value,
        "metric": b.metric,
        "baseline_clean": b.clean,
        "baseline_corrupt": b.corrupt,
        "baseline_gap": b.gap,
        "clean_accuracy": b.clean_accuracy,
        "corrupt_accuracy": b.corrupt_accuracy,
        "top_k": top,
        "method_seconds": s.seconds,
        "truth": spec.truth,
        "node_auc": math.nan,
        "edge_auc": math.nan,
        "warnings": list(s.warnings) + list(hg.warnings),
    }
    if truth is not None:
        from circuits.measures.roc import evaluate

        ev = evaluate(s, truth)
        out["node_auc"], out["edge_auc"] = ev.node_auc, ev.edge_auc
    return out


def _faithfulness_columns(model: HookedTransformer, data: Any, metric: Any, scores: Any) -> dict[str, Any]:
    from circuits.measures.faithfulness import evaluate_faithfulness

    if scores.level is Level.NODE and torch.isnan(scores.values).all():
        raise HeadgraphError("faithfulness: no item is scored")
    report = evaluate_faithfulness(model, data, metric, scores, progress=False)
    return {
        "cpr": report.cpr,
        "cmd": report.cmd,
        "curve_x": [p.x() for p in report.signed.points],
        "curve_y": [p.faithfulness for p in report.signed.points],
    }
