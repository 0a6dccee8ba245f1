"""Position-level circuits: per-label edge ablation against a per-position brute force, selection, curves."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformer_lens import HookedTransformer

from circuits.discovery.position_circuits import PositionRunner, active_labels, position_report, top_pairs
from circuits.discovery.positions import PositionEdgeScores, position_edge_scores, position_labels
from circuits.engine.ablation import Ablation
from circuits.engine.edge_ablation import ablated_logits, prepare_batch
from circuits.engine.edges import EdgeLayout
from circuits.errors import HeadgraphError
from circuits.graph import QKV, Edge, NodeKind
from circuits.measures.faithfulness import CircuitRunner
from circuits.model import (
    graph_of,
    head_weights,
    hook_k_input,
    hook_mlp_in,
    hook_mlp_out,
    hook_q_input,
    hook_resid_pre,
    hook_v_input,
    hook_z,
    logits_at,
    prepare_model_,
    receiver_inputs,
    run_with_cache,
    with_hooks,
)
from circuits.selection import Ranking
from tasks import LogitDiff, PromptPairDataset
from tests.helpers.data import random_dataset
from tests.helpers.models import tiny_config

METRIC = LogitDiff()
ATOL = 1e-5


def _model(seed: int, **overrides: object) -> HookedTransformer:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return prepare_model_(HookedTransformer(tiny_config(seed=seed, **overrides)))


def _data(seed: int) -> PromptPairDataset:
    """Random pairs with two named positions (one of them sometimes on the answer, which is then END)."""
    d = random_dataset(n=3, length=7, lengths=[7, 6, 7], seed=seed, diff_from=2)
    return dataclasses.replace(d, positions={"S": torch.tensor([3, 2, 4]), "T": torch.tensor([5, 5, 6])})


@torch.no_grad()
def brute_force_logits(model: HookedTransformer, data: PromptPairDataset, keep: torch.Tensor) -> torch.Tensor:
    """Answer logits with each edge ablated at every token whose label it is not kept at: plain hooks, a loop per token.

    The definition: receiver v's input at token (b, p) gets ``corrupt_u − current_u`` added for every
    sender u with ``not keep[label(b, p), u → v]``, where current_u is u's output in this same run
    (so upstream ablations flow on). No notion of active positions: tokens before the first
    difference have equal clean and corrupt outputs, tokens after the answer do not reach it.
    """
    graph = graph_of(model)
    _, label = position_labels(data)
    n_layers = model.cfg.n_layers
    names = [hook_resid_pre(0)] + [hook_z(i) for i in range(n_layers)]
    if not model.cfg.attn_only:
        names += [hook_mlp_out(i) for i in range(n_layers)]
    _, corrupt = run_with_cache(model, data.corrupt, names)
    current: dict[str, torch.Tensor] = {}

    def out_of(cache: dict[str, torch.Tensor], edge: Edge) -> torch.Tensor:
        src = edge.src
        if src.kind is NodeKind.INPUT:
            return cache[hook_resid_pre(0)]
        if src.kind is NodeKind.HEAD:
            return cache[hook_z(src.layer)][:, :, src.head] @ head_weights(model, src.layer).W_O[src.head]
        return cache[hook_mlp_out(src.layer)]

    into: dict[tuple[int, int, QKV | None], list[int]] = {}
    for i, e in enumerate(graph.edges):
        layer = -1 if e.dst.kind is NodeKind.LOGITS else e.dst.layer
        head = e.dst.head if e.dst.kind is NodeKind.HEAD else -1
        into.setdefault((layer, head, e.qkv), []).append(i)

    def patched(x: torch.Tensor, edges: list[int], head: int | None) -> torch.Tensor:
        x = x.clone()
        b, width = x.shape[:2]
        for i in edges:
            e = graph.edges[i]
            delta = out_of(corrupt, e) - out_of(current, e)
            for r in range(b):
                for p in range(width):
                    if not keep[label[r, p], i]:
                        if head is None:
                            x[r, p] += delta[r, p]
                        else:
                            x[r, p, head] += delta[r, p]
        return x

    def record(name: str):  # noqa: ANN202
        def hook(x: torch.Tensor) -> None:
            current[name] = x.clone()

        return hook

    def receiver(layer: int, qkv: QKV | None):  # noqa: ANN202
        def hook(x: torch.Tensor) -> torch.Tensor:
            if qkv is None:
                return patched(x, into.get((layer, -1, None), []), None)
            for h in range(model.cfg.n_heads):
                x = patched(x, into.get((layer, h, qkv), []), h)
            return x

        return hook

    hooks = [(n, record(n)) for n in names]
    for layer in range(n_layers):
        for qkv, name in ((QKV.Q, hook_q_input), (QKV.K, hook_k_input), (QKV.V, hook_v_input)):
            hooks.append((name(layer), receiver(layer, qkv)))
        if not model.cfg.attn_only:
            hooks.append((hook_mlp_in(layer), receiver(layer, None)))
    with receiver_inputs(model, split_qkv=True), with_hooks(model, hooks):
        resid = model(data.clean, stop_at_layer=n_layers)
    resid = patched(resid, into.get((-1, -1, None), []), None)
    return logits_at(model, resid, data.answer_pos)


FAMILIES = {
    "mha-ln": {},
    "attn-only-rms": {"attn_only": True, "normalization_type": "RMS"},
    "gqa-rotary": {"n_key_value_heads": 2, "positional_embedding_type": "rotary"},
}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    family=st.sampled_from(list(FAMILIES)),
    seed=st.integers(0, 1000),
    density=st.floats(0.0, 1.0),
)
def test_per_label_ablation_equals_the_per_token_brute_force(family: str, seed: int, density: float) -> None:
    model = _model(seed, n_layers=2, **FAMILIES[family])
    data = _data(seed)
    graph = graph_of(model)
    names, _ = position_labels(data)
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(len(names), len(graph.edges), generator=g) < density
    prepared = prepare_batch(model, data, Ablation.RESAMPLE)
    fast = ablated_logits(model, EdgeLayout(graph), prepared, ~keep[None], active_labels(prepared))[0]
    torch.testing.assert_close(fast, brute_force_logits(model, data, keep), atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_same_mask_at_every_label_is_the_position_blind_circuit(family: str) -> None:
    model = _model(1, **FAMILIES[family])
    data = _data(1)
    graph = graph_of(model)
    n_labels = len(position_labels(data)[0])
    g = torch.Generator().manual_seed(2)
    blind = torch.rand(4, len(graph.edges), generator=g) < 0.5
    prepared = prepare_batch(model, data, Ablation.RESAMPLE)
    layout = EdgeLayout(graph)
    per_label = ablated_logits(
        model, layout, prepared, blind[:, None].expand(-1, n_labels, -1), active_labels(prepared)
    )
    torch.testing.assert_close(per_label, ablated_logits(model, layout, prepared, blind), atol=ATOL, rtol=0)


def test_a_mask_without_labels_or_labels_without_a_mask_is_refused() -> None:
    model = _model(0)
    data = _data(0)
    prepared = prepare_batch(model, data, Ablation.RESAMPLE)
    layout = EdgeLayout(graph_of(model))
    n = len(layout.graph.edges)
    with pytest.raises(ValueError, match="labels"):
        ablated_logits(model, layout, prepared, torch.zeros(1, 5, n, dtype=torch.bool))
    with pytest.raises(ValueError, match="labels"):
        ablated_logits(model, layout, prepared, torch.zeros(1, n, dtype=torch.bool), active_labels(prepared))


def _scores(values: torch.Tensor, model: HookedTransformer) -> PositionEdgeScores:
    return PositionEdgeScores(graph_of(model), ("S", "END", "other"), values, "eap", 0.0)


def test_top_pairs_rank_like_the_position_blind_selection() -> None:
    model = _model(0, n_layers=1, attn_only=True)
    n = len(graph_of(model).edges)
    values = torch.full((3, n), 0.5)
    values[0, 1], values[2, 3], values[1, 0] = -2.0, -7.0, 5.0
    signed = top_pairs(_scores(values, model), 2, Ranking.SIGNED)  # most negative first, as selection.ranked
    absolute = top_pairs(_scores(values, model), 2, Ranking.ABSOLUTE)
    assert signed.nonzero().tolist() == [[0, 1], [2, 3]]
    assert absolute.nonzero().tolist() == [[1, 0], [2, 3]]
    with pytest.raises(HeadgraphError):
        top_pairs(_scores(values, model), 3 * n + 1, Ranking.SIGNED)


def test_position_curves_end_at_the_clean_run_and_the_full_mask_is_clean() -> None:
    model = _model(3)
    data = _data(3)
    scores = position_edge_scores(model, data, METRIC, method="eap")
    runner = PositionRunner(CircuitRunner(model, data, METRIC, Ablation.RESAMPLE), len(scores.labels))
    report = position_report(runner, scores)
    assert report.signed.points[-1].faithfulness == pytest.approx(1.0)
    assert runner.faithfulness(torch.zeros_like(scores.values, dtype=torch.bool)) == pytest.approx(0.0, abs=1e-5)
    assert all(0 <= p.asked <= scores.values.numel() for p in report.absolute.points)
