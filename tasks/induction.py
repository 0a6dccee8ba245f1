"""Induction: continue a repeated random sequence (Olsson et al. 2022, arXiv 2209.11895).

    " cat tree ship lock bell oven map cloud nut wing cat tree ship lock"   → " bell"

A sequence of ``length`` distinct random words is written twice, the second copy cut after its
``k``-th word (``k`` uniform in 1 … ``length − 1``); the answer is the word that followed the
current one in the first copy. An induction head at the last position attends to the token after
the earlier occurrence of the current token and copies it. Words (Ogden's 200 picturable nouns,
package data) are kept when the word with its leading space is a single token, so the repeat is
token-for-token exact (SmolLM2, measured: 198 of 200 are single tokens). Every word, the first
included, carries its leading space for the same reason. Candidates are the sequence's words
(chance 1/``length``).

Corruptions:
  * ``RANDOM`` (default): the first copy is replaced by other random words, so nothing repeats;
    the competing token is the corrupt first copy's word at the answer's place (present in the
    corrupt prompt, absent from the clean one).
  * ``FLIP``: only the answer's word in the first copy is replaced by a new word, which becomes
    the corrupt prompt's answer and the competing token.

Named positions: ``match`` (the current word's occurrence in the first copy), ``copy`` (the
answer's occurrence there) and ``repeat`` (the second copy's first word).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from tasks.base import TASKS, PromptPair, Task
from tasks.errors import TaskError
from tasks.text import Prompt
from tasks.tokenizer import TextTokenizer
from tasks.words import load_data, single_token_words

__all__ = ["Induction", "InductionCorruption"]

MIN_LENGTH = 2
"""Shortest sequence with a word after a repeated one."""


class InductionCorruption(Enum):
    """How the corrupt prompt differs from the clean one."""

    RANDOM = "random"
    FLIP = "flip"


@TASKS.register("induction")
@dataclass(frozen=True)
class Induction(Task):
    """Predict the next word of a repeated random word sequence.

    Attributes:
        length: words in the sequence (the prompt holds it once and a prefix of it again).
        corruption: how the repeat is broken.
    """

    name: ClassVar[str] = "induction"
    description: ClassVar[str] = "' cat tree ship lock bell … cat tree ship' → ' lock' (a repeated random sequence)"
    report_variants: ClassVar[tuple[tuple[str, dict[str, Any]], ...]] = (
        ("induction (flip)", {"corruption": InductionCorruption.FLIP}),
    )
    length: int = 10
    corruption: InductionCorruption = InductionCorruption.RANDOM

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or isinstance(self.length, bool) or self.length < MIN_LENGTH:
            raise TaskError(f"length must be an integer of at least {MIN_LENGTH}, got {self.length!r}")
        if not isinstance(self.corruption, InductionCorruption):
            raise TaskError(f"corruption must be an InductionCorruption, got {self.corruption!r}")

    def words(self, tokenizer: TextTokenizer | None) -> list[str]:
        """The word list, restricted to single tokens (with a leading space) for ``tokenizer``."""
        words: list[str] = load_data("induction")["words"]
        return single_token_words(words, tokenizer, task=self.name, what="words", minimum=2 * self.length)

    def stream(self, rng: random.Random, tokenizer: TextTokenizer | None) -> Iterator[PromptPair]:
        words = self.words(tokenizer)
        n = self.length
        while True:
            drawn = rng.sample(words, 2 * n)
            seq, fresh = drawn[:n], drawn[n:]
            k = rng.randrange(1, n)
            if self.corruption is InductionCorruption.RANDOM:
                first_corrupt = fresh
            else:
                first_corrupt = seq[:k] + [fresh[k]] + seq[k + 1 :]
            clean, corrupt = Prompt(), Prompt()
            for i, (w, c) in enumerate(zip(seq, first_corrupt, strict=True)):
                name = "match" if i == k - 1 else "copy" if i == k else None
                clean.add(" " + w, name)
                corrupt.add(" " + c)
            for i, w in enumerate(seq[:k]):
                clean.add(" " + w, "repeat" if i == 0 else None)
                corrupt.add(" " + w)
            yield PromptPair(
                clean=clean.text,
                corrupt=corrupt.text,
                answers=(" " + seq[k],),
                wrong=(" " + first_corrupt[k],),
                candidates=tuple(" " + w for w in seq),
                spans=clean.spans,
                meta={"k": k},
            )
