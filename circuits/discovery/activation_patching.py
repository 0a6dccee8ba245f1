"""Exact activation patching of attention heads (and optionally MLPs), node level.

For each component c and each clean prompt: run the model on the clean prompt with c's output
replaced by its ablated value (by default its value on the paired corrupt prompt, "resample"; see
:class:`~circuits.discovery.base.Ablation`) and record the change of the metric. This is the
"noising" direction of Heimersheim & Nanda (2024, "How to use and interpret activation patching"),
the same quantity as TransformerLens's ``get_act_patch_attn_head_out_all_pos`` run on the clean
tokens with the corrupt cache. A head's output is its ``hook_z`` (before ``W_O``), one per query
head, so grouped-query models get per-query-head scores.

Organisation (what makes it fast, not one forward per head per prompt):
  * the clean run caches the residual stream entering every layer; a patch at layer ``l`` cannot
    change anything below ``l``, so the patched run starts at layer ``l`` from that cache;
  * the patches of one layer are stacked on the batch dimension: ``k`` variants × ``b`` prompts
    run as one forward of ``k·b`` rows;
  * only the answer position is normed and unembedded.
On average this does half a forward per component, in large batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.discovery.base import METHODS, Ablation, check_positive, corrupt_means, method_params, summed_scores
from circuits.engine.ablation import BaselineSums
from circuits.engine.edges import prefix_length
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import (
    HookFn,
    graph_of,
    hook_mlp_out,
    hook_z,
    logits_at,
    resumable_run,
    resume_to_logits,
    run_with_cache,
)
from circuits.scores import Level, Scores
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = ["ActivationPatching", "Components", "PatchPositions"]


class PatchPositions(Enum):
    """Which token positions of a component's output are replaced."""

    ALL = "all"
    LAST = "last"  # the answer position only


class Components(Enum):
    """Which nodes are patched."""

    HEADS = "heads"
    HEADS_AND_MLPS = "heads+mlps"


@METHODS.register("activation-patching")
@dataclass(frozen=True)
class ActivationPatching:
    """Exact node-level activation patching.

    Attributes:
        positions: replace all positions, or only the answer position.
        ablation: what replaces the clean output.
        components: heads only, or heads and MLPs.
        batch_size: prompts per patched forward (before stacking variants).
        max_rows: most rows (variants × prompts) in one forward; bounds memory.
        heads: patch only these heads (node names such as ``"L3H4"``; every head when None); the
            others hold NaN. Layers without a chosen head are not run, so a short list costs
            little (MLPs, when patched, are all patched).
    """

    name: ClassVar[str] = "activation-patching"
    level: ClassVar[Level] = Level.NODE
    positions: PatchPositions = PatchPositions.ALL
    ablation: Ablation = Ablation.RESAMPLE
    components: Components = Components.HEADS
    batch_size: int = 32
    max_rows: int = 288
    heads: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_positive(batch_size=self.batch_size, max_rows=self.max_rows)
        if self.heads is not None:
            nodes = [Node.parse(h) for h in self.heads]
            if any(n.head is None for n in nodes) or len(set(nodes)) != len(nodes):
                raise HeadgraphError(f"heads must be distinct head names like 'L3H4', got {list(self.heads)}")
        for field, enum in (("positions", PatchPositions), ("ablation", Ablation), ("components", Components)):
            if not isinstance(getattr(self, field), enum):
                raise HeadgraphError(f"{field} must be a {enum.__name__}, got {getattr(self, field)!r}")

    @torch.inference_mode()
    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        graph = graph_of(model)
        n_layers = model.cfg.n_layers
        with_mlps = self.components is Components.HEADS_AND_MLPS and graph.has_mlps
        variants: list[Node] = [Node.of_head(0, h) for h in range(model.cfg.n_heads)]
        if with_mlps:
            variants.append(Node.of_mlp(0))
        means = self._means(model, data, with_mlps) if self.ablation is Ablation.MEAN else {}
        chosen = None if self.heads is None else {Node.parse(h) for h in self.heads}
        if chosen is not None and (bad := sorted(str(n) for n in chosen if n not in graph.heads)):
            raise HeadgraphError(f"heads {bad} are not in a {graph.n_layers}×{graph.n_heads} model")
        patched = {  # per layer, the variants this run patches
            layer: [
                node
                for node in (Node(v.kind, layer, v.head) for v in variants)
                if chosen is None or node.head is None or node in chosen
            ]
            for layer in range(n_layers)
        }

        totals = torch.zeros(len(graph.nodes), dtype=torch.float64)
        sums = BaselineSums()
        acc = Accuracy()
        n_batches = -(-len(data) // self.batch_size)
        bar = tqdm(
            total=n_batches * sum(n_layers - layer for layer in range(n_layers) if patched[layer]),
            desc=f"activation patching ({len(data)} pairs)",
            unit="layer-pass",
            disable=not progress,
        )
        out_names = [hook_z(layer) for layer in range(n_layers)]
        if with_mlps:
            out_names += [hook_mlp_out(layer) for layer in range(n_layers)]
        for batch in self._ordered(data).batches(self.batch_size):
            b, pos = len(batch), batch.answer_pos
            run = resumable_run(model, batch.clean, self._prefix(batch), [], check_pos=pos)
            m_clean = metric(logits_at(model, run.final_resid, pos), batch.targets)
            sums.add_clean(m_clean, acc(logits_at(model, run.final_resid, pos), batch.targets))
            c_resid, corrupt = run_with_cache(
                model, batch.corrupt, out_names if self.ablation is Ablation.RESAMPLE else []
            )
            c_logits = logits_at(model, c_resid, pos)
            sums.add_corrupt(metric(c_logits, batch.targets), acc(c_logits, batch.targets))
            corrupt = {name: act[:, run.prefix :] for name, act in corrupt.items()}
            k = max(1, self.max_rows // b)
            for layer in range(n_layers):
                layer_variants = patched[layer]
                if not layer_variants:
                    continue
                for i in range(0, len(layer_variants), k):
                    chunk = layer_variants[i : i + k]
                    hooks = self._hooks(chunk, layer, b, pos - run.prefix, corrupt, means, with_mlps)
                    logits = resume_to_logits(model, run, layer, len(chunk), pos.repeat(len(chunk)), hooks)
                    effect = metric(logits, batch.targets.repeat(len(chunk))).view(len(chunk), b) - m_clean
                    for node, e in zip(chunk, effect.double().sum(1), strict=True):
                        totals[graph.node_index(node)] += e
                bar.update(n_layers - layer)
        bar.close()

        values = torch.full((len(graph.nodes),), torch.nan, dtype=torch.float64)
        scored = [graph.node_index(node) for layer in range(n_layers) for node in patched[layer]]
        values[scored] = totals[scored]
        return summed_scores(self.name, method_params(self), graph, Level.NODE, values, sums, len(data), metric, start)

    def _ordered(self, data: PromptPairDataset) -> PromptPairDataset:
        """The examples sorted by shared-prefix length, then length, so batches share long prefixes
        and little padding (scores are sums over examples: the order does not change them)."""
        keys = [(self._prefix(data.select(slice(i, i + 1))), int(n)) for i, n in enumerate(data.lengths)]
        return data.select(torch.tensor(sorted(range(len(data)), key=keys.__getitem__)))

    def _prefix(self, batch: PromptPairDataset) -> int:
        """Leading positions no patch changes: before the answer position (LAST), or before the
        first token where clean and corrupt differ (RESAMPLE at all positions)."""
        if self.positions is PatchPositions.LAST:
            return int(batch.answer_pos.min())
        return prefix_length(batch, self.ablation)

    def _replacement(
        self, node: Node, b: int, corrupt: dict[str, Tensor], means: dict[str, Tensor], like: Tensor
    ) -> Tensor:
        """The ablated value of ``node``'s output for ``b`` prompts, broadcastable to ``like``."""
        name = hook_z(node.layer) if node.head is not None else hook_mlp_out(node.layer)
        if self.ablation is Ablation.RESAMPLE:
            full = corrupt[name]
        elif self.ablation is Ablation.MEAN:
            full = means[name].expand(b, like.shape[1], *means[name].shape)
        else:
            full = torch.zeros((b, *like.shape[1:]), dtype=like.dtype, device=like.device)
        return full[:, :, node.head] if node.head is not None else full

    def _hooks(
        self,
        chunk: list[Node],
        layer: int,
        b: int,
        pos: Tensor,
        corrupt: dict[str, Tensor],
        means: dict[str, Tensor],
        with_mlps: bool,
    ) -> list[tuple[str, HookFn]]:
        """Forward hooks that patch variant ``i`` of ``chunk`` into rows ``i·b … (i+1)·b``."""
        rows = torch.arange(b, device=pos.device)

        def patch(act: Tensor, kind_is_head: bool) -> Tensor:
            act = act.clone()
            for i, node in enumerate(chunk):
                if (node.head is not None) != kind_is_head:
                    continue
                repl = self._replacement(node, b, corrupt, means, act)  # (b, pos, [d_head|d_model])
                block = act[i * b : (i + 1) * b]  # (b, pos, ...) view into act
                if self.positions is PatchPositions.ALL:
                    if node.head is not None:
                        block[:, :, node.head] = repl
                    else:
                        block[:] = repl
                elif node.head is not None:
                    block[rows, pos, node.head] = repl[rows, pos]
                else:
                    block[rows, pos] = repl[rows, pos]
            return act

        hooks: list[tuple[str, HookFn]] = [(hook_z(layer), lambda z: patch(z, True))]
        if with_mlps and any(n.head is None for n in chunk):
            hooks.append((hook_mlp_out(layer), lambda out: patch(out, False)))
        return hooks

    def _means(self, model: HookedTransformer, data: PromptPairDataset, with_mlps: bool) -> dict[str, Tensor]:
        """Mean output of every head (and MLP) over the corrupt prompts' unpadded positions."""
        names = [hook_z(layer) for layer in range(model.cfg.n_layers)]
        if with_mlps:
            names += [hook_mlp_out(layer) for layer in range(model.cfg.n_layers)]
        return corrupt_means(model, data, names, self.batch_size)
