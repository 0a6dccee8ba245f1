"""Edits of several heads at the answer position, and their effect on a task, computed cheaply.

A :class:`HeadEdit` is one repair candidate: a set of heads and what is done to them, at the
position that predicts the answer:

* ``FORCE``: the head attends only, and uniformly, to a role's tokens
  (:class:`~circuits.interventions.ForceAttention`; Merullo et al. 2023, arXiv 2310.08744, §5);
* ``SCALE``: the head's attention to a role's tokens is multiplied by ``γ`` and the row
  renormalised (:class:`~circuits.interventions.ScaleAttention`; ZeroTuning / ACT);
* ``ABLATE``: the head's output at the answer position is replaced by its mean there over the task's
  prompts (:class:`~circuits.interventions.AblateHead`): what the head contributes to this answer
  removed.

:func:`evaluate_edits` reports, for each edit, the task's mean metric, accuracy over the vocabulary
and over the candidates, and where the watched heads attend from the answer position (the share of
the row on each :class:`~circuits.repair.answer_roles.AnswerRole`). Every edit acts at the answer position only
and cannot change any earlier position (attention is causal), so :class:`EditEvaluator` runs every
batch once in full and each edit resumes that run at its lowest layer, computing only the positions
from the batch's earliest answer position on (:func:`circuits.model.resume_to_logits`): the result is
exact and an edit costs a few positions instead of a whole prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.engine.ablation import Ablation
from circuits.errors import HeadgraphError
from circuits.graph import Node, NodeKind
from circuits.interventions import AblateHead, ForceAttention, Intervention, ScaleAttention
from circuits.model import (
    HookFn,
    ResumableRun,
    hook_pattern,
    hook_z,
    logits_at,
    resumable_run,
    resume_to_logits,
)
from circuits.repair.answer_roles import AnswerRole, RolePositions, role_mask, role_positions
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, CandidateAccuracy, LogitDiff, Metric

__all__ = ["EditEvaluator", "EditKind", "HeadEdit", "Outcome", "evaluate_edits"]


class EditKind(Enum):
    """What a :class:`HeadEdit` does to its heads (module docstring)."""

    FORCE = "force"
    SCALE = "scale"
    ABLATE = "ablate"


@dataclass(frozen=True)
class HeadEdit:
    """One edit applied to several heads at the answer position.

    Attributes:
        heads: the edited heads (distinct head nodes).
        kind: force or scale their attention onto ``role``, or mean-ablate them.
        role: the tokens a FORCE or SCALE edit directs attention to.
        gamma: the SCALE factor (> 0, not 1).
    """

    heads: tuple[Node, ...]
    kind: EditKind
    role: AnswerRole = AnswerRole.WRONG
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if not self.heads:
            raise HeadgraphError("an edit needs at least one head")
        if any(not isinstance(h, Node) or h.kind is not NodeKind.HEAD for h in self.heads):
            raise HeadgraphError(f"an edit acts on attention heads, got {[str(h) for h in self.heads]}")
        if len(set(self.heads)) != len(self.heads):
            raise HeadgraphError(f"an edit names each head once, got {[str(h) for h in self.heads]}")
        if not isinstance(self.kind, EditKind):
            raise HeadgraphError(f"kind must be an EditKind, got {self.kind!r}")
        if not isinstance(self.role, AnswerRole):
            raise HeadgraphError(f"role must be an AnswerRole, got {self.role!r}")
        if self.kind is EditKind.SCALE and not (self.gamma > 0 and self.gamma != 1):
            raise HeadgraphError(f"a scale edit needs gamma > 0 and != 1, got {self.gamma}")

    @property
    def label(self) -> str:
        """Short description, e.g. ``force L9H3+L12H1 → wrong``.

        Examples:
            >>> HeadEdit((Node.of_head(9, 3),), EditKind.SCALE, gamma=4.0).label
            'scale ×4 L9H3 → wrong'
        """
        heads = "+".join(str(h) for h in self.heads)
        if self.kind is EditKind.ABLATE:
            return f"mean-ablate {heads}"
        factor = f" ×{self.gamma:g}" if self.kind is EditKind.SCALE else ""
        return f"{self.kind.value}{factor} {heads} → {self.role.value}"

    def with_heads(self, heads: Sequence[Node]) -> HeadEdit:
        """The same edit on other heads."""
        return HeadEdit(tuple(heads), self.kind, self.role, self.gamma)

    def interventions(
        self, batch: PromptPairDataset, roles: RolePositions | None, means: Mapping[Node, Tensor], prefix: int = 0
    ) -> list[Intervention]:
        """The interventions performing this edit on ``batch``.

        Args:
            batch: the prompts.
            roles: their answer roles (FORCE and SCALE edits).
            means: each head's mean output at the answer position (ABLATE edits).
            prefix: positions a resumed pass does not compute (:class:`~circuits.model.ResumableRun`).
        """
        if self.kind is EditKind.ABLATE:
            pos = batch.answer_pos - prefix
            return [AblateHead(h.layer, _head(h), Ablation.MEAN, means[h], pos) for h in self.heads]
        if roles is None:
            raise HeadgraphError(f"{self.label} needs the task's answer roles")
        keys = roles.of(self.role)
        if self.kind is EditKind.FORCE:
            return [ForceAttention(h.layer, _head(h), batch.answer_pos, keys) for h in self.heads]
        return [ScaleAttention(h.layer, _head(h), keys, self.gamma, batch.answer_pos) for h in self.heads]

    def to_dict(self) -> dict[str, object]:
        return {"heads": [str(h) for h in self.heads], "kind": self.kind.value, "role": self.role.value,
                "gamma": self.gamma, "label": self.label}  # fmt: skip


def _head(node: Node) -> int:
    assert node.head is not None
    return node.head


@dataclass(frozen=True)
class Outcome:
    """A task's behaviour under one edit (means over the dataset's examples).

    Attributes:
        n: examples.
        metric: mean task metric (logit difference unless told otherwise).
        accuracy: share of examples whose argmax over the whole vocabulary is an answer.
        candidate_accuracy: share whose best candidate is an answer.
        attention: per watched head, its mean attention from the answer position on each role
            (the edited attention where the edit changes it).
    """

    n: int
    metric: float
    accuracy: float
    candidate_accuracy: float
    attention: Mapping[Node, Mapping[AnswerRole, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "metric": self.metric,
            "accuracy": self.accuracy,
            "candidate_accuracy": self.candidate_accuracy,
            "attention": {str(h): {r.value: v for r, v in a.items()} for h, a in self.attention.items()},
        }


class _Sums:
    """Running sums of one edit's per-example results."""

    def __init__(self, watch: Sequence[Node]) -> None:
        self.values = torch.zeros(3, dtype=torch.float64)  # metric, accuracy, candidate accuracy
        self.attention = {h: torch.zeros(len(AnswerRole), dtype=torch.float64) for h in watch}

    def outcome(self, n: int) -> Outcome:
        m, a, c = (self.values / n).tolist()
        att = {h: {r: float(s[i]) / n for i, r in enumerate(AnswerRole)} for h, s in self.attention.items()}
        return Outcome(n, m, a, c, att)


def _capture_hooks(
    watch: Sequence[Node], batch: PromptPairDataset, roles: RolePositions | None, sums: _Sums
) -> list[tuple[str, HookFn]]:
    """Hooks adding each watched head's attention mass on every role, from the answer position."""
    if not watch:
        return []
    if roles is None:
        raise HeadgraphError(f"watching attention on task {batch.task!r} needs its answer roles")
    hooks: list[tuple[str, HookFn]] = []
    for layer in sorted({h.layer for h in watch}):
        heads = [h for h in watch if h.layer == layer]

        def grab(pattern: Float[Tensor, "batch head q k"], heads: list[Node] = heads) -> Tensor:
            rows = torch.arange(pattern.shape[0], device=pattern.device)
            q = batch.answer_pos.to(pattern.device) - (pattern.shape[-1] - pattern.shape[-2])
            for h in heads:
                row = pattern[rows, _head(h), q].double()  # (batch, k)
                for i, role in enumerate(AnswerRole):
                    mask = role_mask(roles.of(role).to(row.device), row.shape[-1])
                    sums.attention[h][i] += (row * mask).sum()
            return pattern

        hooks.append((hook_pattern(layer), grab))
    return hooks


class EditEvaluator:
    """Evaluates edits on one task's clean prompts, sharing one full forward pass per batch.

    The first call runs every batch once (keeping what resumed passes need, and each head's mean
    output at the answer position for ABLATE edits); every edit then resumes those runs at its
    lowest layer and computes only the positions from the batch's earliest answer position on.

    Args:
        model: the model.
        data: the task's prompts; FORCE/SCALE edits and ``watch`` need its answer roles
            (the roles its task declares, :attr:`tasks.Task.answer_roles`).
        metric: the per-example metric (default: logit difference).
        batch_size: prompts per forward pass.
        progress: show progress bars.
    """

    def __init__(
        self,
        model: HookedTransformer,
        data: PromptPairDataset,
        *,
        metric: Metric | None = None,
        batch_size: int = 32,
        progress: bool = False,
    ) -> None:
        self.model, self.data, self.metric = model, data, metric or LogitDiff()
        self.batch_size, self.progress = batch_size, progress
        self._runs: list[tuple[PromptPairDataset, ResumableRun]] = []
        self._means: dict[Node, Tensor] = {}

    def _prepare(self) -> None:
        """Run every batch once; accumulate each head's output at the answer position."""
        if self._runs:
            return
        cfg = self.model.cfg
        total = torch.zeros(cfg.n_layers, cfg.n_heads, cfg.d_head, dtype=torch.float64)

        for batch in self.data.batches(self.batch_size):
            pos = batch.answer_pos
            names = [hook_z(layer) for layer in range(cfg.n_layers)]
            run = resumable_run(self.model, batch.clean, int(pos.min()), names, check_pos=pos)
            for layer, name in enumerate(names):
                z = run.cache.pop(name)  # (batch, pos, head, d_head)
                total[layer] += z[torch.arange(z.shape[0], device=z.device), pos.to(z.device)].double().sum(0).cpu()
            self._runs.append((batch, run))
        mean = (total / len(self.data)).to(cfg.dtype)
        self._means = {Node.of_head(i, h): mean[i, h] for i in range(cfg.n_layers) for h in range(cfg.n_heads)}

    @torch.inference_mode()
    def __call__(self, edits: Sequence[HeadEdit | None], *, watch: Sequence[Node] = ()) -> list[Outcome]:
        """The task's behaviour under each edit (``None``: the model as it is), one at a time.

        Args:
            edits: the edits.
            watch: heads whose attention from the answer position each outcome reports.
        """
        self._prepare()
        needs_roles = bool(watch) or any(e is not None and e.kind is not EditKind.ABLATE for e in edits)
        acc, cand = Accuracy(), CandidateAccuracy()
        sums = [_Sums(watch) for _ in edits]
        bar = tqdm(total=len(self._runs) * len(edits), desc=f"edits on {self.data.task}", unit="run",
                   disable=not self.progress)  # fmt: skip
        for batch, run in self._runs:
            roles = role_positions(batch) if needs_roles else None
            for edit, s in zip(edits, sums, strict=True):
                ivs = edit.interventions(batch, roles, self._means, run.prefix) if edit is not None else []
                hooks = [h for iv in ivs for h in iv.hooks(self.model)] + _capture_hooks(watch, batch, roles, s)
                if hooks:
                    start = min(h.layer for h in [*(edit.heads if edit else ()), *watch])
                    logits = resume_to_logits(self.model, run, start, 1, batch.answer_pos, hooks)
                else:
                    logits = logits_at(self.model, run.final_resid, batch.answer_pos)
                values = [f(logits, batch.targets).double().sum() for f in (self.metric, acc, cand)]
                s.values += torch.stack(values).cpu()
                bar.update()
        bar.close()
        return [s.outcome(len(self.data)) for s in sums]


def evaluate_edits(
    model: HookedTransformer,
    data: PromptPairDataset,
    edits: Sequence[HeadEdit | None],
    *,
    watch: Sequence[Node] = (),
    metric: Metric | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> list[Outcome]:
    """One-off :class:`EditEvaluator` call: each edit's :class:`Outcome` on ``data``, in order."""
    return EditEvaluator(model, data, metric=metric, batch_size=batch_size, progress=progress)(edits, watch=watch)
