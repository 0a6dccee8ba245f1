"""Retrieval task and retrieval-head score: settings, prompts, and the planted copy head it must find."""

from __future__ import annotations

import random

import pytest
import torch

from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.groundtruth import InductionConfig, induction_model
from circuits.model import attention_weights
from circuits.seed.retrieval import NeedlePrompt, decode, needle_prompts, retrieval_knockout, retrieval_scores
from tasks import Retrieval, TaskError, TextTokenizer
from tasks.words import load_data

EXACT = 1e-9
"""Tolerance on scores that are exact fractions (copies / needle length)."""


@pytest.mark.parametrize(
    "bad", [{"haystack": -1}, {"depth": 1.5}, {"depth": -0.1}, {"needle_words": 0}, {"needle_words": 13}]
)
def test_bad_settings_raise(bad: dict[str, object]) -> None:
    with pytest.raises(TaskError):
        Retrieval(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_needle_sits_at_its_depth_and_only_its_words_are_corrupted(depth: float) -> None:
    filler = set(load_data("retrieval")["filler"])
    for pair in Retrieval(haystack=10, depth=depth, needle_words=3).pairs(8, seed=1):
        body, question = pair.clean.split("\nQuestion:")
        sentences = [s.strip() + "." for s in body.split(".") if s.strip()]
        needle_at = [i for i, s in enumerate(sentences) if s.startswith("The secret words")]
        assert needle_at == [round(depth * 10)] and len(sentences) == 11
        assert all(s in filler for i, s in enumerate(sentences) if i != needle_at[0])
        words = sentences[needle_at[0]].rstrip(".").split(" ")[-3:]
        assert pair.answers == (" " + words[0],) and pair.candidates == tuple(" " + w for w in words)
        assert str(pair.meta["needle"]) == " ".join(words) and pair.meta["key"] in question
        clean, corrupt = pair.clean.split(), pair.corrupt.split()
        differ = [(c.strip("."), d.strip(".")) for c, d in zip(clean, corrupt, strict=True) if c != d]
        assert [c for c, _ in differ] == words and not set(words) & {d for _, d in differ}


def test_needle_positions_hold_the_needle_tokens(smollm2_tokenizer: TextTokenizer) -> None:
    data = Retrieval(haystack=4, needle_words=5).dataset(smollm2_tokenizer, 6, seed=0)
    for pair, prompt in zip(data.pairs, needle_prompts(data), strict=True):
        assert prompt.end - prompt.start == 5
        text = "".join(smollm2_tokenizer.decode(int(t)) for t in prompt.needle)
        assert text == " " + str(pair.meta["needle"])
        assert int(prompt.needle[0]) == smollm2_tokenizer.single_token(pair.answers[0])


def _planted_prompts(half: int, n: int, seed: int) -> list[NeedlePrompt]:
    """``BOS x0 … x{half-1} x0``: an induction head continues with ``x1 … x{half-2}``, the needle."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        xs = rng.sample(range(1, 13), half)
        tokens = torch.tensor([0, *xs, xs[0]])
        out.append(NeedlePrompt(tokens, 2, half))  # x1 … x{half-2}: what fits the 2·half context
    return out


def test_planted_copy_head_scores_one_and_non_copying_heads_zero() -> None:
    planted = induction_model()
    prompts = _planted_prompts(8, 5, seed=0)
    result = retrieval_scores(planted.model, prompts, extra_tokens=0)
    assert result.n_success == 5 and all(result.exact)
    ind, prev = planted.roles["induction"], planted.roles["previous-token"]
    assert abs(float(result.scores[ind.layer, ind.head]) - 1.0) < EXACT  # copies every needle token
    assert float(result.scores[prev.layer, prev.head]) == 0.0
    # the score reads attention: a decoy with the induction head's query-key weights copies as well
    w = attention_weights(planted.model, ind.layer)
    for node, score in result.heads():
        same_qk = node.layer == ind.layer and torch.equal(w.W_Q[node.head], w.W_Q[ind.head])
        assert node == ind or same_qk, (node, score)
    assert result.top(1) == [ind]


def test_knockout_of_the_copy_head_breaks_retrieval_and_random_distractors_do_not() -> None:
    planted = induction_model(InductionConfig(seed=3))
    prompts = _planted_prompts(8, 4, seed=1)
    ind = planted.roles["induction"]
    out = retrieval_knockout(planted.model, prompts, [ind], draws=3, seed=0, exclude=[planted.roles["previous-token"]])
    assert out.accuracy == 1.0 and out.top_accuracy == 0.0
    assert out.random_accuracy == (1.0, 1.0, 1.0)  # distractors write only to JUNK
    assert all(ind not in hs and len(hs) == 1 for hs in out.random_heads)


def test_cached_greedy_decoding_matches_full_recompute(tiny_model) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(n_ctx=24)
    tokens = torch.randint(0, 50, (12,), generator=torch.Generator().manual_seed(0))
    got = decode(model, NeedlePrompt(tokens, 2, 6), 6).tokens
    seq = tokens.tolist()
    with torch.no_grad():
        for _ in range(6):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert list(got) == seq[12:]


def test_bad_inputs_raise(tiny_model) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(n_ctx=16)
    with pytest.raises(HeadgraphError, match="not inside"):
        NeedlePrompt(torch.arange(5), 3, 7)
    with pytest.raises(HeadgraphError, match="do not fit"):
        decode(model, NeedlePrompt(torch.arange(14), 2, 4), 4)
    with pytest.raises(HeadgraphError, match="at least one"):
        retrieval_scores(model, [])
    with pytest.raises(HeadgraphError, match="left to draw"):
        retrieval_knockout(
            model,
            [NeedlePrompt(torch.arange(5), 1, 3)],
            [Node.of_head(0, 0)],
            exclude=[Node.of_head(layer, h) for layer in range(3) for h in range(4)],
        )


@pytest.mark.slow
def test_smollm2_has_few_strong_retrieval_heads(smollm2) -> None:  # type: ignore[no-untyped-def]
    from circuits.model import text_tokenizer

    data = Retrieval(haystack=10).dataset(text_tokenizer(smollm2), 4, seed=0)
    result = retrieval_scores(smollm2, needle_prompts(data))
    assert result.n_success >= 2  # measured: 3 of these 4 recall the needle
    assert float(result.scores.max()) > 0.5 and 0 < result.fraction() < 0.2  # measured on 12 prompts: 9.6%
