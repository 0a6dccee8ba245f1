"""Indirect object identification (Wang et al. 2022, arXiv 2211.00593).

"When Mary and John went to the store, John gave a drink to" → " Mary". The indirect object (IO)
appears once, the subject (S) twice (S1, S2); the model should predict IO, not S. The metric is the
logit difference ``logit(IO) − logit(S)`` at the final position.

Corruptions:
  * ``ABC`` (default): S2 is replaced by a third name, so nothing marks which name is duplicated
    (O'Neill & Bui 2024 use these as negatives; Wang et al.'s "ABC distribution").
  * ``FLIP``: S2 is replaced by IO, so the other name becomes the answer (Merullo et al. 2023).

Names are kept only when the name with a leading space is a single token for the model's tokenizer;
templates, names, places and objects are package data (``tasks/data/ioi.json``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources
from typing import Any, ClassVar

import torch
from jaxtyping import Int
from torch import Tensor

from tasks.answers import AnswerRoles, tokens_at
from tasks.base import TASKS, PromptPair, PromptPairDataset, Task
from tasks.errors import TaskError
from tasks.tokenizer import TextTokenizer

__all__ = ["IOI", "IOICorruption", "IOIOrder", "parse_unique_name"]

MIN_NAMES = 10
"""Fewest single-token names the task accepts for a tokenizer."""


class IOICorruption(Enum):
    """How the corrupt prompt differs from the clean one."""

    ABC = "abc"
    FLIP = "flip"


class IOIOrder(Enum):
    """Order of the first two names: ABBA puts the IO first, BABA the subject."""

    ABBA = "ABBA"
    BABA = "BABA"


@cache
def _data() -> dict[str, Any]:
    text = resources.files("tasks").joinpath("data/ioi.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _abba(template: str) -> str:
    """Swap the first mentions of [A] and [B] (BABA → ABBA)."""
    i, j = template.index("[B]"), template.index("[A]")
    lo, hi = min(i, j), max(i, j)
    return template[:lo] + template[hi : hi + 3] + template[lo + 3 : hi] + template[lo : lo + 3] + template[hi + 3 :]


def _fill(template: str, slots: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Fill ``[A]``/``[B]``/``[PLACE]``/``[OBJECT]``; return the text and the name spans.

    Name spans include the leading space, the token boundary of a word-initial name.
    """
    out, spans, i, seen_b = "", {}, 0, 0
    while i < len(template):
        if template[i] == "[":
            key = template[i + 1 : template.index("]", i)]
            value = slots[key]
            if key in ("A", "B"):
                label = "IO" if key == "A" else ("S1" if seen_b == 0 else "S2")
                seen_b += key == "B"
                start = len(out) - 1 if out.endswith(" ") else len(out)
                spans[label] = (start, len(out) + len(value))
            out += value
            i += len(key) + 2
        else:
            out += template[i]
            i += 1
    return out, spans


def parse_unique_name(data: PromptPairDataset) -> Int[Tensor, "batch 1"]:
    """IOI, label-free: the position among ``IO``/``S1``/``S2`` whose name token occurs there once.

    The subject is mentioned twice and the indirect object once, so the structure alone tells the
    answer's position; no answer label is read. ``-1`` where no name is unique.
    """
    names = ("IO", "S1", "S2")
    tok = tokens_at(data, names)
    pos = torch.stack([data.positions[n] for n in names], 1).cpu()
    once = (tok[:, :, None] == tok[:, None, :]).sum(2) == 1  # (batch, 3)
    unique = once.sum(1) == 1
    return torch.where(unique, (pos * once).sum(1), -1)[:, None]


@TASKS.register("ioi")
@dataclass(frozen=True)
class IOI(Task):
    """Indirect object identification with ABC or flipped corruption.

    Attributes:
        corruption: how S2 is changed in the corrupt prompt.
        orders: which name orders to sample from, uniformly.
    """

    name: ClassVar[str] = "ioi"
    description: ClassVar[str] = "indirect object identification: '... John gave a drink to' → ' Mary'"
    answer_roles: ClassVar[AnswerRoles] = AnswerRoles("IO", "IO|S1|S2", parse_unique_name)
    report_variants: ClassVar[tuple[tuple[str, dict[str, Any]], ...]] = (
        ("ioi (flip)", {"corruption": IOICorruption.FLIP}),
    )
    corruption: IOICorruption = IOICorruption.ABC
    orders: tuple[IOIOrder, ...] = (IOIOrder.ABBA, IOIOrder.BABA)

    def __post_init__(self) -> None:
        if not isinstance(self.corruption, IOICorruption):
            raise TaskError(f"corruption must be an IOICorruption, got {self.corruption!r}")
        if not self.orders or not all(isinstance(o, IOIOrder) for o in self.orders):
            raise TaskError(f"orders must be a non-empty tuple of IOIOrder, got {self.orders!r}")

    @staticmethod
    def names(tokenizer: TextTokenizer | None) -> list[str]:
        """The name list, restricted to single tokens for ``tokenizer`` when given."""
        names: list[str] = list(_data()["names"])
        if tokenizer is None:
            return names
        kept = [n for n in names if tokenizer.single_token(" " + n) is not None]
        if len(kept) < MIN_NAMES:
            raise TaskError(
                f"only {len(kept)} of {len(names)} IOI names are single tokens for tokenizer "
                f"{tokenizer.name!r}; the task needs at least {MIN_NAMES}"
            )
        return kept

    def stream(self, rng: random.Random, tokenizer: TextTokenizer | None) -> Iterator[PromptPair]:
        data = _data()
        names = self.names(tokenizer)
        templates: list[str] = data["templates"]
        while True:
            t_index = rng.randrange(len(templates))
            order = rng.choice(self.orders)
            template = templates[t_index] if order is IOIOrder.BABA else _abba(templates[t_index])
            io, s, c = rng.sample(names, 3)
            slots = {
                "A": " " + io,
                "B": " " + s,
                "PLACE": rng.choice(data["places"]),
                "OBJECT": rng.choice(data["objects"]),
            }
            # Names are written with their leading space; the template's own space before them goes.
            template = template.replace(" [A]", "[A]").replace(" [B]", "[B]")
            clean, spans = _fill(template, slots)
            s2_start, s2_end = spans["S2"]
            replacement = " " + (c if self.corruption is IOICorruption.ABC else io)
            corrupt = clean[:s2_start] + replacement + clean[s2_end:]
            yield PromptPair(
                clean=clean,
                corrupt=corrupt,
                answers=(" " + io,),
                wrong=(" " + s,),
                candidates=(" " + io, " " + s),
                spans=spans,
                meta={"template": t_index, "order": order.value},
            )
