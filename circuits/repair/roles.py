"""Answer roles: which prompt tokens hold the correct answer, the competing answers, and all candidates.

The repair workflow asks where a head attends from the answer position, in terms every task shares:

* ``ANSWER``: the token(s) of the correct answer in the prompt (IOI: the indirect object ``IO``;
  Colored Objects: the queried object's colour; MCQA: the correct option's letter);
* ``WRONG``: the tokens of the competing answers (IOI: the subject, ``S1`` and ``S2``; Colored
  Objects: the colours of the other listed objects; MCQA: the other options' letters);
* ``CANDIDATES``: both together (IOI: the three names; Colored Objects: the listed colours);
* ``PARSED``: where the answer must be, found from the prompt's *structure* alone, never from its
  label (IOI: the one name among IO/S1/S2 whose token occurs once; Colored Objects: the colour
  listed before the object whose token is the question's object). A label-free repair directs
  attention here at test time (:class:`~circuits.repair.workflow.Recipe`); a task whose answer
  cannot be read from its structure (MCQA: it takes knowledge) has no parsed positions (all ``-1``).
  Where the parse is right it marks the same tokens as ``ANSWER`` (tested), but it reads only the
  clean tokens and the prompt's named spans.

Merullo, Eickhoff & Pavlick (2023, arXiv 2310.08744, §4-5) describe the IOI S-inhibition and
negative-mover heads as attending from the final position to the subject (``WRONG``), and their
counterparts on Colored Objects as attending to every colour (``CANDIDATES``) instead of the wrong
ones. The roles are read from each task's named positions; :data:`ROLES` lists the tasks that
define them (a task without competing-answer tokens in its prompt, such as arithmetic, has none).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from tasks import PromptPairDataset
from tasks.errors import UnknownNameError
from tasks.registry import Registry

__all__ = [
    "ROLES",
    "Role",
    "RolePositions",
    "parse_queried_color",
    "parse_unique_name",
    "require_roles",
    "role_mask",
    "role_positions",
]


class Role(Enum):
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

    def of(self, role: Role) -> Int[Tensor, "batch _"]:
        """The positions of ``role``."""
        return {Role.ANSWER: self.answer, Role.WRONG: self.wrong, Role.CANDIDATES: self.candidates,
                Role.PARSED: self.parsed}[role]  # fmt: skip

    def has(self, role: Role) -> bool:
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


Parser = Callable[[PromptPairDataset], Int[Tensor, "batch n_parsed"]]
"""Label-free answer positions of a task from its clean tokens and named spans (``-1``: none)."""


def _named(
    data: PromptPairDataset, answer: str, candidates: Sequence[str], parse: Parser | None = None
) -> RolePositions:
    if not candidates:
        raise ValueError(f"task {data.task!r}: no candidate positions among {sorted(data.positions)}")
    cands = torch.stack([data.positions[c] for c in candidates], 1)
    return _split(data.positions[answer], cands, parse(data) if parse else None)


def _tokens_at(data: PromptPairDataset, names: Sequence[str]) -> Int[Tensor, "batch n"]:
    """The clean token at each named position, one column per name."""
    pos = torch.stack([data.positions[n] for n in names], 1)
    return torch.gather(data.clean, 1, pos.to(data.clean.device)).cpu()


def parse_unique_name(data: PromptPairDataset) -> Int[Tensor, "batch 1"]:
    """IOI, label-free: the position among ``IO``/``S1``/``S2`` whose name token occurs there once.

    The subject is mentioned twice and the indirect object once, so the structure alone tells the
    answer's position; no answer label is read. ``-1`` where no name is unique.
    """
    names = ("IO", "S1", "S2")
    tok = _tokens_at(data, names)
    pos = torch.stack([data.positions[n] for n in names], 1).cpu()
    once = (tok[:, :, None] == tok[:, None, :]).sum(2) == 1  # (batch, 3)
    unique = once.sum(1) == 1
    return torch.where(unique, (pos * once).sum(1), -1)[:, None]


def parse_queried_color(data: PromptPairDataset) -> Int[Tensor, "batch 1"]:
    """Colored Objects, label-free: the colour listed before the object that the question names.

    The question's object token (``query``) is matched against the listed objects' tokens
    (``object0…``); the colour span of the one match is the parsed position. No answer label (nor
    ``answer_color``) is read. ``-1`` where the question's object matches no listed object or several.
    """
    objects = _matching(data, r"object\d+")
    tok = _tokens_at(data, ["query", *objects])
    match = tok[:, 1:] == tok[:, :1]  # (batch, n_objects)
    colors = torch.stack([data.positions[f"color{n.removeprefix('object')}"] for n in objects], 1).cpu()
    one = match.sum(1) == 1
    return torch.where(one, (colors * match).sum(1), -1)[:, None]


def _matching(data: PromptPairDataset, pattern: str) -> list[str]:
    return sorted(name for name in data.positions if re.fullmatch(pattern, name))


ROLES: Registry[Callable[[PromptPairDataset], RolePositions]] = Registry("repair task")
"""Role builders by task name; the repair workflow needs one for its source and target tasks."""

for _ioi_like in ("ioi", "planted-ioi"):
    ROLES.add(_ioi_like, lambda d: _named(d, "IO", ["IO", "S1", "S2"], parse_unique_name))
ROLES.add("colored-objects", lambda d: _named(d, "answer_color", _matching(d, r"color\d+"), parse_queried_color))
ROLES.add("mcqa", lambda d: _named(d, "correct_label", _matching(d, r"label_[A-Z]")))


def require_roles(task: str) -> None:
    """Raise :class:`~tasks.errors.UnknownNameError` (listing the tasks with roles) unless ``task`` has roles."""
    if task not in ROLES:
        raise UnknownNameError(ROLES.kind, task, ROLES.names())


def role_positions(data: PromptPairDataset) -> RolePositions:
    """The role positions of every example of ``data``.

    Raises:
        UnknownNameError: the task defines no roles (the message lists those that do).
    """
    return ROLES[data.task](data)
