"""Per-example task metrics and the named reductions built on them.

A metric maps the logits at each example's answer position to one number per example; the caller
reduces. Answer tokens come in a :class:`Targets` bundle whose rows are padded with ``-1``, so a task
may have several correct or competing tokens per example (greater-than sums over years).

The sign convention used throughout headgraph: larger is better for the clean behaviour, and the
normalized score is ``(m - m_corrupt) / (m_clean - m_corrupt)``, 1 on clean and 0 on corrupt inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tasks.registry import Registry

__all__ = [
    "METRICS",
    "Accuracy",
    "CandidateAccuracy",
    "LogitDiff",
    "Metric",
    "ProbDiff",
    "Targets",
    "candidate_chance",
    "normalized",
]

PAD = -1
"""Filler in :class:`Targets` rows that have fewer tokens than the widest row."""


@dataclass(frozen=True)
class Targets:
    """The tokens a metric compares, one row per example, padded with ``-1``.

    Attributes:
        answers: correct next tokens of the clean prompt (column 0 is the one accuracy checks).
        wrong: competing tokens (IOI: the subject's name).
        candidates: the task's closed answer set for candidate accuracy (IOI: IO and S).
    """

    answers: Int[Tensor, "batch n_ans"]
    wrong: Int[Tensor, "batch n_wrong"]
    candidates: Int[Tensor, "batch n_cand"]

    def __post_init__(self) -> None:
        n = {self.answers.shape[0], self.wrong.shape[0], self.candidates.shape[0]}
        if len(n) != 1:
            raise ValueError(f"Targets rows disagree in batch size: {sorted(n)}")
        if bool((self.answers[:, 0] < 0).any()):
            raise ValueError("every example needs at least one answer token")

    def __len__(self) -> int:
        return int(self.answers.shape[0])

    def repeat(self, k: int) -> Targets:
        """``k`` stacked copies, copy-major (row ``i*batch + j`` is example ``j``)."""
        return Targets(self.answers.repeat(k, 1), self.wrong.repeat(k, 1), self.candidates.repeat(k, 1))

    def select(self, idx: Int[Tensor, " sub"]) -> Targets:
        """The rows ``idx``."""
        return Targets(self.answers[idx], self.wrong[idx], self.candidates[idx])

    def to(self, device: torch.device | str) -> Targets:
        """The same targets on ``device``."""
        return Targets(self.answers.to(device), self.wrong.to(device), self.candidates.to(device))


def _gather(values: Float[Tensor, "batch d_vocab"], ids: Int[Tensor, "batch k"]) -> tuple[Tensor, Tensor]:
    """Values at ``ids`` (padding read as index 0) and the mask of real entries."""
    mask = ids >= 0
    return values.gather(-1, ids.clamp(min=0)), mask


@runtime_checkable
class Metric(Protocol):
    """A per-example score of the logits at the answer position; larger means more clean-like."""

    name: ClassVar[str]

    def __call__(self, logits: Float[Tensor, "batch d_vocab"], targets: Targets) -> Float[Tensor, " batch"]: ...


METRICS: Registry[Metric] = Registry("metric")


@dataclass(frozen=True)
class LogitDiff:
    """Mean logit of the answer tokens minus mean logit of the competing tokens.

    Examples:
        >>> t = Targets(torch.tensor([[1]]), torch.tensor([[0]]), torch.tensor([[0, 1]]))
        >>> LogitDiff()(torch.tensor([[0.5, 2.0, 9.0]]), t)
        tensor([1.5000])
    """

    name: ClassVar[str] = "logit-diff"

    def __call__(self, logits: Float[Tensor, "batch d_vocab"], targets: Targets) -> Float[Tensor, " batch"]:
        a, am = _gather(logits, targets.answers)
        w, wm = _gather(logits, targets.wrong)
        pos = (a * am).sum(-1) / am.sum(-1)
        neg = (w * wm).sum(-1) / wm.sum(-1).clamp(min=1)
        return pos - neg


@dataclass(frozen=True)
class ProbDiff:
    """Total probability of the answer tokens minus that of the competing tokens (full softmax).

    Examples:
        >>> t = Targets(torch.tensor([[1]]), torch.tensor([[0]]), torch.tensor([[0, 1]]))
        >>> ProbDiff()(torch.tensor([[0.0, 0.0]]), t)
        tensor([0.])
    """

    name: ClassVar[str] = "prob-diff"

    def __call__(self, logits: Float[Tensor, "batch d_vocab"], targets: Targets) -> Float[Tensor, " batch"]:
        probs = logits.float().softmax(-1)
        a, am = _gather(probs, targets.answers)
        w, wm = _gather(probs, targets.wrong)
        return (a * am).sum(-1) - (w * wm).sum(-1)


def _is_answer(token: Int[Tensor, " batch"], answers: Int[Tensor, "batch n_ans"]) -> Tensor:
    """Whether each token is one of its row's answer tokens (padding never matches)."""
    return ((answers == token[:, None]) & (answers >= 0)).any(-1)


@dataclass(frozen=True)
class Accuracy:
    """1 where the argmax over the whole vocabulary is an answer token, else 0.

    With one answer per example (every task but greater-than) this is "argmax == answer".

    Examples:
        >>> t = Targets(torch.tensor([[2, 1]]), torch.tensor([[0]]), torch.tensor([[0, 1, 2]]))
        >>> Accuracy()(torch.tensor([[0.0, 3.0, 1.0]]), t)
        tensor([1.])
    """

    name: ClassVar[str] = "accuracy"

    def __call__(self, logits: Float[Tensor, "batch d_vocab"], targets: Targets) -> Float[Tensor, " batch"]:
        return _is_answer(logits.argmax(-1), targets.answers).to(logits.dtype)


@dataclass(frozen=True)
class CandidateAccuracy:
    """1 where the candidate with the highest logit is an answer token, else 0.

    Chance level is the share of a row's candidates that are answers (``1 / n_candidates`` with
    one answer); :func:`candidate_chance` computes it.

    Examples:
        >>> t = Targets(torch.tensor([[2]]), torch.tensor([[1]]), torch.tensor([[1, 2]]))
        >>> CandidateAccuracy()(torch.tensor([[9.0, 1.0, 2.0]]), t)
        tensor([1.])
    """

    name: ClassVar[str] = "candidate-accuracy"

    def __call__(self, logits: Float[Tensor, "batch d_vocab"], targets: Targets) -> Float[Tensor, " batch"]:
        c, cm = _gather(logits, targets.candidates)
        c = c.masked_fill(~cm, float("-inf"))
        best = targets.candidates.gather(-1, c.argmax(-1, keepdim=True)).squeeze(-1)
        return _is_answer(best, targets.answers).to(logits.dtype)


def candidate_chance(targets: Targets) -> Float[Tensor, " batch"]:
    """Expected :class:`CandidateAccuracy` of a uniformly random pick among each row's candidates.

    Examples:
        >>> candidate_chance(Targets(torch.tensor([[1]]), torch.tensor([[0]]), torch.tensor([[0, 1, 2]])))
        tensor([0.3333])
    """
    cands = targets.candidates
    hits = ((cands[:, :, None] == targets.answers[:, None, :]) & (targets.answers[:, None, :] >= 0)).any(-1)
    hits &= cands >= 0
    return hits.sum(-1).float() / (cands >= 0).sum(-1).clamp(min=1).float()


for _m in (LogitDiff(), ProbDiff(), Accuracy(), CandidateAccuracy()):
    METRICS.add(_m.name, _m)


def normalized(m: Tensor | float, m_clean: Tensor | float, m_corrupt: Tensor | float) -> Tensor:
    """Rescale a metric so the clean run scores 1 and the corrupt run 0.

    Examples:
        >>> normalized(torch.tensor(2.0), 3.0, 1.0)
        tensor(0.5000)
    """
    return (torch.as_tensor(m) - m_corrupt) / (torch.as_tensor(m_clean) - m_corrupt)
