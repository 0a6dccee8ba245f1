"""Tasks: seeded clean/corrupt prompt pairs, tokenized and validated per tokenizer, with metrics.

Nothing here imports :mod:`circuits`; tasks are the data contract every discovery method consumes.
"""

from tasks.base import TASKS, PromptPair, PromptPairDataset, Task
from tasks.errors import TaskError, UnknownNameError
from tasks.ioi import IOI, IOICorruption, IOIOrder
from tasks.metrics import (
    METRICS,
    Accuracy,
    CandidateAccuracy,
    LogitDiff,
    Metric,
    ProbDiff,
    Targets,
    normalized,
)
from tasks.registry import Registry
from tasks.tokenizer import TextTokenizer

__all__ = [
    "IOI",
    "METRICS",
    "TASKS",
    "Accuracy",
    "CandidateAccuracy",
    "IOICorruption",
    "IOIOrder",
    "LogitDiff",
    "Metric",
    "ProbDiff",
    "PromptPair",
    "PromptPairDataset",
    "Registry",
    "Targets",
    "Task",
    "TaskError",
    "TextTokenizer",
    "UnknownNameError",
    "get_task",
    "normalized",
]


def get_task(name: str) -> Task:
    """The task registered as ``name``, with its default settings."""
    return TASKS[name]()
