"""saes/: config validation, training with sae-lens, codes, sae-lens file round trips, code counting."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from saes import (
    MANIFEST,
    NO_CODE,
    Architecture,
    HeadSAEs,
    SAEConfig,
    SAEError,
    Sharing,
    argmax_codes,
    pair_endpoint_counts,
    train_head_saes,
    unique_code_counts,
    unique_pair_counts,
)
from tests.helpers.checks import unchecked

FAST = {"d_sae": 12, "epochs": 30, "lr": 1e-2}
"""A small, quickly trained SAE (seconds on CPU)."""


def vectors(n: int = 6, heads: int = 5, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, heads, d, generator=g)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"d_sae": 0}, "d_sae must be a positive integer, got 0"),
        ({"epochs": -1}, "epochs must be a positive integer, got -1"),
        ({"k": 0}, "k must be a positive integer, got 0"),
        ({"k": 300}, "k (300) cannot exceed d_sae (200)"),  # more than d_sae
        ({"l1_coefficient": -0.1}, "l1_coefficient must be non-negative, got -0.1"),
        ({"l1_coefficient": float("nan")}, "l1_coefficient must be non-negative, got nan"),
        ({"lr": 0.0}, "lr must be positive, got 0.0"),
        ({"architecture": "topk"}, "architecture must be a Architecture, got 'topk'"),
        ({"sharing": "shared"}, "sharing must be a Sharing, got 'shared'"),
        ({"d_sae": True}, "d_sae must be a positive integer, got True"),
    ],
)
def test_bad_config_raises(bad: dict[str, object], message: str) -> None:
    with pytest.raises(SAEError, match=re.escape(message)), unchecked():  # the hand-written check, not the checker
        SAEConfig(**bad)  # type: ignore[arg-type]


def test_l1_is_converted_to_sae_lens_units() -> None:
    """Paper loss = SSE/d + λ L1, sae-lens loss = SSE + λ' L1: λ' = λ d."""
    assert SAEConfig(l1_coefficient=0.5).sae_lens_l1(10) == pytest.approx(5.0)


@pytest.mark.parametrize("architecture", list(Architecture))
@pytest.mark.parametrize("sharing", list(Sharing))
def test_saved_saes_load_with_sae_lens_and_give_identical_codes(
    tmp_path: Path, architecture: Architecture, sharing: Sharing
) -> None:
    x = vectors()
    cfg = SAEConfig(architecture=architecture, sharing=sharing, l1_coefficient=0.001, **FAST)  # type: ignore[arg-type]
    saes = train_head_saes(x, cfg, {"model_name": "test"})
    saes.save(tmp_path)
    assert json.loads((tmp_path / MANIFEST).read_text())["sharing"] == sharing.value
    # sae-lens's own loader, folder by folder, with no headgraph code involved
    folders = ["shared"] if sharing is Sharing.SHARED else [f"head_{h:04d}" for h in range(x.shape[1])]
    loaded = [SAE.load_from_disk(tmp_path / f) for f in folders]
    assert all(s.cfg.architecture() == ("topk" if architecture is Architecture.TOPK else "standard") for s in loaded)
    with torch.no_grad():
        if sharing is Sharing.SHARED:
            direct = argmax_codes(loaded[0].encode(x.reshape(-1, x.shape[-1]))).view(x.shape[:2])
        else:
            direct = torch.stack([argmax_codes(s.encode(x[:, h])) for h, s in enumerate(loaded)], 1)
    assert torch.equal(direct, saes.codes(x))
    again = HeadSAEs.load(tmp_path)
    assert torch.equal(again.codes(x), saes.codes(x))
    assert again.metadata["model_name"] == "test" and again.sharing is sharing


def test_topk_one_gives_exactly_one_latent_per_vector() -> None:
    x = vectors(n=8)
    saes = train_head_saes(x, SAEConfig(architecture=Architecture.TOPK, k=1, **FAST))  # type: ignore[arg-type]
    latents = saes.latents(x)
    assert int((latents > 0).sum(-1).max()) <= 1
    codes = saes.codes(x)
    has = (latents > 0).any(-1)
    assert torch.equal(codes[has], latents.argmax(-1)[has])
    assert bool((codes[~has] == NO_CODE).all())


def test_training_is_seeded_and_leaves_the_global_random_state_alone() -> None:
    x = vectors()
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = train_head_saes(x, SAEConfig(seed=3, **FAST))  # type: ignore[arg-type]
    assert torch.equal(torch.random.get_rng_state(), before)
    b = train_head_saes(x, SAEConfig(seed=3, **FAST))  # type: ignore[arg-type]
    c = train_head_saes(x, SAEConfig(seed=4, **FAST))  # type: ignore[arg-type]
    assert torch.equal(a.saes[0].W_enc, b.saes[0].W_enc)
    assert not torch.equal(a.saes[0].W_enc, c.saes[0].W_enc)


def test_training_reduces_reconstruction_error() -> None:
    x = vectors(n=10)
    flat = x.reshape(-1, x.shape[-1])
    untrained = train_head_saes(x, SAEConfig(d_sae=12, epochs=1, lr=1e-6, l1_coefficient=0.0)).saes[0]
    trained = train_head_saes(x, SAEConfig(d_sae=12, epochs=200, lr=1e-2, l1_coefficient=0.0)).saes[0]
    with torch.no_grad():
        err = [float((s(flat) - flat).pow(2).mean()) for s in (untrained, trained)]
    assert err[1] < 0.5 * err[0]


def test_normalized_training_codes_raw_activations(tmp_path: Path) -> None:
    """sae-lens folds the normalization into the weights: saved SAEs take raw vectors."""
    x = 50 * vectors()
    saes = train_head_saes(x, SAEConfig(normalize=True, **FAST))  # type: ignore[arg-type]
    assert saes.saes[0].cfg.normalize_activations == "none"
    saes.save(tmp_path)
    assert torch.equal(HeadSAEs.load(tmp_path).codes(x), saes.codes(x))


def test_bad_inputs_and_files_raise(tmp_path: Path) -> None:
    saes = train_head_saes(vectors(), SAEConfig(**FAST))  # type: ignore[arg-type]
    with pytest.raises(SAEError, match="heads"):
        saes.codes(vectors(heads=4))
    with pytest.raises(SAEError, match="not a saved set"):
        HeadSAEs.load(tmp_path)
    saes.save(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(SAEError, match="version"):
        HeadSAEs.load(tmp_path)
    with pytest.raises(SAEError):
        train_head_saes(torch.zeros(0, 3, 4), SAEConfig(**FAST))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Counting, against the definitions written with Python sets.


def brute_unique(pos: torch.Tensor, neg: torch.Tensor) -> list[int]:
    return [len(set(pos[:, h].tolist()) - set(neg[:, h].tolist())) for h in range(pos.shape[1])]


def brute_pairs(pos: torch.Tensor, neg: torch.Tensor) -> list[list[int]]:
    n = pos.shape[1]
    out = [[0] * n for _ in range(n)]
    for a, b in itertools.permutations(range(n), 2):
        p = set(zip(pos[:, a].tolist(), pos[:, b].tolist(), strict=True))
        q = set(zip(neg[:, a].tolist(), neg[:, b].tolist(), strict=True))
        out[a][b] = len(p - q)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_counts_equal_set_definitions(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    pos = torch.randint(NO_CODE, 4, (9, 6), generator=g)
    neg = torch.randint(NO_CODE, 4, (7, 6), generator=g)
    assert unique_code_counts(pos, neg).tolist() == brute_unique(pos, neg)
    assert unique_pair_counts(pos, neg).tolist() == brute_pairs(pos, neg)


def test_pair_endpoints_credit_the_top_pairs() -> None:
    pairs = torch.tensor([[0, 5, 0, 1], [5, 0, 2, 0], [0, 2, 0, 0], [1, 0, 0, 0]])
    assert pair_endpoint_counts(pairs, keep=1).tolist() == [1, 1, 0, 0]
    assert pair_endpoint_counts(pairs, keep=2).tolist() == [1, 2, 1, 0]
    assert pair_endpoint_counts(pairs, keep=10).tolist() == [2, 2, 1, 1]  # zero pairs are never credited


def test_counting_rejects_bad_codes() -> None:
    with pytest.raises(SAEError, match=re.escape("the same heads, got (2, 3) and (2, 4)")), unchecked():
        unique_code_counts(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(SAEError):
        unique_code_counts(torch.full((2, 3), -5), torch.zeros(2, 3, dtype=torch.long))
