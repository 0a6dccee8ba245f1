"""``positions=named`` on the edge methods: same blind scores, pair selection, the head-graph file, show and picture."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from circuits.discovery import build_method
from circuits.discovery.position_setting import PositionScores, position_selection
from circuits.errors import CircuitFileError, HeadgraphError
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import model_info
from circuits.pictures.position_plot import format_positions
from circuits.plot import plot_headgraph
from tasks import LogitDiff, PromptPairDataset
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

METRIC = LogitDiff()


def _data() -> PromptPairDataset:
    d = random_dataset(n=4, length=7, lengths=[7, 6, 7, 7], diff_from=2)
    return dataclasses.replace(d, positions={"S": torch.tensor([3, 2, 4, 2]), "T": torch.tensor([5, 5, 6, 4])})


@pytest.mark.parametrize(
    ("method", "settings"),
    [("eap", {}), ("eap-ig", {"ig_steps": "3"}), ("relp", {}), ("relp", {"qk": "none"})],
)
def test_named_positions_keep_the_blind_scores_and_split_them(
    tiny_model: TinyFactory, method: str, settings: dict[str, str]
) -> None:
    model, data = tiny_model(), _data()
    blind = build_method(method, settings)(model, data, METRIC, progress=False)
    named = build_method(method, {**settings, "positions": "named"})(model, data, METRIC, progress=False)
    assert isinstance(named, PositionScores) and not isinstance(blind, PositionScores)
    assert named.by_position is not None
    torch.testing.assert_close(named.values, blind.values, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(named.by_position.values.sum(0), named.values)
    assert named.baseline.clean == pytest.approx(blind.baseline.clean, abs=1e-5)
    assert named.baseline.corrupt == pytest.approx(blind.baseline.corrupt, abs=1e-5)
    assert named.params["positions"] == "named"
    assert named.by_position.labels == ("S", "T", "END", "other")


@pytest.mark.parametrize(
    ("method", "settings", "message"),
    [
        ("eap", {"positions": "named", "ablation": "mean"}, "resample"),
        ("relp", {"positions": "named", "ablation": "zero"}, "resample"),
        ("eap", {"positions": "sideways"}, "positions"),
        ("eap-ig-activations", {"positions": "named"}, "positions"),
    ],
)
def test_bad_position_settings_are_one_line_errors(method: str, settings: dict[str, str], message: str) -> None:
    with pytest.raises(HeadgraphError, match=message):
        build_method(method, settings)


def test_a_task_without_named_positions_is_refused(tiny_model: TinyFactory) -> None:
    with pytest.raises(HeadgraphError, match="no named positions"):
        build_method("eap", {"positions": "named"})(tiny_model(), random_dataset(n=2), METRIC, progress=False)


def _headgraph(tiny_model: TinyFactory, k: int = 6) -> HeadGraph:
    model = tiny_model()
    scores = build_method("eap-ig", {"ig_steps": "2", "positions": "named"})(model, _data(), METRIC, progress=False)
    assert isinstance(scores, PositionScores)
    circuit, positions = position_selection(scores, k)
    return HeadGraph(model_info(model), TaskRun("random", 0, 4), scores, circuit, positions=positions)


def test_selection_keeps_the_top_pairs_and_their_edges(tiny_model: TinyFactory) -> None:
    hg = _headgraph(tiny_model, k=6)
    pairs = hg.positions["pairs"]
    split = hg.scores.by_position  # type: ignore[attr-defined]
    assert len(pairs) == 6
    best = split.values.abs().flatten().sort(descending=True).values[:6]
    assert [abs(p[2]) for p in pairs] == pytest.approx(best.tolist())
    assert {str(e) for e in hg.circuit.edges} == {p[0] for p in pairs}
    assert {p[1] for p in pairs} <= set(hg.positions["labels"])


def test_the_file_stores_positions_and_files_without_them_still_load(tiny_model: TinyFactory, tmp_path: Path) -> None:
    hg = _headgraph(tiny_model)
    back = HeadGraph.load(hg.save(tmp_path / "c.json"))
    assert back.positions == json.loads(json.dumps(hg.positions))
    assert back.circuit.edges == hg.circuit.edges
    old = hg.to_dict()
    del old["positions"]
    assert HeadGraph.from_dict(old).positions == {}
    bad = hg.to_dict()
    bad["positions"]["pairs"][0][1] = "nowhere"
    with pytest.raises(CircuitFileError, match="nowhere"):
        HeadGraph.from_dict(bad)


def test_show_table_and_picture_have_the_positions(tiny_model: TinyFactory, tmp_path: Path) -> None:
    hg = _headgraph(tiny_model)
    table = format_positions(hg.positions, 3).splitlines()
    assert len(table) == 4 and table[0].split() == ["edge", "position", "score", "normalized"]
    assert table[1].split()[:2] == hg.positions["pairs"][0][:2]
    png = plot_headgraph(hg, tmp_path / "c.png")
    assert png.stat().st_size > 10_000
