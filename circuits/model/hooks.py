"""Hook names and hook scoping: the only place TransformerLens hook-name strings are written."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor
from transformer_lens import HookedTransformer

HookFn = Callable[..., Tensor | None]
"""A forward hook on one activation: returns a replacement, or None to keep it."""


def hook_z(layer: int) -> str:
    """Per-head attention output before ``W_O``: ``[batch, pos, head, d_head]``."""
    return f"blocks.{layer}.attn.hook_z"


def hook_pattern(layer: int) -> str:
    """Post-softmax attention pattern: ``[batch, head, query_pos, key_pos]``."""
    return f"blocks.{layer}.attn.hook_pattern"


def hook_attn_scores(layer: int) -> str:
    """Pre-softmax attention scores, causal mask applied (``-inf``): ``[batch, head, query_pos, key_pos]``."""
    return f"blocks.{layer}.attn.hook_attn_scores"


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


def hook_attn_out(layer: int) -> str:
    """Block ``layer``'s attention output as added to the residual stream (after any post-norm).

    Shape ``[batch, pos, d_model]``.
    """
    return f"blocks.{layer}.hook_attn_out"


def hook_resid_mid(layer: int) -> str:
    """Residual stream between block ``layer``'s attention and its MLP: ``[batch, pos, d_model]``."""
    return f"blocks.{layer}.hook_resid_mid"


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


HOOK_FINAL_SCALE = "ln_final.hook_scale"
"""Scale of the final normalization: ``[batch, pos, 1]``."""


def hook_attn_post_scale(layer: int) -> str:
    """Scale of block ``layer``'s post-attention norm (Gemma 2/3): ``[batch, pos, 1]``."""
    return f"blocks.{layer}.ln1_post.hook_scale"
