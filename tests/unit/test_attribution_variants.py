"""EAP-IG-activations and RelP: exact where the model is linear (or the rules exact), one step is EAP,
IG converges in its steps, the LRP rules conserve relevance, rank and sign agreement with exact patching."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformer_lens import HookedTransformer

from circuits.discovery import EAP, EAPIG, EAPIGActivations, EdgePatching, QKRule, RelP, build_method
from circuits.discovery.relp import relevance_hooks
from circuits.errors import HeadgraphError
from circuits.graph import QKV
from circuits.model import with_hooks
from tasks import LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory
from tests.helpers.oracles import spearman

METRIC = LogitDiff()
ATOL = 1e-5
MIN_SPEARMAN = 0.9
"""As for EAP (tests/unit/test_eap.py): rank agreement with exact edge patching on the nearly linear model."""


def _frozen_attention_(model: HookedTransformer) -> HookedTransformer:
    """Zero every query and key weight and bias: each head attends uniformly to the positions so far,
    whatever the input, so an attention-only model without norms is linear in its embeddings."""
    with torch.no_grad():
        for block in model.blocks:
            for name in ("W_Q", "W_K", "b_Q", "b_K"):
                getattr(block.attn, name).zero_()
    return model


def _linear_model(tiny_model: TinyFactory, **overrides: object) -> HookedTransformer:
    cfg: dict[str, object] = {"attn_only": True, "normalization_type": None, "dtype": torch.float64}
    return _frozen_attention_(tiny_model(**(cfg | overrides)))


@pytest.mark.parametrize("method", [EAPIGActivations(ig_steps=3), RelP(), RelP(qk=QKRule.NONE)])
def test_exact_on_a_linear_model(tiny_model: TinyFactory, method: EAPIGActivations | RelP) -> None:
    """Attention-only, no norms, frozen (uniform) patterns: the metric is linear in every sender, the
    LRP rules are exact and IG's path integral is the straight difference, so each method is exact."""
    model = _linear_model(tiny_model)
    data = random_dataset(n=5, length=6, lengths=[6, 5, 6, 4, 6], diff_from=2)
    exact = EdgePatching()(model, data, METRIC, progress=False)
    scores = method(model, data, METRIC, progress=False)
    assert float(exact.values.abs().max()) > 1e-3, "the check needs edges with an effect"
    torch.testing.assert_close(scores.values, exact.values, atol=ATOL, rtol=1e-4)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), diff_from=st.integers(0, 4), steps=st.integers(1, 4))
def test_ig_activations_is_exact_on_linear_models_property(seed: int, diff_from: int, steps: int) -> None:
    """For any random linear model and data, any number of steps: EAP-IG-activations equals exact patching."""
    from tests.helpers.models import tiny_config

    torch.manual_seed(seed)
    from circuits.model import prepare_model_

    cfg = tiny_config(attn_only=True, normalization_type=None, dtype=torch.float64, n_layers=2, seed=seed)
    model = _frozen_attention_(prepare_model_(HookedTransformer(cfg)))
    data = random_dataset(n=3, length=6, seed=seed, diff_from=diff_from)
    exact = EdgePatching()(model, data, METRIC, progress=False)
    scores = EAPIGActivations(ig_steps=steps)(model, data, METRIC, progress=False)
    torch.testing.assert_close(scores.values, exact.values, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"n_key_value_heads": 2, "positional_embedding_type": "rotary", "normalization_type": "RMS"}],
)
def test_ig_activations_with_one_step_is_eap(tiny_model: TinyFactory, overrides: dict[str, object]) -> None:
    model = tiny_model(**overrides)
    data = random_dataset(n=5, length=7, lengths=[7, 6, 7, 5, 7], diff_from=3)
    eap = EAP(batch_size=2)(model, data, METRIC, progress=False)
    one = EAPIGActivations(ig_steps=1, batch_size=2)(model, data, METRIC, progress=False)
    torch.testing.assert_close(one.values, eap.values, atol=ATOL, rtol=0)
    assert one.baseline == eap.baseline


def test_ig_activations_converges_as_steps_grow(tiny_model: TinyFactory) -> None:
    """A Riemann sum of a smooth path integral: doubling the steps changes the scores less and less."""
    model = tiny_model(dtype=torch.float64)
    data = random_dataset(n=4, length=6, diff_from=2)
    s = {m: EAPIGActivations(ig_steps=m)(model, data, METRIC, progress=False).values.double() for m in (1, 2, 8, 16)}
    coarse = float((s[2] - s[1]).abs().max())
    fine = float((s[16] - s[8]).abs().max())
    assert coarse > 0.0
    assert fine < 0.25 * coarse


def test_relp_with_relu_and_frozen_attention_is_eap(tiny_model: TinyFactory) -> None:
    """With ReLU MLPs, no norms and frozen patterns every rule is the gradient (identity rule on ReLU is
    ReLU's derivative), so RelP equals EAP; with GELU it does not (the identity rule is then active)."""
    data = random_dataset(n=4, length=6, diff_from=2)
    relu = _frozen_attention_(tiny_model(act_fn="relu", normalization_type=None, dtype=torch.float64))
    torch.testing.assert_close(
        RelP()(relu, data, METRIC, progress=False).values,
        EAP()(relu, data, METRIC, progress=False).values,
        atol=ATOL,
        rtol=1e-4,
    )
    gelu = _frozen_attention_(tiny_model(normalization_type=None, dtype=torch.float64))
    diff = RelP()(gelu, data, METRIC, progress=False).values - EAP()(gelu, data, METRIC, progress=False).values
    assert float(diff.abs().max()) > 1e-4


@pytest.mark.parametrize("gated", [False, True])
def test_mlp_rules_conserve_relevance(tiny_model: TinyFactory, gated: bool) -> None:
    """Identity and half rule: Σ input × modified gradient at the MLP's pre-activations equals
    Σ output × gradient at its post-activation (LRP's conservation), and values are unchanged."""
    act = "silu" if gated else "gelu"
    model = tiny_model(gated_mlp=gated, act_fn=act, normalization_type="RMS", dtype=torch.float64)
    tokens = random_dataset(n=3, length=6).clean
    store: dict[str, torch.Tensor] = {}

    def keep(name: str):  # type: ignore[no-untyped-def]
        def fn(x: torch.Tensor) -> None:
            x.retain_grad()
            store[name] = x

        return fn

    names = ["blocks.1.mlp.hook_pre", "blocks.1.mlp.hook_post"] + (["blocks.1.mlp.hook_pre_linear"] if gated else [])
    with torch.no_grad():
        plain = model(tokens)
    with torch.enable_grad(), with_hooks(model, relevance_hooks(model) + [(n, keep(n)) for n in names]):
        logits = model(tokens)
        torch.testing.assert_close(logits, plain)
        logits[:, -1, 0].sum().backward()
    post = store["blocks.1.mlp.hook_post"]
    out_relevance = (post * post.grad).sum()
    in_relevance = (store["blocks.1.mlp.hook_pre"] * store["blocks.1.mlp.hook_pre"].grad).sum()
    if gated:
        lin = store["blocks.1.mlp.hook_pre_linear"]
        in_relevance = in_relevance + (lin * lin.grad).sum()
    assert float(out_relevance.detach().abs()) > 1e-6
    torch.testing.assert_close(in_relevance, out_relevance, atol=1e-6, rtol=1e-3)


def test_relp_pure_ah_rule_gives_query_and_key_edges_nothing(tiny_model: TinyFactory) -> None:
    model = tiny_model(n_key_value_heads=2, positional_embedding_type="rotary", normalization_type="RMS")
    data = random_dataset(n=4, length=6, diff_from=2)
    pure = RelP(qk=QKRule.NONE)(model, data, METRIC, progress=False)
    local = RelP()(model, data, METRIC, progress=False)
    qk = torch.tensor([e.qkv in (QKV.Q, QKV.K) for e in pure.graph.edges])
    assert float(pure.values[qk].abs().max()) == 0.0
    assert float(local.values[qk].abs().max()) > 0.0
    torch.testing.assert_close(pure.values[~qk], local.values[~qk])  # values, MLPs, logits: the same rules


@pytest.mark.parametrize("method", [EAPIGActivations(), RelP()])
def test_ranks_and_signs_agree_with_exact_on_a_nearly_linear_model(
    tiny_model: TinyFactory, method: EAPIGActivations | RelP
) -> None:
    model = tiny_model(normalization_type=None)
    data = random_dataset(n=8, length=7, diff_from=4)
    scores = method(model, data, METRIC, progress=False)
    exact = EdgePatching()(model, data, METRIC, progress=False)
    assert spearman(scores.values, exact.values) >= MIN_SPEARMAN
    top = exact.order()[:10]
    assert all(torch.sign(scores.values[i]) == torch.sign(exact.values[i]) for i in top)


def test_ig_activations_differs_from_ig_inputs(tiny_model: TinyFactory) -> None:
    """The two IG paths are different integrals on a non-linear model (the variant is not a rename)."""
    model = tiny_model(dtype=torch.float64)
    data = random_dataset(n=4, length=6, diff_from=2)
    acts = EAPIGActivations(ig_steps=4)(model, data, METRIC, progress=False).values
    inputs = EAPIG(ig_steps=4)(model, data, METRIC, progress=False).values
    assert float((acts - inputs).abs().max()) > 1e-4


def test_settings_and_refusals(tiny_model: TinyFactory) -> None:
    assert build_method("relp", {"qk": "none"}) == RelP(qk=QKRule.NONE)
    assert build_method("eap-ig-activations", {"ig_steps": "3"}) == EAPIGActivations(ig_steps=3)
    with pytest.raises(HeadgraphError, match="qk must be one of"):
        build_method("relp", {"qk": "all"})
    with pytest.raises(HeadgraphError):
        EAPIGActivations(ig_steps=0)
    with pytest.raises(HeadgraphError):
        RelP(batch_size=0)
    with pytest.raises(HeadgraphError, match="no relevance rule"):
        RelP()(tiny_model(act_fn="solu_ln"), random_dataset(n=2), METRIC, progress=False)
