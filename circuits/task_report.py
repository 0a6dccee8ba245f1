"""Task baselines on a model: can it do each task, and how far apart are clean and corrupt runs?

A circuit found for a task the model cannot do is noise, so before any discovery the report runs
every task's clean and corrupt prompts once and records, per task:

  * accuracy over the whole vocabulary (argmax is an answer) and over the task's candidates, with
    the candidates' chance level (:func:`tasks.candidate_chance`) and a verdict: the model *can do*
    the task when its clean candidate accuracy lies at least :data:`CAN_DO_Z` binomial standard
    errors above chance;
  * the mean logit difference (answer − competing tokens) on clean and on corrupt prompts, the
    task's own metric (probability difference for greater-than) likewise, and the normalized gap
    ``mean(clean − corrupt) / std(clean − corrupt)`` of that metric over pairs (a paired effect
    size: above 1 the corruption moves almost every pair the same way).

Rows are the registered tasks with their default settings plus the report variants each task
declares (:attr:`tasks.Task.report_variants`, gathered in :data:`VARIANTS`), the settings worth
comparing (other corruptions, formats the model cannot do), so the report shows why each default
was chosen.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.model import model_info, run_to_logits, text_tokenizer
from circuits.pipeline import task_settings
from tasks import TASKS, Accuracy, CandidateAccuracy, LogitDiff, PromptPairDataset, Task, candidate_chance

__all__ = [
    "CAN_DO_Z",
    "VARIANTS",
    "ReportRow",
    "TaskBaseline",
    "TaskReport",
    "default_rows",
    "task_baseline",
    "task_report",
    "task_variants",
]

CAN_DO_Z = 3.0
"""Standard errors above chance that clean candidate accuracy needs for "the model can do it"."""

SCHEMA = "headgraph.tasks-report"
VERSION = 1


@dataclass(frozen=True)
class ReportRow:
    """One row of the report: a label and the task with its settings."""

    label: str
    make: Callable[[], Task]


def task_variants(name: str) -> list[ReportRow]:
    """The report variants task ``name`` declares (:attr:`tasks.Task.report_variants`), as rows."""
    cls = TASKS[name]
    return [ReportRow(label, functools.partial(cls, **settings)) for label, settings in cls.report_variants]


VARIANTS: tuple[ReportRow, ...] = tuple(v for name in TASKS.names() for v in task_variants(name))
"""Settings other than the defaults that the report also measures, as the tasks declare them. A row
costs one clean and one corrupt forward per pair, so the lists are kept short; other settings are
measured from Python with
``task_report(model, [ReportRow("mcqa (4 options)", lambda: MCQA(options=4))], n=64, seed=0)``."""


def default_rows(tasks: Sequence[str] | None = None, *, variants: bool = True) -> list[ReportRow]:
    """Each task's defaults (then its variants), for ``tasks`` (all registered ones when None)."""
    names = list(tasks) if tasks else TASKS.names()
    rows = []
    for name in names:
        cls = TASKS[name]
        rows.append(ReportRow(name, cls))
        if variants:
            rows += task_variants(name)
    return rows


@dataclass(frozen=True)
class TaskBaseline:
    """Clean and corrupt behaviour of one task on one model (means over pairs)."""

    label: str
    task: str
    settings: dict[str, Any]
    metric: str
    n_pairs: int
    dropped: dict[str, int]
    chance: float
    clean_accuracy: float
    clean_candidate_accuracy: float
    corrupt_candidate_accuracy: float
    clean_logit_diff: float
    corrupt_logit_diff: float
    clean_metric: float
    corrupt_metric: float
    normalized_gap: float
    accuracy_z: float

    @property
    def can_do(self) -> bool:
        """Clean candidate accuracy is at least :data:`CAN_DO_Z` standard errors above chance."""
        return self.accuracy_z >= CAN_DO_Z

    @property
    def clean_beats_corrupt(self) -> bool:
        """The task's metric is larger on clean than on corrupt prompts, on average."""
        return self.clean_metric > self.corrupt_metric

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, verdicts included."""
        return {**dataclasses.asdict(self), "can_do": self.can_do, "clean_beats_corrupt": self.clean_beats_corrupt}


@torch.inference_mode()
def task_baseline(
    model: HookedTransformer, data: PromptPairDataset, task: Task, *, label: str | None = None, batch_size: int = 32
) -> TaskBaseline:
    """Run ``data``'s clean and corrupt prompts once and summarise them (see the module docstring)."""
    metrics = {"ld": LogitDiff(), "metric": task.metric, "acc": Accuracy(), "cand": CandidateAccuracy()}
    parts: dict[tuple[str, str], list[torch.Tensor]] = {(r, k): [] for r in ("clean", "corrupt") for k in metrics}
    for b in data.batches(batch_size):
        for run, tokens in (("clean", b.clean), ("corrupt", b.corrupt)):
            logits = run_to_logits(model, tokens, b.answer_pos)
            for key, m in metrics.items():
                parts[(run, key)].append(m(logits, b.targets).double())
    per_pair = {k: torch.cat(x) for k, x in parts.items()}  # (run, metric) -> [batch]
    mean = {k: float(x.mean()) for k, x in per_pair.items()}
    chance = candidate_chance(data.targets).double()
    n = len(data)
    diff = per_pair[("clean", "metric")] - per_pair[("corrupt", "metric")]
    sd = float(diff.std()) if n > 1 else 0.0
    null_se = math.sqrt(float((chance * (1 - chance)).sum())) / n  # binomial spread of a random pick
    acc_excess = mean[("clean", "cand")] - float(chance.mean())
    return TaskBaseline(
        label=label or task.name,
        task=task.name,
        settings=task_settings(task),
        metric=task.metric.name,
        n_pairs=n,
        dropped=dict(data.dropped),
        chance=float(chance.mean()),
        clean_accuracy=mean[("clean", "acc")],
        clean_candidate_accuracy=mean[("clean", "cand")],
        corrupt_candidate_accuracy=mean[("corrupt", "cand")],
        clean_logit_diff=mean[("clean", "ld")],
        corrupt_logit_diff=mean[("corrupt", "ld")],
        clean_metric=mean[("clean", "metric")],
        corrupt_metric=mean[("corrupt", "metric")],
        normalized_gap=float(diff.mean()) / sd if sd > 0 else _signed_inf(float(diff.mean())),
        accuracy_z=acc_excess / null_se if null_se > 0 else _signed_inf(acc_excess),
    )


def _signed_inf(x: float) -> float:
    """A ratio over a zero spread: infinite with the sign of ``x``, or 0 when ``x`` is 0 too."""
    return math.copysign(math.inf, x) if x else 0.0


@dataclass(frozen=True)
class TaskReport:
    """Baselines of several tasks on one model, with what made them."""

    model: dict[str, Any]
    n: int
    seed: int
    rows: tuple[TaskBaseline, ...]
    command: str = ""
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "model": self.model,
            "n": self.n,
            "seed": self.seed,
            "command": self.command,
            "seconds": self.seconds,
            "rows": [r.to_dict() for r in self.rows],
        }

    def markdown_table(self) -> str:
        """The table alone (what the README quotes)."""
        head = (
            "| task | pairs (dropped) | chance | clean acc. (vocab) | clean acc. (candidates) | can do? "
            "| logit diff clean | logit diff corrupt | metric | metric clean | metric corrupt | normalized gap |"
        )
        lines = [head, "|" + "---|" * 12]
        for r in self.rows:
            verdict = "yes" if r.can_do else "**no (chance)**" if r.accuracy_z < 2 else "weak"
            lines.append(
                f"| {r.label} | {r.n_pairs} ({sum(r.dropped.values())}) | {r.chance:.0%} | {r.clean_accuracy:.0%} "
                f"| {r.clean_candidate_accuracy:.0%} | {verdict} "
                f"| {r.clean_logit_diff:.2f} | {r.corrupt_logit_diff:.2f} "
                f"| {r.metric} | {r.clean_metric:.3f} | {r.corrupt_metric:.3f} | {r.normalized_gap:.2f} |"
            )
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """A markdown document: how it was made, the table, and how to read it."""
        m = self.model
        parts = [
            f"# Task baselines on {m.get('name', '?')}",
            "",
            f"`{self.command}` · {self.n} pairs per task, seed {self.seed} · {self.seconds:.0f} s",
            "",
            self.markdown_table(),
            "",
            "*chance*: expected candidate accuracy of a random pick among the task's candidates. *can do?*: clean "
            f"candidate accuracy at least {CAN_DO_Z:g} binomial standard errors above chance (*weak*: 2 to "
            f"{CAN_DO_Z:g}). *normalized gap*: mean over pairs of (clean − corrupt) task metric divided by its "
            "standard deviation. Pairs dropped by validation are counted in brackets.",
        ]
        parts += [f"\n{n}" for n in self.notes]
        return "\n".join(parts) + "\n"


def task_report(
    model: HookedTransformer,
    rows: Sequence[ReportRow],
    *,
    n: int,
    seed: int,
    batch_size: int = 32,
    progress: bool = True,
) -> TaskReport:
    """The baselines of ``rows`` on ``model``, ``n`` pairs each, seeded with ``seed``."""
    tok = text_tokenizer(model)
    out = []
    for row in tqdm(rows, desc="tasks", disable=not progress):
        task = row.make()
        data = task.dataset(tok, n, seed=seed).to(model.cfg.device or "cpu")
        out.append(task_baseline(model, data, task, label=row.label, batch_size=batch_size))
    return TaskReport(model=model_info(model).to_dict(), n=n, seed=seed, rows=tuple(out))
