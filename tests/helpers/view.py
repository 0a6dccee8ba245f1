"""Synthetic head-graph files for the page tests: real Scores objects with random, heavy-tailed values."""

from __future__ import annotations

import torch

from circuits.graph import ComponentGraph
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import ModelInfo
from circuits.scores import Baseline, Level, Scores
from circuits.selection import top_k


def synthetic_headgraph(
    n_layers: int = 4,
    n_heads: int = 4,
    level: Level = Level.EDGE,
    *,
    seed: int = 0,
    k: int = 60,
    unscored: float = 0.0,
    has_mlps: bool = True,
    split_qkv: bool = True,
) -> HeadGraph:
    """A head graph of a ``n_layers × n_heads`` model whose scores are random (a fraction ``unscored`` NaN)."""
    graph = ComponentGraph(n_layers, n_heads, has_mlps, split_qkv)
    n = len(graph.edges) if level is Level.EDGE else len(graph.nodes)
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(n, generator=g) * torch.rand(n, generator=g) ** 4  # a few strong, many weak
    if level is Level.NODE:  # node methods score heads and MLPs, not the input or the logits
        values[0] = values[-1] = torch.nan
    values[torch.rand(n, generator=g) < unscored] = torch.nan
    scores = Scores(graph, level, values, "synthetic", Baseline("logit_diff", 3.0, 0.5, 0.9, 0.1))
    info = ModelInfo(
        f"synthetic-{n_layers}x{n_heads}", n_layers, n_heads, n_heads, 64, 16, 100, not has_mlps, f"h{seed}"
    )
    return HeadGraph(info, TaskRun("ioi", seed, 8), scores, top_k(scores, k), created="2026-12-01T00:00:00+00:00")
