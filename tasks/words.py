"""Task data (templates, word lists) as package data, and word lists restricted per tokenizer.

Each task's data is one JSON file under ``tasks/data/`` with a ``source`` entry citing where it comes
from. Tasks compare next-token logits, so a word that may be an answer must be one token for the
model's tokenizer; :func:`single_token_words` keeps those and raises :class:`TaskError` naming the
task and the tokenizer when too few remain.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from tasks.errors import TaskError
from tasks.tokenizer import TextTokenizer

__all__ = ["load_data", "single_token_words"]


@cache
def load_data(name: str) -> dict[str, Any]:
    """The parsed ``tasks/data/<name>.json`` (cached; callers must not mutate it)."""
    text = resources.files("tasks").joinpath(f"data/{name}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def single_token_words(
    words: list[str],
    tokenizer: TextTokenizer | None,
    *,
    task: str,
    what: str,
    minimum: int,
    prefix: str = " ",
) -> list[str]:
    """The ``words`` that are one token with ``prefix`` in front (all of them without a tokenizer).

    Args:
        words: candidate words, in order (the order is kept, so sampling stays seeded).
        tokenizer: the model's tokenizer, or None for text-only generation.
        task: the task's name, for the error message.
        what: what the words are ("colours", "option letters"), for the error message.
        minimum: fewest words the task can work with.
        prefix: text the word follows in the prompt (a space, or nothing).

    Raises:
        TaskError: fewer than ``minimum`` words are single tokens.
    """
    if tokenizer is None:
        return list(words)
    kept = [w for w in words if tokenizer.single_token(prefix + w) is not None]
    if len(kept) < minimum:
        raise TaskError(
            f"task {task!r}: only {len(kept)} of {len(words)} {what} are single tokens for tokenizer "
            f"{tokenizer.name!r}; the task needs at least {minimum}"
        )
    return kept
