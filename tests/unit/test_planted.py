"""Planted-circuit models: exact activation patching finds exactly the planted heads, wherever they sit."""

from __future__ import annotations

import pytest
import torch

from circuits.discovery import Ablation, ActivationPatching
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.groundtruth import (
    PLANTED,
    InductionConfig,
    IOIConfig,
    Planted,
    PlantedInductionTask,
    PlantedIOICorruption,
    PlantedIOITask,
    induction_model,
    ioi_model,
)
from circuits.groundtruth.planted import Layout
from circuits.model import attention_weights, embedding_weights, hook_pattern, hook_z, run_to_logits, run_with_cache

INERT_TOL = 1e-6
"""Bound on a distractor's exact patching effect (the issue's acceptance bound)."""

MIN_CIRCUIT_EFFECT = 0.5
"""Least |normalized effect| of a planted head: each alone removes at least half the behaviour."""

N_PAIRS = 16

INDUCTION_PLACEMENTS = [
    InductionConfig(),
    InductionConfig(n_layers=3, n_heads=3, previous_token=(0, 0), induction=(2, 2), seed=1),
    InductionConfig(n_layers=4, n_heads=2, previous_token=(1, 1), induction=(3, 0), seed=2),
    InductionConfig(n_layers=2, n_heads=6, previous_token=(0, 5), induction=(1, 0), seed=3),
]
IOI_PLACEMENTS = [
    IOIConfig(),
    IOIConfig(n_layers=4, n_heads=3, duplicate_token=(0, 0), s_inhibition=(2, 1), name_mover=(3, 2), seed=1),
    IOIConfig(n_layers=5, n_heads=2, duplicate_token=(1, 1), s_inhibition=(2, 0), name_mover=(4, 1), seed=2),
    IOIConfig(n_layers=3, n_heads=5, duplicate_token=(0, 4), s_inhibition=(1, 0), name_mover=(2, 4), seed=3),
]
PLACEMENTS = [induction_model(c) for c in INDUCTION_PLACEMENTS] + [ioi_model(c) for c in IOI_PLACEMENTS]
IDS = [f"{p.name}-{'-'.join(str(n) for n in sorted(p.circuit_heads, key=Node.sort_key))}" for p in PLACEMENTS]


@pytest.mark.parametrize("planted", PLACEMENTS, ids=IDS)
def test_exact_patching_recovers_exactly_the_planted_heads(planted: Planted) -> None:
    data = planted.task.dataset(N_PAIRS, seed=0)
    scores = ActivationPatching(batch_size=8)(planted.model, data, planted.task.metric, progress=False)
    expected = planted.expected_heads()
    assert expected == planted.circuit_heads
    norm = scores.normalized
    for head in planted.truth.graph.heads:
        value = float(norm[scores.graph.node_index(head)])
        if head in expected:
            assert value <= -MIN_CIRCUIT_EFFECT, f"planted head {head}: normalized effect {value}"
        else:
            raw = float(scores.values[scores.graph.node_index(head)])
            assert abs(raw) < INERT_TOL, f"distractor {head}: effect {raw}"
    assert scores.top_k(len(expected)).nodes == expected
    assert scores.baseline.clean_accuracy == 1.0


@pytest.mark.parametrize("ablation", [Ablation.MEAN, Ablation.ZERO])
@pytest.mark.parametrize("planted", [PLACEMENTS[1], PLACEMENTS[5]], ids=[IDS[1], IDS[5]])
def test_distractors_are_inert_under_every_ablation(planted: Planted, ablation: Ablation) -> None:
    data = planted.task.dataset(N_PAIRS, seed=1)
    scores = ActivationPatching(ablation=ablation)(planted.model, data, planted.task.metric, progress=False)
    for head in planted.distractors:
        assert abs(float(scores.values[scores.graph.node_index(head)])) < INERT_TOL, head
    for head in planted.expected_heads(ablation):
        assert abs(float(scores.normalized[scores.graph.node_index(head)])) >= MIN_CIRCUIT_EFFECT, head


@pytest.mark.parametrize("planted", PLACEMENTS, ids=IDS)
def test_distractors_write_only_what_nothing_reads(planted: Planted) -> None:
    """Inertness by construction: W_O of distractors is zero outside JUNK; nothing reads JUNK."""
    model = planted.model
    d_junk = _junk_dims(planted)
    read = torch.ones(model.cfg.d_model, dtype=torch.bool)
    read[d_junk] = False
    for layer in range(model.cfg.n_layers):
        w = attention_weights(model, layer)
        for name in ("W_Q", "W_K", "W_V"):
            assert torch.all(getattr(w, name)[:, d_junk] == 0), (layer, name)
        for head in range(model.cfg.n_heads):
            if Node.of_head(layer, head) not in planted.circuit_heads:
                assert torch.all(w.W_O[head][:, read] == 0)
                assert w.W_O[head][:, d_junk].abs().sum() > 0, "a distractor writes something"
    assert torch.all(embedding_weights(model).W_U[d_junk] == 0)


def _junk_dims(planted: Planted) -> torch.Tensor:
    """JUNK is the last block of every planted layout: the dimensions distractors write to."""
    model = planted.model
    written = torch.zeros(model.cfg.d_model, dtype=torch.bool)
    for h in planted.distractors:
        written |= attention_weights(model, h.layer).W_O[h.head].abs().sum(0) > 0
    idx = torch.nonzero(written).flatten()
    assert len(idx) and int(idx.max()) == model.cfg.d_model - 1
    return torch.arange(int(idx.min()), model.cfg.d_model)


@pytest.mark.parametrize("planted", [PLACEMENTS[0], PLACEMENTS[4]], ids=[IDS[0], IDS[4]])
def test_distractors_are_real_heads(planted: Planted) -> None:
    """Non-trivial attention, outputs that change with the prompt, and decoys that attend like a circuit head."""
    data = planted.task.dataset(N_PAIRS, seed=2)
    model = planted.model
    names = [h(layer) for layer in range(model.cfg.n_layers) for h in (hook_pattern, hook_z)]
    _, clean = run_with_cache(model, data.clean, names)
    _, corrupt = run_with_cache(model, data.corrupt, names)
    decoys = 0
    last = data.answer_pos
    rows = torch.arange(len(data))
    for head in planted.distractors:
        pattern = clean[hook_pattern(head.layer)][:, head.head]  # (batch, q, k)
        assert float(pattern[rows, last].max(-1).values.mean()) > 0.3, f"{head} attends almost uniformly"
        assert not torch.equal(clean[hook_z(head.layer)][:, :, head.head], corrupt[hook_z(head.layer)][:, :, head.head])
        for c in planted.circuit_heads:
            decoys += torch.allclose(pattern, clean[hook_pattern(c.layer)][:, c.head])
    assert decoys >= 1, "at least one distractor copies a circuit head's attention"


@pytest.mark.parametrize("planted", PLACEMENTS, ids=IDS)
def test_the_mechanism_solves_its_task(planted: Planted) -> None:
    data = planted.task.dataset(N_PAIRS, seed=3)
    clean = run_to_logits(planted.model, data.clean, data.answer_pos)
    corrupt = run_to_logits(planted.model, data.corrupt, data.answer_pos)
    assert torch.equal(clean.argmax(-1), data.targets.answers[:, 0])
    if planted.name == "induction":  # the corrupt prompt has its own answer: the swapped-in token
        assert torch.equal(corrupt.argmax(-1), data.targets.wrong[:, 0])
    metric = planted.task.metric
    assert float(metric(clean, data.targets).min()) > 3.9  # ≈ ALPHA
    assert float(metric(corrupt, data.targets).max()) < 1e-6


def test_flip_corruption_hides_the_duplicate_token_head_from_resample_ablation() -> None:
    """Under FLIP a name is duplicated in both prompts: the duplicate-token head's output does not
    change, so resample patching gives it exactly 0 while zero ablation still finds it."""
    planted = ioi_model(IOIConfig(task=PlantedIOITask(corruption=PlantedIOICorruption.FLIP)))
    dup = planted.roles["duplicate-token"]
    assert planted.expected_heads() == planted.circuit_heads - {dup}
    data = planted.task.dataset(N_PAIRS, seed=0)
    resample = ActivationPatching()(planted.model, data, planted.task.metric, progress=False)
    zero = ActivationPatching(ablation=Ablation.ZERO)(planted.model, data, planted.task.metric, progress=False)
    i = resample.graph.node_index(dup)
    assert abs(float(resample.values[i])) < INERT_TOL
    assert float(zero.normalized[i]) <= -MIN_CIRCUIT_EFFECT
    assert resample.top_k(2).nodes == planted.expected_heads()
    assert resample.baseline.corrupt == pytest.approx(-resample.baseline.clean, abs=1e-9)  # the mover copies S
    assert dup not in planted.truth_for(Ablation.RESAMPLE).nodes and dup in planted.truth_for(Ablation.ZERO).nodes
    assert not any(e.src == dup for e in planted.truth_for(Ablation.RESAMPLE).edges)


def test_distractor_seed_changes_distractors_not_the_circuit() -> None:
    a, b = induction_model(InductionConfig(seed=0)), induction_model(InductionConfig(seed=1))
    assert a.truth == b.truth
    head = a.distractors[0]
    assert not torch.equal(
        attention_weights(a.model, head.layer).W_O[head.head], attention_weights(b.model, head.layer).W_O[head.head]
    )


def test_truth_circuits_name_every_read() -> None:
    ind = induction_model()
    assert {str(e) for e in ind.truth.edges} == {
        "input->L0H1<q>", "input->L0H1<k>", "input->L0H1<v>",
        "input->L1H2<q>", "L0H1->L1H2<k>", "input->L1H2<v>",
        "L1H2->logits",
    }  # fmt: skip
    ioi = ioi_model()
    dup, inh, mover = (str(ioi.roles[r]) for r in ("duplicate-token", "s-inhibition", "name-mover"))
    assert f"{dup}->{inh}<k>" in {str(e) for e in ioi.truth.edges}
    assert f"{inh}->{mover}<q>" in {str(e) for e in ioi.truth.edges}
    assert f"{mover}->logits" in {str(e) for e in ioi.truth.edges}
    assert len(ioi.truth.edges) == 12


def test_registry_builds_the_defaults() -> None:
    assert PLANTED.names() == ["induction", "ioi", "mlp-routed", "sink"]
    assert PLANTED["ioi"]().circuit_heads == ioi_model().circuit_heads


@pytest.mark.parametrize(
    "make",
    [
        lambda: InductionConfig(previous_token=(1, 0), induction=(1, 2)),  # same layer
        lambda: InductionConfig(previous_token=(1, 0), induction=(0, 2)),  # reversed
        lambda: InductionConfig(n_heads=2, induction=(1, 2)),  # no such head
        lambda: InductionConfig(junk=0),
        lambda: IOIConfig(duplicate_token=(0, 1), s_inhibition=(2, 0), name_mover=(1, 0)),
        lambda: IOIConfig(n_layers=2),  # the mover's layer 2 does not exist
        lambda: PlantedInductionTask(half=4),
        lambda: PlantedInductionTask(n_symbols=5, half=8),
        lambda: PlantedIOITask(n_names=2),
        lambda: PlantedIOITask(length=4),
    ],
)
def test_bad_configs_raise(make: object) -> None:
    with pytest.raises(HeadgraphError):
        make()  # type: ignore[operator]


def test_layout_blocks() -> None:
    lay = Layout({"A": 2, Layout.JUNK: 3})
    assert lay.dim("A", 1) == 1 and lay["JUNK"] == slice(2, 5)
    with pytest.raises(IndexError):
        lay.dim("A", 2)
