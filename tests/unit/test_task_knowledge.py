"""One batching step for every task (issue 17): :func:`tasks.collate` against padding by hand.

Text tasks (:meth:`tasks.Task.dataset`) and token-level planted tasks
(:func:`circuits.groundtruth.tokens.token_dataset`) used to pad and stack their rows in two copies;
both now go through :func:`tasks.collate`. These tests check each path element by element against
the definition (right-pad prompts with the tokenizer's pad id, targets with ``PAD``; keep the
positions every pair names), so a change in either path is seen.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits.groundtruth.tokens import TokenPair, token_dataset
from tasks import TextTokenizer, get_task
from tasks.metrics import PAD

ids = st.integers(min_value=1, max_value=50)


@st.composite
def token_pairs(draw: st.DrawFn) -> TokenPair:
    n = draw(st.integers(min_value=1, max_value=6))
    clean = draw(st.lists(ids, min_size=n, max_size=n))
    corrupt = draw(st.lists(ids, min_size=n, max_size=n))
    answers = draw(st.lists(ids, min_size=1, max_size=3))
    wrong = draw(st.lists(ids, min_size=0, max_size=3))
    positions = {"A": draw(st.integers(0, n - 1))}
    if draw(st.booleans()):
        positions["B"] = draw(st.integers(0, n - 1))
    return TokenPair(tuple(clean), tuple(corrupt), tuple(answers), tuple(wrong), positions)


def _row(values: tuple[int, ...] | list[int], width: int, fill: int) -> list[int]:
    return list(values) + [fill] * (width - len(values))


@settings(max_examples=60, deadline=None)
@given(st.lists(token_pairs(), min_size=1, max_size=5), st.integers(min_value=0, max_value=3))
def test_token_dataset_pads_like_the_definition(pairs: list[TokenPair], pad_id: int) -> None:
    d = token_dataset("demo", 7, pairs, pad_id=pad_id)
    width = max(len(p.clean) for p in pairs)
    assert d.clean.tolist() == [_row(p.clean, width, pad_id) for p in pairs]
    assert d.corrupt.tolist() == [_row(p.corrupt, width, pad_id) for p in pairs]
    assert d.lengths.tolist() == [len(p.clean) for p in pairs]
    for got, rows in (
        (d.targets.answers, [p.answers for p in pairs]),
        (d.targets.wrong, [p.wrong for p in pairs]),
        (d.targets.candidates, [(*p.answers, *p.wrong) for p in pairs]),
    ):
        w = max(len(r) for r in rows)
        assert got.tolist() == [_row(r, w, PAD) for r in rows]
    shared = set.intersection(*(set(p.positions) for p in pairs))
    assert set(d.positions) == shared
    for k in shared:
        assert d.positions[k].tolist() == [p.positions[k] for p in pairs]
    assert (d.task, d.seed, d.tokenizer, dict(d.dropped)) == ("demo", 7, "token-ids", {})
    assert [p.clean for p in d.pairs] == [" ".join(f"t{t}" for t in p.clean) for p in pairs]


def test_text_task_dataset_is_its_pairs_tokenized_and_padded(smollm2_tokenizer: TextTokenizer) -> None:
    """IOI's dataset rows are the tokenizer's ids of its own prompts, right-padded with the pad id."""
    d = get_task("ioi").dataset(smollm2_tokenizer, 6, seed=3)
    rows = [smollm2_tokenizer.encode(p.clean) for p in d.pairs]
    width = max(len(r) for r in rows)
    assert d.clean.tolist() == [_row(r, width, smollm2_tokenizer.pad_id) for r in rows]
    assert d.lengths.tolist() == [len(r) for r in rows]
    assert d.clean.dtype == torch.long and d.tokenizer == smollm2_tokenizer.name
    assert d.positions and all(v.shape == (len(d.pairs),) for v in d.positions.values())
