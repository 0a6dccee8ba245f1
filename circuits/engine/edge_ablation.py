"""Running a model with chosen edges ablated: the exact counterpart of every edge score.

Ablating the edge u → v changes only what v reads: v's own input becomes its value in this run
minus u's output in this run plus u's ablated output (its output on the corrupt prompt, its mean,
or zero). Everything else flows on: a changed receiver changes its own output, which its kept
edges carry downstream. This is the intervention of ACDC, auto-circuit's edge patching, and
EAP-IG's ``evaluate_graph``; ablating every edge gives the corrupt run, ablating none the clean run.

Implementation (one forward per batch of variants, no loop over edges):
  * receivers get their own inputs from :func:`circuits.model.receiver_inputs` (q/k/v per query
    head, key/value inputs ungrouped under grouped-query attention; the MLP input);
  * forward hooks on the senders record ``ablated − current`` at the active positions, sender-major
    ``D[variant, sender, position, d_model]`` (heads as ``z`` differences projected through ``W_O``);
  * a head's output is its *term* (:func:`circuits.model.sender_term_hooks`; on post-norm models,
    Gemma 2/3, its output through the block's post-attention RMS norm with the scale of the run it
    is in): the ablated term uses the corrupt run's scale, the current term the scale of the
    variant's own run, so ``D`` holds term differences;
  * the hook on a receiver input adds Σ_s mask[s, r] · D[s] for all heads of a layer with one
    batched product (``[variants, receivers, senders] × [variants, senders, n·d_model]``);
  * several variants (circuits, single-edge ablations) stack on the batch dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.engine.ablation import Ablation
from circuits.engine.edges import ActivePositions, EdgeLayout, SenderActs, corrupt_run, prefix_length
from circuits.graph import QKV
from circuits.model import (
    HookFn,
    PrefixGuard,
    SharedPrefix,
    check_edge_support,
    embeddings,
    head_term_weights,
    hook_k_input,
    hook_mlp_in,
    hook_mlp_out,
    hook_q_input,
    hook_resid_pre,
    hook_v_input,
    logits_at,
    receiver_inputs,
    run_after_prefix,
    sender_term_hooks,
)
from tasks import PromptPairDataset

__all__ = ["AblationBatch", "ablated_logits", "prepare_batch"]


@dataclass(frozen=True)
class AblationBatch:
    """One batch of prompts with everything edge ablation needs that does not depend on the circuit.

    Attributes:
        batch: the prompt pairs.
        pos: where ablated and clean sender outputs can differ and matter.
        ablated: every sender's ablated output at ``pos``.
        corrupt_logits: answer-position logits of the corrupt prompts.
        prefix: the leading positions every run of the batch shares (``pos`` counts from its end).
        embed: the clean prompts' embeddings after the prefix.
    """

    batch: PromptPairDataset
    pos: ActivePositions
    ablated: SenderActs
    corrupt_logits: Float[Tensor, "batch d_vocab"]
    prefix: SharedPrefix
    embed: Float[Tensor, "batch suffix d_model"]


def prepare_batch(
    model: HookedTransformer,
    batch: PromptPairDataset,
    ablation: Ablation,
    means: SenderActs | None = None,
    guard: PrefixGuard | None = None,
) -> AblationBatch:
    """Run what every circuit of ``batch`` shares (the corrupt forward, for resample ablation).

    ``means`` (mean ablation) are mean terms: ``mean_sender_acts(..., terms=True)``. ``guard``
    checks the shared prefix against a plain forward pass (pass one guard for all batches of a run;
    without one, this batch's prefix is checked).
    """
    check_edge_support(model)
    guard = guard if guard is not None else PrefixGuard()
    with receiver_inputs(model, split_qkv=False):  # keys per query head, as ablated runs compute them
        prefix = guard.prefix(model, batch.clean, prefix_length(batch, ablation), batch.answer_pos)
        pos = ActivePositions.of(batch, from_first_difference=ablation is Ablation.RESAMPLE).shift(prefix.length)
        run = corrupt_run(model, batch, pos, ablation, means, prefix, terms=True)
    embed = embeddings(model, batch.clean)[:, prefix.length :]
    return AblationBatch(batch, pos, run.ablated, run.logits, prefix, embed)


@torch.inference_mode()
def ablated_logits(
    model: HookedTransformer,
    layout: EdgeLayout,
    prepared: AblationBatch,
    ablate: Bool[Tensor, "variants n_edges"] | Bool[Tensor, "variants labels n_edges"],
    labels: Int[Tensor, " n"] | None = None,
) -> Float[Tensor, "variants batch d_vocab"]:
    """Answer-position logits of the clean prompts with the edges ``ablate[v]`` ablated, per variant ``v``.

    Position-level ablation (:mod:`circuits.discovery.position_circuits`): with ``labels`` (the
    label index of each active position, ``prepared.pos`` order), ``ablate[v, l]`` are the edges
    ablated at the positions labelled ``l`` only.
    """
    batch, pos, abl = prepared.batch, prepared.pos, prepared.ablated
    n_variants, b, n = ablate.shape[0], len(batch), len(pos)
    cfg = model.cfg
    n_layers, n_heads, d = cfg.n_layers, cfg.n_heads, cfg.d_model
    device, dtype = batch.clean.device, cfg.dtype
    by_label = labels is not None
    if by_label != (ablate.ndim == 3):
        raise ValueError("pass labels exactly when ablate is per label: (variants, labels, n_edges)")
    if labels is not None:
        n_labels = ablate.shape[1]
        dense = layout.to_dense(ablate.flatten(0, 1).to(device=device, dtype=dtype))
        label_masks = dense.view(n_variants, n_labels, *dense.shape[1:])  # (V, L, S, R)
        mask = label_masks.amax(1)
        groups = [(lab, (labels == lab).nonzero().squeeze(1).to(device)) for lab in labels.unique().tolist()]
    else:
        mask = layout.to_dense(ablate.to(device=device, dtype=dtype))  # (V, S, R): 1 where the edge is ablated
    needed = mask.flatten(0, 1).any(0).tolist()  # per receiver input: is any of its edges ablated?
    rows = (torch.arange(n_variants, device=device)[:, None] * b + pos.rows[None, :]).flatten()  # (V·n,)
    cols = pos.cols.repeat(n_variants)
    diff = torch.zeros(n_variants, layout.n_senders, n, d, dtype=dtype, device=device)
    w_o = [head_term_weights(model, layer) for layer in range(n_layers)]

    def current(out: Tensor) -> Tensor:
        """``out`` at the active positions, variant-major: (V, n, ...)."""
        return out[rows, cols].view(n_variants, n, *out.shape[2:])

    def record_input(out: Tensor) -> None:
        diff[:, 0] = abl.input - current(out)

    def record_heads(layer: int) -> Callable[[Tensor], None]:
        def on_term(term: Tensor) -> None:
            first = layout.head_sender(layer, 0)
            dz = abl.z[layer] - current(term)  # (V, n, head, d_head)
            diff[:, first : first + n_heads] = torch.einsum("vnhe,hed->vhnd", dz, w_o[layer])

        return on_term

    def record_mlp(layer: int) -> HookFn:
        def hook(out: Tensor) -> None:
            diff[:, layout.mlp_sender(layer)] = abl.mlp[layer] - current(out)

        return hook

    def add(out: Tensor, receivers: list[int], reads: int) -> Tensor:
        """``out`` plus, at the active positions, the ablated edges' ``ablated − current`` sums."""
        if labels is None:
            m = mask[:, :reads, receivers]  # (V, S_l, r)
            corr = torch.bmm(m.transpose(1, 2), diff[:, :reads].reshape(n_variants, reads, n * d))  # (V, r, n·d)
            corr = corr.view(n_variants, len(receivers), n, d).transpose(1, 2)  # (V, n, r, d)
        else:
            corr = torch.zeros(n_variants, n, len(receivers), d, dtype=dtype, device=device)
            for lab, at in groups:
                m = label_masks[:, lab, :reads, receivers]  # (V, S_l, r)
                part = diff[:, :reads, at].reshape(n_variants, reads, len(at) * d)
                corr[:, at] = (
                    torch.bmm(m.transpose(1, 2), part).view(n_variants, len(receivers), len(at), d).transpose(1, 2)
                )
        delta = torch.zeros_like(out)
        delta[rows, cols] = corr.reshape(n_variants * n, *out.shape[2:])
        return out + delta

    def head_inputs(layer: int, qkv: QKV) -> HookFn:
        receivers = [layout.head_receiver(layer, h, qkv) for h in range(n_heads)]
        reads = layout.senders_before(layer)
        return lambda out: add(out, receivers, reads)

    def mlp_input(layer: int) -> HookFn:
        receivers = [layout.mlp_receiver(layer)]
        reads = layout.senders_before(layer, mlp=True)
        return lambda out: add(out, receivers, reads)

    hooks: list[tuple[str, HookFn]] = [(hook_resid_pre(0), record_input)]
    for layer in range(n_layers):
        for qkv, name in ((QKV.Q, hook_q_input), (QKV.K, hook_k_input), (QKV.V, hook_v_input)):
            if any(needed[layout.head_receiver(layer, h, qkv)] for h in range(n_heads)):
                hooks.append((name(layer), head_inputs(layer, qkv)))
        hooks += sender_term_hooks(model, layer, record_heads(layer))
        if layout.graph.has_mlps:
            if needed[layout.mlp_receiver(layer)]:
                hooks.append((hook_mlp_in(layer), mlp_input(layer)))
            hooks.append((hook_mlp_out(layer), record_mlp(layer)))
    with receiver_inputs(model, split_qkv=True):
        resid = run_after_prefix(model, prepared.embed.repeat(n_variants, 1, 1), prepared.prefix, hooks)
    if needed[layout.logits_receiver]:
        resid = add(resid, [layout.logits_receiver], layout.n_senders)
    logits = logits_at(model, resid, batch.answer_pos.repeat(n_variants) - prepared.prefix.length)
    return logits.view(n_variants, b, -1)
