"""Edge-level access: every receiver's own input (TransformerLens's split-input flags), per-query-head
weights, and the check that a model's components add up in the residual stream.

Post-norm models (Gemma 2/3): block ``l`` adds ``ln1_post(Σ_h z_h W_O[h] + b_O)`` to the residual
stream, an RMS norm of the *sum* of its heads' outputs, and ``ln2_post(mlp(...))`` after its MLP.
A sender's *term* in the residual stream is then its output passed through the post-norm with the
norm's scale of the same run: head h of layer l contributes ``(z_h W_O[h]) ⊙ w / s_l`` where
``w`` is ``ln1_post``'s weight and ``s_l`` (``[batch, pos, 1]``) the scale of that run (clean
run: clean scale; corrupt run: corrupt scale; a mean or zero ablation: the mean or zero of the
term). An RMS norm has no bias, so the terms of a layer's heads plus ``b_O``'s term add up exactly
to the layer's post-norm attention output, and the residual stream is again a sum of sender terms:
ablating the edge u → v replaces u's term by its ablated term in v's input only. The MLP is one
sender, so its term is simply its post-norm output (``hook_mlp_out`` comes after ``ln2_post``).
The price: the heads of one layer share the scale, so one head's term depends on its layer-mates'
outputs through ``s_l``. :func:`head_term_weights` folds ``w`` into ``W_O``; senders divide ``z``
by ``s_l`` (:func:`sender_scale_hooks`). Methods never ask which kind of model they run on: they
read sender terms (:func:`term_z`, :func:`sender_term_hooks`) and ablate senders through
:func:`stacked_sender_ablation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.model.hooks import HookFn, hook_attn_out, hook_attn_post_scale, hook_z


def check_edge_support(model: HookedTransformer) -> None:
    """Raise :class:`HeadgraphError` when ``model``'s components do not add up in the residual stream.

    Edge methods read each component's output as one term of the sum that every later component
    reads. That fails when attention and MLP read the same residual (parallel blocks, GPT-J/NeoX:
    the graph would give the MLP edges from its own layer's heads) and when the residual stream
    itself is normalized after the add (OLMo 2's post-norm). Gemma 2/3's RMS norm of each block's
    summed output, before the add, is supported with the scale-of-the-run terms of the module
    docstring; a post-norm of another kind (with a bias) is refused.
    """
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    cfg = model.cfg
    problems = []
    if cfg.parallel_attn_mlp:
        problems.append("its attention and MLP read the same residual stream (parallel blocks)")
    if cfg.original_architecture in POST_NORM_ARCHITECTURES:
        problems.append("its residual stream is normalized after each sublayer's output is added")
    elif cfg.use_normalization_before_and_after and not str(cfg.normalization_type).startswith("RMS"):
        problems.append("its sublayer outputs pass through a post-norm that is not an RMS norm")
    if problems:
        raise HeadgraphError(
            f"edge-level methods do not support model {cfg.model_name!r}: {'; '.join(problems)}. "
            "Node-level methods (activation-patching, attribution-patching) work on it"
        )


def has_mlps(model: HookedTransformer) -> bool:
    """Whether the blocks have MLPs (senders and receivers of their own); ``False`` for attention-only models."""
    return not model.cfg.attn_only


def output_weights(model: HookedTransformer) -> Float[Tensor, "layer head d_head d_model"]:
    """Every head's output map ``W_O`` (``z`` to the block's attention output, before any post-norm)."""
    return model.W_O


def has_post_norm(model: HookedTransformer) -> bool:
    """Whether each block's attention (and MLP) output is RMS-normalized before the residual add (Gemma 2/3)."""
    return bool(model.cfg.use_normalization_before_and_after)


def sender_scale_hooks(model: HookedTransformer) -> list[str]:
    """Per layer, the hook of the post-attention norm's scale (``[batch, pos, 1]``); empty without post-norms."""
    return [hook_attn_post_scale(layer) for layer in range(model.cfg.n_layers)] if has_post_norm(model) else []


def head_term_weights(model: HookedTransformer, layer: int) -> Float[Tensor, "head d_head d_model"]:
    """The map from a head's ``z`` (divided by the post-norm scale, if any) to its term in the residual stream.

    ``W_O`` itself without post-norms (the same tensor as :func:`head_weights`'s); with them,
    ``W_O`` with ``ln1_post``'s weight folded in, so that ``(z / s) @ head_term_weights`` is the
    head's term (module docstring).
    """
    w_o: Tensor = model.blocks[layer].attn.W_O.detach()
    if has_post_norm(model):
        w_o = w_o * model.blocks[layer].ln1_post.w.detach()
    return w_o


def term_z(model: HookedTransformer, cache: Mapping[str, Tensor], layer: int) -> Float[Tensor, "batch pos head d_head"]:
    """Layer ``layer``'s *sender term* ``z`` from a cache holding ``hook_z`` and :func:`sender_scale_hooks`:
    ``z`` itself, or ``z`` divided by the post-norm scale on post-norm models, so that
    ``term_z @ head_term_weights`` is each head's term in the residual stream."""
    z = cache[hook_z(layer)]
    return z / cache[hook_attn_post_scale(layer)][..., None] if has_post_norm(model) else z


def sender_term_hooks(
    model: HookedTransformer, layer: int, on_term: Callable[[Tensor], None]
) -> list[tuple[str, HookFn]]:
    """Hooks that call ``on_term`` with layer ``layer``'s sender term ``z`` (:func:`term_z`) during a run.

    On post-norm models the term needs the run's own post-norm scale, which comes after ``hook_z``:
    ``z`` waits until the scale hook fires. The hooks record only (they return nothing).
    """
    if not has_post_norm(model):
        return [(hook_z(layer), on_term)]
    waiting: list[Tensor] = []

    def keep(z: Tensor) -> None:
        waiting.append(z)

    def release(scale: Tensor) -> None:
        on_term(waiting.pop() / scale[..., None])

    return [(hook_z(layer), keep), (hook_attn_post_scale(layer), release)]


def stacked_sender_ablation(
    model: HookedTransformer,
    layer: int,
    heads: Sequence[int],
    clean_z: Float[Tensor, "batch pos head d_head"],
    clean_term: Float[Tensor, "batch pos head d_head"],
    ablated_term: Float[Tensor, "batch pos head d_head"],
) -> tuple[Tensor, list[tuple[str, HookFn]]]:
    """Copies of a batch in which copy ``i`` has sender ``heads[i]`` of ``layer`` ablated (path
    patching's step 1, Wang et al. 2022): the ``z`` the layer's ``hook_z`` must output for the
    stacked copies (copy-major rows), and any further hooks.

    Pre-norm models: the sender's ``z`` is replaced by its ablated ``z``. Post-norm models: ``z``
    stays clean (patching it would change the norm's shared scale, so every other head's term) and
    the sender's ablated-minus-clean term is added to the layer's attention output.
    """
    v, b = len(heads), clean_z.shape[0]
    z = clean_z.repeat(v, 1, 1, 1)
    if not has_post_norm(model):
        for i, h in enumerate(heads):
            z[i * b : (i + 1) * b, :, h] = ablated_term[:, :, h]
        return z, []
    dz = ablated_term[:, :, list(heads)] - clean_term[:, :, list(heads)]  # (b, pos, v, d_head)
    w_o = head_term_weights(model, layer)[list(heads)]  # (v, d_head, d_model)
    delta = torch.einsum("bpve,ved->vbpd", dz, w_o).reshape(v * b, dz.shape[1], -1)
    return z, [(hook_attn_out(layer), lambda out: out + delta)]


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
