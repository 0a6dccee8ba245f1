"""Token-level prompt pairs: a :class:`~tasks.PromptPairDataset` built from token ids, not text.

Tasks for hand-built models (planted circuits) have no text and no tokenizer: their prompts are
token ids chosen directly. :class:`TokenPair` holds one such pair and :func:`token_dataset` batches
pairs into the same :class:`~tasks.PromptPairDataset` that text tasks produce, so every discovery
method and metric runs on them unchanged. Each pair is also recorded as a readable
:class:`~tasks.PromptPair` (tokens rendered as ``t<id>``) for saved results.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from circuits.errors import HeadgraphError
from tasks import PromptPair, PromptPairDataset, TokenRows, collate
from tasks.answers import AnswerRoles

__all__ = ["TokenPair", "TokenPairStream", "render", "token_dataset"]


@dataclass(frozen=True)
class TokenPair:
    """One clean/corrupt pair of token sequences with its answer tokens.

    Attributes:
        clean: clean prompt; its answer is predicted at the last position.
        corrupt: corrupt prompt, same length.
        answers: correct next tokens of the clean prompt.
        wrong: competing tokens.
        positions: named token positions (e.g. ``S2``).
    """

    clean: tuple[int, ...]
    corrupt: tuple[int, ...]
    answers: tuple[int, ...]
    wrong: tuple[int, ...]
    positions: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.clean) != len(self.corrupt) or not self.clean:
            raise ValueError(
                f"clean and corrupt need the same, non-zero length: {len(self.clean)}, {len(self.corrupt)}"
            )
        if not self.answers:
            raise ValueError("a pair needs at least one answer token")


def render(tokens: Sequence[int]) -> str:
    """Token ids as readable text.

    Examples:
        >>> render([0, 7, 3])
        't0 t7 t3'
    """
    return " ".join(f"t{t}" for t in tokens)


def token_dataset(task: str, seed: int, pairs: Sequence[TokenPair], *, pad_id: int = 0) -> PromptPairDataset:
    """Batch ``pairs`` (right-padded with ``pad_id``) into a dataset; candidates are answers + wrong.

    Examples:
        >>> pairs = [TokenPair((0, 5, 6), (0, 5, 7), (6,), (7,)), TokenPair((0, 4), (0, 3), (4,), (3,))]
        >>> d = token_dataset("demo", 0, pairs)
        >>> d.clean.tolist(), d.answer_pos.tolist()
        ([[0, 5, 6], [0, 4, 0]], [2, 1])
    """
    if not pairs:
        raise ValueError("a dataset needs at least one pair")
    rows = [
        (
            PromptPair(
                clean=render(p.clean),
                corrupt=render(p.corrupt),
                answers=tuple(f"t{t}" for t in p.answers),
                wrong=tuple(f"t{t}" for t in p.wrong),
                candidates=tuple(f"t{t}" for t in (*p.answers, *p.wrong)),
            ),
            TokenRows(p.clean, p.corrupt, p.answers, p.wrong, (*p.answers, *p.wrong), p.positions),
        )
        for p in pairs
    ]
    return collate(task, seed, "token-ids", pad_id, rows)


class TokenPairStream:
    """A seeded stream of token pairs, as lists and as datasets (mixin for planted tasks).

    Subclasses set ``name`` and ``pad_id`` and draw one pair from a random generator in ``pair``; one
    whose prompts hold their answers declares where in ``answer_roles`` (as text tasks do,
    :attr:`tasks.Task.answer_roles`) and registers it in :data:`tasks.answers.TOKEN_ROLES` under ``name``.
    """

    name: ClassVar[str]
    pad_id: ClassVar[int]
    answer_roles: ClassVar[AnswerRoles | None] = None

    def pair(self, rng: random.Random) -> TokenPair:
        """One pair drawn from ``rng``."""
        raise NotImplementedError

    def pairs(self, n: int, *, seed: int) -> list[TokenPair]:
        """The first ``n`` pairs of the stream seeded with ``seed``."""
        rng = random.Random(seed)
        return [self.pair(rng) for _ in range(n)]

    def dataset(self, n: int, *, seed: int) -> PromptPairDataset:
        """``n`` pairs as a dataset (right-padded with ``pad_id``).

        Raises:
            HeadgraphError: ``n`` is not positive.
        """
        if n <= 0:
            raise HeadgraphError(f"the number of pairs must be positive, got {n}")
        return token_dataset(self.name, seed, self.pairs(n, seed=seed), pad_id=self.pad_id)
