"""Repair: redirect heads reused from another task's circuit, checked against planted ground truth.

* :mod:`.roles`: the answer roles of each task (answer, competing answers, all candidates).
* :mod:`.edits`: head edits at the answer position and their exact, cheap evaluation.
* :mod:`.workflow`: :func:`repair`, Merullo et al.'s (2023) recipe with data-driven choices.
* :mod:`.report`: markdown, JSON and a figure of a :class:`RepairResult`.
* :mod:`.planted`: break the planted IOI model's S-inhibition head, for the ground-truth check.
"""

from circuits.repair.edits import EditEvaluator, EditKind, HeadEdit, Outcome, evaluate_edits
from circuits.repair.planted import break_s_inhibition_, broken_copy
from circuits.repair.report import plot_repair, repair_markdown, repair_to_dict
from circuits.repair.roles import (
    ROLES,
    Role,
    RolePositions,
    parse_queried_color,
    parse_unique_name,
    require_roles,
    role_positions,
)
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

__all__ = [
    "ROLES",
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
    "Role",
    "RolePositions",
    "Trial",
    "break_s_inhibition_",
    "broken_copy",
    "parse_queried_color",
    "parse_unique_name",
    "evaluate_edits",
    "plot_repair",
    "repair",
    "repair_markdown",
    "repair_to_dict",
    "require_roles",
    "role_positions",
    "wrong_indices",
]
