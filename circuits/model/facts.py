"""Model facts and preparation: what results record about a model, its graph and tokenizer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from transformer_lens import HookedTransformer

from circuits.errors import ModelLoadError
from circuits.graph import ComponentGraph
from tasks.tokenizer import TextTokenizer


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

    Its tokenizer pads on the right. Task prompts are right-padded tensors that carry their own
    lengths; given token ids, TransformerLens infers an attention mask from them only for a tokenizer
    that pads on the left, and that mask hides every *leading* token equal to the pad id (a real
    first token, such as a BOS that shares the pad id) and shifts absolute positions. Runs that
    start from embeddings (shared prefixes, resumed runs) never see that mask, so with it the same
    prompt would give different logits on different paths.

    Warning:
        Mutates ``model``: evaluation mode, parameters frozen (methods that need gradients take
        them with respect to activations, not weights), tokenizer padding side.
    """
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if model.tokenizer is not None and getattr(model.tokenizer, "padding_side", "right") != "right":
        model.tokenizer.padding_side = "right"
    return model


def text_tokenizer(model: HookedTransformer) -> TextTokenizer:
    """The model's tokenizer with its BOS convention, as tasks consume it."""
    if model.tokenizer is None:
        raise ModelLoadError(f"model {model.cfg.model_name!r} has no tokenizer; tasks need one")
    return TextTokenizer(model.tokenizer, bool(model.cfg.default_prepend_bos), str(model.cfg.model_name))


def graph_of(model: HookedTransformer) -> ComponentGraph:
    """The candidate graph of ``model``'s shape."""
    return ComponentGraph(model.cfg.n_layers, model.cfg.n_heads, has_mlps=not model.cfg.attn_only)
