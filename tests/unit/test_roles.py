"""IOI roles (circuits/analysis/head_roles.py): direct logit attribution, role rules, planted circuit, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from circuits.analysis.head_roles import (
    ATTENTION_MIN,
    DIRECT_MIN,
    EFFECT_MIN,
    HeadRole,
    HeadSignal,
    Probe,
    Role,
    RoleAssignment,
    assign_roles,
    compare_roles,
    head_signals,
)
from circuits.cli import main
from circuits.discovery import ActivationPatching
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.groundtruth import IOIConfig, Planted, ioi_model
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import head_direct_logits, model_info, run_with_cache
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory, gemma3_like

ATOL = 1e-4
"""Float32 agreement of two computations of the same direct logit attribution."""

N_PAIRS = 24
"""Planted IOI pairs per role assignment (exact model: a few suffice)."""

PLACEMENTS = [
    IOIConfig(),
    IOIConfig(n_layers=4, n_heads=3, duplicate_token=(0, 2), s_inhibition=(2, 1), name_mover=(3, 0), seed=3),
    IOIConfig(n_layers=5, n_heads=2, duplicate_token=(1, 0), s_inhibition=(2, 1), name_mover=(4, 1), seed=7),
]


def test_direct_logits_equal_transformer_lens_decomposition(tiny_model: TinyFactory) -> None:
    """On a LayerNorm model: TransformerLens's stacked head results through ``apply_ln_to_stack``."""
    model = tiny_model()
    data = random_dataset(n=4, length=9)
    answer, wrong = data.targets.answers[:, 0], data.targets.wrong[:, 0]
    got = head_direct_logits(model, data.clean, data.answer_pos, answer, wrong)
    model.cfg.use_attn_result = True
    try:
        _, cache = model.run_with_cache(data.clean)
    finally:
        model.cfg.use_attn_result = False
    stack = cache.stack_head_results(layer=-1)  # (layer·head, batch, pos, d_model)
    normed = cache.apply_ln_to_stack(stack, layer=-1)
    for i in range(4):
        dirs = model.W_U[:, answer[i]] - model.W_U[:, wrong[i]]
        want = (normed[:, i, int(data.answer_pos[i])] @ dirs).reshape(model.cfg.n_layers, model.cfg.n_heads)
        torch.testing.assert_close(got[i], want, atol=ATOL, rtol=0)


def test_direct_logits_add_up_to_each_layers_attention_output_on_a_gemma_shaped_model() -> None:
    """Post-attention norms: a layer's heads' terms sum to its (post-norm) attention output's term."""
    model = gemma3_like()
    data = random_dataset(n=3, length=9)
    answer, wrong = data.targets.answers[:, 0], data.targets.wrong[:, 0]
    got = head_direct_logits(model, data.clean, data.answer_pos, answer, wrong)
    names = [f"blocks.{layer}.hook_attn_out" for layer in range(model.cfg.n_layers)]
    resid, cache = run_with_cache(model, data.clean, names)
    rows = torch.arange(3)
    final = resid[rows, data.answer_pos]
    scale = (final.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
    dirs = (model.W_U[:, answer] - model.W_U[:, wrong]).T
    for layer, name in enumerate(names):
        assert float(model.blocks[layer].attn.b_O.abs().max()) == 0  # else the bias would be a term too
        out = cache[name][rows, data.answer_pos] / scale * model.ln_final.w
        torch.testing.assert_close(got[:, layer].sum(-1), (out * dirs).sum(-1), atol=ATOL, rtol=0)


@pytest.mark.parametrize("config", PLACEMENTS, ids=lambda c: f"{c.n_layers}x{c.n_heads}")
def test_roles_of_the_planted_ioi_circuit_are_found(config: IOIConfig) -> None:
    planted = ioi_model(config)
    data = planted.task.dataset(N_PAIRS, seed=0)
    scores = ActivationPatching(batch_size=8)(planted.model, data, planted.task.metric, progress=False)
    roles = assign_roles(head_signals(planted.model, data, scores))
    found = {h.role: h.signal.node for h in roles.heads}
    assert found == {
        Role.NAME_MOVER: planted.roles["name-mover"],
        Role.S_INHIBITION: planted.roles["s-inhibition"],
        Role.DUPLICATE_TOKEN: planted.roles["duplicate-token"],
    }
    assert len(roles.heads) == 3  # distractors (some copy a circuit head's attention) are no candidates
    mover = roles.holders(Role.NAME_MOVER)[0]
    assert mover.depth == mover.signal.node.layer / (config.n_layers - 1)


def _signal(direct: float = 0.0, total: float = -0.5, **attention: float) -> HeadSignal:
    att = {p: attention.get(p.name, 0.0) for p in Probe}
    return HeadSignal(Node.of_head(0, 0), att, direct, total)


@pytest.mark.parametrize(
    ("signal", "role"),
    [
        (_signal(direct=DIRECT_MIN, END_IO=ATTENTION_MIN), Role.NAME_MOVER),
        (_signal(direct=-DIRECT_MIN, END_IO=0.5, END_S2=0.1), Role.NEGATIVE_MOVER),
        (_signal(direct=DIRECT_MIN, END_IO=0.3, END_S1=0.2, END_S2=0.2), None),  # attends more to S than IO
        (_signal(direct=0.0, total=-EFFECT_MIN, END_S2=0.4, END_IO=0.1), Role.S_INHIBITION),
        (_signal(direct=0.0, total=+0.1, END_S2=0.4), None),  # ablating it helps: not S-inhibition
        (_signal(direct=DIRECT_MIN, total=-0.1, END_S2=0.4), Role.S_SUPPRESSOR),  # writes to the logits
        (_signal(direct=-DIRECT_MIN, total=0.1, END_S2=0.4), None),
        (_signal(S2_S1_NEXT=0.3, S2_S1=0.1), Role.INDUCTION),
        (_signal(S2_S1=0.3, S2_S1_NEXT=0.1), Role.DUPLICATE_TOKEN),
        (_signal(S1_NEXT_S1=0.5, PREVIOUS=0.4), Role.PREVIOUS_TOKEN),
        (_signal(S1_NEXT_S1=0.5), None),  # looks back from S1+1 only: not a previous-token head
        (_signal(S1_NEXT_S1=ATTENTION_MIN - 0.01, PREVIOUS=0.9), None),
        (_signal(direct=DIRECT_MIN, S2_S1=0.9), None),  # writes to the logits: not a duplicate-token head
        (_signal(direct=-DIRECT_MIN, END_S2=0.9), None),
        (_signal(direct=0.2, END_IO=0.6, S2_S1=0.9), Role.NAME_MOVER),  # precedence: logits first
    ],
)
def test_rules(signal: HeadSignal, role: Role | None) -> None:
    from circuits.analysis.head_roles import ROLE_ORDER, RULES

    assert next((r for r in ROLE_ORDER if RULES[r](signal)), None) is role


def _assignment(model: str, n_layers: int, heads: list[tuple[int, Role | None]]) -> RoleAssignment:
    none = dict.fromkeys(Probe, 0.0)
    rows = tuple(HeadRole(HeadSignal(Node.of_head(lay, 0), none, 0.0, 0.0), role, n_layers) for lay, role in heads)
    return RoleAssignment(model, n_layers, 1, 8, rows)


def test_comparison_lists_holders_with_depth_and_the_shared_roles() -> None:
    a = _assignment("a", 5, [(4, Role.NAME_MOVER), (2, Role.S_INHIBITION), (1, None)])
    b = _assignment("b", 3, [(2, Role.NAME_MOVER), (0, Role.INDUCTION)])
    cmp = compare_roles(a, b)
    assert cmp.shared == [Role.NAME_MOVER]
    text = cmp.markdown()
    assert "| name mover | L4H0 (1.00) | L2H0 (1.00) | yes |" in text
    assert "| S-inhibition | L2H0 (0.50) | — | no |" in text
    assert "| (no role) | L1H0 (0.25) | — | |" in text
    assert cmp.to_dict()["shared"] == ["name mover"]


def test_signals_need_ioi_positions_and_fitting_scores() -> None:
    planted = ioi_model()
    data = planted.task.dataset(4, seed=0)
    scores = ActivationPatching()(planted.model, data, planted.task.metric, progress=False)
    with pytest.raises(HeadgraphError, match="lacks"):
        head_signals(planted.model, random_dataset(n=2, length=9, d_vocab=planted.task.vocab), scores)
    other = ioi_model(PLACEMENTS[1])
    with pytest.raises(HeadgraphError, match="do not fit"):
        head_signals(other.model, other.task.dataset(4, seed=0), scores)


def _circuit_file(planted: Planted, seed: int, path: Path) -> Path:
    data = planted.task.dataset(N_PAIRS, seed=seed)
    scores = ActivationPatching()(planted.model, data, planted.task.metric, progress=False)
    hg = HeadGraph(model_info(planted.model), TaskRun(planted.task.name, seed, N_PAIRS), scores, scores.top_k(3))
    return hg.save(path)


def test_cli_compares_two_circuits_by_role(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a = _circuit_file(ioi_model(), 0, tmp_path / "a.json")
    b = _circuit_file(ioi_model(), 1, tmp_path / "b.json")
    assert main(["compare", str(a), str(b), "--roles", "--n", "16", "--out", str(tmp_path / "roles")]) == 0
    out = capsys.readouterr().out
    assert "| name mover | L2H0 (1.00) | L2H0 (1.00) | yes |" in out
    assert "Roles in both circuits: name mover, S-inhibition, duplicate token." in out
    assert (tmp_path / "roles" / "roles.json").exists() and (tmp_path / "roles" / "roles.md").exists()


@pytest.mark.parametrize(
    ("b", "extra", "message"),
    [
        ("{a}", ["--n", "0"], "--n must be a positive number"),
        ("{a},{a}", ["--roles"], "one circuit file on each side"),
    ],
)
def test_cli_bad_role_input_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, b: str, extra: list[str], message: str
) -> None:
    a = str(_circuit_file(ioi_model(), 0, tmp_path / "a.json"))
    assert main(["compare", a, b.format(a=a), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("headgraph: error: ") and message in err and "\n" not in err


def test_cli_refuses_a_circuit_made_on_another_planted_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a = str(_circuit_file(ioi_model(), 0, tmp_path / "a.json"))
    b = str(_circuit_file(ioi_model(PLACEMENTS[1]), 0, tmp_path / "b.json"))
    assert main(["compare", a, b, "--roles"]) == 2
    assert "is not the one the circuit file was made on" in capsys.readouterr().err


def test_cli_refuses_a_task_run_with_other_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The pairs are regenerated with the task's defaults: a flip-corrupted IOI circuit is refused."""
    path = _circuit_file(ioi_model(), 0, tmp_path / "a.json")
    hg = HeadGraph.load(path)
    flipped = HeadGraph(hg.model, TaskRun("ioi", 0, 8, settings={"corruption": "flip", "orders": ["ABBA", "BABA"]}),
                        hg.scores, hg.circuit)  # fmt: skip
    b = flipped.save(tmp_path / "b.json")
    assert main(["compare", str(path), str(b), "--roles"]) == 2
    assert "with its default settings" in capsys.readouterr().err
