"""Helpers shared by the edge-method tests: rank correlation and brute-force single-edge patching."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

from circuits.graph import QKV, Edge, NodeKind
from circuits.model import (
    HookFn,
    has_post_norm,
    head_weights,
    hook_attn_post_scale,
    hook_k_input,
    hook_mlp_in,
    hook_mlp_out,
    hook_q_input,
    hook_resid_pre,
    hook_v_input,
    hook_z,
    logits_at,
    receiver_inputs,
    run_with_cache,
    with_hooks,
)
from tasks import PromptPairDataset
from tasks.metrics import Metric


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks of ``x`` (1-based), ties sharing their average rank."""
    order = x.argsort()
    r = torch.empty_like(x, dtype=torch.float64)
    r[order] = torch.arange(1, len(x) + 1, dtype=torch.float64)
    for v in x.unique():
        tied = x == v
        if int(tied.sum()) > 1:
            r[tied] = r[tied].mean()
    return r


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation (Pearson correlation of the ranks)."""
    ra, rb = ranks(a.double()), ranks(b.double())
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


class BruteForceEdges:
    """Mean metric change when one edge alone is patched, with plain TransformerLens hooks.

    The receiver's own input gets the sender's corrupt-minus-clean output added at every position;
    nothing upstream of the receiver changes, so this is the whole intervention. On post-norm
    models a head's output is its term: ``ln1_post`` applied to ``z W_O`` with the norm's scale
    held at its value in the same run (clean or corrupt), by a hook on the norm's scale.
    """

    def __init__(self, model: HookedTransformer, data: PromptPairDataset, metric: Metric) -> None:
        names = [hook_resid_pre(0)] + [hook_z(layer) for layer in range(model.cfg.n_layers)]
        if has_post_norm(model):
            names += [hook_attn_post_scale(layer) for layer in range(model.cfg.n_layers)]
        if not model.cfg.attn_only:
            names += [hook_mlp_out(layer) for layer in range(model.cfg.n_layers)]
        with torch.no_grad():
            self.clean_resid, self.clean = run_with_cache(model, data.clean, names)
            _, self.corrupt = run_with_cache(model, data.corrupt, names)
            self.m_clean = metric(logits_at(model, self.clean_resid, data.answer_pos), data.targets)
        self.model, self.data, self.metric = model, data, metric

    def delta(self, edge: Edge) -> torch.Tensor:
        """The sender's corrupt-minus-clean output in the residual stream ``[batch, pos, d_model]``."""
        src, clean, corrupt = edge.src, self.clean, self.corrupt
        if src.kind is NodeKind.INPUT:
            return corrupt[hook_resid_pre(0)] - clean[hook_resid_pre(0)]
        if src.kind is NodeKind.HEAD and has_post_norm(self.model):
            return self.head_term(corrupt, src.layer, src.head) - self.head_term(clean, src.layer, src.head)
        if src.kind is NodeKind.HEAD:
            dz = (corrupt[hook_z(src.layer)] - clean[hook_z(src.layer)])[:, :, src.head]
            return dz @ head_weights(self.model, src.layer).W_O[src.head]
        return corrupt[hook_mlp_out(src.layer)] - clean[hook_mlp_out(src.layer)]

    @torch.no_grad()
    def head_term(self, cache: dict[str, torch.Tensor], layer: int, head: int) -> torch.Tensor:
        """A head's term on a post-norm model: its output through ``ln1_post`` at the run's scale."""
        out = cache[hook_z(layer)][:, :, head] @ head_weights(self.model, layer).W_O[head]
        scale = cache[hook_attn_post_scale(layer)]
        with with_hooks(self.model, [(hook_attn_post_scale(layer), lambda _s: scale)]):
            term: torch.Tensor = self.model.blocks[layer].ln1_post(out)
        return term

    @torch.no_grad()
    def __call__(self, edge: Edge) -> float:
        model, data, metric = self.model, self.data, self.metric
        delta, dst = self.delta(edge), edge.dst
        if dst.kind is NodeKind.LOGITS:
            patched = metric(logits_at(model, self.clean_resid + delta, data.answer_pos), data.targets)
            return float((patched - self.m_clean).mean())
        hook: tuple[str, HookFn]
        if dst.kind is NodeKind.HEAD:
            name = {QKV.Q: hook_q_input, QKV.K: hook_k_input, QKV.V: hook_v_input}[edge.qkv or QKV.Q](dst.layer)

            def add_to_head(x: torch.Tensor) -> torch.Tensor:
                x = x.clone()
                x[:, :, dst.head] += delta
                return x

            hook = (name, add_to_head)
        else:
            hook = (hook_mlp_in(dst.layer), lambda x: x + delta)
        with receiver_inputs(model, split_qkv=True), with_hooks(model, [hook]):
            resid = model(data.clean, stop_at_layer=model.cfg.n_layers)
        patched = metric(logits_at(model, resid, data.answer_pos), data.targets)
        return float((patched - self.m_clean).mean())
