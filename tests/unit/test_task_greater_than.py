"""Greater-than: the first answer token decides the comparison, for digit and digit-pair tokenizers."""

from __future__ import annotations

import re

import torch

from tasks import GreaterThan, ProbDiff, TextTokenizer, YearTokens
from tasks.greater_than import year_tokens
from tests.helpers.data import regex_tokenizer

PROMPT = re.compile(r"The (\w+) lasted from the year (\d\d)(\d\d) to the year (\d\d)$")


def test_digit_variant_partitions_the_tens_digits(smollm2_tokenizer: TextTokenizer) -> None:
    assert year_tokens(smollm2_tokenizer) is YearTokens.DIGITS
    data = GreaterThan().dataset(smollm2_tokenizer, 40, seed=0)
    assert isinstance(GreaterThan.metric, ProbDiff)
    for p in data.pairs:
        m = PROMPT.fullmatch(p.clean)
        assert m is not None and m.group(2) == m.group(4) and 11 <= int(m.group(2)) <= 17
        yy = m.group(3)
        assert yy[1] == "9" and 1 <= int(yy[0]) <= 8, "YY = T9: later years are exactly tens digits above T"
        t = int(yy[0])
        assert p.answers == tuple(str(d) for d in range(t + 1, 10))
        assert p.wrong == tuple(str(d) for d in range(t + 1))
        assert p.candidates == (str(t), str(t + 1))
        assert p.corrupt == p.clean.replace(f"{m.group(2)}{yy} to", f"{m.group(2)}01 to")
    rows = torch.arange(len(data))
    differs = (data.clean != data.corrupt).nonzero()
    # both YY digits change (T9 → 01); nothing else does
    assert torch.equal(differs[:, 1].view(-1, 2)[:, 0], data.positions["YY"])
    assert torch.equal(differs[:, 0].view(-1, 2)[:, 0], rows)
    assert {smollm2_tokenizer.decode(int(t)) for t in data.clean[rows, data.positions["XX"]]} == {"1"}


def test_prob_diff_is_hannas_metric_on_the_first_token(smollm2_tokenizer: TextTokenizer) -> None:
    data = GreaterThan().dataset(smollm2_tokenizer, 4, seed=0)
    logits = torch.randn(4, 49152)
    probs = logits.softmax(-1)
    expected = []
    # answers and wrong cover the ten digits without overlap: ProbDiff = P(later) − P(not later)
    for i in range(4):
        a, w = data.targets.answers[i], data.targets.wrong[i]
        a, w = a[a >= 0].tolist(), w[w >= 0].tolist()
        assert not set(a) & set(w) and len(set(a) | set(w)) == 10
        assert {smollm2_tokenizer.decode(t) for t in a + w} == set("0123456789")
        expected.append(probs[i, a].sum() - probs[i, w].sum())
    assert torch.allclose(ProbDiff()(logits, data.targets), torch.stack(expected))


def test_pair_tokenizers_get_hannas_two_digit_variant() -> None:
    tok = regex_tokenizer()  # ' 1739' → ' 17' '39', like GPT-2
    assert year_tokens(tok) is YearTokens.PAIRS
    data = GreaterThan().dataset(tok, 20, seed=0)
    for p in data.pairs:
        m = PROMPT.fullmatch(p.clean)
        assert m is not None
        y = int(m.group(3))
        assert 2 <= y <= 98
        assert p.answers == tuple(f"{d:02d}" for d in range(y + 1, 100))
        assert len(p.answers) + len(p.wrong) == 100
        assert p.candidates == (f"{y:02d}", f"{y + 1:02d}")
    differs = (data.clean != data.corrupt).nonzero()
    assert torch.equal(differs[:, 1], data.positions["YY"]), "one two-digit token differs"
