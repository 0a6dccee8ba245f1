"""Tasks: seeded clean/corrupt prompt pairs, tokenized and validated per tokenizer, with metrics.

Registered tasks (:data:`TASKS`, :func:`get_task`): ``ioi``, ``colored-objects``, ``arithmetic``,
``mcqa``, ``greater-than``, ``induction`` and ``retrieval``, one module each. Nothing here imports
:mod:`circuits`; tasks are the data contract every discovery method consumes, and each declares on
its class what consumers need to know about it (:attr:`Task.answer_roles`, :attr:`Task.report_variants`).
"""

from tasks.answers import AnswerRoles
from tasks.arithmetic import Arithmetic, ArithmeticAnswer, ArithmeticCorruption, ArithmeticTemplate, Operation
from tasks.base import TASKS, PromptPair, PromptPairDataset, Task, TokenRows, collate
from tasks.colored_objects import ColoredObjects
from tasks.errors import TaskError, UnknownNameError
from tasks.greater_than import GreaterThan, YearTokens
from tasks.induction import Induction, InductionCorruption
from tasks.ioi import IOI, IOICorruption, IOIOrder
from tasks.mcqa import MCQA
from tasks.metrics import (
    METRICS,
    Accuracy,
    CandidateAccuracy,
    LogitDiff,
    Metric,
    ProbDiff,
    Targets,
    candidate_chance,
    normalized,
)
from tasks.registry import Registry
from tasks.retrieval import Retrieval
from tasks.tokenizer import TextTokenizer

__all__ = [
    "IOI",
    "MCQA",
    "METRICS",
    "TASKS",
    "Accuracy",
    "AnswerRoles",
    "Arithmetic",
    "ArithmeticAnswer",
    "ArithmeticCorruption",
    "ArithmeticTemplate",
    "CandidateAccuracy",
    "ColoredObjects",
    "GreaterThan",
    "IOICorruption",
    "IOIOrder",
    "Induction",
    "InductionCorruption",
    "LogitDiff",
    "Metric",
    "ProbDiff",
    "PromptPair",
    "PromptPairDataset",
    "Registry",
    "Retrieval",
    "Targets",
    "Task",
    "TokenRows",
    "TaskError",
    "TextTokenizer",
    "UnknownNameError",
    "YearTokens",
    "Operation",
    "candidate_chance",
    "collate",
    "get_task",
    "normalized",
]


def get_task(name: str) -> Task:
    """The task registered as ``name``, with its default settings."""
    return TASKS[name]()
