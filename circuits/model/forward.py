"""Forward helpers that avoid computing what a metric does not read: answer-position unembedding,
resumable runs, shared-prefix key/value caches.

Both shortcuts (a run resumed after a prefix whose keys and values are cached, a suffix run after a
:class:`SharedPrefix`) rest on causality: positions before the prefix's end cannot see what comes
after it. They are checked, not trusted: :func:`resumable_run` (given ``check_pos``) and
:class:`PrefixGuard` compare the shortcut with one plain forward pass of the same prompts and, if the
answer logits differ by more than :func:`prefix_tolerance`, warn (:class:`PrefixFallbackWarning`)
and run without a prefix, which is slower but exact by definition.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError, HeadgraphWarning
from circuits.model.hooks import (
    HOOK_POS_EMBED,
    HookFn,
    hook_k,
    hook_resid_pre,
    hook_v,
    with_hooks,
)


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


class PrefixFallbackWarning(HeadgraphWarning):
    """A shared-prefix shortcut disagreed with a plain forward pass; the run went on without it."""


CHECK_ROWS = 4
"""Prompts of the first batch on which :class:`PrefixGuard` compares the prefix path with a plain forward."""

PREFIX_RTOL = 1e-4
"""Relative tolerance of the prefix check in float32 (and float64): answer logits may differ by this
times ``max(1, largest |logit|)``. Half-precision dtypes get eight machine epsilons instead."""


def prefix_tolerance(model: HookedTransformer, logits: Tensor) -> float:
    """How far ``model``'s answer logits on a prefix shortcut may be from a plain forward's
    (:func:`tolerance_for`, in the model's dtype)."""
    return tolerance_for(model.cfg.dtype, logits)


def tolerance_for(dtype: torch.dtype, logits: Tensor) -> float:
    """:data:`PREFIX_RTOL` (float32, float64) or eight machine epsilons (half precision) times
    ``max(1, largest |logit|)``.

    Examples:
        >>> tolerance_for(torch.float32, torch.tensor([[-30.0, 2.0]]))
        0.003
        >>> tolerance_for(torch.bfloat16, torch.tensor([[0.5]]))
        0.0625
    """
    eps = torch.finfo(dtype).eps
    rtol = max(PREFIX_RTOL, 8 * eps) if eps > 1e-6 else PREFIX_RTOL
    scale = max(1.0, float(logits.detach().abs().max())) if logits.numel() else 1.0
    return round(rtol * scale, 12)


def _fallback_warning(model: HookedTransformer, length: int, error: float, tolerance: float) -> None:
    warnings.warn(
        PrefixFallbackWarning(
            f"{model.cfg.model_name}: running after a shared prefix of {length} positions changed the answer "
            f"logits by {error:.3g} (tolerance {tolerance:.3g}) against one plain forward pass; running without "
            "the prefix (exact, slower)"
        ),
        stacklevel=3,
    )


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
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    prefix: int,
    names: list[str],
    *,
    check_pos: Int[Tensor, " batch"] | None = None,
) -> ResumableRun:
    """Run ``tokens`` once, keeping what :func:`resume_to_logits` needs (see :class:`ResumableRun`).

    ``prefix`` falls back to 0 (no shared prefix, still exact) for models whose cached keys cannot be
    rebuilt from ``hook_k`` (see :func:`_keys_reproducible`), and, when ``check_pos`` is given, when a
    run resumed at layer 0 with no hooks does not reproduce this run's logits at ``check_pos`` (a
    :class:`PrefixFallbackWarning` says by how much). Callers read ``run.prefix``. Hooks active
    around this call see the check's resumed pass too: give ``check_pos`` only without them.
    """
    run = _resumable_run(model, tokens, prefix, names)
    if run.prefix and check_pos is not None:
        with torch.no_grad():
            plain = logits_at(model, run.final_resid, check_pos)
            resumed = resume_to_logits(model, run, 0, 1, check_pos, [])
        error, tolerance = float((plain - resumed).abs().max()), prefix_tolerance(model, plain)
        if bool(torch.isfinite(plain).all()) and not error <= tolerance:  # non-finite: the baseline check refuses it
            _fallback_warning(model, run.prefix, error, tolerance)
            run = _resumable_run(model, tokens, 0, names)
    return run


def _resumable_run(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], prefix: int, names: list[str]
) -> ResumableRun:
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
    """Run positions ``< length`` of ``tokens`` once (no gradients) and keep their keys and values.

    Keys are kept as the key/value cache holds them (after a per-head key norm, :func:`_cached_keys`).
    """
    n = model.cfg.n_layers
    keys: list[Tensor] = []
    values: list[Tensor] = []
    if length:
        names = [h(layer) for layer in range(n) for h in (hook_k, hook_v)]
        with torch.no_grad():
            _, cache = run_with_cache(model, tokens[:, :length], names)
        keys = [_cached_keys(model, layer, cache[hook_k(layer)]) for layer in range(n)]
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

    batch = prefix.keys[0].shape[0] if prefix.keys else None
    if batch is None and prefix.pos_embed is not None:  # no cached positions, but per-prompt position embeddings
        batch = prefix.pos_embed.shape[0]
    copies = resid.shape[0] // (batch or resid.shape[0])
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


@dataclass
class PrefixGuard:
    """Checks, once per run, that :func:`run_after_prefix` reproduces a plain forward pass.

    A method makes one guard per run and asks it for every batch's prefix. The first non-empty
    prefix is checked: the batch's first :data:`CHECK_ROWS` prompts also run once without it, and
    the answer logits of both are compared (cost: a plain forward and a suffix forward of those few
    prompts, once per run). If they differ by more than :func:`prefix_tolerance`, the guard warns
    (:class:`PrefixFallbackWarning`) and every prefix of the run is empty from then on: positions
    are computed from the start, exactly.
    Callers read ``prefix.length``, never the length they asked for.

    Attributes:
        checked: whether the check has run.
        trusted: whether prefixes are used (False after a failed check).
        error: the largest answer-logit difference the check measured (NaN before it runs).
    """

    checked: bool = False
    trusted: bool = True
    error: float = float("nan")

    def prefix(
        self, model: HookedTransformer, tokens: Int[Tensor, "batch pos"], length: int, pos: Int[Tensor, " batch"]
    ) -> SharedPrefix:
        """The shared prefix of ``tokens``'s first ``length`` positions, or an empty one once untrusted.

        Args:
            model: the model (inside the same :func:`receiver_inputs` flags as the runs that use it).
            tokens: the prompts whose prefix is cached.
            length: shared positions asked for.
            pos: each prompt's answer position (where the check compares logits).
        """
        prefix = shared_prefix(model, tokens, length if self.trusted else 0)
        if not prefix.length or self.checked:
            return prefix
        self.checked = True
        self.error, tolerance = _prefix_error(model, tokens[:CHECK_ROWS], length, pos[:CHECK_ROWS])
        if self.error <= tolerance:
            return prefix
        self.trusted = False
        _fallback_warning(model, length, self.error, tolerance)
        return shared_prefix(model, tokens, 0)


@torch.no_grad()
def _prefix_error(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], length: int, pos: Int[Tensor, " batch"]
) -> tuple[float, float]:
    """Largest answer-logit difference between a run after a ``length``-position prefix and a plain
    forward pass of ``tokens``, and its tolerance.

    Non-finite plain logits (damaged weights, an overflow) give error 0: there is nothing to compare,
    and the method's baseline check refuses the result.

    Raises:
        HeadgraphError: a run from the embeddings without any prefix disagrees with the plain forward
            too (no shortcut-free path is exact either).
    """
    plain = run_to_logits(model, tokens, pos)
    if not bool(torch.isfinite(plain).all()):
        return 0.0, math.inf
    tolerance = prefix_tolerance(model, plain)
    embed = embeddings(model, tokens)
    after = run_after_prefix(model, embed[:, length:], shared_prefix(model, tokens, length))
    error = float((plain - logits_at(model, after, pos - length)).abs().max())
    if error > tolerance:
        whole = run_after_prefix(model, embed, shared_prefix(model, tokens, 0))
        no_prefix = float((plain - logits_at(model, whole, pos)).abs().max())
        if not no_prefix <= tolerance:
            raise HeadgraphError(
                f"{model.cfg.model_name}: a forward pass from the embeddings disagrees with one from the token ids "
                f"by {no_prefix:.3g} in the answer logits (tolerance {tolerance:.3g}), so no exact patching is "
                "possible; a tokenizer that pads on the left? Pass the model through circuits.prepare_model_ first"
            )
    return error, tolerance
