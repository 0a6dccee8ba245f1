"""The planted ground-truth edges, checked by exact edge patching.

Planted models have no normalization, so a head's query, key and value inputs are linear in the
residual stream: patching edge ``u → v<q>`` (only ``v``'s query sees ``u``'s corrupt output, all else
clean) is adding ``(out_u^corrupt − out_u^clean) @ W_Q[v]`` to ``v``'s queries, exactly. Every edge
outside the ground truth must have no effect; inside it, the edges that carry what the corruption
changes must have one, and the edges that carry only what both prompts share (positions, constant
flags, tokens the corruption leaves alone) have none: under resample ablation they are invisible,
as Miller et al. (2024) found for tracr's positional edges.
"""

from __future__ import annotations

import pytest
import torch

from circuits.graph import QKV, Edge, NodeKind
from circuits.groundtruth import (
    InductionConfig,
    IOIConfig,
    Planted,
    PlantedIOICorruption,
    PlantedIOITask,
    induction_model,
    ioi_model,
)
from circuits.model import (
    HookFn,
    attention_weights,
    embedding_weights,
    hook_k,
    hook_q,
    hook_resid_pre,
    hook_v,
    hook_z,
    run_to_logits,
    run_with_cache,
)
from tasks import PromptPairDataset

EDGE_TOL = 1e-9
"""Bound on the effect of an edge outside the ground truth (float64 models: exact up to rounding)."""


def _outputs(planted: Planted, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """What each sender writes into the residual stream: the input and every head."""
    model = planted.model
    n = model.cfg.n_layers
    _, cache = run_with_cache(model, tokens, [hook_resid_pre(0)] + [hook_z(layer) for layer in range(n)])
    out = {"input": cache[hook_resid_pre(0)]}
    for layer in range(n):
        w_o = attention_weights(model, layer).W_O
        for h in range(model.cfg.n_heads):
            out[f"L{layer}H{h}"] = cache[hook_z(layer)][:, :, h] @ w_o[h]
    return out


def edge_effects(planted: Planted, data: PromptPairDataset) -> dict[Edge, float]:
    """Mean metric change when each edge alone carries the corrupt value of its sender."""
    model, metric = planted.model, planted.task.metric
    clean, corrupt = _outputs(planted, data.clean), _outputs(planted, data.corrupt)
    base = metric(run_to_logits(model, data.clean, data.answer_pos), data.targets)
    rows = torch.arange(len(data))
    out: dict[Edge, float] = {}
    for edge in planted.truth.graph.edges:
        delta = corrupt[str(edge.src)] - clean[str(edge.src)]  # (batch, pos, d_model)
        if edge.dst.kind is NodeKind.LOGITS:
            logits = run_to_logits(model, data.clean, data.answer_pos)
            logits = logits + delta[rows, data.answer_pos] @ embedding_weights(model).W_U
        else:
            w = attention_weights(model, edge.dst.layer)
            assert edge.qkv is not None
            weight = {QKV.Q: w.W_Q, QKV.K: w.W_K, QKV.V: w.W_V}[edge.qkv][edge.dst.head]
            hook = {QKV.Q: hook_q, QKV.K: hook_k, QKV.V: hook_v}[edge.qkv](edge.dst.layer)

            def add(act: torch.Tensor, head: int = edge.dst.head, extra: torch.Tensor = delta @ weight) -> torch.Tensor:
                act = act.clone()
                act[:, :, head] += extra
                return act

            hooks: list[tuple[str, HookFn]] = [(hook, add)]
            logits = run_to_logits(model, data.clean, data.answer_pos, hooks=hooks)
        out[edge] = float((metric(logits, data.targets) - base).mean())
    return out


@pytest.mark.parametrize(
    "planted",
    [
        induction_model(),
        induction_model(InductionConfig(n_layers=3, n_heads=2, previous_token=(0, 1), induction=(2, 0), seed=4)),
        ioi_model(IOIConfig(n_layers=4, n_heads=3, duplicate_token=(0, 2), s_inhibition=(2, 0), name_mover=(3, 1))),
        ioi_model(IOIConfig(task=PlantedIOITask(corruption=PlantedIOICorruption.FLIP))),
    ],
    ids=["induction", "induction-3x2", "ioi-abc", "ioi-flip"],
)
def test_only_ground_truth_edges_have_effects(planted: Planted) -> None:
    """Outside the ground truth: no effect. Inside: an effect exactly on the declared active edges."""
    data = planted.task.dataset(12, seed=0)
    effects = edge_effects(planted, data)
    for edge, effect in effects.items():
        if edge not in planted.truth.edges:
            assert abs(effect) < EDGE_TOL, f"{edge} is outside the ground truth but moves the metric by {effect}"
        elif edge in planted.active_edges:
            assert abs(effect) > 0.1, f"{edge} carries what the corruption changes, yet its effect is {effect}"
        else:  # in the truth but carrying only what both prompts share (positions, flags, unchanged tokens)
            assert abs(effect) < EDGE_TOL, f"{edge} should be invisible to resample ablation, effect {effect}"


def test_abc_active_edges_of_the_ioi_model() -> None:
    planted = ioi_model(
        IOIConfig(n_layers=4, n_heads=3, duplicate_token=(0, 2), s_inhibition=(2, 0), name_mover=(3, 1))
    )
    assert {str(e) for e in planted.active_edges} == {
        "input->L0H2<q>",  # S2's query: its token is what ABC changes
        "L0H2->L2H0<k>",  # the duplicate flag
        "input->L2H0<v>",  # which token sits at S2
        "L2H0->L3H1<q>",  # which name to inhibit
        "input->L3H1<k>",  # S2's key: a changed token is not inhibited
        "L3H1->logits",
    }
