"""Exact edge patching: the metric change when one edge alone is ablated, one forward per edge.

For each edge u → v of the graph and each clean prompt, v's own input is given u's ablated output
in place of its clean one (:mod:`circuits.engine.edge_ablation`) and the change of the metric is
recorded: the quantity EAP and EAP-IG estimate (Syed et al. 2023; EAP-IG's ``exact`` method). It
costs one forward pass per edge (variants stack on the batch dimension), so it is the reference on
small models; the embedded default has 123,211 edges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.discovery.base import METHODS, Ablation, check_ablation, check_positive, method_params, summed_scores
from circuits.engine.ablation import BaselineSums
from circuits.engine.edge_ablation import ablated_logits, prepare_batch
from circuits.engine.edges import EdgeLayout, mean_sender_acts
from circuits.errors import HeadgraphError
from circuits.model import PrefixGuard, graph_of, run_to_logits
from circuits.scores import Level, Scores
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = ["EdgePatching"]


@METHODS.register("edge-patching")
@dataclass(frozen=True)
class EdgePatching:
    """Exact edge-level patching, one edge at a time.

    Attributes:
        ablation: what replaces the sender's output on the patched edge.
        batch_size: prompts per forward (before stacking variants).
        max_rows: most rows (edges × prompts) in one forward.
        edge_start: score only the edges whose index (in the graph's edge order) is at least this.
        edge_stop: ... and below this (0: to the last edge). The others hold NaN; a range is one
            shard of a run split across workers (:mod:`circuits.sweep.shard`).
    """

    name: ClassVar[str] = "edge-patching"
    level: ClassVar[Level] = Level.EDGE
    ablation: Ablation = Ablation.RESAMPLE
    batch_size: int = 32
    max_rows: int = 256
    edge_start: int = 0
    edge_stop: int = 0

    def __post_init__(self) -> None:
        check_positive(batch_size=self.batch_size, max_rows=self.max_rows)
        check_ablation(self.ablation)
        if self.edge_start < 0 or self.edge_stop < 0 or (self.edge_stop and self.edge_start >= self.edge_stop):
            raise HeadgraphError(f"edge_start < edge_stop (>= 0) expected, got {self.edge_start}, {self.edge_stop}")

    @torch.inference_mode()
    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        graph = graph_of(model)
        layout = EdgeLayout(graph)
        n_edges = len(graph.edges)
        lo, hi = self.edge_start, self.edge_stop or n_edges
        if hi > n_edges:
            raise HeadgraphError(f"edge_stop {hi} is beyond the graph's {n_edges} edges")
        means = mean_sender_acts(model, data, self.batch_size, terms=True) if self.ablation is Ablation.MEAN else None
        totals = torch.zeros(n_edges, dtype=torch.float64)
        sums = BaselineSums()
        acc = Accuracy()
        n_batches = -(-len(data) // self.batch_size)
        bar = tqdm(
            total=n_batches * (hi - lo), desc=f"edge patching ({len(data)} pairs)", unit="edge", disable=not progress
        )
        guard = PrefixGuard()
        for batch in data.batches(self.batch_size):
            prepared = prepare_batch(model, batch, self.ablation, means, guard)
            clean = run_to_logits(model, batch.clean, batch.answer_pos)
            corrupt = run_to_logits(model, batch.corrupt, batch.answer_pos)
            m_clean = metric(clean, batch.targets)
            sums.add(m_clean, metric(corrupt, batch.targets), acc(clean, batch.targets), acc(corrupt, batch.targets))
            k = max(1, self.max_rows // len(batch))
            for first in range(lo, hi, k):
                chunk = torch.arange(first, min(first + k, hi))
                ablate = torch.zeros(len(chunk), n_edges, dtype=torch.bool)
                ablate[torch.arange(len(chunk)), chunk] = True
                logits = ablated_logits(model, layout, prepared, ablate)  # (V, b, vocab)
                effect = metric(logits.flatten(0, 1), batch.targets.repeat(len(chunk))).view(len(chunk), -1)
                totals[chunk] += (effect - m_clean).double().sum(1).cpu()
                bar.update(len(chunk))
        bar.close()
        if (lo, hi) != (0, n_edges):
            totals[:lo] = totals[hi:] = torch.nan  # not scored by this shard
        return summed_scores(self.name, method_params(self), graph, Level.EDGE, totals, sums, len(data), metric, start)
