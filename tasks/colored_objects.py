"""Colored Objects (Merullo, Eickhoff & Pavlick 2024, arXiv 2310.08744), their exact generator.

One solved example shot, then the query shot, each of the form::

    Q: On the table, I see an orange textbook, a red puzzle, and a purple cup. What color is the textbook?
    A: Orange
    Q: On the table, there is a blue pencil, a black necklace, and a yellow lighter. What color is the pencil?
    A:                                                                              → " Blue"

Each shot lists 3 objects (of 17) with 3 distinct colours (of 8); the example shot's objects and
colours are disjoint from the query shot's. The queried object is uniform over the list. The answer
is the title-cased colour with a leading space. The corrupt prompt asks about a different object of
the same list (Merullo's "mindiff" corruption), so its answer is that object's colour, which is
the competing token of the logit difference. Candidates are the colours listed in the query shot
(chance 1/3). A harder variant than the paper's: ``shots=0`` may list up to all 8 colours
(``n_objects`` ≤ 8; with example shots ≤ 4, since their colours are disjoint from the query's).

Tokenizer facts (SmolLM2, measured): the 8 colours are single tokens with a leading space both
lower- and title-cased; 14 of the 17 objects are single tokens (" mug", " leash" and " bracelet"
are two). Objects stay in the lists as the paper has them; the corrupt object is drawn among the
list's other objects with the queried object's token length, so clean and corrupt prompts keep
equal lengths whenever the list allows it (otherwise validation drops the pair and counts it).

Named positions (query shot): ``object0..2`` and ``color0..2`` (the listed objects and their
colours), ``query`` (the object in the question), ``answer_color`` and ``wrong_color`` (the listed
colours of the clean and of the corrupt queried object).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Int
from torch import Tensor

from tasks.answers import AnswerRoles, names_matching, tokens_at
from tasks.base import TASKS, PromptPair, PromptPairDataset, Task
from tasks.errors import TaskError
from tasks.text import Prompt, article
from tasks.tokenizer import TextTokenizer
from tasks.words import load_data, single_token_words

__all__ = ["ColoredObjects", "parse_queried_color"]

MAX_OBJECTS_PER_SHOT = 4
"""Example and query shots use disjoint colours, so 8 colours allow at most 4 objects per shot."""

MAX_OBJECTS_ZERO_SHOT = 8
"""Without example shots the query shot may list every colour (a harder variant than Merullo's)."""


def parse_queried_color(data: PromptPairDataset) -> Int[Tensor, "batch 1"]:
    """Colored Objects, label-free: the colour listed before the object that the question names.

    The question's object token (``query``) is matched against the listed objects' tokens
    (``object0…``); the colour span of the one match is the parsed position. No answer label (nor
    ``answer_color``) is read. ``-1`` where the question's object matches no listed object or several.
    """
    objects = names_matching(data, r"object\d+")
    tok = tokens_at(data, ["query", *objects])
    match = tok[:, 1:] == tok[:, :1]  # (batch, n_objects)
    colors = torch.stack([data.positions[f"color{n.removeprefix('object')}"] for n in objects], 1).cpu()
    one = match.sum(1) == 1
    return torch.where(one, (colors * match).sum(1), -1)[:, None]


@TASKS.register("colored-objects")
@dataclass(frozen=True)
class ColoredObjects(Task):
    """Name the colour of the queried object, after solved example shots.

    Attributes:
        shots: solved example shots before the query shot (Merullo et al.: 1).
        n_objects: objects listed per shot (Merullo et al.: 3).
    """

    name: ClassVar[str] = "colored-objects"
    description: ClassVar[str] = "'... a blue pencil, a black necklace ... What color is the pencil?\\nA:' → ' Blue'"
    answer_roles: ClassVar[AnswerRoles] = AnswerRoles("answer_color", r"color\d+", parse_queried_color)
    shots: int = 1
    n_objects: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.shots, int) or isinstance(self.shots, bool) or self.shots < 0:
            raise TaskError(f"shots must be a non-negative integer, got {self.shots!r}")
        most = MAX_OBJECTS_PER_SHOT if self.shots else MAX_OBJECTS_ZERO_SHOT
        if not isinstance(self.n_objects, int) or not 2 <= self.n_objects <= most:
            raise TaskError(
                f"n_objects must be an integer from 2 to {most} with {self.shots} example shots, got {self.n_objects!r}"
            )

    def colors(self, tokenizer: TextTokenizer | None) -> list[str]:
        """The colours whose title-cased answer (``" Blue"``) is one token for ``tokenizer``."""
        colors: list[str] = load_data("colored_objects")["colors"]
        title = single_token_words(
            [c.title() for c in colors],
            tokenizer,
            task=self.name,
            what="colours",
            minimum=(2 if self.shots else 1) * self.n_objects,
        )
        return [c.lower() for c in title]

    def _shot(
        self, rng: random.Random, objects: list[str], colors: list[str], query: int, names: bool
    ) -> tuple[Prompt, str]:
        """One question (its spans named when ``names``) and the queried object's colour."""
        data = load_data("colored_objects")
        items = Prompt()
        for i, color in enumerate(colors):
            if i:
                items.add(", and " if i == len(objects) - 1 else ", ")
            items.add(article(color) + " ")
            items.add(color, f"color{i}" if names else None).add(" ")
            items.add(objects[i], f"object{i}" if names else None)
        values = {"surface": rng.choice(data["surfaces"]), "see": rng.choice(data["see"]), "items": items}
        values["object"] = objects[query]
        shot = Prompt().fill(data["template"], values, {"object": "query"} if names else None)
        return shot, colors[query]

    def stream(self, rng: random.Random, tokenizer: TextTokenizer | None) -> Iterator[PromptPair]:
        all_objects: list[str] = load_data("colored_objects")["objects"]
        colors = self.colors(tokenizer)
        length = {o: len(tokenizer.encode(" " + o)) if tokenizer else 1 for o in all_objects}
        k = self.n_objects
        while True:
            query_objects = rng.sample(all_objects, k)
            query_colors = rng.sample(colors, k)
            prompt = Prompt()
            for _ in range(self.shots):
                rest_objects = [o for o in all_objects if o not in query_objects]
                rest_colors = [c for c in colors if c not in query_colors]
                shot, color = self._shot(
                    rng, rng.sample(rest_objects, k), rng.sample(rest_colors, k), rng.randrange(k), False
                )
                prompt.extend(shot).add(f" {color.title()}\n")
            q = rng.randrange(k)
            shot, color = self._shot(rng, query_objects, query_colors, q, True)
            prompt.extend(shot)
            others = [i for i in range(k) if i != q]
            same_length = [i for i in others if length[query_objects[i]] == length[query_objects[q]]]
            c = rng.choice(same_length or others)
            start, end = prompt.spans["query"]
            corrupt = prompt.text[:start] + query_objects[c] + prompt.text[end:]
            spans = dict(prompt.spans)
            spans["answer_color"] = spans[f"color{q}"]
            spans["wrong_color"] = spans[f"color{c}"]
            yield PromptPair(
                clean=prompt.text,
                corrupt=corrupt,
                answers=(" " + color.title(),),
                wrong=(" " + query_colors[c].title(),),
                candidates=tuple(" " + x.title() for x in query_colors),
                spans=spans,
                meta={"query_index": q, "corrupt_index": c, "object": query_objects[q]},
            )
