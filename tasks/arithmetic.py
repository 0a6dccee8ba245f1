"""Two-operand arithmetic (Zhang et al. 2024, arXiv 2409.01659), scored on the answer's first token.

    7 + 1 = 8
    2 + 4 = 6
    0 + 3 = 3
    5 + 2 =                         → "7"      corrupt: "5 + 3 = " → "8"

Operators +, −, ×, ÷ (÷ only where exact) in one of four templates (package data: an equation, a
tight equation ``{A}+{B}=``, a statement ``{A} plus {B} is`` and a question); ``shots`` solved
examples of the same operator and template come first, one per line.

Tokenization (measured on SmolLM2; Gemma 3 and Llama split the same way): numbers are split into
single digits, and a number after a space gets a separate space token (``" 123"`` → ``" "``,
``"1"``, ``"2"``, ``"3"``). So the prompt ends *after* that space and the answer is a bare digit
token. For tokenizers that fold the space into the number (GPT-2's ``" 8"``), the trailing space
moves into the answer instead. Operand ranges are chosen so that the answer's first token decides:

  * ``ONE_DIGIT`` (default): every result is 0–9, one digit token, so the first token is the whole
    answer and the competing answers (the other digits) are single tokens too. Sums and
    differences of one-digit operands, products with factors 1–9, exact quotients of a dividend
    up to 81. (Accuracy reads only that token; a model that would go on to write a second digit
    is still counted correct.)
  * ``LEADING_DIGIT``: results 10–99 (two-digit sums and differences, products of 2–9 such as
    7 × 8, two-digit quotients); the answer token is the result's tens digit. A correct tens digit
    is necessary, not sufficient, so accuracy here is an upper bound. It needs a tokenizer that
    splits numbers into digits.

Corruptions:
  * ``OPERAND`` (default): one operand is changed (same number of digits) so that the answer's
    first digit changes; the competing token is the corrupt prompt's answer.
  * ``NULL_OPERATOR``: the query's operator becomes a null symbol or word (``@``, ``nothing``), as
    in Zhang et al.'s counterfactual; the competing tokens are all other candidate digits, so the
    logit difference measures how far the answer stands out among the digits.

Named positions: ``A``, ``op`` and ``B`` of the query (first token of each).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any, ClassVar

from tasks.base import TASKS, PromptPair, Task
from tasks.errors import TaskError
from tasks.text import Prompt
from tasks.tokenizer import TextTokenizer
from tasks.words import load_data

__all__ = ["ArithmeticAnswer", "ArithmeticCorruption", "ArithmeticTemplate", "Operation", "Arithmetic", "apply"]


class Operation(Enum):
    """The arithmetic operator."""

    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"


class ArithmeticTemplate(Enum):
    """Prompt style (the texts are package data, ``tasks/data/arithmetic.json``)."""

    EQUATION = "equation"
    EQUATION_TIGHT = "equation-tight"
    STATEMENT = "statement"
    QUESTION = "question"


class ArithmeticCorruption(Enum):
    """How the corrupt prompt differs from the clean one."""

    OPERAND = "operand"
    NULL_OPERATOR = "null-operator"


class ArithmeticAnswer(Enum):
    """Which results are asked for, and which of their digits is the answer token."""

    ONE_DIGIT = "one-digit"
    LEADING_DIGIT = "leading-digit"


def apply(op: Operation, a: int, b: int) -> int | None:
    """``a op b``, or None where it is not a whole number (inexact or by-zero division).

    Examples:
        >>> apply(Operation.SUB, 7, 3), apply(Operation.DIV, 56, 8), apply(Operation.DIV, 7, 2)
        (4, 7, None)
    """
    if op is Operation.ADD:
        return a + b
    if op is Operation.SUB:
        return a - b
    if op is Operation.MUL:
        return a * b
    return a // b if b and a % b == 0 else None


_RANGES: dict[tuple[ArithmeticAnswer, Operation], tuple[range, range, range]] = {
    # (A, B, result) ranges
    (ArithmeticAnswer.ONE_DIGIT, Operation.ADD): (range(10), range(10), range(10)),
    (ArithmeticAnswer.ONE_DIGIT, Operation.SUB): (range(10), range(10), range(10)),
    (ArithmeticAnswer.ONE_DIGIT, Operation.MUL): (range(1, 10), range(1, 10), range(10)),
    (ArithmeticAnswer.ONE_DIGIT, Operation.DIV): (range(82), range(1, 10), range(10)),
    (ArithmeticAnswer.LEADING_DIGIT, Operation.ADD): (range(10, 100), range(10, 100), range(10, 100)),
    (ArithmeticAnswer.LEADING_DIGIT, Operation.SUB): (range(10, 100), range(10, 100), range(10, 100)),
    (ArithmeticAnswer.LEADING_DIGIT, Operation.MUL): (range(2, 10), range(2, 10), range(10, 100)),
    (ArithmeticAnswer.LEADING_DIGIT, Operation.DIV): (range(20, 100), range(2, 10), range(10, 100)),
}


@cache
def operand_pairs(answer: ArithmeticAnswer, op: Operation) -> tuple[tuple[int, int], ...]:
    """Every ``(A, B)`` allowed for ``op`` whose result lies in the range of ``answer``.

    Examples:
        >>> len(operand_pairs(ArithmeticAnswer.ONE_DIGIT, Operation.ADD))  # a + b <= 9
        55
    """
    ra, rb, results = _RANGES[(answer, op)]
    return tuple((a, b) for a in ra for b in rb if apply(op, a, b) in results)


def _template(template: ArithmeticTemplate) -> dict[str, Any]:
    spec: dict[str, Any] = load_data("arithmetic")["templates"][template.value]
    return spec


@TASKS.register("arithmetic")
@dataclass(frozen=True)
class Arithmetic(Task):
    """Predict the first digit of ``A op B`` after ``shots`` solved examples.

    Attributes:
        operations: operators to draw from, uniformly per pair.
        template: the prompt style.
        shots: solved examples before the query (same operator and template).
        answer: which results, and which digit is the answer token.
        corruption: how the corrupt prompt differs.
    """

    name: ClassVar[str] = "arithmetic"
    description: ClassVar[str] = "'2 + 4 = 6\\n5 + 2 = ' → '7' (one-digit results, 3 solved examples)"
    report_variants: ClassVar[tuple[tuple[str, dict[str, Any]], ...]] = (
        ("arithmetic (+, 0 shots)", {"shots": 0}),
        ("arithmetic (−)", {"operations": (Operation.SUB,)}),
        ("arithmetic (÷)", {"operations": (Operation.DIV,)}),
        (
            "arithmetic (× 10–81, tens digit)",
            {"operations": (Operation.MUL,), "answer": ArithmeticAnswer.LEADING_DIGIT},
        ),
        ("arithmetic (null operator)", {"corruption": ArithmeticCorruption.NULL_OPERATOR}),
    )
    operations: tuple[Operation, ...] = (Operation.ADD,)
    template: ArithmeticTemplate = ArithmeticTemplate.EQUATION
    shots: int = 3
    answer: ArithmeticAnswer = ArithmeticAnswer.ONE_DIGIT
    corruption: ArithmeticCorruption = ArithmeticCorruption.OPERAND

    def __post_init__(self) -> None:
        if not self.operations or not all(isinstance(o, Operation) for o in self.operations):
            raise TaskError(f"operations must be a non-empty tuple of Operation, got {self.operations!r}")
        for value, kind in (
            (self.template, ArithmeticTemplate),
            (self.answer, ArithmeticAnswer),
            (self.corruption, ArithmeticCorruption),
        ):
            if not isinstance(value, kind):
                raise TaskError(f"expected an {kind.__name__}, got {value!r}")
        if not isinstance(self.shots, int) or isinstance(self.shots, bool) or self.shots < 0:
            raise TaskError(f"shots must be a non-negative integer, got {self.shots!r}")

    def _answer_space(self, tokenizer: TextTokenizer | None) -> bool:
        """Whether the template's trailing space belongs to the answer token for ``tokenizer``."""
        if tokenizer is None or not _template(self.template)["text"].endswith(" "):
            return False
        return tokenizer.single_token(" 7") is not None

    def _check_tokenizer(self, tokenizer: TextTokenizer | None) -> None:
        if tokenizer is None or self.answer is not ArithmeticAnswer.LEADING_DIGIT:
            return
        if len(tokenizer.encode("56")) - int(tokenizer.prepend_bos) != 2:  # BOS is not a digit
            raise TaskError(
                f"task {self.name!r}: answer={self.answer.value} reads a number's first digit, but tokenizer "
                f"{tokenizer.name!r} does not split numbers into digits ('56' is not two tokens)"
            )

    def _problem(self, rng: random.Random, op: Operation) -> tuple[int, int]:
        return rng.choice(operand_pairs(self.answer, op))

    def _corrupt_operands(self, rng: random.Random, op: Operation, a: int, b: int) -> tuple[int, int] | None:
        """Change one operand (same digit count) so the result's first digit changes; None if impossible."""
        first = str(apply(op, a, b))[0]
        for which in rng.sample([0, 1], 2):
            old = (a, b)[which]
            options = [
                p
                for p in operand_pairs(self.answer, op)
                if p[1 - which] == (a, b)[1 - which]
                and len(str(p[which])) == len(str(old))
                and str(apply(op, *p))[0] != first
            ]
            if options:
                return rng.choice(options)
        return None

    def stream(self, rng: random.Random, tokenizer: TextTokenizer | None) -> Iterator[PromptPair]:
        self._check_tokenizer(tokenizer)
        spec = _template(self.template)
        text: str = spec["text"]
        space = self._answer_space(tokenizer)
        if space:
            text = text[:-1]
        prefix = " " if space else ""
        sep: str = load_data("arithmetic")["shot_separator"]
        first_digits = "0123456789" if self.answer is ArithmeticAnswer.ONE_DIGIT else "123456789"
        candidates = tuple(prefix + d for d in first_digits)
        while True:
            op = rng.choice(self.operations)
            symbol: str = spec["operators"][op.value]
            prompt = Prompt()
            for _ in range(self.shots):
                x, y = self._problem(rng, op)
                shot = Prompt().fill(text, {"A": str(x), "op": symbol, "B": str(y)})
                prompt.extend(shot).add(f"{prefix}{apply(op, x, y)}{sep}")
            a, b = self._problem(rng, op)
            prompt.fill(text, {"A": str(a), "op": symbol, "B": str(b)}, {"A": "A", "op": "op", "B": "B"})
            answer = prefix + str(apply(op, a, b))[0]
            start, end = prompt.spans["B"] if self.corruption is ArithmeticCorruption.OPERAND else prompt.spans["op"]
            if self.corruption is ArithmeticCorruption.NULL_OPERATOR:
                corrupt = prompt.text[:start] + spec["null"] + prompt.text[end:]
                wrong = tuple(c for c in candidates if c != answer)
            else:
                changed = self._corrupt_operands(rng, op, a, b)
                if changed is None:
                    continue
                a2, b2 = changed
                key = "A" if a2 != a else "B"
                start, end = prompt.spans[key]
                corrupt = prompt.text[:start] + str(a2 if key == "A" else b2) + prompt.text[end:]
                wrong = (prefix + str(apply(op, a2, b2))[0],)
            yield PromptPair(
                clean=prompt.text,
                corrupt=corrupt,
                answers=(answer,),
                wrong=wrong,
                candidates=candidates,
                spans=dict(prompt.spans),
                meta={"operation": op.value, "A": a, "B": b},
            )
