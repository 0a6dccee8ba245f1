"""What every task promises: seeded determinism, equal-length pairs, named positions, metrics."""

from __future__ import annotations

import pytest
import torch

from tasks import TASKS, Accuracy, CandidateAccuracy, Targets, TextTokenizer, candidate_chance, get_task
from tasks.text import Prompt

N_PAIRS = 24


@pytest.mark.parametrize("name", TASKS.names())
def test_same_seed_same_pairs_different_seed_different(smollm2_tokenizer: TextTokenizer, name: str) -> None:
    a = get_task(name).dataset(smollm2_tokenizer, N_PAIRS, seed=3)
    b = get_task(name).dataset(smollm2_tokenizer, N_PAIRS, seed=3)
    c = get_task(name).dataset(smollm2_tokenizer, N_PAIRS, seed=4)
    assert a.pairs == b.pairs
    assert torch.equal(a.clean, b.clean) and torch.equal(a.corrupt, b.corrupt)
    assert a.pairs != c.pairs
    assert get_task(name).pairs(5, seed=3) == get_task(name).pairs(5, seed=3)


@pytest.mark.parametrize("name", TASKS.names())
def test_pairs_are_valid_for_smollm2(smollm2_tokenizer: TextTokenizer, name: str) -> None:
    data = get_task(name).dataset(smollm2_tokenizer, N_PAIRS, seed=0)
    rows = torch.arange(len(data))
    assert len(data) == N_PAIRS
    t = data.targets
    # the answer never competes with itself, and is among the candidates
    assert not bool(((t.wrong == t.answers[:, :1]) & (t.wrong >= 0)).any())
    assert bool((t.candidates == t.answers[:, :1]).any(-1).all())
    for i, pair in enumerate(data.pairs):
        n = int(data.lengths[i])
        assert smollm2_tokenizer.encode(pair.clean) == data.clean[i, :n].tolist()
        assert smollm2_tokenizer.encode(pair.corrupt) == data.corrupt[i, :n].tolist()
        assert pair.clean != pair.corrupt
    # each named position points at the token holding the span's text
    for name_, pos in data.positions.items():
        assert bool((pos < data.lengths).all()), name_
        for i in range(3):
            start, end = data.pairs[i].spans[name_]
            token = smollm2_tokenizer.decode(int(data.clean[rows[i], pos[i]]))
            word = data.pairs[i].clean[start:end].strip()
            assert token.strip() and word.startswith(token.strip()), (name_, token, word)


def test_accuracy_counts_any_answer_token() -> None:
    t = Targets(torch.tensor([[2, 3], [1, -1]]), torch.tensor([[0, 1], [0, -1]]), torch.tensor([[1, 2], [0, 1]]))
    logits = torch.tensor([[0.0, 1.0, 0.0, 5.0], [0.0, 2.0, 0.0, 3.0]])
    assert Accuracy()(logits, t).tolist() == [1.0, 0.0]  # row 1: argmax 3 is not an answer
    assert CandidateAccuracy()(logits, t).tolist() == [0.0, 1.0]  # row 0: candidate 1 beats candidate 2
    assert candidate_chance(t).tolist() == [0.5, 0.5]


def test_prompt_records_spans_without_their_leading_space() -> None:
    p = Prompt().add("Q:").add(" 17", "XX").fill(" {a} and {b}", {"a": "x", "b": Prompt().add(" y", "Y")}, {"a": "A"})
    assert p.text == "Q: 17 x and  y"
    assert {k: p.text[slice(*v)] for k, v in p.spans.items()} == {"XX": "17", "A": "x", "Y": "y"}
    with pytest.raises(ValueError, match="span 'XX' is already recorded"):
        p.add("z", "XX")
    with pytest.raises(ValueError, match="span 'A' is already recorded"):
        p.extend(Prompt().add(" w", "A"))
