"""Sparse SAE training (saes/sparse_train.py) against sae-lens's dense ``StandardTrainingSAE``: the same
gradients up to float rounding at any sparsity, bit-for-bit the same when its products run dense, and
the same SAE after a short training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.saes.sae import TrainStepInput

import saes.sparse_train as sparse_train
from saes import SAEConfig, argmax_codes, train_sae
from saes.sparse_train import SparseStandardTrainingSAE


def _grads(sae: StandardTrainingSAE, x: torch.Tensor, l1: float) -> tuple[float, dict[str, torch.Tensor]]:
    sae.zero_grad()
    step = TrainStepInput(sae_in=x, coefficients={"l1": l1}, dead_neuron_mask=None, n_training_steps=0,
                          is_logging_step=False)  # fmt: skip
    out = sae.training_forward_pass(step)
    out.loss.backward()
    return float(out.loss.detach()), {n: p.grad.clone() for n, p in sae.named_parameters() if p.grad is not None}


def _pair(seed: int, d_in: int, d_sae: int, firing: float, x: torch.Tensor) -> tuple[StandardTrainingSAE, ...]:
    torch.manual_seed(seed)
    cfg = StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l1_coefficient=0.5)
    dense = StandardTrainingSAE(cfg)
    sparse = SparseStandardTrainingSAE(cfg)
    sparse.load_state_dict(dense.state_dict())
    with torch.no_grad():  # a bias that lets about `firing` of the latents fire
        pre = dense.process_sae_in(x) @ dense.W_enc
        for sae in (dense, sparse):
            sae.b_enc.copy_(-pre.quantile(1 - firing, dim=0))
    return dense, sparse


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 60),
    d_in=st.integers(2, 24),
    d_sae=st.integers(1, 40),
    firing=st.sampled_from([0.0, 0.01, 0.04, 0.2, 0.9]),
)
def test_gradients_equal_the_dense_sae(seed: int, n: int, d_in: int, d_sae: int, firing: float) -> None:
    x = torch.randn(n, d_in, generator=torch.Generator().manual_seed(seed)) * 3
    dense, sparse = _pair(seed, d_in, d_sae, firing, x)
    loss_d, grads_d = _grads(dense, x, 0.5)
    loss_s, grads_s = _grads(sparse, x, 0.5)
    assert loss_s == pytest.approx(loss_d, rel=1e-6)
    assert grads_d.keys() == grads_s.keys() == {"W_enc", "b_enc", "W_dec", "b_dec"}
    for name, g in grads_d.items():
        assert torch.allclose(grads_s[name], g, rtol=1e-5, atol=1e-6 * (1 + float(g.abs().max()))), name


def test_sparse_products_are_used_when_few_latents_fire() -> None:
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    _, sparse = _pair(0, 16, 50, 0.01, x)
    calls = []
    real = torch.sparse.mm
    try:
        torch.sparse.mm = lambda *a: calls.append(1) or real(*a)  # type: ignore[assignment]
        _grads(sparse, x, 0.5)
    finally:
        torch.sparse.mm = real  # type: ignore[assignment]
    assert len(calls) == 4  # decode; W_dec's, x's and W_enc's gradients


def test_dense_products_train_bit_for_bit_like_sae_lens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the sparsity threshold the class is sae-lens's, exactly."""
    x = torch.randn(120, 12, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(sparse_train, "SPARSE_BELOW", -1.0)
    cfg = SAEConfig(d_sae=20, epochs=30, lr=5e-3, l1_coefficient=0.05, sparse_products=True)
    a = train_sae(x, SAEConfig(**{**cfg.__dict__, "sparse_products": False}))
    b = train_sae(x, cfg)
    for name, p in a.state_dict().items():
        assert torch.equal(p, b.state_dict()[name]), name


def test_dense_training_is_the_default() -> None:
    """Sparse products change codes after long trainings (rounding), so results stay sae-lens's unless asked."""
    assert not SAEConfig().sparse_products


def test_short_training_gives_the_same_sae() -> None:
    """Over a few dozen steps the rounding differences stay at rounding size and the codes agree."""
    g = torch.Generator().manual_seed(2)
    centres = torch.randn(6, 16, generator=g) * 4
    x = centres[torch.randint(0, 6, (300,), generator=g)] + 0.1 * torch.randn(300, 16, generator=g)
    cfg = SAEConfig(d_sae=30, epochs=40, lr=5e-3, l1_coefficient=0.05, sparse_products=True)
    a = train_sae(x, SAEConfig(**{**cfg.__dict__, "sparse_products": False}))
    b = train_sae(x, cfg)
    for name, p in a.state_dict().items():
        assert torch.allclose(p, b.state_dict()[name], atol=1e-4), name
    with torch.no_grad():
        assert torch.equal(argmax_codes(a.encode(x)), argmax_codes(b.encode(x)))
