"""Brute-force oracles: patching one head or MLP at a time, single-edge patching, and rank correlation."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

from circuits.discovery import Ablation, ActivationPatching, Components, PatchPositions
from circuits.graph import QKV, Edge, Node, NodeKind
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
from tasks import LogitDiff, PromptPairDataset
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


METRIC = LogitDiff()
"""The metric :func:`assert_matches` scores with."""


ATOL = 1e-4
"""Tolerance of float32 scores against brute force (the issue's bound)."""


def answer_metric(logits: torch.Tensor, data: PromptPairDataset) -> torch.Tensor:
    """Per-example metric from full logits ``[batch, pos, vocab]``."""
    rows = torch.arange(len(data))
    return METRIC(logits[rows, data.answer_pos], data.targets)


def brute_force(model: HookedTransformer, data: PromptPairDataset, method: ActivationPatching) -> dict[Node, float]:
    """One full forward per component with a hook that replaces its output (the slow definition)."""
    with torch.no_grad():
        m_clean = answer_metric(model(data.clean), data)
        _, corrupt = model.run_with_cache(data.corrupt)
        valid = torch.arange(data.clean.shape[1])[None] < data.lengths[:, None]
        out: dict[Node, float] = {}
        nodes = [Node.of_head(layer, h) for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
        if method.components is Components.HEADS_AND_MLPS:
            nodes += [Node.of_mlp(layer) for layer in range(model.cfg.n_layers)]
        for node in nodes:
            name = hook_z(node.layer) if node.head is not None else hook_mlp_out(node.layer)
            if method.ablation is Ablation.RESAMPLE:
                repl = corrupt[name]
            elif method.ablation is Ablation.ZERO:
                repl = torch.zeros_like(corrupt[name])
            else:
                repl = corrupt[name][valid].mean(0).expand_as(corrupt[name])

            def hook(act: torch.Tensor, hook: object, node: Node = node, repl: torch.Tensor = repl) -> torch.Tensor:
                act = act.clone()
                idx = (slice(None), slice(None)) if node.head is None else (slice(None), slice(None), node.head)
                if method.positions is PatchPositions.ALL:
                    act[idx] = repl[idx]
                else:
                    rows = torch.arange(act.shape[0])
                    sel = (rows, data.answer_pos) + (() if node.head is None else (node.head,))
                    act[sel] = repl[sel]
                return act

            patched = answer_metric(model.run_with_hooks(data.clean, fwd_hooks=[(name, hook)]), data)
            out[node] = float((patched - m_clean).mean())
    return out


def assert_matches(model: HookedTransformer, data: PromptPairDataset, method: ActivationPatching) -> None:
    scores = method(model, data, METRIC, progress=False)
    expected = brute_force(model, data, method)
    for node, value in expected.items():
        got = float(scores.values[scores.graph.node_index(node)])
        assert abs(got - value) < ATOL, f"{node}: {got} != {value}"
