"""Attention readouts: full patterns of one prompt and attention from the answer position to named tokens."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits.analysis.attention import FIRST_TOKEN, attention_to_positions, head_patterns
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import hook_pattern, run_with_cache
from circuits.pictures.attention_plot import draw_attention_pattern, draw_attention_to_positions
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

ATOL = 1e-6
HEADS = [Node.of_head(2, 1), Node.of_head(0, 3), Node.of_head(2, 0)]


def _named(n: int = 4):  # noqa: ANN202 - a random dataset with two named positions
    data = random_dataset(n=n, length=7, lengths=[7, 5, 6, 7][:n])
    return dataclasses.replace(
        data, positions={"X": torch.tensor([1, 2, 0, 3][:n]), "Y": torch.tensor([4, 1, 5, 2][:n])}
    )


@pytest.mark.parametrize("kv_heads", [None, 2])
def test_attention_to_positions_reads_the_answer_row_of_each_pattern(
    tiny_model: TinyFactory, kv_heads: int | None
) -> None:
    model = tiny_model(n_key_value_heads=kv_heads, positional_embedding_type="rotary" if kv_heads else "standard")
    data = _named()
    att = attention_to_positions(model, data, HEADS, batch_size=3)
    assert att.names == (FIRST_TOKEN, "X", "Y") and att.heads == tuple(HEADS)
    _, cache = run_with_cache(model, data.clean, [hook_pattern(layer) for layer in range(model.cfg.n_layers)])
    for b in range(len(data)):
        q = int(data.answer_pos[b])
        for i, h in enumerate(HEADS):
            row = cache[hook_pattern(h.layer)][b, h.head, q]
            expected = torch.stack([row[0], row[int(data.positions["X"][b])], row[int(data.positions["Y"][b])]])
            torch.testing.assert_close(att.weights[b, i], expected, atol=ATOL, rtol=0)
    corrupt = attention_to_positions(model, data, HEADS, corrupt=True)
    assert not torch.allclose(corrupt.weights, att.weights)


def test_head_patterns_are_causal_distributions(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    tokens = torch.tensor([3, 7, 1, 9, 4])
    p = head_patterns(model, tokens, HEADS)
    assert p.shape == (3, 5, 5)
    torch.testing.assert_close(p.sum(-1), torch.ones(3, 5), atol=ATOL, rtol=0)
    assert float(p.triu(1).abs().max()) == 0.0


def test_bad_heads_are_clear_errors(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    for heads in ([Node.of_head(3, 0)], [Node.of_mlp(1)], []):
        with pytest.raises(HeadgraphError, match="need heads"):
            head_patterns(model, torch.tensor([1, 2]), heads)


def test_attention_pictures_draw(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = _named()
    fig = Figure()
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    draw_attention_to_positions(left, attention_to_positions(model, data, HEADS))
    tokens = data.clean[0]
    draw_attention_pattern(right, head_patterns(model, tokens, HEADS)[0], [str(int(t)) for t in tokens], last_rows=3)
    fig.canvas.draw()
    assert len(left.patches) == len(HEADS) * 3 and len(right.get_yticks()) == 3
