"""Answer roles a task declares: which of its named positions hold the answer, the competitors, the candidates.

A task that has its answers *in the prompt* (IOI's names, Colored Objects' listed colours, MCQA's
option letters) says where they are with an :class:`AnswerRoles` on its class
(:attr:`tasks.Task.answer_roles`); consumers (the repair workflow, :mod:`circuits.repair.answer_roles`)
read it from there and hold no task names. The declaration names positions of
:attr:`~tasks.PromptPairDataset.positions`:

* ``answer``: the position of the correct answer's token;
* ``candidates``: a regular expression; every position name it matches in full (sorted) is a
  candidate answer, the correct one included, and the candidates other than the answer compete;
* ``parse``: optionally, a label-free parser: the answer's position found from the clean tokens and
  the prompt's structure alone, never from a label (``-1`` where the structure does not tell).

Tasks outside :data:`~tasks.TASKS` (token-level tasks of planted models) register their declaration
by name in :data:`TOKEN_ROLES`. Merullo, Eickhoff & Pavlick (2023, arXiv 2310.08744, §4-5) read IOI
and Colored Objects heads by these roles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from tasks.base import TASKS, PromptPairDataset
from tasks.registry import Registry

__all__ = ["TOKEN_ROLES", "AnswerRoles", "Parser", "declared_roles", "names_matching", "tasks_with_roles", "tokens_at"]

Parser = Callable[[PromptPairDataset], Int[Tensor, "batch n_parsed"]]
"""Label-free answer positions of a task from its clean tokens and named spans (``-1``: none)."""


@dataclass(frozen=True)
class AnswerRoles:
    """Where a task's prompts hold their answers (module docstring).

    Attributes:
        answer: the named position of the correct answer.
        candidates: a regular expression matched in full against the position names; the matches,
            sorted, are the candidate answers (the correct one among them).
        parse: the label-free parser of the answer's position, or None where the structure does not
            tell the answer (MCQA: it takes knowledge).

    Examples:
        >>> AnswerRoles("IO", "IO|S1|S2").candidate_names(["S2", "END", "IO", "S1"])
        ['IO', 'S1', 'S2']
    """

    answer: str
    candidates: str
    parse: Parser | None = None

    def __post_init__(self) -> None:
        try:
            re.compile(self.candidates)
        except re.error as e:
            raise ValueError(f"candidates must be a regular expression, got {self.candidates!r}: {e}") from None

    def candidate_names(self, names: Iterable[str]) -> list[str]:
        """The position names among ``names`` that are candidates, sorted."""
        return sorted(n for n in names if re.fullmatch(self.candidates, n))


TOKEN_ROLES: Registry[AnswerRoles] = Registry("token-level task with answer roles")
"""Answer roles of tasks that are not in :data:`~tasks.TASKS` (planted models' token tasks), by name."""


def declared_roles(task: str) -> AnswerRoles | None:
    """The answer roles task ``task`` declares: a registered task's own, else :data:`TOKEN_ROLES`' (None: none)."""
    if task in TASKS:
        return TASKS[task].answer_roles
    if task in TOKEN_ROLES:
        return TOKEN_ROLES[task]
    return None


def tasks_with_roles() -> list[str]:
    """The names of every task that declares answer roles, sorted."""
    return sorted({n for n in TASKS.names() if TASKS[n].answer_roles is not None} | set(TOKEN_ROLES.names()))


def tokens_at(data: PromptPairDataset, names: Sequence[str]) -> Int[Tensor, "batch n"]:
    """The clean token at each named position, one column per name (on the CPU)."""
    pos = torch.stack([data.positions[n] for n in names], 1)
    return torch.gather(data.clean, 1, pos.to(data.clean.device)).cpu()


def names_matching(data: PromptPairDataset, pattern: str) -> list[str]:
    """The position names of ``data`` that ``pattern`` matches in full, sorted."""
    return sorted(name for name in data.positions if re.fullmatch(pattern, name))
