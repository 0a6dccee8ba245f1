"""Errors that the CLI prints as one line instead of a traceback."""

from __future__ import annotations

from tasks.errors import TaskError, UnknownNameError

__all__ = [
    "CircuitFileError",
    "HeadgraphError",
    "HeadgraphWarning",
    "ModelLoadError",
    "USER_ERRORS",
    "UnknownNameError",
]


class HeadgraphError(Exception):
    """Base class of errors caused by the user's input or environment, not by a bug."""


class ModelLoadError(HeadgraphError):
    """A model could not be loaded (unknown name, no hub access, missing weights package)."""


class CircuitFileError(HeadgraphError):
    """A file is not a headgraph circuit, or has a schema this version cannot read."""


class HeadgraphWarning(UserWarning):
    """Something the user should know about a result or the environment (the CLI prints one line)."""


USER_ERRORS: tuple[type[Exception], ...] = (HeadgraphError, TaskError, UnknownNameError)
"""Exceptions the CLI reports as ``error: <message>`` with exit status 2."""
