"""Sharded exact patching: shards merged equal one process's Scores (within 1e-6), in process and on Ray."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits.discovery import ActivationPatching, Components, EdgePatching, build_method
from circuits.errors import HeadgraphError
from circuits.groundtruth.planted import PLANTED
from circuits.sweep.shard import ShardedMethod, merge_shards, shard_methods

SHARD_ATOL = 1e-6
"""Merged shards against one process: only the stacking of variants in a forward differs."""


@pytest.fixture(scope="module")
def planted():  # type: ignore[no-untyped-def]
    p = PLANTED["ioi"]()
    return p, p.task.dataset(8, seed=0)


def _assert_same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert a.graph == b.graph and a.level is b.level and a.baseline == b.baseline
    assert torch.equal(torch.isnan(a.values), torch.isnan(b.values))
    assert torch.allclose(a.values.nan_to_num(), b.values.nan_to_num(), atol=SHARD_ATOL, rtol=0)


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_activation_patching_shards_merge_to_one_process(planted, shards: int) -> None:  # type: ignore[no-untyped-def]
    p, data = planted
    one = ActivationPatching()(p.model, data, p.task.metric, progress=False)
    merged = ShardedMethod(ActivationPatching(), shards=shards, in_process=True)(
        p.model, data, p.task.metric, progress=False
    )
    _assert_same(merged, one)
    assert merged.params["shards"] == len(
        shard_methods(ActivationPatching(), [str(h) for h in one.graph.heads], 0, shards)
    )


@pytest.mark.parametrize("shards", [2, 7])
def test_edge_patching_shards_merge_to_one_process(planted, shards: int) -> None:  # type: ignore[no-untyped-def]
    p, data = planted
    one = EdgePatching()(p.model, data, p.task.metric, progress=False)
    merged = ShardedMethod(EdgePatching(), shards=shards, in_process=True)(p.model, data, p.task.metric, progress=False)
    _assert_same(merged, one)


def test_an_edge_range_scores_only_its_edges(planted) -> None:  # type: ignore[no-untyped-def]
    p, data = planted
    part = EdgePatching(edge_start=10, edge_stop=20)(p.model, data, p.task.metric, progress=False)
    scored = ~torch.isnan(part.values)
    assert scored.nonzero().flatten().tolist() == list(range(10, 20))
    with pytest.raises(HeadgraphError, match="beyond"):
        EdgePatching(edge_start=0, edge_stop=10_000)(p.model, data, p.task.metric, progress=False)
    with pytest.raises(HeadgraphError, match="edge_start < edge_stop"):
        EdgePatching(edge_start=5, edge_stop=5)


@settings(max_examples=40, deadline=None)
@given(n_heads=st.integers(1, 40), n_edges=st.integers(1, 500), shards=st.integers(1, 12))
def test_shards_cover_every_item_once(n_heads: int, n_edges: int, shards: int) -> None:
    heads = [f"L{i // 4}H{i % 4}" for i in range(n_heads)]
    parts = shard_methods(ActivationPatching(), heads, 0, shards)
    assert len(parts) <= shards and [h for m in parts for h in (m.heads or ())] == heads
    edges = shard_methods(EdgePatching(), [], n_edges, shards)
    assert len(edges) <= shards
    covered = [i for m in edges for i in range(m.edge_start, m.edge_stop)]
    assert covered == list(range(n_edges))


def test_what_cannot_be_sharded_or_merged_raises(planted) -> None:  # type: ignore[no-untyped-def]
    p, data = planted
    with pytest.raises(HeadgraphError, match="cannot be sharded"):
        ShardedMethod(build_method("eap"))  # type: ignore[arg-type]
    with pytest.raises(HeadgraphError, match="heads only"):
        shard_methods(ActivationPatching(components=Components.HEADS_AND_MLPS), ["L0H0"], 0, 2)
    a = ActivationPatching(heads=("L0H0", "L0H1"))(p.model, data, p.task.metric, progress=False)
    with pytest.raises(HeadgraphError, match="same item"):
        merge_shards([a, a], ActivationPatching())
    other = dataclasses.replace(a, baseline=dataclasses.replace(a.baseline, clean=a.baseline.clean + 1))
    b = ActivationPatching(heads=("L1H0",))(p.model, data, p.task.metric, progress=False)
    with pytest.raises(HeadgraphError, match="baseline"):
        merge_shards([other, b], ActivationPatching())


@pytest.mark.slow
def test_shards_on_a_local_ray_merge_to_one_process(planted) -> None:  # type: ignore[no-untyped-def]
    ray = pytest.importorskip("ray", reason="Ray (the headgraph[sweep] extra: make install-sweep) is not installed")
    p, data = planted
    one = EdgePatching()(p.model, data, p.task.metric, progress=False)
    merged = ShardedMethod(EdgePatching(), shards=2)(p.model, data, p.task.metric, progress=False)
    _assert_same(merged, one)
    assert not ray.is_initialized()
