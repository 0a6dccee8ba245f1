"""The task contract: seeded clean/corrupt prompt pairs, validated and tokenized for one model.

A :class:`Task` yields an endless seeded stream of :class:`PromptPair` s. :meth:`Task.dataset`
tokenizes them for a model's tokenizer, drops the pairs that fail validation (counting each reason),
and returns a :class:`PromptPairDataset`: right-padded clean and corrupt token tensors of equal
length per pair, the answer position of each example, named token positions and :class:`Targets`.

Validation, per pair and per tokenizer:
  * every answer, competing and candidate string is exactly one token;
  * the clean and corrupt prompts have the same number of tokens;
  * every named span starts on a token boundary, or one character after a boundary when that
    character is a space folded into the word's token (so positions are token positions).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from jaxtyping import Int
from torch import Tensor

from tasks.errors import TaskError
from tasks.metrics import PAD, LogitDiff, Metric, Targets
from tasks.registry import Registry
from tasks.tokenizer import TextTokenizer

if TYPE_CHECKING:  # tasks.answers imports this module
    from tasks.answers import AnswerRoles

__all__ = ["TASKS", "PromptPair", "PromptPairDataset", "Task", "TokenRows", "collate"]

MAX_DRAWS_PER_PAIR = 4
"""A dataset of n pairs gives up after drawing this many times n candidate pairs."""

STALE_DRAWS = 10
""":meth:`Task.check_distinct` stops after this many times the distinct pairs seen without a new one
(a pair the stream draws with probability p is missed with probability e^(-10 p · seen))."""


@dataclass(frozen=True)
class PromptPair:
    """One clean prompt, its corrupted twin, and the tokens that score them.

    Attributes:
        clean: the prompt the model should solve.
        corrupt: the same prompt with the minimal change that removes the answer's evidence.
        answers: correct next tokens of ``clean`` as text (leading space included).
        wrong: competing next tokens (IOI: the subject).
        candidates: the closed answer set of the task, for candidate accuracy.
        spans: named character spans in ``clean`` (IOI: ``IO``, ``S1``, ``S2``); the corrupt prompt
            has the same token positions because both have the same token length.
        meta: free-form description (template index, order, ...), kept in saved results.
    """

    clean: str
    corrupt: str
    answers: tuple[str, ...]
    wrong: tuple[str, ...]
    candidates: tuple[str, ...]
    spans: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    meta: Mapping[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptPairDataset:
    """Tokenized prompt pairs for one tokenizer.

    Rows are right-padded with the tokenizer's pad id; the answer of row ``i`` is predicted at
    position ``lengths[i] - 1`` in both the clean and the corrupt prompt. Padding sits after that
    position, so a causal model never attends to it.
    """

    task: str
    seed: int
    tokenizer: str
    pairs: tuple[PromptPair, ...]
    clean: Int[Tensor, "batch pos"]
    corrupt: Int[Tensor, "batch pos"]
    lengths: Int[Tensor, " batch"]
    targets: Targets
    positions: Mapping[str, Int[Tensor, " batch"]]
    dropped: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.clean.shape != self.corrupt.shape:
            raise ValueError(f"clean {tuple(self.clean.shape)} and corrupt {tuple(self.corrupt.shape)} differ")
        if len(self.pairs) != self.clean.shape[0] or len(self.targets) != self.clean.shape[0]:
            raise ValueError("pairs, tokens and targets must have one row per example")

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    @property
    def answer_pos(self) -> Int[Tensor, " batch"]:
        """Position whose logits predict the answer, per example."""
        return self.lengths - 1

    def select(self, idx: Int[Tensor, " sub"] | slice) -> PromptPairDataset:
        """The examples ``idx`` (a slice or an index tensor), trimmed of all-padding columns."""
        if isinstance(idx, slice):
            idx = torch.arange(len(self))[idx]
        idx = idx.to(self.clean.device)
        width = int(self.lengths[idx].max()) if len(idx) else 0
        return PromptPairDataset(
            task=self.task,
            seed=self.seed,
            tokenizer=self.tokenizer,
            pairs=tuple(self.pairs[int(i)] for i in idx),
            clean=self.clean[idx, :width],
            corrupt=self.corrupt[idx, :width],
            lengths=self.lengths[idx],
            targets=self.targets.select(idx),
            positions={k: v[idx] for k, v in self.positions.items()},
            dropped=self.dropped,
        )

    def batches(self, batch_size: int) -> Iterator[PromptPairDataset]:
        """Consecutive sub-datasets of at most ``batch_size`` examples."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise TaskError(f"batch_size must be a positive integer, got {batch_size!r}")
        for start in range(0, len(self), batch_size):
            yield self.select(slice(start, start + batch_size))

    def to(self, device: torch.device | str) -> PromptPairDataset:
        """The same dataset with its tensors on ``device``."""
        return PromptPairDataset(
            task=self.task,
            seed=self.seed,
            tokenizer=self.tokenizer,
            pairs=self.pairs,
            clean=self.clean.to(device),
            corrupt=self.corrupt.to(device),
            lengths=self.lengths.to(device),
            targets=self.targets.to(device),
            positions={k: v.to(device) for k, v in self.positions.items()},
            dropped=self.dropped,
        )


class Task(ABC):
    """A seeded generator of clean/corrupt prompt pairs.

    Subclasses are frozen dataclasses whose fields are the task's settings; they implement
    :meth:`stream` and register themselves in :data:`TASKS` under :attr:`name`. What else a consumer
    needs to know about the task it reads from the class, never from a list of task names elsewhere:

    Attributes:
        metric: the task's own metric.
        answer_roles: which named positions hold the answer, the competing answers and the candidates
            (:class:`tasks.answers.AnswerRoles`), or None where the prompt does not hold its answers.
        report_variants: settings other than the defaults that the task report also measures, as
            ``(label, settings)`` pairs (``settings``: keyword arguments of the task's constructor).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    metric: ClassVar[Metric] = LogitDiff()
    answer_roles: ClassVar[AnswerRoles | None] = None
    report_variants: ClassVar[tuple[tuple[str, Mapping[str, Any]], ...]] = ()

    @abstractmethod
    def stream(self, rng: random.Random, tokenizer: TextTokenizer | None) -> Iterator[PromptPair]:
        """Yield candidate pairs forever from ``rng``.

        Args:
            rng: the only source of randomness (seeded by the caller).
            tokenizer: when given, word lists are first restricted to what this tokenizer can use
                (e.g. single-token names); raise :class:`TaskError` when too few words remain.
        """

    def pairs(self, n: int, *, seed: int, tokenizer: TextTokenizer | None = None) -> list[PromptPair]:
        """The first ``n`` pairs of the stream seeded with ``seed`` (text only, not validated)."""
        _check_n(n)
        stream = self.stream(random.Random(seed), tokenizer)
        return [next(stream) for _ in range(n)]

    def check_distinct(self, n: int, *, seed: int) -> int:
        """Raise unless the stream seeded with ``seed`` holds ``n`` distinct pairs; return the repeats.

        Draws text pairs (no tokenizer, so before a model loads) until ``n`` distinct ones are seen,
        for at most :data:`MAX_DRAWS_PER_PAIR` × ``n`` draws: a task with a small space of prompts
        (greater-than: 3,525 pairs) cannot give more, and ``dataset`` would give repeats or fail.
        Returns how many of the first ``n`` draws repeat an earlier pair.

        Raises:
            TaskError: fewer than ``n`` distinct pairs in the draws (the message gives the count).
        """
        _check_n(n)
        stream = self.stream(random.Random(seed), None)
        seen: set[tuple[str, str]] = set()
        repeats = stale = 0
        for i in range(MAX_DRAWS_PER_PAIR * n):
            pair = next(stream)
            key = (pair.clean, pair.corrupt)
            if key in seen:
                repeats += i < n
                stale += 1
                if stale > STALE_DRAWS * len(seen):  # the stream has shown every pair it has
                    break
            else:
                seen.add(key)
                stale = 0
            if len(seen) >= n and i >= n - 1:
                return repeats
        raise TaskError(
            f"task {self.name!r} gave only {len(seen)} distinct prompt pairs in {i + 1} draws, fewer than the "
            f"{n} asked; ask for at most {len(seen)}"
        )

    def dataset(self, tokenizer: TextTokenizer, n: int, *, seed: int) -> PromptPairDataset:
        """Draw pairs until ``n`` pass validation for ``tokenizer`` and tokenize them.

        Raises:
            TaskError: ``n`` is not positive, or fewer than ``n`` of ``4 n`` drawn pairs are valid
                (the message gives the count of each reason).
        """
        _check_n(n)
        stream = self.stream(random.Random(seed), tokenizer)
        kept: list[tuple[PromptPair, _Tokenized]] = []
        dropped: Counter[str] = Counter()
        for _ in range(MAX_DRAWS_PER_PAIR * n):
            pair = next(stream)
            tok = _tokenize(pair, tokenizer)
            if isinstance(tok, str):
                dropped[tok] += 1
                continue
            kept.append((pair, tok))
            if len(kept) == n:
                break
        if len(kept) < n:
            reasons = ", ".join(f"{c} × {r}" for r, c in dropped.most_common())
            raise TaskError(
                f"task {self.name!r}: only {len(kept)} of {n} pairs are valid for tokenizer "
                f"{tokenizer.name!r} after {MAX_DRAWS_PER_PAIR * n} draws (dropped: {reasons})"
            )
        return _collate(self.name, seed, tokenizer, kept, dict(dropped))


TASKS: Registry[type[Task]] = Registry("task")


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise TaskError(f"the number of pairs must be a positive integer, got {n!r}")


@dataclass(frozen=True)
class _Tokenized:
    clean: list[int]
    corrupt: list[int]
    answers: list[int]
    wrong: list[int]
    candidates: list[int]
    positions: dict[str, int]


def _tokenize(pair: PromptPair, tokenizer: TextTokenizer) -> _Tokenized | str:
    """Token ids of one pair, or the reason it is invalid for this tokenizer."""
    ids: dict[str, list[int]] = {}
    for kind, words in (("answer", pair.answers), ("wrong", pair.wrong), ("candidate", pair.candidates)):
        got = [tokenizer.single_token(w) for w in words]
        if any(t is None for t in got):
            return f"{kind} not a single token"
        ids[kind] = [t for t in got if t is not None]
    clean, offsets = tokenizer.encode_with_offsets(pair.clean)
    corrupt = tokenizer.encode(pair.corrupt)
    if len(clean) != len(corrupt):
        return "clean and corrupt token lengths differ"
    starts = {start: i for i, (start, end) in enumerate(offsets) if end > start}
    positions: dict[str, int] = {}
    for name, (start, _end) in pair.spans.items():
        if start not in starts and start > 0 and pair.clean[start - 1] == " ":
            start -= 1  # the word's leading space is part of its token (" Mary")
        if start not in starts:
            return f"span {name} not on a token boundary"
        positions[name] = starts[start]
    return _Tokenized(clean, corrupt, ids["answer"], ids["wrong"], ids["candidate"], positions)


def _padded(rows: Sequence[Sequence[int]], fill: int) -> Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [fill] * (width - len(r)) for r in rows], dtype=torch.long)


@dataclass(frozen=True)
class TokenRows:
    """One pair's token ids, before batching: the rows :func:`collate` pads into a dataset.

    Attributes:
        clean: clean prompt ids.
        corrupt: corrupt prompt ids (same length).
        answers: correct next-token ids.
        wrong: competing ids.
        candidates: every candidate id.
        positions: named token positions.
    """

    clean: Sequence[int]
    corrupt: Sequence[int]
    answers: Sequence[int]
    wrong: Sequence[int]
    candidates: Sequence[int]
    positions: Mapping[str, int]


def collate(
    task: str,
    seed: int,
    tokenizer: str,
    pad_id: int,
    pairs: Sequence[tuple[PromptPair, TokenRows]],
    dropped: Mapping[str, int] | None = None,
) -> PromptPairDataset:
    """Batch tokenized pairs into a dataset: prompts right-padded with ``pad_id``, targets with ``PAD``.

    Only the positions every pair names are kept. The one batching step of text tasks and of
    token-level (planted) tasks.
    """
    toks = [t for _, t in pairs]
    names = sorted(set.intersection(*(set(t.positions) for t in toks)))
    return PromptPairDataset(
        task=task,
        seed=seed,
        tokenizer=tokenizer,
        pairs=tuple(p for p, _ in pairs),
        clean=_padded([t.clean for t in toks], pad_id),
        corrupt=_padded([t.corrupt for t in toks], pad_id),
        lengths=torch.tensor([len(t.clean) for t in toks], dtype=torch.long),
        targets=Targets(
            answers=_padded([t.answers for t in toks], PAD),
            wrong=_padded([t.wrong for t in toks], PAD),
            candidates=_padded([t.candidates for t in toks], PAD),
        ),
        positions={k: torch.tensor([t.positions[k] for t in toks], dtype=torch.long) for k in names},
        dropped=dict(dropped or {}),
    )


def _collate(
    task: str, seed: int, tokenizer: TextTokenizer, kept: list[tuple[PromptPair, _Tokenized]], dropped: dict[str, int]
) -> PromptPairDataset:
    rows = [(p, TokenRows(t.clean, t.corrupt, t.answers, t.wrong, t.candidates, t.positions)) for p, t in kept]
    return collate(task, seed, tokenizer.name, tokenizer.pad_id, rows, dropped)
