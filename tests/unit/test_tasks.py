"""IOI generation and the validation every task goes through."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from tasks import IOI, TASKS, IOICorruption, IOIOrder, TaskError, TextTokenizer, UnknownNameError, get_task
from tasks.ioi import _abba
from tests.helpers.checks import unchecked


def test_same_seed_same_pairs_different_seed_different(smollm2_tokenizer: TextTokenizer) -> None:
    a = IOI().dataset(smollm2_tokenizer, 20, seed=1)
    b = IOI().dataset(smollm2_tokenizer, 20, seed=1)
    c = IOI().dataset(smollm2_tokenizer, 20, seed=2)
    assert a.pairs == b.pairs
    assert torch.equal(a.clean, b.clean)
    assert a.pairs != c.pairs


def test_abc_corruption_changes_only_s2(smollm2_tokenizer: TextTokenizer) -> None:
    data = IOI().dataset(smollm2_tokenizer, 30, seed=0)
    rows = torch.arange(len(data))
    s2 = data.positions["S2"]
    differs = data.clean != data.corrupt
    assert torch.equal(differs.nonzero()[:, 1], s2), "exactly the S2 token differs"
    # The tokens at the named positions are the names
    assert torch.equal(data.clean[rows, data.positions["IO"]], data.targets.answers[:, 0])
    assert torch.equal(data.clean[rows, data.positions["S1"]], data.targets.wrong[:, 0])
    assert torch.equal(data.clean[rows, s2], data.targets.wrong[:, 0])
    corrupt_s2 = data.corrupt[rows, s2]
    assert not bool((corrupt_s2 == data.targets.answers[:, 0]).any())
    assert not bool((corrupt_s2 == data.targets.wrong[:, 0]).any())
    for pair in data.pairs:
        assert pair.clean.endswith(" to") or pair.clean.endswith(" said to")


def test_flip_corruption_puts_io_at_s2(smollm2_tokenizer: TextTokenizer) -> None:
    data = IOI(corruption=IOICorruption.FLIP).dataset(smollm2_tokenizer, 10, seed=0)
    rows = torch.arange(len(data))
    assert torch.equal(data.corrupt[rows, data.positions["S2"]], data.targets.answers[:, 0])


def test_orders_and_templates() -> None:
    assert _abba("Then, [B] and [A] went. [B] gave") == "Then, [A] and [B] went. [B] gave"
    abba = IOI(orders=(IOIOrder.ABBA,)).pairs(20, seed=0)
    baba = IOI(orders=(IOIOrder.BABA,)).pairs(20, seed=0)
    for p in abba:
        assert p.clean.index(p.answers[0]) < p.clean.index(p.wrong[0])
    for p in baba:
        assert p.clean.index(p.wrong[0]) < p.clean.index(p.answers[0])
    assert len({p.meta["template"] for p in IOI().pairs(200, seed=0)}) == 15


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_n_is_a_clear_error(smollm2_tokenizer: TextTokenizer, n: int) -> None:
    with pytest.raises(TaskError, match="positive integer"):
        IOI().dataset(smollm2_tokenizer, n, seed=0)


@dataclass(frozen=True)
class _FakeHF:
    """Splits text into space-led words; a word is one token if listed in ``single``, else two."""

    single: frozenset[str]
    bos_token_id: int | None = None
    pad_token_id: int | None = 0
    eos_token_id: int | None = None

    def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False) -> Any:
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        for m in re.finditer(r" ?[^ ]+", text):
            if m.group() in self.single:
                ids.append(sum(map(ord, m.group())))
                offsets.append(m.span())
            else:
                ids += [1, 2]
                offsets += [(m.start(), m.start() + 1), (m.start() + 1, m.end())]
        out: dict[str, Any] = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        return out


def test_names_that_are_not_single_tokens_are_dropped_and_too_few_is_an_error() -> None:
    names = IOI.names(None)
    few = TextTokenizer(_FakeHF(frozenset(" " + n for n in names[:5])), False, "fake")
    with pytest.raises(TaskError, match=r"only 5 of \d+ IOI names are single tokens for tokenizer 'fake'"):
        IOI().dataset(few, 4, seed=0)
    enough = TextTokenizer(_FakeHF(frozenset(" " + n for n in names[:12])), False, "fake")
    assert IOI.names(enough) == names[:12]


def test_unequal_lengths_are_dropped_with_a_count_then_an_error() -> None:
    names = IOI.names(None)
    hf = _FakeHF(frozenset(" " + n for n in names))
    tok = TextTokenizer(hf, False, "fake")

    class Uneven(IOI):
        def stream(self, rng, tokenizer):  # type: ignore[no-untyped-def]
            for p in super().stream(rng, tokenizer):
                yield type(p)(p.clean, p.corrupt + " extra", p.answers, p.wrong, p.candidates, p.spans, p.meta)

    with pytest.raises(
        TaskError, match=r"only 0 of 3 pairs .* \(dropped: 12 × clean and corrupt token lengths differ\)"
    ):
        Uneven().dataset(tok, 3, seed=0)

    class EveryOther(IOI):
        def stream(self, rng, tokenizer):  # type: ignore[no-untyped-def]
            for i, p in enumerate(super().stream(rng, tokenizer)):
                extra = " extra" if i % 2 else ""
                yield type(p)(p.clean, p.corrupt + extra, p.answers, p.wrong, p.candidates, p.spans, p.meta)

    data = EveryOther().dataset(tok, 5, seed=0)
    assert len(data) == 5
    assert data.dropped == {"clean and corrupt token lengths differ": 4}


def test_multi_token_answers_are_dropped() -> None:
    names = IOI.names(None)
    hf = _FakeHF(frozenset(" " + n for n in names))
    tok = TextTokenizer(hf, False, "fake")

    class BadAnswer(IOI):
        def stream(self, rng, tokenizer):  # type: ignore[no-untyped-def]
            for p in super().stream(rng, tokenizer):
                yield type(p)(p.clean, p.corrupt, (" two words",), p.wrong, p.candidates, p.spans, p.meta)

    with pytest.raises(TaskError, match="answer not a single token"):
        BadAnswer().dataset(tok, 2, seed=0)


def test_registry_lists_valid_names() -> None:
    assert isinstance(get_task("ioi"), IOI)
    valid = "arithmetic, colored-objects, greater-than, induction, ioi, mcqa, retrieval"
    with pytest.raises(UnknownNameError, match=f"unknown task 'nope'; valid tasks: {valid}"):
        TASKS["nope"]


def test_bad_settings_raise() -> None:
    with pytest.raises(TaskError, match="corruption must be an IOICorruption, got 'abc'"), unchecked():
        IOI(corruption="abc")  # type: ignore[arg-type]
    with pytest.raises(TaskError):
        IOI(orders=())
