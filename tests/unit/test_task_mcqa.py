"""MCQA: the answer is the letter of the option holding the stated colour; corruption moves it."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

from tasks import MCQA, TextTokenizer

N_SPEC = 200
MIN_LETTER_SHARE = 0.15
"""With 4 options each letter is correct 1/4 of the time; allow sampling noise down to this."""

OPTION = re.compile(r"^([A-D]): (\w+)$", re.M)


def _query(text: str) -> tuple[str, dict[str, str]]:
    block = text.split("Phrase: ")[-1]
    stated = re.match(r"The \w+ is (\w+)\. What color is the \w+\?", block)
    assert stated is not None
    return stated.group(1), dict(OPTION.findall(block))


@pytest.mark.parametrize("options", [2, 3, 4])
def test_answer_letter_and_permuted_corruption(options: int) -> None:
    letters: Counter[str] = Counter()
    for p in MCQA(options=options).pairs(N_SPEC, seed=0):
        stated, opts = _query(p.clean)
        stated_c, opts_c = _query(p.corrupt)
        assert stated == stated_c and sorted(opts.values()) == sorted(opts_c.values())
        assert len(opts) == options and len(set(opts.values())) == options
        right = next(k for k, v in opts.items() if v == stated)
        wrong = next(k for k, v in opts_c.items() if v == stated)
        assert p.answers == (" " + right,) and p.wrong == (" " + wrong,) and right != wrong
        assert p.candidates == tuple(" " + x for x in "ABCD"[:options])
        head = p.clean[: p.clean.rindex("Choices:")]
        assert p.corrupt.startswith(head), "the solved examples and the question are shared"
        assert p.clean.startswith("For each of the following phrases, select the best completion (")
        assert p.clean.count("The correct answer is:") == 4 and p.clean.endswith("The correct answer is:")
        letters[right] += 1
    assert min(letters.values()) / N_SPEC > MIN_LETTER_SHARE * 2 / options


def test_shots_are_solved() -> None:
    p = MCQA(options=3).pairs(1, seed=5)[0]
    for block in p.clean.split("Phrase: ")[1:-1]:
        stated, opts = _query("Phrase: " + block)
        answer = re.search(r"The correct answer is: ([A-D])", block)
        assert answer is not None and opts[answer.group(1)] == stated


def test_positions(smollm2_tokenizer: TextTokenizer) -> None:
    data = MCQA(options=3).dataset(smollm2_tokenizer, 20, seed=0)
    rows = torch.arange(len(data))
    letters = [smollm2_tokenizer.decode(int(t)) for t in data.clean[rows, data.positions["correct_label"]]]
    assert [" " + x for x in letters] == [p.answers[0] for p in data.pairs]
    assert torch.equal(
        data.clean[rows, data.positions["correct_option"]], data.clean[rows, data.positions["stated_color"]]
    )
    assert bool((data.positions["wrong_label"] != data.positions["correct_label"]).all())
