"""Every validation error of the task library: each is triggered here and its message read.

A small regex tokenizer stands in for tokenizers we cannot load offline (GPT-2-like: words and
numbers carry their leading space; numbers come in chunks of two digits by default) and for
tokenizers that split chosen words, so each per-tokenizer check can be made to fail.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tasks import (
    IOI,
    MCQA,
    TASKS,
    Arithmetic,
    ArithmeticAnswer,
    ColoredObjects,
    GreaterThan,
    Induction,
    PromptPair,
    TaskError,
    TextTokenizer,
)
from tasks.words import load_data
from tests.helpers.checks import revalidate
from tests.helpers.data import regex_tokenizer

# --------------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ColoredObjects(shots=-1), "shots must be a non-negative integer"),
        (lambda: ColoredObjects(n_objects=5), "n_objects must be an integer from 2 to 4"),
        (lambda: ColoredObjects(n_objects=1), "n_objects must be an integer from 2 to 4"),
        (lambda: Arithmetic(operations=()), "operations must be a non-empty tuple of Operation"),
        (lambda: Arithmetic(shots=-2), "shots must be a non-negative integer"),
        (lambda: MCQA(options=5), "options must be an integer from 2 to 4"),
        (lambda: MCQA(options=1), "options must be an integer from 2 to 4"),
        (lambda: MCQA(shots=-1), "shots must be a non-negative integer"),
        (lambda: Induction(length=1), "length must be an integer of at least 2"),
    ],
)
def test_bad_settings_raise_task_error(make: Any, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        make()


@pytest.mark.parametrize(
    ("task", "bad", "message"),
    [
        (Arithmetic, {"template": "equation"}, "expected an ArithmeticTemplate, got 'equation'"),
        (Arithmetic, {"corruption": "operand"}, "expected an ArithmeticCorruption, got 'operand'"),
        (Induction, {"corruption": "random"}, "corruption must be an InductionCorruption, got 'random'"),
    ],
)
def test_strings_for_enum_settings_raise(task: Any, bad: dict[str, object], message: str) -> None:
    with pytest.raises(TaskError, match=re.escape(message)):  # the hand-written check, not the type checker
        revalidate(task(), **bad)


# --------------------------------------------------------------------------------------------
# Word lists restricted to one tokenizer


def test_colored_objects_needs_single_token_colours() -> None:
    colors = load_data("colored_objects")["colors"]
    tok = regex_tokenizer(frozenset(" " + c.title() for c in colors[:3]))
    with pytest.raises(
        TaskError,
        match=r"task 'colored-objects': only 5 of 8 colours are single tokens for tokenizer 'regex'; "
        r"the task needs at least 6",
    ):
        ColoredObjects().dataset(tok, 4, seed=0)
    assert len(ColoredObjects(n_objects=2).colors(tok)) == 5


def test_mcqa_needs_single_token_colours_and_letters() -> None:
    colors = load_data("mcqa")["colors"]
    few = regex_tokenizer(frozenset(" " + c for c in colors[:-3]))
    with pytest.raises(TaskError, match=r"task 'mcqa': only 3 of 11 colours are single tokens .* at least 4"):
        MCQA(options=4).dataset(few, 4, seed=0)
    letters = regex_tokenizer(frozenset({" B"}))
    with pytest.raises(TaskError, match=r"task 'mcqa': only 1 of 2 option letters are single tokens"):
        MCQA().dataset(letters, 4, seed=0)


def test_induction_needs_enough_single_token_words() -> None:
    words = load_data("induction")["words"]
    tok = regex_tokenizer(frozenset(" " + w for w in words[5:]))
    with pytest.raises(TaskError, match=r"task 'induction': only 5 of 200 words are single tokens .* at least 20"):
        Induction().dataset(tok, 4, seed=0)


def test_ioi_needs_enough_single_token_names() -> None:
    names = IOI.names(None)
    tok = regex_tokenizer(frozenset(" " + n for n in names[3:]))
    with pytest.raises(TaskError, match=r"only 3 of \d+ IOI names are single tokens for tokenizer 'regex'"):
        IOI().dataset(tok, 4, seed=0)


def test_leading_digit_arithmetic_needs_a_digit_tokenizer() -> None:
    tok = regex_tokenizer()  # '56' is one token here
    with pytest.raises(TaskError, match=r"does not split numbers into digits \('56' is not two tokens\)"):
        Arithmetic(answer=ArithmeticAnswer.LEADING_DIGIT).dataset(tok, 4, seed=0)


def test_greater_than_needs_digits_or_digit_pairs() -> None:
    tok = regex_tokenizer(pattern=r" ?[A-Za-z]+| ?\d{3}| ?\d| ?[^\sA-Za-z\d]|\s")  # '1739' → '173' '9'
    with pytest.raises(TaskError, match=r"writes ' 1739' as neither four digits nor ' 17' \+ '39'"):
        GreaterThan().dataset(tok, 4, seed=0)


# --------------------------------------------------------------------------------------------
# Pair-level validation: each reason for dropping a pair, and the error when too many are dropped


def _rewrite(task_cls: type, fn: Any) -> Any:
    """A subclass of ``task_cls`` whose pairs pass through ``fn(index, pair)``."""

    class Rewritten(task_cls):  # type: ignore[misc, valid-type]
        def stream(self, rng: random.Random, tokenizer: TextTokenizer | None) -> Iterator[PromptPair]:
            for i, p in enumerate(super().stream(rng, tokenizer)):
                yield fn(i, p)

    return Rewritten


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (lambda i, p: replace(p, answers=(" Blue Green",)), "answer not a single token"),
        (lambda i, p: replace(p, wrong=(" Blue Green",)), "wrong not a single token"),
        (lambda i, p: replace(p, candidates=(*p.candidates, " Blue Green")), "candidate not a single token"),
        (lambda i, p: replace(p, corrupt=p.corrupt + " extra"), "clean and corrupt token lengths differ"),
        (lambda i, p: replace(p, spans={**p.spans, "mid": (p.spans["color0"][0] + 1, 0)}), "span mid not on a token"),
    ],
)
def test_each_invalid_pair_reason_is_counted_then_raised(
    smollm2_tokenizer: TextTokenizer, fn: Any, reason: str
) -> None:
    bad = _rewrite(ColoredObjects, fn)
    with pytest.raises(TaskError, match=rf"only 0 of 3 pairs are valid .* \(dropped: \d+ × {reason}"):
        bad().dataset(smollm2_tokenizer, 3, seed=0)
    every_other = _rewrite(ColoredObjects, lambda i, p: fn(i, p) if i % 2 else p)
    data = every_other().dataset(smollm2_tokenizer, 6, seed=0)
    assert len(data) == 6
    assert data.dropped[next(k for k in data.dropped if k.startswith(reason))] >= 5


def test_every_task_is_registered() -> None:
    assert TASKS.names() == ["arithmetic", "colored-objects", "greater-than", "induction", "ioi", "mcqa", "retrieval"]
