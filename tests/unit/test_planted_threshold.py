"""The third planted family: a threshold circuit through a saturated step MLP, and one steered by
query biases and first-token sinks among distractors that read every dimension (float32)."""

from __future__ import annotations

import math

import pytest
import torch

from circuits.discovery import Ablation, build_method
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.groundtruth import PLANTED, Route, ThresholdConfig, threshold_model
from circuits.groundtruth.planted import ALPHA, Planted
from circuits.groundtruth.planted_threshold import SINK_CONFIG
from circuits.measures.roc import evaluate
from circuits.model import run_to_logits, run_with_cache

MLP_ROUTED = threshold_model(ThresholdConfig())
SINK = threshold_model(SINK_CONFIG)
MOVED_LATE = threshold_model(ThresholdConfig(n_layers=4, n_heads=2, mover=(1, 0), mlp_layer=2, reader=(3, 1), seed=3))
MODELS = {"mlp-routed": MLP_ROUTED, "sink": SINK, "mlp-routed 4x2": MOVED_LATE}

EXACT = {
    "activation-patching": {},
    "activation-patching heads+mlps": {"components": "heads+mlps"},
    "edge-patching": {},
    "sae-patching": {},
}
"""Exact methods and their settings; path patching needs the reader among its receivers (below)."""

GRADIENT = ("attribution-patching", "eap", "eap-ig")


def _method(label: str, settings: dict[str, str]) -> object:
    return build_method(label.split()[0], settings)


@pytest.mark.parametrize("planted", MODELS.values(), ids=MODELS.keys())
def test_the_circuit_does_the_task_and_distractors_are_inert(planted: Planted) -> None:
    data = planted.task.dataset(16, seed=0)
    metric = planted.task.metric
    clean = metric(run_to_logits(planted.model, data.clean, data.answer_pos), data.targets)
    corrupt = metric(run_to_logits(planted.model, data.corrupt, data.answer_pos), data.targets)
    torch.testing.assert_close(clean, torch.full_like(clean, ALPHA), atol=1e-6, rtol=0)
    torch.testing.assert_close(corrupt, torch.full_like(corrupt, -ALPHA), atol=1e-6, rtol=0)


def test_the_sink_models_junk_grows_while_the_logits_stay_exact() -> None:
    """What makes the SINK route hard: float32, and a never-read subspace orders of magnitude larger."""
    data = SINK.task.dataset(8, seed=0)
    resid, _ = run_with_cache(SINK.model, data.clean, [])
    assert SINK.model.cfg.dtype == torch.float32
    assert float(resid.abs().max()) > 1e3
    assert Route(SINK.name) is Route.SINK and SINK.model.cfg.attn_only


@pytest.mark.parametrize("planted", MODELS.values(), ids=MODELS.keys())
@pytest.mark.parametrize("label", [*EXACT, "path-patching"])
def test_every_exact_method_finds_the_circuit(planted: Planted, label: str) -> None:
    settings = dict(EXACT.get(label, {}))
    if label == "path-patching":  # the mover reaches the logits only through the reader
        settings["receivers"] = f"{planted.roles['reader']},logits"
    method = _method(label, settings)
    data = planted.task.dataset(8, seed=0)
    scores = method(planted.model, data, planted.task.metric, progress=False)  # type: ignore[operator]
    r = evaluate(scores, planted.truth_for(Ablation.RESAMPLE))
    assert r.node_auc == r.node_auc_pessimistic == 1.0, (label, r)
    node = scores.to_nodes()
    for head in planted.truth.graph.heads:
        value = float(node.values[node.graph.node_index(head)])
        if head not in planted.circuit_heads and not math.isnan(value):
            assert value == 0.0, f"{label}: distractor {head} has effect {value}"


def test_path_patching_to_the_logits_alone_misses_the_mover_as_it_should() -> None:
    """With the logits as the only receiver, the reader is frozen in step 1, so the mover's path is cut."""
    scores = build_method("path-patching")(
        MLP_ROUTED.model, MLP_ROUTED.task.dataset(8, seed=0), MLP_ROUTED.task.metric, progress=False
    )
    mover = MLP_ROUTED.roles["mover"]
    assert float(scores.to_nodes().values[scores.graph.node_index(mover)]) == 0.0


@pytest.mark.parametrize("name", GRADIENT)
def test_gradient_methods_see_no_mover_behind_the_saturated_step(name: str) -> None:
    """The step MLP is flat away from ½: the metric's gradient with respect to the mover's output is
    0 (up to float64 rounding), so attribution gives it 0 while exact patching gives it the whole effect (−2·ALPHA).
    The reader (after the MLP) is found; node AUC is 0.75 (the mover ties with the distractors)."""
    planted = MLP_ROUTED
    data = planted.task.dataset(8, seed=0)
    scores = build_method(name)(planted.model, data, planted.task.metric, progress=False).to_nodes()
    exact = build_method("activation-patching")(planted.model, data, planted.task.metric, progress=False)
    mover, reader = planted.roles["mover"], planted.roles["reader"]
    g = scores.graph
    assert abs(float(scores.values[g.node_index(mover)])) < 1e-12  # float64 rounding, 1e-13 of the effect
    assert float(exact.values[g.node_index(mover)]) == pytest.approx(-2 * ALPHA, abs=1e-6)
    assert float(scores.values[g.node_index(reader)]) == pytest.approx(-2 * ALPHA, rel=0.05)
    assert evaluate(scores, planted.truth_for(Ablation.RESAMPLE)).node_auc == 0.75


def test_both_routes_are_registered_and_placements_are_checked() -> None:
    assert {"mlp-routed", "sink"} <= set(PLANTED.names())
    assert isinstance(PLANTED["sink"](), Planted)
    with pytest.raises(HeadgraphError, match="step MLP must sit"):
        ThresholdConfig(mlp_layer=2)
    with pytest.raises(HeadgraphError, match="later layer"):
        ThresholdConfig(mover=(2, 0), reader=(1, 0))
    with pytest.raises(HeadgraphError, match="even"):
        threshold_model(ThresholdConfig(task=type(MLP_ROUTED.task)(n_numbers=5)))
    assert MLP_ROUTED.roles["step-mlp"] == Node.of_mlp(1)
