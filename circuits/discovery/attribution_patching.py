"""Node-level attribution patching: the first-order estimate of activation patching, for every node at once.

Nanda (2023, "Attribution patching: activation patching at industrial scale"); Kramár et al. (2024,
arXiv 2403.00745, "AtP"). For a component c with output a_c (a head's ``hook_z``, one per query
head, or an MLP's output),

    score(c) = mean over examples of Σ_positions (a_c^ablated − a_c^clean) · ∂m/∂a_c,

the Taylor estimate of :class:`~circuits.discovery.activation_patching.ActivationPatching` (same
sign convention: the estimated metric change when c is ablated). Cost: one corrupt forward, one
clean forward and one backward per batch, whatever the number of components.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.discovery.activation_patching import Components
from circuits.discovery.base import METHODS, Ablation, check_positive, method_params, summed_scores
from circuits.engine.ablation import BaselineSums
from circuits.engine.edges import (
    ActivePositions,
    acts_from_cache,
    corrupt_run,
    mean_sender_acts,
    prefix_length,
    sender_hook_names,
)
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import (
    HookFn,
    PrefixGuard,
    SharedPrefix,
    embeddings,
    graph_of,
    hook_mlp_out,
    hook_z,
    logits_at,
    run_after_prefix,
)
from circuits.scores import Level, Scores
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = ["AttributionPatching"]


@METHODS.register("attribution-patching")
@dataclass(frozen=True)
class AttributionPatching:
    """Node-level attribution patching (gradient estimate of activation patching at all positions).

    Attributes:
        ablation: what replaces a component's clean output.
        components: heads only, or heads and MLPs.
        batch_size: prompts per forward/backward pass.
    """

    name: ClassVar[str] = "attribution-patching"
    level: ClassVar[Level] = Level.NODE
    ablation: Ablation = Ablation.RESAMPLE
    components: Components = Components.HEADS
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_positive(batch_size=self.batch_size)
        for field, enum in (("ablation", Ablation), ("components", Components)):
            if not isinstance(getattr(self, field), enum):
                raise HeadgraphError(f"{field} must be a {enum.__name__}, got {getattr(self, field)!r}")

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        graph = graph_of(model)
        n_layers = model.cfg.n_layers
        with_mlps = self.components is Components.HEADS_AND_MLPS and graph.has_mlps
        means = mean_sender_acts(model, data, self.batch_size) if self.ablation is Ablation.MEAN else None
        heads = torch.zeros(n_layers, model.cfg.n_heads, dtype=torch.float64)
        mlps = torch.zeros(n_layers, dtype=torch.float64)
        sums = BaselineSums()
        acc = Accuracy()
        n_batches = -(-len(data) // self.batch_size)
        guard = PrefixGuard()
        for batch in tqdm(data.batches(self.batch_size), total=n_batches, desc=self.name, disable=not progress):
            prefix = guard.prefix(model, batch.clean, prefix_length(batch, self.ablation), batch.answer_pos)
            from_first = self.ablation is Ablation.RESAMPLE
            pos = ActivePositions.of(batch, from_first_difference=from_first).shift(prefix.length)
            corrupt = corrupt_run(model, batch, pos, self.ablation, means, prefix)
            wanted = [hook_z(layer) for layer in range(n_layers)]
            wanted += [hook_mlp_out(layer) for layer in range(n_layers)] if with_mlps else []
            logits, values, store, grads = _clean_gradients(model, batch, metric, wanted, prefix)
            clean = acts_from_cache(model, store, pos)
            diff = corrupt.ablated.minus(clean)
            for layer in range(n_layers):
                heads[layer] += torch.einsum("nhe,nhe->h", diff.z[layer], pos.gather(grads[layer])).double().cpu()
                if with_mlps:
                    mlps[layer] += (diff.mlp[layer] * pos.gather(grads[n_layers + layer])).sum().double().cpu()
            sums.add(
                values,
                metric(corrupt.logits, batch.targets),
                acc(logits, batch.targets),
                acc(corrupt.logits, batch.targets),
            )
        values_out = torch.full((len(graph.nodes),), torch.nan, dtype=torch.float64)
        for layer in range(n_layers):
            for h in range(model.cfg.n_heads):
                values_out[graph.node_index(Node.of_head(layer, h))] = heads[layer, h]
            if with_mlps:
                values_out[graph.node_index(Node.of_mlp(layer))] = mlps[layer]
        return summed_scores(
            self.name, method_params(self), graph, Level.NODE, values_out, sums, len(data), metric, start
        )


def _clean_gradients(
    model: HookedTransformer, batch: PromptPairDataset, metric: Metric, wanted: list[str], prefix: SharedPrefix
) -> tuple[Tensor, Tensor, dict[str, Tensor], list[Tensor]]:
    """Forward the clean prompts after ``prefix`` and backward the summed metric.

    Returns the answer logits, the per-example metric, every sender's output (detached) and the
    gradient at each hook of ``wanted``.
    """
    store: dict[str, Tensor] = {}
    hooks: list[tuple[str, HookFn]] = [
        (name, lambda out, name=name: store.__setitem__(name, out)) for name in sender_hook_names(model)
    ]
    embed = embeddings(model, batch.clean)[:, prefix.length :].requires_grad_(True)
    with torch.enable_grad():
        resid = run_after_prefix(model, embed, prefix, hooks)
        logits = logits_at(model, resid, batch.answer_pos - prefix.length)
        values = metric(logits, batch.targets)
        grads = torch.autograd.grad(values.sum(), [store[n] for n in wanted], allow_unused=True, materialize_grads=True)
    return logits.detach(), values.detach(), {n: t.detach() for n, t in store.items()}, list(grads)
