"""Arithmetic: answers are the result's first digit, corruptions change exactly what they claim."""

from __future__ import annotations

import re

import pytest
import torch

from tasks import (
    Arithmetic,
    ArithmeticAnswer,
    ArithmeticCorruption,
    ArithmeticTemplate,
    Operation,
    TextTokenizer,
)
from tasks.arithmetic import apply, operand_pairs
from tests.helpers.data import regex_tokenizer

SYMBOLS = {"+": Operation.ADD, "-": Operation.SUB, "*": Operation.MUL, "/": Operation.DIV}
LAST = re.compile(r"(\d+) ([-+*/@]) (\d+) = $")


@pytest.mark.parametrize("op", list(Operation))
@pytest.mark.parametrize("answer", list(ArithmeticAnswer))
def test_operand_ranges_make_the_first_digit_decide(op: Operation, answer: ArithmeticAnswer) -> None:
    pairs = operand_pairs(answer, op)
    assert pairs
    for a, b in pairs:
        r = apply(op, a, b)
        assert r is not None
        assert 0 <= r <= 9 if answer is ArithmeticAnswer.ONE_DIGIT else 10 <= r <= 99


@pytest.mark.parametrize("op", list(Operation))
@pytest.mark.parametrize("answer", list(ArithmeticAnswer))
def test_clean_answer_and_operand_corruption(op: Operation, answer: ArithmeticAnswer) -> None:
    for p in Arithmetic(operations=(op,), answer=answer).pairs(30, seed=0):
        lines = p.clean.split("\n")
        assert len(lines) == 4, "three solved shots, then the query"
        for shot in lines[:3]:
            m = re.fullmatch(r"(\d+) ([-+*/]) (\d+) = (\d+)", shot)
            assert m is not None and SYMBOLS[m.group(2)] is op
            assert apply(op, int(m.group(1)), int(m.group(3))) == int(m.group(4))
        clean, corrupt = LAST.search(p.clean), LAST.search(p.corrupt)
        assert clean is not None and corrupt is not None
        a, b, a2, b2 = int(clean.group(1)), int(clean.group(3)), int(corrupt.group(1)), int(corrupt.group(3))
        assert (a != a2) + (b != b2) == 1, "exactly one operand changes"
        assert len(str(a)) == len(str(a2)) and len(str(b)) == len(str(b2))
        assert p.answers == (str(apply(op, a, b))[0],)
        assert p.wrong == (str(apply(op, a2, b2))[0],)
        assert p.answers != p.wrong
        assert p.clean[: p.clean.rindex("\n")] == p.corrupt[: p.corrupt.rindex("\n")], "same shots"


def test_null_operator_corruption() -> None:
    for p in Arithmetic(corruption=ArithmeticCorruption.NULL_OPERATOR).pairs(10, seed=0):
        assert p.corrupt == p.clean[: p.clean.rindex("+")] + "@" + p.clean[p.clean.rindex("+") + 1 :]
        assert set(p.wrong) == set(p.candidates) - set(p.answers)


@pytest.mark.parametrize(
    ("template", "ending"),
    [
        (ArithmeticTemplate.EQUATION_TIGHT, r"\d\+\d=$"),
        (ArithmeticTemplate.STATEMENT, r"\d plus \d is $"),
        (ArithmeticTemplate.QUESTION, r"Q: What is \d plus \d\?\nA: $"),
    ],
)
def test_templates(template: ArithmeticTemplate, ending: str) -> None:
    p = Arithmetic(template=template, shots=0).pairs(1, seed=0)[0]
    assert re.search(ending, p.clean), p.clean


def test_smollm2_answer_is_a_bare_digit_after_a_space_token(smollm2_tokenizer: TextTokenizer) -> None:
    data = Arithmetic().dataset(smollm2_tokenizer, 20, seed=0)
    rows = torch.arange(len(data))
    assert {smollm2_tokenizer.decode(int(t)) for t in data.clean[rows, data.answer_pos]} == {" "}
    assert {smollm2_tokenizer.decode(int(t)) for t in data.targets.candidates[0]} == set("0123456789")
    differs = (data.clean != data.corrupt).nonzero()
    assert torch.equal(differs[:, 0], rows), "one token differs per pair"
    changed = differs[:, 1]
    assert bool(((changed == data.positions["A"]) | (changed == data.positions["B"])).all())


def test_space_moves_into_the_answer_for_tokenizers_that_fold_it() -> None:
    tok = regex_tokenizer()  # " 7" is one token, like GPT-2
    data = Arithmetic().dataset(tok, 5, seed=0)
    for p in data.pairs:
        assert p.clean.endswith("=") and p.answers[0].startswith(" ") and len(p.answers[0]) == 2
        assert all(c.startswith(" ") for c in p.candidates)
