"""Edge-level access: every receiver's own input (TransformerLens's split-input flags), per-query-head
weights, and the check that a model's components add up in the residual stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError


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
