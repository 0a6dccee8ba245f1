"""Retrieval: a needle in a haystack (Wu et al. 2024, arXiv 2404.15574, after Kamradt's test).

    "The river runs slowly … The secret words of the old tower are lamp ship bell oven. … Snow
     sometimes closes the pass over the mountains.
     Question: What are the secret words of the old tower?
     Answer: The secret words of the old tower are"                                → " lamp"

The haystack is ``haystack`` filler sentences (package data written for this project; the paper
uses Paul Graham's essays) drawn at random; the needle sentence holds ``needle_words`` random
single-token nouns and sits before sentence ``round(depth · haystack)`` (``depth`` = 0: the first
sentence, 1: after the last; None draws it uniformly per prompt). The question repeats the needle's
key and ends where the needle's words start, so the answer is the needle's first word and a model
that retrieves the needle continues with the rest (:mod:`circuits.seed.retrieval` decodes greedily and
scores the heads that copy it).

The corrupt prompt is the same haystack with the needle's words replaced by other random words
(same count, single tokens, so the same token length); its first word is the competing token.
Candidates are the needle's words (chance ``1/needle_words``).

Named positions: ``needle0`` … ``needle{k-1}``, each needle word (consecutive tokens, since every
word is one token with its leading space).
Lengths and depths are settings; the prompt's token length depends on the tokenizer and is checked
against the model's context by the code that runs it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from tasks.base import TASKS, PromptPair, Task
from tasks.errors import TaskError
from tasks.text import Prompt
from tasks.tokenizer import TextTokenizer
from tasks.words import load_data, single_token_words

__all__ = ["Retrieval", "needle_positions"]

MAX_NEEDLE_WORDS = 12
"""Most words in a needle (the word list must hold twice as many for the corruption)."""


def needle_positions(n: int) -> list[str]:
    """The span names of the ``n`` needle words.

    Examples:
        >>> needle_positions(3)
        ['needle0', 'needle1', 'needle2']
    """
    return [f"needle{i}" for i in range(n)]


@TASKS.register("retrieval")
@dataclass(frozen=True)
class Retrieval(Task):
    """Answer a question whose answer is a needle sentence hidden in filler text.

    Attributes:
        haystack: filler sentences around the needle (0: the prompt is the needle and the question).
        depth: where the needle sits, as a fraction of the haystack (None: uniform per prompt).
        needle_words: random nouns in the needle (the text to retrieve).
    """

    name: ClassVar[str] = "retrieval"
    description: ClassVar[str] = "'… The secret words of the old tower are lamp ship bell. … Question: …' → ' lamp'"
    haystack: int = 20
    depth: float | None = None
    needle_words: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.haystack, int) or isinstance(self.haystack, bool) or self.haystack < 0:
            raise TaskError(f"haystack must be a non-negative number of sentences, got {self.haystack!r}")
        if self.depth is not None and (
            not isinstance(self.depth, int | float) or isinstance(self.depth, bool) or not 0.0 <= self.depth <= 1.0
        ):
            raise TaskError(f"depth must be a fraction between 0 and 1 (or None for random), got {self.depth!r}")
        if (
            not isinstance(self.needle_words, int)
            or isinstance(self.needle_words, bool)
            or not 1 <= self.needle_words <= MAX_NEEDLE_WORDS
        ):
            raise TaskError(f"needle_words must be an integer from 1 to {MAX_NEEDLE_WORDS}, got {self.needle_words!r}")

    def words(self, tokenizer: TextTokenizer | None) -> list[str]:
        """Nouns that are one token with a leading space for ``tokenizer``."""
        words: list[str] = load_data("induction")["words"]
        return single_token_words(words, tokenizer, task=self.name, what="words", minimum=2 * self.needle_words)

    def stream(self, rng: random.Random, tokenizer: TextTokenizer | None) -> Iterator[PromptPair]:
        data = load_data("retrieval")
        words = self.words(tokenizer)
        filler: list[str] = data["filler"]
        n = self.needle_words
        while True:
            drawn = rng.sample(words, 2 * n)
            needle, fresh = drawn[:n], drawn[n:]
            key = rng.choice(data["keys"])
            sentences = [rng.choice(filler) for _ in range(self.haystack)]
            depth = rng.random() if self.depth is None else self.depth
            at = math.floor(depth * self.haystack + 0.5)
            clean, corrupt = Prompt(), Prompt()
            for prompt, values, named in ((clean, needle, True), (corrupt, fresh, False)):
                for i, sentence in enumerate(sentences[:at]):
                    prompt.add(sentence if i == 0 else " " + sentence)
                before, after = data["needle"].split("{words}")
                prompt.add((before if at else before.lstrip(" ")).format(key=key))
                for j, w in enumerate(values):
                    prompt.add(" " + w, f"needle{j}" if named else None)
                prompt.add(after)
                for sentence in sentences[at:]:
                    prompt.add(" " + sentence)
                prompt.add(data["question"].format(key=key))
            yield PromptPair(
                clean=clean.text,
                corrupt=corrupt.text,
                answers=(" " + needle[0],),
                wrong=(" " + fresh[0],),
                candidates=tuple(" " + w for w in needle),
                spans=clean.spans,
                meta={"depth_sentence": at, "needle": " ".join(needle), "key": key},
            )
