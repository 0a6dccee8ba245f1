"""The embedded default model, end to end (slow: the real 135M-parameter model on CPU)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer

from circuits.cli import main
from circuits.discovery import ActivationPatching
from circuits.headgraph import HeadGraph
from circuits.model import OFFLINE_MODELS, cache_dir, hook_z, load_model, run_to_logits, text_tokenizer
from tasks import IOI

pytestmark = pytest.mark.slow

PARITY_ATOL = 1e-4
"""Bound on |log p_TL − log p_HF| for the dequantized model (the issue's bound)."""

DEMO_PAIRS = 64
"""The demo's number of pairs (Makefile PAIRS)."""

PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The capital of France is",
    "1 + 1 =",
]


def test_log_probs_match_hugging_face(smollm2: HookedTransformer) -> None:
    from transformers import AutoModelForCausalLM

    gguf = OFFLINE_MODELS["smollm2-135m"].gguf_path()
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    tok = text_tokenizer(smollm2)
    for prompt in PROMPTS:
        ids = torch.tensor([tok.encode(prompt)])
        with torch.no_grad():
            ref = hf(ids).logits[0, -1].log_softmax(-1)
            ours = smollm2(ids)[0, -1].log_softmax(-1)
        assert (ref - ours).abs().max() < PARITY_ATOL, prompt
    ids = torch.tensor([tok.encode(PROMPTS[0])])
    with torch.no_grad():
        assert tok.hf.decode(smollm2(ids)[0, -1].argmax()) == " Mary"


def test_cache_is_keyed_by_the_gguf_hash_and_reloads_identically(smollm2: HookedTransformer) -> None:
    folders = [p for p in cache_dir().glob("smollm2-135m-*") if p.is_dir()]
    assert folders, "the session fixture converted the model into the cache"
    assert all(re.fullmatch(r"smollm2-135m-[0-9a-f]{16}", p.name) for p in folders)
    assert not list(cache_dir().glob(".smollm2-135m-*")), "no half-written temporary folders remain"
    again = load_model("smollm2-135m", progress=False)
    for (name, a), (_, b) in zip(smollm2.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert again.cfg.n_key_value_heads == 3 and again.cfg.n_heads == 9


def test_ioi_clean_beats_corrupt_and_gqa_heads_match_brute_force(smollm2: HookedTransformer) -> None:
    data = IOI().dataset(text_tokenizer(smollm2), 8, seed=5)
    scores = ActivationPatching(batch_size=8)(smollm2, data, IOI.metric, progress=False)
    assert scores.baseline.clean > scores.baseline.corrupt + 1.0
    assert scores.baseline.clean_accuracy >= 0.75
    # Three query heads of one layer share a key/value head: each still gets its own exact score.
    _, corrupt = smollm2.run_with_cache(data.corrupt, names_filter=lambda n: n.endswith("hook_z"))
    with torch.no_grad():
        clean = IOI.metric(run_to_logits(smollm2, data.clean, data.answer_pos), data.targets)
        for node, _ in scores.ranked()[:3]:
            assert node.head is not None

            def patch(z: torch.Tensor, head: int = node.head, layer: int = node.layer) -> torch.Tensor:
                z = z.clone()
                z[:, :, head] = corrupt[hook_z(layer)][:, :, head]
                return z

            patched = IOI.metric(
                run_to_logits(smollm2, data.clean, data.answer_pos, hooks=[(hook_z(node.layer), patch)]), data.targets
            )
            expected = float((patched - clean).mean())
            assert abs(float(scores.values[scores.graph.node_index(node)]) - expected) < 1e-3


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, smollm2: HookedTransformer) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["discover", "--n", str(DEMO_PAIRS), "--seed", "0", "--out", str(out), "--quiet"]) == 0
    return out


def test_demo_writes_a_circuit_whose_top_heads_matter(demo_run: Path) -> None:
    """The acceptance check of `make demo`: every top-10 head moves the normalized metric ≥ 0.05."""
    data = json.loads((demo_run / "circuit.json").read_text())
    assert data["task"]["n_pairs"] == DEMO_PAIRS
    assert len(data["circuit"]["nodes"]) == 10
    assert all(abs(v) >= 0.05 for v in data["scores"]["normalized"][:10])
    assert set(data["scores"]["ids"][:10]) == set(data["circuit"]["nodes"])
    assert (demo_run / "circuit.png").read_bytes()[:4] == b"\x89PNG"
    hg = HeadGraph.load(demo_run / "circuit.json")
    assert hg.model.name == "smollm2-135m" and hg.model.n_kv_heads == 3
