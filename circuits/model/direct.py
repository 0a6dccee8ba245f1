"""Direct logit attribution per head, with every normalization's scale frozen (also Gemma's post-norm)."""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.model.forward import run_with_cache
from circuits.model.hooks import HOOK_FINAL_SCALE, hook_attn_post_scale, hook_pattern, hook_z, with_hooks


def _frozen_norm(model: HookedTransformer, norm: Any, scale_hook: str, x: Tensor, scale: Tensor) -> Tensor:
    """The linear part of ``norm`` with its scale held at ``scale``: ``norm(x) - norm(0)``, scale frozen.

    With the scale fixed, every TransformerLens normalization (LN, LNPre, RMS, RMSPre) is affine in
    its input; subtracting its value at 0 removes the bias, leaving the term ``x`` contributes.
    """
    with with_hooks(model, [(scale_hook, lambda _out: scale)]):
        return norm(x) - norm(torch.zeros_like(x))


def _post_norm_architectures() -> Any:
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    return POST_NORM_ARCHITECTURES


def _check_direct_path(model: HookedTransformer) -> None:
    cfg = model.cfg
    if cfg.original_architecture in _post_norm_architectures() or cfg.parallel_attn_mlp:
        raise HeadgraphError(
            f"direct logit attribution does not support model {cfg.model_name!r} (post-norm or parallel blocks)"
        )


def _direct_run(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], pos: Int[Tensor, " batch"], names: list[str]
) -> tuple[dict[str, Tensor], Any]:
    """Cache ``names`` (and the norm scales) in one forward; return it and the frozen direct path.

    The path maps a head's output term at ``pos`` (``(batch, ..., d_model)``, layer given) through its
    block's post-attention norm (Gemma 2/3) and the final norm, every scale frozen at this run's.
    """
    cfg = model.cfg
    post_norm = bool(cfg.use_normalization_before_and_after)
    names = names + ([hook_attn_post_scale(layer) for layer in range(cfg.n_layers)] if post_norm else [])
    resid, cache = run_with_cache(model, tokens, names)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    has_final = hasattr(model, "ln_final")
    if has_final:  # the forward stopped before the final norm: run it at ``pos`` to read its scale
        with with_hooks(model, [(HOOK_FINAL_SCALE, lambda out: cache.__setitem__(HOOK_FINAL_SCALE, out))]):
            model.ln_final(resid[rows, pos][:, None, :])

    def path(term: Tensor, layer: int) -> Tensor:
        extra = (1,) * (term.dim() - 2)  # broadcast the (batch, 1) scales over the term's middle dims
        if post_norm:
            scale = cache[hook_attn_post_scale(layer)][rows, pos].view(-1, *extra, 1)
            term = _frozen_norm(model, model.blocks[layer].ln1_post, hook_attn_post_scale(layer), term, scale)
        if has_final:
            scale = cache[HOOK_FINAL_SCALE].view(-1, *extra, 1)
            term = _frozen_norm(model, model.ln_final, HOOK_FINAL_SCALE, term, scale)
        return term

    return cache, path


@torch.inference_mode()
def head_direct_logits(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    pos: Int[Tensor, " batch"],
    answer: Int[Tensor, " batch"],
    wrong: Int[Tensor, " batch"],
) -> Float[Tensor, "batch layer head"]:
    """Each head's direct term in ``logit(answer) - logit(wrong)`` at ``pos`` (direct logit attribution).

    The head's output at ``pos`` (``z @ W_O``, no ``b_O``) is carried to the logits along its direct
    path only: through the post-attention norm where the model has one (Gemma 2/3), then the final
    norm and the unembedding, every norm's scale frozen at its value in this forward pass. With the
    scales frozen the path is linear, so the terms of all components add up to the logit
    difference (less the unembedding bias).

    Raises:
        HeadgraphError: the model normalizes after the residual add (OLMo 2) or runs attention and
            MLP in parallel, where a head has no direct path of this form.
    """
    _check_direct_path(model)
    cfg = model.cfg
    cache, path = _direct_run(model, tokens, pos, [hook_z(layer) for layer in range(cfg.n_layers)])
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    dirs = (model.W_U[:, answer] - model.W_U[:, wrong]).T  # (batch, d_model)
    out = []
    for layer in range(cfg.n_layers):
        z = cache[hook_z(layer)][rows, pos]  # (batch, head, d_head)
        term = path(torch.einsum("bhd,hdm->bhm", z, model.blocks[layer].attn.W_O), layer)
        out.append(torch.einsum("bhm,bm->bh", term, dirs))
    return torch.stack(out, dim=1)


@torch.inference_mode()
def head_direct_logits_by_key(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    pos: Int[Tensor, " batch"],
    answer: Int[Tensor, " batch"],
    wrong: Int[Tensor, " batch"],
    heads: list[tuple[int, int]],
) -> Float[Tensor, "batch n_heads key"]:
    """:func:`head_direct_logits` of chosen heads, split by the key position each term is read from.

    A head's output at ``pos`` is ``Σ_k pattern[pos, k] · v_k @ W_O``; with the norms' scales frozen
    the direct path is linear, so each key's term ``pattern[pos, k] · v_k @ W_O`` has its own direct
    logit contribution and they add up to the head's (checked in the tests). Lieberum et al. (2023,
    arXiv 2307.09458, §4) read "correct letter" heads this way: how much of their effect comes from
    the correct option's *letter* token versus its *content*. Grouped-query heads read their shared
    key/value head.

    Args:
        heads: ``(layer, head)`` pairs.
    """
    _check_direct_path(model)
    cfg = model.cfg
    layers = sorted({layer for layer, _ in heads})
    names = [f"blocks.{layer}.attn.hook_v" for layer in layers] + [hook_pattern(layer) for layer in layers]
    cache, path = _direct_run(model, tokens, pos, names)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    dirs = (model.W_U[:, answer] - model.W_U[:, wrong]).T  # (batch, d_model)
    group = cfg.n_heads // (cfg.n_key_value_heads or cfg.n_heads)
    out = []
    for layer, head in heads:
        v = cache[f"blocks.{layer}.attn.hook_v"][:, :, head // group]  # (batch, key, d_head)
        p = cache[hook_pattern(layer)][rows, head, pos]  # (batch, key)
        term = path((p[..., None] * v) @ model.blocks[layer].attn.W_O[head], layer)  # (batch, key, d_model)
        out.append(torch.einsum("bkm,bm->bk", term, dirs))
    return torch.stack(out, dim=1)
