"""Hand-built models (planted circuits): construction and direct access to the weights."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuits.model.facts import prepare_model_


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
    d_mlp: int | None = None,
) -> HookedTransformer:
    """A prepared model with no normalization, learned absolute positions and unscaled attention
    scores (``q·k``, no division by ``sqrt(d_head)``), whose weights the caller sets by hand
    (through :func:`attention_weights`, :func:`mlp_weights` and :func:`embedding_weights`).
    Attention-only unless ``d_mlp`` is given (then each block has a ReLU MLP of that width).

    Every weight starts at zero, so a hand-built model reads and writes exactly what its builder set.
    """
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d_model,
        d_head=d_head,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        attn_only=d_mlp is None,
        d_mlp=d_mlp,
        normalization_type=None,
        positional_embedding_type="standard",
        use_attn_scale=False,
        act_fn="relu",
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
class MLPWeights:
    """The live MLP parameters of one layer: ``out = relu(x W_in + b_in) W_out + b_out``."""

    W_in: Float[Tensor, "d_model d_mlp"]
    b_in: Float[Tensor, " d_mlp"]
    W_out: Float[Tensor, "d_mlp d_model"]
    b_out: Float[Tensor, " d_model"]


def mlp_weights(model: HookedTransformer, layer: int) -> MLPWeights:
    """Layer ``layer``'s MLP parameters, as views to read or to edit under ``torch.no_grad()``.

    Raises:
        ValueError: the model is attention-only or its MLP is gated.
    """
    if model.cfg.attn_only or model.cfg.gated_mlp:
        raise ValueError(f"model {model.cfg.model_name!r} has no plain MLP in layer {layer}")
    mlp = model.blocks[layer].mlp
    w_in, b_in, w_out, b_out = mlp.W_in, mlp.b_in, mlp.W_out, mlp.b_out
    assert isinstance(b_in, Tensor) and isinstance(b_out, Tensor)
    return MLPWeights(w_in, b_in, w_out, b_out)


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
