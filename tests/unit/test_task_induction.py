"""Induction: a repeated random word sequence; corruptions break the repeat."""

from __future__ import annotations

import torch

from tasks import Induction, InductionCorruption, TextTokenizer


def _words(text: str) -> list[str]:
    assert text.startswith(" ")
    return text[1:].split(" ")


def test_clean_repeats_and_random_corruption_does_not(smollm2_tokenizer: TextTokenizer) -> None:
    data = Induction().dataset(smollm2_tokenizer, 30, seed=0)
    rows = torch.arange(len(data))
    for i, p in enumerate(data.pairs):
        w, c = _words(p.clean), _words(p.corrupt)
        k = int(p.meta["k"])
        seq = w[:10]
        assert len(set(seq)) == 10 and w[10:] == seq[:k] and 1 <= k <= 9
        assert p.answers == (" " + seq[k],)
        assert c[10:] == w[10:] and not set(c[:10]) & set(seq), "the first copy is all new words"
        assert p.wrong == (" " + c[k],)
        assert p.candidates == tuple(" " + x for x in seq)
        assert int(data.positions["copy"][i]) == k and int(data.positions["match"][i]) == k - 1
        assert int(data.positions["repeat"][i]) == 10
    # one token per word, so the copy position holds the answer token
    assert torch.equal(data.clean[rows, data.positions["copy"]], data.targets.answers[:, 0])
    assert torch.equal(data.clean[rows, data.positions["match"]], data.clean[rows, data.answer_pos])


def test_flip_changes_only_the_answer_word(smollm2_tokenizer: TextTokenizer) -> None:
    data = Induction(corruption=InductionCorruption.FLIP, length=6).dataset(smollm2_tokenizer, 20, seed=0)
    differs = (data.clean != data.corrupt).nonzero()
    assert torch.equal(differs[:, 1], data.positions["copy"])
    assert torch.equal(data.corrupt[torch.arange(len(data)), data.positions["copy"]], data.targets.wrong[:, 0])
