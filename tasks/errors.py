"""Errors raised by the task library, meant to be shown to a user as one line."""

from __future__ import annotations

__all__ = ["TaskError", "UnknownNameError"]


class TaskError(ValueError):
    """A task cannot produce the data asked of it (bad argument, too few valid pairs, ...)."""


class UnknownNameError(KeyError):
    """A name given at the boundary (CLI, JSON, a notebook) is not registered.

    The message lists every valid name, so the user can correct the call.
    """

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = valid
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(valid)}")

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain sentence
        return str(self.args[0])
