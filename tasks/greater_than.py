"""Greater-than (Hanna, Liu & Variengien 2023, arXiv 2305.00586), adapted to digit tokenizers.

    "The war lasted from the year 1739 to the year 17"   → an end year after 1739
    corrupt: "The war lasted from the year 1701 to the year 17"

Hanna et al. score GPT-2, whose tokenizer writes ``1739`` as ``17`` + ``39``: the next token is the
end year's two-digit ``YY'`` and the metric is the probability of every ``YY' > YY`` minus that of
every ``YY' <= YY``. The corrupt prompt's start year ends in ``01``, so nothing rules years out.

SmolLM2 (measured; Llama and Gemma 3 alike) splits numbers into digits with a separate space token
(``" 1739"`` → ``" "``, ``"1"``, ``"7"``, ``"3"``, ``"9"``), so after ``"to the year 17"`` the next
token is the end year's *tens digit* ``D``. This module therefore asks the tokenizer which form it
has and builds the variant whose first answer token decides the comparison:

  * ``DIGITS`` (SmolLM2): the start year's ``YY`` always ends in 9 (``T9`` with ``T`` in 1–8), so
    every end year with tens digit ``D > T`` is later and every one with ``D <= T`` is not, and
    nothing about the units digit is left open. Answers are the digits above ``T``, competing
    tokens the digits ``0..T``; the metric is :class:`~tasks.metrics.ProbDiff`, which then equals
    Hanna et al.'s ``P(year > YY) − P(year <= YY)`` computed on the first token. Candidates are
    ``T`` and ``T + 1`` (same decade versus next decade, the boundary the model must get right;
    chance 1/2). What this does not test: comparisons decided by the units digit.
  * ``PAIRS`` (GPT-2-like): Hanna et al.'s original, ``YY`` from 02 to 98, answers the two-digit
    tokens above ``YY``; candidates ``YY`` and ``YY + 1``.

Named positions: ``XX`` (the start year's century, first token) and ``YY`` (its last two digits,
first token).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from tasks.base import TASKS, PromptPair, Task
from tasks.errors import TaskError
from tasks.metrics import Metric, ProbDiff
from tasks.text import Prompt
from tasks.tokenizer import TextTokenizer
from tasks.words import load_data

__all__ = ["GreaterThan", "YearTokens", "year_tokens"]


class YearTokens(Enum):
    """How a tokenizer writes a four-digit year."""

    DIGITS = "digits"  # 1 7 3 9
    PAIRS = "pairs"  # 17 39


def year_tokens(tokenizer: TextTokenizer | None) -> YearTokens:
    """Which year form ``tokenizer`` uses (digits when there is no tokenizer).

    Raises:
        TaskError: the tokenizer writes years in neither form.
    """
    if tokenizer is None:
        return YearTokens.DIGITS
    bos = int(tokenizer.prepend_bos)  # BOS is not part of the year
    if len(tokenizer.encode("1739")) - bos == 4:
        return YearTokens.DIGITS
    pairs = [tokenizer.single_token(" 17"), tokenizer.single_token("39")]
    if None not in pairs and tokenizer.encode(" 1739")[bos:] == pairs:
        return YearTokens.PAIRS
    raise TaskError(
        f"task 'greater-than': tokenizer {tokenizer.name!r} writes ' 1739' as neither four digits nor "
        "' 17' + '39', so no single next token decides whether a year is later"
    )


@TASKS.register("greater-than")
@dataclass(frozen=True)
class GreaterThan(Task):
    """Put probability on end years later than the start year (see the module docstring)."""

    name: ClassVar[str] = "greater-than"
    description: ClassVar[str] = "'The war lasted from the year 1739 to the year 17' → a later year"
    metric: ClassVar[Metric] = ProbDiff()

    def stream(self, rng: random.Random, tokenizer: TextTokenizer | None) -> Iterator[PromptPair]:
        data = load_data("greater_than")
        form = year_tokens(tokenizer)
        corrupt_yy: str = data["corrupt_years"]
        while True:
            century = rng.choice(data["centuries"])
            if form is YearTokens.DIGITS:
                tens = rng.randrange(1, 9)
                yy = f"{tens}9"
                answers = tuple(str(d) for d in range(tens + 1, 10))
                wrong = tuple(str(d) for d in range(tens + 1))
                candidates = (str(tens), str(tens + 1))
            else:
                y = rng.randrange(2, 99)
                yy = f"{y:02d}"
                answers = tuple(f"{d:02d}" for d in range(y + 1, 100))
                wrong = tuple(f"{d:02d}" for d in range(y + 1))
                candidates = (yy, f"{y + 1:02d}")
            year = Prompt().add(str(century), "XX").add(yy, "YY")
            values = {"noun": rng.choice(data["nouns"]), "year": year, "century": str(century)}
            prompt = Prompt().fill(data["template"], values)
            start, end = prompt.spans["YY"]
            yield PromptPair(
                clean=prompt.text,
                corrupt=prompt.text[:start] + corrupt_yy + prompt.text[end:],
                answers=answers,
                wrong=wrong,
                candidates=candidates,
                spans=dict(prompt.spans),
                meta={"year": f"{century}{yy}", "form": form.value},
            )
