"""Colored Objects: Merullo et al.'s generator, checked against its specification."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

from tasks import ColoredObjects, TextTokenizer
from tasks.errors import TaskError
from tasks.words import load_data

N_SPEC = 300
"""Pairs drawn for the distribution checks."""

MIN_QUERY_SHARE = 0.25
"""Each of the 3 query indices is uniform (1/3); allow sampling noise down to this share."""

ITEM = re.compile(r"an? (\w+) (\w+)")


def _shots(text: str) -> list[str]:
    return text.split("Q: ")[1:]


def test_generator_follows_the_specification() -> None:
    data = load_data("colored_objects")
    pairs = ColoredObjects().pairs(N_SPEC, seed=0)
    queries: Counter[int] = Counter()
    for p in pairs:
        example, query = _shots(p.clean)
        ex_items = ITEM.findall(example.split(". What")[0])
        q_items = ITEM.findall(query.split(". What")[0])
        assert len(ex_items) == len(q_items) == 3
        ex_colors, ex_objects = {c for c, _ in ex_items}, {o for _, o in ex_items}
        q_colors, q_objects = [c for c, _ in q_items], [o for _, o in q_items]
        assert len(set(q_colors)) == 3 and len(set(q_objects)) == 3
        assert not ex_colors & set(q_colors) and not ex_objects & set(q_objects), "example shot is disjoint"
        assert set(q_colors) <= set(data["colors"]) and set(q_objects) <= set(data["objects"])
        # the example shot is solved: its answer is its queried object's colour, title-cased
        ex_query = re.search(r"What color is the (\w+)\?\nA: (\w+)\n", example)
        assert ex_query is not None
        assert dict((o, c) for c, o in ex_items)[ex_query.group(1)].title() == ex_query.group(2)
        # the clean answer is the queried object's colour; the corrupt one asks another listed object
        asked = re.search(r"What color is the (\w+)\?\nA:$", p.clean)
        asked_corrupt = re.search(r"What color is the (\w+)\?\nA:$", p.corrupt)
        assert asked is not None and asked_corrupt is not None
        colour_of = {o: c for c, o in q_items}
        assert p.answers == (" " + colour_of[asked.group(1)].title(),)
        assert p.wrong == (" " + colour_of[asked_corrupt.group(1)].title(),)
        assert asked.group(1) != asked_corrupt.group(1) and asked_corrupt.group(1) in q_objects
        assert p.candidates == tuple(" " + c.title() for c in q_colors)
        assert p.clean.replace(asked.group(0), "") == p.corrupt.replace(asked_corrupt.group(0), "")
        queries[q_objects.index(asked.group(1))] += 1
    assert min(queries.values()) / N_SPEC > MIN_QUERY_SHARE


def test_only_the_queried_object_token_differs(smollm2_tokenizer: TextTokenizer) -> None:
    data = ColoredObjects().dataset(smollm2_tokenizer, 40, seed=1)
    rows = torch.arange(len(data))
    for i in rows.tolist():
        (cols,) = (data.clean[i] != data.corrupt[i]).nonzero(as_tuple=True)
        query = int(data.positions["query"][i])
        # the object's tokens, from its first (two for " mug", " leash", " bracelet")
        assert cols.tolist() == list(range(query, query + len(cols))) and 1 <= len(cols) <= 2
    assert bool((data.positions["answer_color"] != data.positions["wrong_color"]).all())
    # the listed colour tokens are the lower-case forms of the answer and competing colours
    for i, pair in enumerate(data.pairs[:10]):
        listed = smollm2_tokenizer.decode(int(data.clean[i, data.positions["answer_color"][i]]))
        other = smollm2_tokenizer.decode(int(data.clean[i, data.positions["wrong_color"][i]]))
        assert listed.strip().title() == pair.answers[0].strip() and other.strip().title() == pair.wrong[0].strip()


def test_more_shots_and_fewer_objects() -> None:
    p = ColoredObjects(shots=2, n_objects=2).pairs(1, seed=0)[0]
    assert p.clean.count("Q: ") == 3 and len(p.candidates) == 2
    assert ColoredObjects(shots=0).pairs(1, seed=0)[0].clean.startswith("Q: On the ")


def test_zero_shot_lists_up_to_every_colour(smollm2_tokenizer: TextTokenizer) -> None:
    """The harder variant: without example shots a query may list all 8 colours; with shots at most 4."""
    data = ColoredObjects(shots=0, n_objects=8).dataset(smollm2_tokenizer, 24, seed=3)
    assert len(data) == 24
    for pair in data.pairs:
        assert pair.clean.count("Q: ") == 1 and len(set(pair.candidates)) == 8
        assert pair.answers[0] in pair.candidates and pair.wrong[0] in pair.candidates
        assert pair.answers[0] != pair.wrong[0]
    for bad in ({"shots": 1, "n_objects": 5}, {"shots": 0, "n_objects": 9}):
        with pytest.raises(TaskError, match="n_objects must be"):
            ColoredObjects(**bad)
