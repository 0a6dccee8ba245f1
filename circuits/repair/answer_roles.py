"""Answer roles: which prompt tokens hold the correct answer, the competing answers, and all candidates.

The repair workflow asks where a head attends from the answer position, in terms every task shares:

* ``ANSWER``: the token(s) of the correct answer in the prompt (IOI: the indirect object ``IO``;
  Colored Objects: the queried object's colour; MCQA: the correct option's letter);
* ``WRONG``: the tokens of the competing answers (IOI: the subject, ``S1`` and ``S2``; Colored
  Objects: the colours of the other listed objects; MCQA: the other options' letters);
* ``CANDIDATES``: both together (IOI: the three names; Colored Objects: the listed colours);
* ``PARSED``: where the answer must be, found from the prompt's *structure* alone, never from its
  label (IOI: the one name among IO/S1/S2 whose token occurs once, :func:`tasks.ioi.parse_unique_name`;
  Colored Objects: the colour listed before the object whose token is the question's object,
  :func:`tasks.colored_objects.parse_queried_color`). A label-free repair directs
  attention here at test time (:class:`~circuits.repair.workflow.Recipe`); a task whose answer
  cannot be read from its structure (MCQA: it takes knowledge) has no parsed positions (all ``-1``).
  Where the parse is right it marks the same tokens as ``ANSWER`` (tested), but it reads only the
  clean tokens and the prompt's named spans.

Merullo, Eickhoff & Pavlick (2023, arXiv 2310.08744, §4-5) describe the IOI S-inhibition and
negative-mover heads as attending from the final position to the subject (``WRONG``), and their
counterparts on Colored Objects as attending to every colour (``CANDIDATES``) instead of the wrong
ones. The roles are read from what each task declares (:class:`tasks.answers.AnswerRoles` on the
task's class, :attr:`tasks.Task.answer_roles`); this module names no task. A task without
competing-answer tokens in its prompt, such as arithmetic, declares none.

(Renamed from ``circuits.repair.roles`` and ``Role`` in the architecture pass, issue 17: the
functional head roles are :class:`circuits.analysis.head_roles.Role`.)
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from tasks import PromptPairDataset
from tasks.answers import AnswerRoles, declared_roles, tasks_with_roles
from tasks.errors import UnknownNameError

__all__ = [
    "AnswerRole",
    "RolePositions",
    "has_roles",
    "require_roles",
    "role_mask",
    "role_positions",
]

ROLE_TASK_KIND = "repair task"
"""How an unknown-name error calls a task without answer roles."""


class AnswerRole(Enum):
    """A set of prompt tokens defined by the task's answers (module docstring)."""

    ANSWER = "answer"
    WRONG = "wrong"
    CANDIDATES = "candidates"
    PARSED = "parsed"


@dataclass(frozen=True)
class RolePositions:
    """Token positions of each role, one row per example, padded with ``-1``."""

    answer: Int[Tensor, "batch n_ans"]
    wrong: Int[Tensor, "batch n_wrong"]
    candidates: Int[Tensor, "batch n_cand"]
    parsed: Int[Tensor, "batch n_parsed"]

    def __post_init__(self) -> None:
        rows = {self.answer.shape[0], self.wrong.shape[0], self.candidates.shape[0], self.parsed.shape[0]}
        if len(rows) != 1:
            raise ValueError("role positions need one row per example in every role")

    def of(self, role: AnswerRole) -> Int[Tensor, "batch _"]:
        """The positions of ``role``."""
        return {AnswerRole.ANSWER: self.answer, AnswerRole.WRONG: self.wrong, AnswerRole.CANDIDATES: self.candidates,
                AnswerRole.PARSED: self.parsed}[role]  # fmt: skip

    def has(self, role: AnswerRole) -> bool:
        """Whether every example has at least one position of ``role``."""
        pos = self.of(role)
        return bool(pos.shape[1]) and bool((pos >= 0).any(1).all())


def role_mask(positions: Int[Tensor, "batch k"], n_keys: int) -> Bool[Tensor, "batch n_keys"]:
    """Boolean mask over ``n_keys`` key positions marking each row's listed positions (``-1`` is padding).

    Examples:
        >>> role_mask(torch.tensor([[0, 2], [1, -1]]), 3).tolist()
        [[True, False, True], [False, True, False]]
    """
    mask = torch.zeros(positions.shape[0], n_keys + 1, dtype=torch.bool, device=positions.device)
    mask.scatter_(1, torch.where(positions < 0, n_keys, positions), True)
    return mask[:, :n_keys]


def _split(
    answer: Int[Tensor, " batch"], candidates: Int[Tensor, "batch n_cand"], parsed: Int[Tensor, "batch _"] | None = None
) -> RolePositions:
    """Roles from the answer's position and every candidate's: the wrong ones are the others.

    Examples:
        >>> r = _split(torch.tensor([5, 9]), torch.tensor([[5, 7, 9], [5, 7, 9]]))
        >>> r.wrong.tolist(), r.parsed.tolist()
        ([[7, 9], [5, 7]], [[-1], [-1]])
    """
    if parsed is None:
        parsed = torch.full((len(answer), 1), -1, dtype=torch.long, device=candidates.device)
    others = candidates != answer[:, None]
    width = int(others.sum(1).max()) if len(answer) else 0
    wrong = torch.full((candidates.shape[0], width), -1, dtype=torch.long, device=candidates.device)
    for i in range(candidates.shape[0]):
        row = candidates[i][others[i]]
        wrong[i, : len(row)] = row
    return RolePositions(answer=answer[:, None], wrong=wrong, candidates=candidates, parsed=parsed)


def _declared(task: str) -> AnswerRoles:
    roles = declared_roles(task)
    if roles is None:
        raise UnknownNameError(ROLE_TASK_KIND, task, tasks_with_roles())
    return roles


def has_roles(task: str) -> bool:
    """Whether task ``task`` declares answer roles (:attr:`tasks.Task.answer_roles`)."""
    return declared_roles(task) is not None


def require_roles(task: str) -> None:
    """Raise :class:`~tasks.errors.UnknownNameError` (listing the tasks with roles) unless ``task`` has roles."""
    _declared(task)


def role_positions(data: PromptPairDataset) -> RolePositions:
    """The role positions of every example of ``data``, from the answer roles its task declares.

    Raises:
        UnknownNameError: the task declares no roles (the message lists those that do).
        ValueError: none of the task's candidate positions is among ``data``'s named positions.
    """
    roles = _declared(data.task)
    names = roles.candidate_names(data.positions)
    if not names:
        raise ValueError(f"task {data.task!r}: no candidate positions among {sorted(data.positions)}")
    cands = torch.stack([data.positions[c] for c in names], 1)
    return _split(data.positions[roles.answer], cands, roles.parse(data) if roles.parse else None)


_DEPRECATED = {
    "Role": ("circuits.repair.answer_roles.AnswerRole", lambda: AnswerRole),
    "ROLES": ("tasks.answers.declared_roles (each task's answer_roles)", lambda: _roles_registry()),
    "parse_unique_name": ("tasks.ioi.parse_unique_name", lambda: _task_attr("tasks.ioi", "parse_unique_name")),
    "parse_queried_color": (
        "tasks.colored_objects.parse_queried_color",
        lambda: _task_attr("tasks.colored_objects", "parse_queried_color"),
    ),
}
"""Old names of this module, kept one release: name → (where it went, how to get it)."""


def _task_attr(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _roles_registry() -> Any:
    """The old ``ROLES`` registry (task name → role builder), built from the declarations."""
    from tasks.registry import Registry

    registry: Registry[Any] = Registry(ROLE_TASK_KIND)
    for name in tasks_with_roles():
        registry.add(name, role_positions)
    return registry


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new, get = _DEPRECATED[name]
        warnings.warn(
            f"{__name__}.{name} is now {new}; the old name goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return get()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
