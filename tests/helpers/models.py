"""Tiny cfg-built models: the default 3-layer one, a Gemma-3-shaped one, and one over SmolLM2's vocabulary."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuits.model import prepare_model_
from tasks import TextTokenizer

TinyFactory = Callable[..., HookedTransformer]


def tiny_config(**overrides: object) -> HookedTransformerConfig:
    """A 3-layer, 4-head model small enough for exact brute-force checks."""
    base: dict[str, object] = {
        "n_layers": 3,
        "d_model": 32,
        "d_head": 8,
        "n_heads": 4,
        "d_mlp": 64,
        "d_vocab": 50,
        "n_ctx": 32,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "seed": 0,
        "model_name": "tiny",
    }
    base.update(overrides)
    return HookedTransformerConfig(**base)  # type: ignore[arg-type]


WINDOW = 3
"""Sliding window of the tiny model's local layers: shorter than the prompts and the shared prefix."""


def gemma3_like(**overrides: object) -> HookedTransformer:
    """A 4-layer Gemma-3-shaped model (local, global, local, global) with non-trivial norm weights."""
    cfg = {
        "n_layers": 4,
        "n_heads": 4,
        "n_key_value_heads": 1,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_dim": 8,
        "rotary_base": 1_000_000,
        "rotary_base_local": 10_000,
        "use_local_attn": True,
        "window_size": WINDOW,
        "attn_types": ["local", "global", "local", "global"],
        "use_normalization_before_and_after": True,
        "use_qk_norm": True,
        "gated_mlp": True,
        "act_fn": "gelu_pytorch_tanh",
        "final_rms": True,
        "use_attn_scale": True,
        "attn_scale": 4.0,
        "original_architecture": "Gemma3ForCausalLM",
        **overrides,
    }
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(tiny_config(**cfg))
    with torch.no_grad():  # RMS weights initialise to 1; spread them so every norm matters
        for name, p in model.named_parameters():
            if name.endswith(".w"):
                p.copy_(1 + 0.5 * torch.randn_like(p))
    return prepare_model_(model)


def tiny_smollm(tokenizer: TextTokenizer, *, nan: bool = False, **overrides: Any) -> HookedTransformer:
    """A random 3-layer model over SmolLM2's vocabulary and tokenizer (NaN weights when asked)."""
    torch.manual_seed(0)
    cfg = tiny_config(d_vocab=tokenizer.hf.vocab_size, n_ctx=128, model_name="tiny-smollm", **overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, tokenizer=tokenizer.hf, move_to_device=False)
    if nan:
        with torch.no_grad():
            model.unembed.W_U.fill_(math.nan)
    return prepare_model_(model)
