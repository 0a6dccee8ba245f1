"""Intervention primitives: exact effects on tiny models, composition, and hooks left behind."""

from __future__ import annotations

import math

import pytest
import torch

from circuits.discovery import Ablation
from circuits.errors import HeadgraphError
from circuits.interventions import AblateHead, ForceAttention, ScaleAttention, ScaleHead, SteerHead, intervene
from circuits.model import hook_pattern, hook_z
from tests.helpers.models import TinyFactory

ATOL = 1e-5

TOKENS = torch.tensor([[3, 7, 1, 9, 4, 2], [5, 5, 8, 0, 6, 1]])


def _hook_counts(model: torch.nn.Module) -> dict[str, int]:
    return {name: len(hp._forward_hooks) for name, hp in model.hook_dict.items()}  # type: ignore[union-attr]


def test_no_hooks_left_behind_after_an_exception(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    before = _hook_counts(model)
    key_pos = torch.tensor([[0], [1]])
    edits = (ScaleHead(0, 1, 0.5), ForceAttention(1, 2, torch.tensor([5, 5]), key_pos), AblateHead(2, 0))
    with pytest.raises(RuntimeError, match="inside"), intervene(model, *edits):
        model(TOKENS)
        raise RuntimeError("inside the block")
    assert _hook_counts(model) == before
    with intervene(model, *edits):
        assert _hook_counts(model) != before
    assert _hook_counts(model) == before


def test_zero_scale_equals_zero_ablation_and_resample_equals_patching(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    with torch.no_grad(), intervene(model, ScaleHead(1, 3, 0.0)):
        a = model(TOKENS)
    with torch.no_grad(), intervene(model, AblateHead(1, 3, Ablation.ZERO)):
        b = model(TOKENS)
    torch.testing.assert_close(a, b)
    other = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])
    _, cache = model.run_with_cache(other)
    ref = cache[hook_z(1)][:, :, 3]
    with torch.no_grad(), intervene(model, AblateHead(1, 3, Ablation.RESAMPLE, ref)):
        patched = model(TOKENS)
        _, seen = model.run_with_cache(TOKENS)
    torch.testing.assert_close(seen[hook_z(1)][:, :, 3], ref)
    assert not torch.allclose(patched, b)
    mean = cache[hook_z(1)][:, :, 3].mean((0, 1))
    with torch.no_grad(), intervene(model, AblateHead(1, 3, Ablation.MEAN, mean)):
        _, seen = model.run_with_cache(TOKENS)
    torch.testing.assert_close(seen[hook_z(1)][:, :, 3], mean.expand(2, 6, -1))


def test_steering_changes_the_head_output_by_bias_times_w_o(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    bias = torch.randn(model.cfg.d_head)
    _, clean = model.run_with_cache(TOKENS)
    with torch.no_grad(), intervene(model, SteerHead(0, 2, bias)):
        _, steered = model.run_with_cache(TOKENS)
    delta = steered["blocks.0.hook_attn_out"] - clean["blocks.0.hook_attn_out"]
    torch.testing.assert_close(delta, (bias @ model.W_O[0, 2]).expand_as(delta), atol=ATOL, rtol=0)
    scale = torch.full((model.cfg.d_head,), -1.0)
    with torch.no_grad(), intervene(model, SteerHead(0, 2, torch.zeros(model.cfg.d_head), scale)):
        _, off = model.run_with_cache(TOKENS)
    assert off[hook_z(0)][:, :, 2].abs().max() == 0


def test_force_attention_puts_uniform_mass_on_the_keys(tiny_model: TinyFactory) -> None:
    model = tiny_model(n_key_value_heads=2, positional_embedding_type="rotary")
    q = torch.tensor([5, 4])
    keys = torch.tensor([[1, 3], [2, -1]])
    with torch.no_grad(), intervene(model, ForceAttention(2, 1, q, keys)):
        _, cache = model.run_with_cache(TOKENS)
    p = cache[hook_pattern(2)]
    torch.testing.assert_close(p[0, 1, 5], torch.tensor([0, 0.5, 0, 0.5, 0, 0]))
    torch.testing.assert_close(p[1, 1, 4], torch.tensor([0, 0, 1.0, 0, 0, 0]))
    _, clean = model.run_with_cache(TOKENS)
    torch.testing.assert_close(p[:, 0], clean[hook_pattern(2)][:, 0])  # other heads untouched
    with pytest.raises(HeadgraphError, match="later key"):
        ForceAttention(0, 0, torch.tensor([1]), torch.tensor([[2]]))
    with pytest.raises(HeadgraphError, match="at least one key"):
        ForceAttention(0, 0, torch.tensor([1]), torch.tensor([[-1]]))


@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0, 4.0])
def test_scale_attention_equals_adding_log_gamma_to_the_score(tiny_model: TinyFactory, gamma: float) -> None:
    """ZeroTuning's renormalised scaling of token 0 is the same as adding ln γ to its pre-softmax score."""
    model = tiny_model()
    keys = torch.zeros(2, 1, dtype=torch.long)
    with torch.no_grad(), intervene(model, ScaleAttention(1, 2, keys, gamma)):
        _, ours = model.run_with_cache(TOKENS)

    def add_log_gamma(scores: torch.Tensor, hook: object) -> torch.Tensor:
        scores = scores.clone()
        scores[:, 2, :, 0] += math.log(gamma) if gamma > 0 else -1e9
        return scores

    with torch.no_grad():
        model.add_hook("blocks.1.attn.hook_attn_scores", add_log_gamma)
        try:
            _, ref = model.run_with_cache(TOKENS)
        finally:
            model.reset_hooks()
    rows = slice(1, None) if gamma == 0 else slice(None)  # query 0 sees only token 0: nothing to move
    torch.testing.assert_close(ours[hook_pattern(1)][:, :, rows], ref[hook_pattern(1)][:, :, rows], atol=ATOL, rtol=0)
    torch.testing.assert_close(ours[hook_pattern(1)].sum(-1), torch.ones(2, 4, 6), atol=ATOL, rtol=0)


def test_edits_on_one_activation_compose_in_order(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    with torch.no_grad(), intervene(model, ScaleHead(0, 0, 2.0), ScaleHead(0, 0, 3.0)):
        _, a = model.run_with_cache(TOKENS)
    with torch.no_grad(), intervene(model, ScaleHead(0, 0, 6.0)):
        _, b = model.run_with_cache(TOKENS)
    torch.testing.assert_close(a[hook_z(0)], b[hook_z(0)])


def test_bad_edits_are_clear_errors(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    with pytest.raises(HeadgraphError, match="does not exist"), intervene(model, ScaleHead(9, 0, 1.0)):
        pass
    with pytest.raises(HeadgraphError, match="needs a reference"):
        AblateHead(0, 0, Ablation.MEAN)
    with pytest.raises(HeadgraphError, match="non-negative"):
        ScaleAttention(0, 0, torch.zeros(1, 1, dtype=torch.long), -1.0)
    with pytest.raises(HeadgraphError, match="shape"), intervene(model, SteerHead(0, 0, torch.zeros(3))):
        pass
