"""Issue 20, item 1 on the real model: 20 MB of SmolLM2's cached weights zeroed.

Before the cache checked itself, ``discover`` exited 0 on such a cache with a clean logit
difference of 0.974 instead of 4.654. Now the load warns, converts again, and the model computes
what an undamaged one does. Slow: one conversion of the GGUF (≈40 s, more on a busy machine).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphWarning
from circuits.model import cache, load_model
from circuits.model.loading import DEFAULT_MODEL, OFFLINE_MODELS

pytestmark = pytest.mark.slow


def test_zeroed_weights_in_the_real_cache_are_rebuilt_not_used(
    smollm2: HookedTransformer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = OFFLINE_MODELS[DEFAULT_MODEL]
    sound = spec.cache_folder(DEFAULT_MODEL)
    cache.verify_entry(sound)
    monkeypatch.setenv("HEADGRAPH_CACHE", str(tmp_path))
    damaged = spec.cache_folder(DEFAULT_MODEL)
    shutil.copytree(sound, damaged)
    with (damaged / "weights.safetensors").open("r+b") as f:
        f.seek(100 << 20)
        f.write(bytes(20 << 20))  # 20 MB of zeros, the file keeps its size
    with pytest.warns(HeadgraphWarning, match=r"is damaged \(weights.safetensors differs"):
        rebuilt = load_model(DEFAULT_MODEL, progress=False)
    cache.verify_entry(damaged)
    tokens = torch.tensor([[1, 504, 3458, 314, 253, 1345, 282]])
    with torch.inference_mode():
        assert torch.allclose(rebuilt(tokens), smollm2(tokens), atol=1e-5)
