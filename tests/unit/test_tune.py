"""ZeroTuning / ACT: the sink calibration's invariants, profiling on the planted model, the search."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits.errors import HeadgraphError
from circuits.groundtruth import induction_model
from circuits.interventions import calibrate_sinks
from circuits.seed.tune import Objective, Recipe, TuneConfig, evaluate, profile, tune
from tests.helpers.data import random_dataset

ZERO_GAIN = 1e-12
"""Distractors write only to JUNK: editing their attention changes no logit beyond float64 rounding."""


def _pattern(seed: int, b: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(b, n, n, generator=g, dtype=torch.float64) * 3
    scores[:, :, 0] += 2.0  # a first-token sink
    mask = torch.ones(n, n, dtype=torch.bool).tril()
    return scores.masked_fill(~mask, -torch.inf).softmax(-1)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(2, 9), st.floats(0, 1), st.floats(0.01, 0.99))
def test_calibration_keeps_rows_normalised_and_causal(seed: int, b: int, n: int, beta: float, tau: float) -> None:
    a = _pattern(seed, b, n)
    out = calibrate_sinks(a, beta, tau)
    assert torch.allclose(out.sum(-1), torch.ones(b, n, dtype=torch.float64), atol=1e-12)
    assert bool((out[:, ~torch.ones(n, n, dtype=torch.bool).tril()] == 0).all())
    assert bool((out >= 0).all())
    assert torch.equal(calibrate_sinks(a, 1.0, tau), a) or torch.allclose(calibrate_sinks(a, 1.0, tau), a, atol=1e-15)
    # the first sink (if any) never loses attention
    received = a.sum(-2) / torch.arange(n, 0, -1, dtype=torch.float64)
    for i in range(b):
        sinks = (received[i] > tau).nonzero().flatten()
        if len(sinks):
            assert bool((out[i, :, sinks[0]] >= a[i, :, sinks[0]] - 1e-15).all())


@pytest.mark.parametrize("recipe", list(Recipe))
def test_profile_of_distractors_is_exactly_zero(recipe: Recipe) -> None:
    planted = induction_model()
    val = planted.task.dataset(12, seed=0)
    config = TuneConfig(recipe=recipe, tau=0.05)
    prof = profile(planted.model, val, config)
    for node in planted.distractors:
        assert bool((prof.gain[:, node.layer, node.head].abs() < ZERO_GAIN).all()), node
    assert evaluate(planted.model, val, recipe) == prof.base


@pytest.mark.parametrize("objective", list(Objective))
def test_tune_picks_the_best_of_its_grid_and_runs_controls(tiny_model, objective: Objective) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(dtype=torch.float64)
    val, test = random_dataset(8, 9, seed=0), random_dataset(8, 9, seed=1)
    config = TuneConfig(objective=objective, k=3, controls=2, layers=(0, 1))
    result = tune(model, val, test, config)
    assert result.direction in ("up", "down") and 1 <= len(result.chosen.heads) <= 3
    assert all(h.layer in (0, 1) for h in result.chosen.heads)
    gains = result.profile.gain.nan_to_num(-1).amax(0)
    assert all(float(gains[h.layer, h.head]) > 0 for h in result.chosen.heads)  # each helps alone
    assert torch.isnan(result.profile.gain[:, 2]).all()  # layer 2 not profiled
    assert len(result.controls) == 2 and all(len(c.heads) == len(result.chosen.heads) for c in result.controls)
    grid = [g for g in config.gammas if (g > 1) == (result.direction == "up")]
    evals = [evaluate(model, val, Recipe.ZEROTUNING, result.chosen.heads, g) for g in grid]
    assert result.chosen.val.objective(objective) == max(e.objective(objective) for e in evals)
    assert result.chosen.test == evaluate(model, test, Recipe.ZEROTUNING, result.chosen.heads, result.chosen.value)


def test_act_tunes_beta(tiny_model) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(dtype=torch.float64)
    val, test = random_dataset(8, 9, seed=2), random_dataset(8, 9, seed=3)
    result = tune(
        model, val, test, TuneConfig(recipe=Recipe.ACT, objective=Objective.ENTROPY, k=2, controls=1, tau=0.05)
    )
    assert result.direction == "act" and result.chosen.value in result.config.betas


@pytest.mark.parametrize(
    "bad",
    [{"k": 0}, {"gammas": (1.0,)}, {"gammas": ()}, {"betas": (1.5,)}, {"tau": 0.0}, {"layers": (-1,)}, {"controls": 0}],
)
def test_bad_config_raises(bad: dict[str, object]) -> None:
    with pytest.raises(HeadgraphError):
        TuneConfig(**bad)  # type: ignore[arg-type]
