"""Tokenizer checks of the number tasks ignore BOS (Gemma's prompts start with it; SmolLM2's do not)."""

from __future__ import annotations

import dataclasses

from tasks import Arithmetic, ArithmeticAnswer, GreaterThan, Operation, TextTokenizer, YearTokens
from tasks.greater_than import year_tokens


def _with_bos(tok: TextTokenizer) -> TextTokenizer:
    assert tok.hf.bos_token_id is not None and not tok.prepend_bos
    return dataclasses.replace(tok, prepend_bos=True, name=f"{tok.name}+bos")


def test_greater_than_sees_digit_years_behind_bos(smollm2_tokenizer: TextTokenizer) -> None:
    tok = _with_bos(smollm2_tokenizer)
    assert year_tokens(tok) is YearTokens.DIGITS
    data = GreaterThan().dataset(tok, 4, seed=0)
    assert int(data.clean[0, 0]) == tok.hf.bos_token_id


def test_leading_digit_arithmetic_accepts_a_digit_tokenizer_with_bos(smollm2_tokenizer: TextTokenizer) -> None:
    task = Arithmetic(operations=(Operation.MUL,), answer=ArithmeticAnswer.LEADING_DIGIT)
    data = task.dataset(_with_bos(smollm2_tokenizer), 4, seed=0)
    assert len(data) == 4
