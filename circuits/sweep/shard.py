"""Exact patching split into shards across Ray workers, merged into the Scores of one process.

Activation patching (heads) and edge patching score each head or edge independently of the others:
a head's score is the metric change when it alone is patched, summed over prompts. So a run splits
into shards by item — a list of heads (:attr:`ActivationPatching.heads`) or a range of edges
(:attr:`EdgePatching.edge_start` / ``edge_stop``) — each scored by one Ray task on the whole data,
and the merge takes each item's value from the one shard that scored it. The baseline (clean and
corrupt metric) is the same in every shard; the merge checks it. Only the stacking of variants in
a forward differs from one process, so the merged values equal one process's within float
round-off (the tests check 1e-6).

A worker gets the model as a name it loads itself (``load_model``, so a 1.5B model never passes
through Ray's object store) or, for a model without a loadable name (a planted model), the model
object itself.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from transformer_lens import HookedTransformer

from circuits.discovery.activation_patching import ActivationPatching, Components
from circuits.discovery.base import DiscoveryMethod, method_params
from circuits.discovery.edge_patching import EdgePatching
from circuits.errors import HeadgraphError
from circuits.model import OFFLINE_MODELS, graph_of
from circuits.scores import Level, Scores, flag_uninformative
from tasks import PromptPairDataset
from tasks.metrics import Metric

__all__ = ["BASELINE_RTOL", "ShardedMethod", "merge_shards", "shard_methods"]

BASELINE_RTOL = 1e-9
"""Relative tolerance between the shards' baselines (the same forward passes of the same prompts)."""

Sharded = ActivationPatching | EdgePatching


def shard_methods(method: DiscoveryMethod, graph_heads: list[str], n_edges: int, shards: int) -> list[Sharded]:
    """``method`` split into at most ``shards`` methods, each scoring a contiguous part of the items.

    Examples:
        >>> [m.heads for m in shard_methods(ActivationPatching(), ["L0H0", "L0H1", "L1H0"], 0, 2)]
        [('L0H0', 'L0H1'), ('L1H0',)]
        >>> [(m.edge_start, m.edge_stop) for m in shard_methods(EdgePatching(), [], 5, 2)]
        [(0, 3), (3, 5)]
    """
    if shards <= 0:
        raise HeadgraphError(f"--shards must be positive, got {shards}")
    if isinstance(method, ActivationPatching):
        if method.components is not Components.HEADS:
            raise HeadgraphError("sharded activation patching patches heads only (components=heads)")
        heads = list(method.heads) if method.heads is not None else graph_heads
        size = -(-len(heads) // shards)
        return [dataclasses.replace(method, heads=tuple(heads[i : i + size])) for i in range(0, len(heads), size)]
    if isinstance(method, EdgePatching):
        lo, hi = method.edge_start, method.edge_stop or n_edges
        size = -(-(hi - lo) // shards)
        return [dataclasses.replace(method, edge_start=i, edge_stop=min(i + size, hi)) for i in range(lo, hi, size)]
    raise HeadgraphError(f"method {getattr(method, 'name', method)!r} cannot be sharded: use activation-patching or "
                         "edge-patching")  # fmt: skip


def merge_shards(parts: list[Scores], method: DiscoveryMethod, seconds: float = math.nan) -> Scores:
    """One :class:`Scores` from shards that each scored a disjoint part of the items.

    Raises:
        HeadgraphError: the shards disagree on graph, level or baseline, or an item is scored twice.
    """
    if not parts:
        raise HeadgraphError("no shard to merge")
    first = parts[0]
    values = torch.full_like(first.values, torch.nan, dtype=torch.float64)
    for p in parts:
        if p.graph != first.graph or p.level is not first.level:
            raise HeadgraphError("shards of different graphs or levels cannot be merged")
        for a, b in ((p.baseline.clean, first.baseline.clean), (p.baseline.corrupt, first.baseline.corrupt)):
            if not math.isclose(a, b, rel_tol=BASELINE_RTOL, abs_tol=1e-12):
                raise HeadgraphError(f"shards disagree on the baseline ({a} vs {b}): not the same data")
        scored = ~torch.isnan(p.values)
        if bool((scored & ~torch.isnan(values)).any()):
            raise HeadgraphError("two shards scored the same item")
        values[scored] = p.values[scored].double()
    merged = Scores(
        first.graph,
        first.level,
        values.to(first.values.dtype),
        method.name,
        first.baseline,
        {**method_params(method), "shards": len(parts)},
        seconds if not math.isnan(seconds) else sum(p.seconds for p in parts),
    )
    return flag_uninformative(merged)  # as one process would (a shard's own warnings are about its part)


def _shard_task(
    source: str | HookedTransformer, dtype: str, device: str, data: PromptPairDataset, metric: Metric, m: Sharded
) -> Scores:
    """One shard, in a Ray worker: load (or take) the model, score the shard's items, on the CPU."""
    if isinstance(source, str):
        from circuits.model import load_model

        model = load_model(source, device=device, dtype=dtype, progress=False)
    else:
        model = source if str(source.cfg.device) == device else source.to(device, print_details=False)
    scores = m(model, data.to(device), metric, progress=False)
    return dataclasses.replace(scores, values=scores.values.cpu())


@dataclass(frozen=True)
class ShardedMethod:
    """An exact method run as ``shards`` Ray tasks (a :class:`~circuits.discovery.base.DiscoveryMethod`).

    Attributes:
        inner: the method to split (activation patching of heads, or edge patching).
        shards: number of parts.
        address: the Ray cluster to use (default: ``RAY_ADDRESS``, else a local Ray of ``shards`` CPUs).
        num_cpus: CPU cores per shard.
        in_process: run the shards one after another here (no Ray; the merge is the same).
    """

    inner: DiscoveryMethod
    shards: int = 2
    address: str | None = None
    num_cpus: float = 1.0
    in_process: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.inner, ActivationPatching | EdgePatching):
            shard_methods(self.inner, [], 0, 1)  # raises the one-line error
        if isinstance(self.inner, ActivationPatching) and self.inner.components is not Components.HEADS:
            shard_methods(self.inner, [], 0, 1)
        if self.shards <= 0 or self.num_cpus <= 0:
            raise HeadgraphError(f"shards and num_cpus must be positive, got {self.shards}, {self.num_cpus}")

    @property
    def name(self) -> str:
        """The inner method's name (the merged Scores carry it)."""
        return self.inner.name

    @property
    def level(self) -> Level:
        """The inner method's level."""
        return self.inner.level

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        graph = graph_of(model)
        parts = shard_methods(self.inner, [str(h) for h in graph.heads], len(graph.edges), self.shards)
        name = getattr(model.cfg, "model_name", "")
        source: str | HookedTransformer = name if name in OFFLINE_MODELS else model
        dtype = str(model.cfg.dtype).removeprefix("torch.")
        device = str(model.cfg.device or "cpu")
        if self.in_process:
            results = [_shard_task(model, dtype, device, data, metric, m) for m in parts]
        else:
            results = self._on_ray(source, dtype, device, data, metric, parts, progress)
        return merge_shards(results, self.inner, time.perf_counter() - start)

    def _on_ray(
        self,
        source: str | HookedTransformer,
        dtype: str,
        device: str,
        data: PromptPairDataset,
        metric: Metric,
        parts: list[Sharded],
        progress: bool,
    ) -> list[Scores]:
        import os

        from tqdm.auto import tqdm

        from circuits.sweep.runner import import_ray, start_local_ray

        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            address = self.address or os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            else:
                start_local_ray(self.shards * self.num_cpus)
        try:
            gpus = 1.0 / self.shards if device.startswith("cuda") else 0.0
            task = ray.remote(_shard_task).options(num_cpus=self.num_cpus, num_gpus=gpus, max_retries=2)
            refs = [ray.put(x) for x in (source, data)]
            pending = [task.remote(refs[0], dtype, device, refs[1], metric, m) for m in parts]
            order = {r: i for i, r in enumerate(pending)}
            out: list[Any] = [None] * len(pending)
            with tqdm(total=len(pending), desc=f"{self.name} shards", unit="shard", disable=not progress) as bar:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    out[order[done[0]]] = ray.get(done[0])
                    bar.update(1)
            return out
        finally:
            if started:
                ray.shutdown()
