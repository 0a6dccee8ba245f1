"""SAE codes on the embedded model (slow: SmolLM2-135M on CPU, grouped-query attention, d_model 576)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from circuits.analysis.head_outputs import head_outputs
from circuits.discovery import ActivationPatching, SAECodes, SAEPatching, code_run
from circuits.graph import Node
from circuits.model import text_tokenizer
from saes import argmax_codes
from tasks import IOI

pytestmark = pytest.mark.slow

ATOL = 1e-4
"""Float32 tolerance of pooled head outputs against TransformerLens's per-head results."""

PAIRS = 16
FAST = {"epochs": 100, "train_prompts": 5}
"""Fewer epochs and training prompts than the paper, so the SAE trains in seconds."""


def test_head_outputs_equal_transformer_lens_per_query_head(smollm2: HookedTransformer) -> None:
    data = IOI().dataset(text_tokenizer(smollm2), 3, seed=0)
    got = head_outputs(smollm2, data.clean, data.lengths).outputs
    assert got.shape == (3, smollm2.cfg.n_layers * smollm2.cfg.n_heads, smollm2.cfg.d_model)
    with torch.no_grad():
        _, cache = smollm2.run_with_cache(data.clean)
        results = cache.stack_head_results(layer=-1)  # (layer·head, batch, pos, d_model)
    for i, n in enumerate(data.lengths.tolist()):
        torch.testing.assert_close(got[i], results[:, i, :n].mean(1), atol=ATOL, rtol=0)


def test_sae_codes_on_ioi_and_the_saved_sae(smollm2: HookedTransformer, tmp_path: Path) -> None:
    task = IOI()
    data = task.dataset(text_tokenizer(smollm2), PAIRS, seed=0)
    settings = SAECodes(**FAST)  # type: ignore[arg-type]
    run = code_run(settings, smollm2, data, task.metric, progress=False)
    assert run.baseline.clean_accuracy > 0.8, "SmolLM2 solves most IOI prompts"
    assert run.positives.shape[0] == round(run.baseline.clean_accuracy * PAIRS)
    run.saes.save(tmp_path)
    sae = SAE.load_from_disk(tmp_path / "shared")
    assert sae.cfg.d_in == smollm2.cfg.d_model and sae.cfg.d_sae == settings.d_sae
    clean = head_outputs(smollm2, data.clean, data.lengths)
    solved = clean.logits.argmax(-1) == data.targets.answers[:, 0]
    with torch.no_grad():
        codes = argmax_codes(sae.encode(clean.outputs[solved].flatten(0, 1))).view(-1, run.positives.shape[1])
    assert torch.equal(codes, run.positives)
    scores = settings(smollm2, data, task.metric, progress=False)
    heads = dict(scores.ranked())
    assert len(heads) == smollm2.cfg.n_layers * smollm2.cfg.n_heads
    assert min(heads.values()) < 0, "some head shows codes only positives have"


def test_sae_patching_scores_its_shortlist_exactly(smollm2: HookedTransformer) -> None:
    task = IOI()
    data = task.dataset(text_tokenizer(smollm2), PAIRS, seed=0)
    scores = SAEPatching(shortlist=3, **FAST)(smollm2, data, task.metric, progress=False)  # type: ignore[arg-type]
    chosen = tuple(scores.params["shortlisted"])
    assert 0 < len(chosen) <= 3
    exact = ActivationPatching(heads=chosen)(smollm2, data, task.metric, progress=False)
    torch.testing.assert_close(scores.values, exact.values, equal_nan=True)
    assert {n for n, _ in scores.ranked()} == {Node.parse(h) for h in chosen}
