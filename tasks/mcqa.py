"""Multiple-choice answer letters (Lieberum et al. 2023; small-model format of Wiegreffe et al. 2024).

    For each of the following phrases, select the best completion (A or B).

    Phrase: The cup is green. What color is the cup?
    Choices:
    A: red
    B: green
    The correct answer is: B

    ... (``shots`` solved examples) ...
    Phrase: The hat is blue. What color is the hat?
    Choices:
    A: blue
    B: pink
    The correct answer is:                  → " A"     corrupt: options "A: pink", "B: blue" → " B"

Wiegreffe et al.'s synthetic "Colors" items state the colour in the phrase, so the content is a
copy; the task isolates the *format* skill: find the option holding the answer and output its
letter. ``options`` (2–4) colours are drawn without replacement from 11; the letter of the
correct option is uniform. The corrupt prompt permutes the query's options (uniformly among the
orders that move the answer to another letter; for two options, Wiegreffe et al.'s "inverse"
swap), so the same content has a different correct letter, which is the competing token. The
solved examples are the same in both prompts. Answers and candidates are the letter tokens
``" A"`` … (single tokens with a leading space on SmolLM2, measured; chance 1/``options``).

Named positions: ``stated_color`` (the colour in the phrase), ``label_X`` and ``option_X`` for each
letter X (the line's letter and its colour), ``correct_label``/``correct_option`` (the answer's
line in the clean prompt) and ``wrong_label`` (the line whose letter is correct in the corrupt one).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from tasks.answers import AnswerRoles
from tasks.base import TASKS, PromptPair, Task
from tasks.errors import TaskError
from tasks.text import Prompt
from tasks.tokenizer import TextTokenizer
from tasks.words import load_data, single_token_words

__all__ = ["MCQA", "label_list"]

MAX_OPTIONS = 4


def label_list(labels: list[str]) -> str:
    """``"A or B"``, ``"A, B or C"``: the letters as the instruction names them.

    Examples:
        >>> label_list(["A", "B", "C"])
        'A, B or C'
    """
    return ", ".join(labels[:-1]) + " or " + labels[-1]


@TASKS.register("mcqa")
@dataclass(frozen=True)
class MCQA(Task):
    """Output the letter of the option that holds the colour stated in the phrase.

    Attributes:
        options: options per question (2 to 4).
        shots: solved examples before the query.
    """

    name: ClassVar[str] = "mcqa"
    description: ClassVar[str] = "letter-labelled multiple choice: '... A: blue B: pink The correct answer is:' → ' A'"
    answer_roles: ClassVar[AnswerRoles] = AnswerRoles("correct_label", "label_[A-Z]")  # no parser: it takes knowledge
    options: int = 2
    shots: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.options, int) or isinstance(self.options, bool) or not 2 <= self.options <= MAX_OPTIONS:
            raise TaskError(f"options must be an integer from 2 to {MAX_OPTIONS}, got {self.options!r}")
        if not isinstance(self.shots, int) or isinstance(self.shots, bool) or self.shots < 0:
            raise TaskError(f"shots must be a non-negative integer, got {self.shots!r}")

    def colors(self, tokenizer: TextTokenizer | None) -> list[str]:
        """The colours that are one token after a space for ``tokenizer``."""
        colors: list[str] = load_data("mcqa")["colors"]
        return single_token_words(colors, tokenizer, task=self.name, what="colours", minimum=self.options)

    def labels(self, tokenizer: TextTokenizer | None) -> list[str]:
        """The option letters; each must be one token after a space (the answer)."""
        labels: list[str] = load_data("mcqa")["labels"][: self.options]
        single_token_words(labels, tokenizer, task=self.name, what="option letters", minimum=len(labels))
        return labels

    def _question(
        self, obj: str, color: str, order: list[str], labels: list[str], names: bool
    ) -> tuple[Prompt, Prompt]:
        """The question with its options, and the options alone (spans named when ``names``)."""
        data = load_data("mcqa")
        q = Prompt().fill(
            data["question"], {"object": obj, "color": color}, {"color": "stated_color"} if names else None
        )
        opts = Prompt()
        for label, c in zip(labels, order, strict=True):
            span = {"label": f"label_{label}", "color": f"option_{label}"} if names else None
            opts.fill(data["option"], {"label": label, "color": c}, span)
        return q, opts

    def stream(self, rng: random.Random, tokenizer: TextTokenizer | None) -> Iterator[PromptPair]:
        data = load_data("mcqa")
        colors = self.colors(tokenizer)
        labels = self.labels(tokenizer)
        header = data["instruction"].format(labels=label_list(labels)) + "\n\n"
        while True:
            prompt = Prompt().add(header)
            for _ in range(self.shots):
                obj, *order = rng.sample(data["objects"], 1) + rng.sample(colors, self.options)
                slot = rng.randrange(self.options)
                order[0], order[slot] = order[slot], order[0]  # the stated colour is order[slot]
                q, opts = self._question(obj, order[slot], order, labels, False)
                prompt.extend(q).extend(opts).add(f"{data['answer']} {labels[slot]}\n\n")
            obj = rng.choice(data["objects"])
            drawn = rng.sample(colors, self.options)
            order = drawn[:]
            rng.shuffle(order)
            answer = drawn[0]
            q, opts = self._question(obj, answer, order, labels, True)
            moved = [p for p in _permutations(order) if p.index(answer) != order.index(answer)]
            corrupt_order = rng.choice(moved)
            _, corrupt_opts = self._question(obj, answer, corrupt_order, labels, False)
            right, wrong = labels[order.index(answer)], labels[corrupt_order.index(answer)]
            head = Prompt().extend(prompt).extend(q)
            clean = Prompt().extend(head).extend(opts).add(data["answer"])
            corrupt = head.text + corrupt_opts.text + data["answer"]
            spans = dict(clean.spans)
            spans["correct_label"], spans["correct_option"] = spans[f"label_{right}"], spans[f"option_{right}"]
            spans["wrong_label"] = spans[f"label_{wrong}"]
            yield PromptPair(
                clean=clean.text,
                corrupt=corrupt,
                answers=(" " + right,),
                wrong=(" " + wrong,),
                candidates=tuple(" " + x for x in labels),
                spans=spans,
                meta={"answer_index": order.index(answer), "corrupt_index": corrupt_order.index(answer)},
            )


def _permutations(items: list[str]) -> list[list[str]]:
    """All orders of ``items``, in a fixed order (so seeded choices are reproducible)."""
    if len(items) <= 1:
        return [items[:]]
    return [[x, *rest] for i, x in enumerate(items) for rest in _permutations(items[:i] + items[i + 1 :])]
