"""Merullo et al.'s stage rule recovers a planted IOI circuit stage by stage, with or without a shortlist."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuits.cli import main
from circuits.discovery import EAP, PathPatching
from circuits.errors import HeadgraphError
from circuits.graph import Node, NodeKind
from circuits.groundtruth.planted_ioi import IOIConfig, ioi_model
from circuits.measures.roc import stage_heads
from circuits.seed.stages import StageRule, find_stages, shortlist_senders
from tasks import LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

ATOL = 1e-9


@st.composite
def placements(draw: st.DrawFn) -> IOIConfig:
    """A planted IOI model with its three heads at random heads of increasing layers."""
    n_layers = draw(st.integers(3, 5))
    n_heads = draw(st.integers(2, 5))
    layers = sorted(draw(st.lists(st.integers(0, n_layers - 1), min_size=3, max_size=3, unique=True)))
    heads = [draw(st.integers(0, n_heads - 1)) for _ in range(3)]
    return IOIConfig(
        n_layers=n_layers,
        n_heads=n_heads,
        duplicate_token=(layers[0], heads[0]),
        s_inhibition=(layers[1], heads[1]),
        name_mover=(layers[2], heads[2]),
        seed=draw(st.integers(0, 1000)),
    )


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(config=placements(), shortlist=st.sampled_from([0, 3]))
def test_stages_are_mover_then_inhibition_then_duplicate_token(config: IOIConfig, shortlist: int) -> None:
    planted = ioi_model(config)
    data = planted.task.dataset(12, seed=config.seed)
    n_heads = config.n_layers * config.n_heads
    rule = StageRule(fraction=1 / n_heads, shortlist=shortlist)  # one head per stage
    result = find_stages(planted.model, data, planted.task.metric, rule, progress=False)
    roles = planted.roles
    assert result.heads == ((roles["name-mover"],), (roles["s-inhibition"],), (roles["duplicate-token"],))
    assert result.receivers[0] == (Node(NodeKind.LOGITS, config.n_layers),)
    assert result.receivers[1] == (roles["name-mover"],)
    assert result.circuit == planted.expected_heads()
    for scores, heads in zip(result.scores, result.heads, strict=True):
        assert stage_heads([scores], rule.fraction) == frozenset(heads)


def test_shortlist_is_the_top_eap_senders_into_the_receivers(tiny_model: TinyFactory) -> None:
    """Brute force: sum |EAP| per sender over the edges into the receivers through the inputs."""
    model = tiny_model()
    data = random_dataset(n=4, length=6, diff_from=2)
    eap = EAP()(model, data, LogitDiff(), progress=False)
    receivers = (Node.of_head(2, 1), Node.of_head(1, 0))
    want: dict[Node, float] = {}
    for i, e in enumerate(eap.graph.edges):
        if e.src.kind is NodeKind.HEAD and e.dst in receivers and e.qkv is not None and e.qkv.value in "kv":
            want[e.src] = want.get(e.src, 0.0) + abs(float(eap.values[i]))
    ranked = sorted(want, key=lambda n: -want[n])
    assert shortlist_senders(eap, receivers, "kv", 3) == tuple(ranked[:3])
    assert set(shortlist_senders(eap, receivers, "kv", 99)) == set(want)  # only heads upstream of a receiver


def test_stage_scores_equal_path_patching_of_the_shortlist(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=4, length=6, diff_from=2)
    rule = StageRule(fraction=0.2, shortlist=4, inputs=("", "q"))
    result = find_stages(model, data, LogitDiff(), rule, progress=False)
    stages = zip(result.scores, result.receivers, result.shortlists, ("qkv", "q"), strict=True)
    for scores, receivers, short, letters in stages:
        direct = PathPatching(
            receivers=",".join(map(str, receivers)), inputs=letters, senders=",".join(map(str, short))
        )(model, data, LogitDiff(), progress=False)
        torch.testing.assert_close(scores.values, direct.values, atol=ATOL, rtol=0, equal_nan=True)


@pytest.mark.parametrize(
    "bad",
    [{"inputs": ()}, {"inputs": ("", "x")}, {"inputs": ("", "")}, {"inputs": ("", "qq")}, {"fraction": 0.0},
     {"fraction": 1.5}, {"shortlist": -1}, {"batch_size": 0}],
)  # fmt: skip
def test_bad_rules_raise(bad: dict[str, object]) -> None:
    with pytest.raises(HeadgraphError):
        StageRule(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stages", "--n", "0"], "--n must be a positive number"),
        (["stages", "--task", "nope"], "unknown task 'nope'"),
        (["stages", "--inputs", "q,x"], "inputs must be distinct letters among q, k, v"),
        (["stages", "--fraction", "0"], "fraction of heads must be in (0, 1]"),
        (["stages", "--shortlist", "-2"], "shortlist must be a non-negative integer"),
        (["stages", "--ablation", "half"], "--ablation must be one of resample, mean, zero"),
    ],
)
def test_bad_cli_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("headgraph: error: ") and message in err, err
    assert "\n" not in err and "loading" not in captured.out


@pytest.mark.slow
def test_cli_writes_three_stages_on_smollm2(tmp_path: Path) -> None:
    out = tmp_path / "stages.json"
    argv = ["stages", "--n", "2", "--shortlist", "3", "--fraction", "0.01", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    stages = record["stages"]
    assert len(stages) == 3 and stages[0]["receivers"] == ["logits"]
    for before, after in itertools.pairwise(stages):
        assert after["receivers"] == [h for h in before["heads"] if not h.startswith("L0H")]
    assert all(len(s["heads"]) == 3 and set(s["heads"]) <= set(s["shortlist"]) for s in stages)
