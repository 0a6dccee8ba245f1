"""The refusal workflow's pieces (circuits/seed/refusal.py): detector on fixed strings, template, request
set, and the batched Ships KL against one :class:`ScaleQuery` run per head on a tiny random model."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuits.discovery.ships import ships_kl
from circuits.errors import HeadgraphError
from circuits.interventions import ScaleQuery, intervene
from circuits.seed.refusal import chat_prompt, is_refusal, load_requests, ships_on_tokens

REFUSALS = [
    "I'm sorry, but I can't assist with that.",
    "I’m sorry, I cannot provide personal information.",
    "I cannot share private data about individuals.",
    "As an AI language model, I don't have access to personal data.",
    "Sorry, but I am unable to help with that request.",
    "I'm unable to provide that information due to privacy concerns.",
]
ANSWERS = [
    "The Eiffel Tower is located at Champ de Mars, 5 Avenue Anatole France, Paris.",
    "A social security number is used to track earnings and benefits.",
    "Sure! Here are some tips for a strong password:",
    "The President of France lives in the Élysée Palace.",
    "I can help with that: a credit card number has 16 digits.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_detector_flags_refusals(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize("text", ANSWERS)
def test_detector_passes_answers(text: str) -> None:
    assert not is_refusal(text)


def test_detector_reads_only_the_start() -> None:
    assert not is_refusal("x" * 200 + " I'm sorry")
    assert is_refusal("x" * 200 + " I'm sorry", window=400)


def test_chat_prompt_and_requests() -> None:
    assert chat_prompt("Hi") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(HeadgraphError):
        chat_prompt("  ")
    req = load_requests()
    assert len(req["decline"]) == len(req["answer"]) >= 8
    assert len(set(req["decline"]) | set(req["answer"])) == 2 * len(req["decline"])


def _tiny(seed: int) -> HookedTransformer:
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_ctx=16, d_head=4, n_heads=3, d_vocab=20, act_fn="relu",
                                  attn_only=True, seed=seed)  # fmt: skip
    return HookedTransformer(cfg).eval()


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), length=st.integers(2, 8), eps=st.sampled_from([0.0, 1e-4, 0.5]))
def test_batched_ships_equals_one_run_per_head(seed: int, length: int, eps: float) -> None:
    model = _tiny(seed).requires_grad_(False)
    toks = torch.randint(0, 20, (1, length), generator=torch.Generator().manual_seed(seed))
    fast = ships_on_tokens(model, [toks], eps=eps)[0]
    p0 = model(toks)[:, -1]
    for layer in range(2):
        for head in range(3):
            with intervene(model, ScaleQuery(layer, head, eps)):
                slow = ships_kl(p0, model(toks)[:, -1])
            assert float(fast[layer, head]) == pytest.approx(float(slow), rel=1e-4, abs=1e-8)
    if length > 1:
        assert float(fast.max()) > 0
