"""Repair: redirect heads reused from another task's circuit, checked against planted ground truth.

* :mod:`.answer_roles`: the answer roles each task declares (answer, competing answers, all
  candidates, the label-free parse), as token positions.
* :mod:`.edits`: head edits at the answer position and their exact, cheap evaluation.
* :mod:`.workflow`: :func:`repair`, Merullo et al.'s (2023) recipe with data-driven choices.
* :mod:`.report`: markdown, JSON and a figure of a :class:`RepairResult`.
* :mod:`.planted_break`: break the planted IOI model's S-inhibition head, for the ground-truth check.

Old names kept one release with a DeprecationWarning: ``Role`` (now :class:`AnswerRole`; the
functional head roles are :class:`circuits.analysis.head_roles.Role`), ``ROLES`` (each task's
:attr:`tasks.Task.answer_roles`), the modules ``.roles`` and ``.planted``.
"""

import warnings
from typing import Any

from circuits.repair.answer_roles import AnswerRole, RolePositions, has_roles, require_roles, role_positions
from circuits.repair.edits import EditEvaluator, EditKind, HeadEdit, Outcome, evaluate_edits
from circuits.repair.planted_break import break_s_inhibition_, broken_copy
from circuits.repair.report import plot_repair, repair_markdown, repair_to_dict
from circuits.repair.workflow import (
    Candidates,
    Collateral,
    Control,
    Errors,
    HeadReport,
    Recipe,
    RepairConfig,
    RepairResult,
    Trial,
    repair,
    wrong_indices,
)
from tasks.colored_objects import parse_queried_color  # the parsers the PARSED recipe reads, where tasks declare them
from tasks.ioi import parse_unique_name

__all__ = [
    "AnswerRole",
    "Candidates",
    "Collateral",
    "Control",
    "EditEvaluator",
    "Errors",
    "EditKind",
    "HeadEdit",
    "HeadReport",
    "Outcome",
    "Recipe",
    "RepairConfig",
    "RepairResult",
    "RolePositions",
    "Trial",
    "break_s_inhibition_",
    "broken_copy",
    "parse_queried_color",
    "parse_unique_name",
    "evaluate_edits",
    "has_roles",
    "plot_repair",
    "repair",
    "repair_markdown",
    "repair_to_dict",
    "require_roles",
    "role_positions",
    "wrong_indices",
]


def __getattr__(name: str) -> Any:
    if name in ("Role", "ROLES"):
        from circuits.repair import answer_roles

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            value = getattr(answer_roles, name)
        new = "AnswerRole" if name == "Role" else "tasks.answers.declared_roles (each task's answer_roles)"
        warnings.warn(
            f"circuits.repair.{name} is now {new}; the old name goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
