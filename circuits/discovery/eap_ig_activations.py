"""EAP-IG over interpolated *activations* ("EAP-IG-activations", the MIB circuit track's variant).

EAP-IG-inputs (:class:`~circuits.discovery.eap.EAPIG`) interpolates only the input embeddings and
lets every activation downstream follow. Here the interpolation is over the output of each edge's
*sender*: for an edge u → v, with ``a_u`` the output of u's block (the input embeddings, all heads
of one attention layer, or one MLP),

    score(u → v) = (a_u^corrupt − a_u^clean) · (1/m) Σ_{k=1…m} ∂m/∂x_v |_{a_block(u) = a^c + (k/m)(a^cl − a^c)},

where in the k-th run of u's block the clean prompt is run with that block's output replaced by the
interpolation (every other block computes normally from it) and x_v is v's own input, as in EAP.
This is integrated gradients over the sender's activation (Sundararajan et al. 2017, arXiv
1703.01365; applied to activations by Marks et al. 2024, arXiv 2403.19647, §2), at the layer
granularity of MIB (Mueller et al. 2025, arXiv 2504.13151, "EAP-IG-activations"; the interpolated
node is a whole attention layer or MLP, as there).

Differences from the MIB reference code (``hannamw/EAP-IG``, ``get_scores_ig_activations``), both
deliberate: (1) there every interpolation run adds to *every* edge's score and the sum is divided by
all runs, so an edge is also scored in runs where a block downstream of its receiver (or the
receiver's own block) is frozen to a constant, which cuts the paths the edge acts through; here an
edge is scored only in the runs of its own sender's block, which is integrated gradients proper.
With that, the method is exact where the model is linear between the sender and the metric, and
one step (k = m = 1, the clean run) is EAP exactly. (2) Steps default to 5, like EAP-IG here, not
MIB's 30 (CPU budget; ``ig_steps`` sets it).

Cost: two forwards without a graph (clean and corrupt caches), then ``(2 L + 1) · m`` forward and
backward passes on models with MLPs (``(L + 1) · m`` attention-only), against ``m`` for EAP-IG-inputs:
about ``2 L`` times EAP-IG's time. Resample ablation only, like EAP-IG.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.discovery.base import METHODS, Ablation, check_positive, method_params, summed_scores
from circuits.discovery.eap import gradient_run
from circuits.engine.ablation import BaselineSums
from circuits.engine.edges import (
    ActivePositions,
    EdgeLayout,
    acts_from_cache,
    prefix_length,
    sender_hook_names,
)
from circuits.model import (
    HookFn,
    PrefixGuard,
    SharedPrefix,
    check_edge_support,
    embeddings,
    graph_of,
    head_term_weights,
    hook_mlp_out,
    hook_z,
    logits_at,
    receiver_inputs,
    run_after_prefix,
)
from circuits.scores import Level, Scores
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = ["EAPIGActivations", "SenderBlock", "sender_blocks"]


@dataclass(frozen=True)
class SenderBlock:
    """One interpolated unit: the input embeddings, one attention layer's heads, or one MLP.

    Attributes:
        hook: the hook whose output is interpolated (None for the input: the embeddings are).
        senders: the block's rows in the dense sender order of :class:`EdgeLayout`.
        first_receiver: the first receiver input downstream of the block (every later one is too).
    """

    hook: str | None
    senders: slice
    first_receiver: int


def sender_blocks(layout: EdgeLayout) -> list[SenderBlock]:
    """The blocks of ``layout``'s senders in graph order, each with its first downstream receiver.

    Examples:
        >>> from circuits.graph import ComponentGraph
        >>> for b in sender_blocks(EdgeLayout(ComponentGraph(1, 2))):
        ...     print(b.hook, b.senders, b.first_receiver)
        None slice(0, 1, None) 0
        blocks.0.attn.hook_z slice(1, 3, None) 6
        blocks.0.hook_mlp_out slice(3, 4, None) 7
    """
    g = layout.graph
    out = [SenderBlock(None, slice(0, 1), 0)]
    for layer in range(g.n_layers):
        first = layout.head_sender(layer, 0)
        after_heads = layout.mlp_receiver(layer) if g.has_mlps else layout.layer_receivers(layer).stop
        out.append(SenderBlock(hook_z(layer), slice(first, first + g.n_heads), after_heads))
        if g.has_mlps:
            m = layout.mlp_sender(layer)
            out.append(SenderBlock(hook_mlp_out(layer), slice(m, m + 1), layout.layer_receivers(layer).stop))
    return out


@METHODS.register("eap-ig-activations")
@dataclass(frozen=True)
class EAPIGActivations:
    """EAP with integrated gradients over each sender block's interpolated output (resample ablation).

    Attributes:
        ig_steps: interpolation steps ``m`` per sender block (one forward and backward each); 1 is EAP.
        batch_size: prompts per forward/backward pass.
    """

    name: ClassVar[str] = "eap-ig-activations"
    level: ClassVar[Level] = Level.EDGE
    ig_steps: int = 5
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_positive(ig_steps=self.ig_steps, batch_size=self.batch_size)

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        check_edge_support(model)
        start = time.perf_counter()
        graph = graph_of(model)
        layout = EdgeLayout(graph)
        blocks = sender_blocks(layout)
        total = torch.zeros(layout.n_senders, layout.n_receivers, dtype=torch.float64)
        sums = BaselineSums()
        n_batches = -(-len(data) // self.batch_size)
        bar = tqdm(
            total=n_batches * len(blocks) * self.ig_steps,
            desc=f"{self.name} ({len(data)} pairs)",
            unit="pass",
            disable=not progress,
        )
        guard = PrefixGuard()
        for batch in data.batches(self.batch_size):
            total += self._batch(model, layout, blocks, batch, metric, bar, guard, sums)
        bar.close()
        edges = layout.to_edges(total)
        return summed_scores(self.name, method_params(self), graph, Level.EDGE, edges, sums, len(data), metric, start)

    def _batch(
        self,
        model: HookedTransformer,
        layout: EdgeLayout,
        blocks: list[SenderBlock],
        batch: PromptPairDataset,
        metric: Metric,
        bar: tqdm,
        guard: PrefixGuard,
        sums: BaselineSums,
    ) -> Float[Tensor, "senders receivers"]:
        """Summed dense edge scores of one batch (its baseline added to ``sums``)."""
        steps = self.ig_steps
        out = torch.zeros(layout.n_senders, layout.n_receivers, dtype=torch.float64)
        with receiver_inputs(model, split_qkv=False):
            prefix = guard.prefix(model, batch.clean, prefix_length(batch, Ablation.RESAMPLE), batch.answer_pos)
            pos = ActivePositions.of(batch, from_first_difference=True).shift(prefix.length)
            clean = _full_run(model, batch, batch.clean, prefix)
            corrupt = _full_run(model, batch, batch.corrupt, prefix)
            w_o = [head_term_weights(model, layer) for layer in range(model.cfg.n_layers)]
            clean_acts = acts_from_cache(model, clean.cache, pos, terms=True)
            diff = acts_from_cache(model, corrupt.cache, pos, terms=True).minus(clean_acts).dense(layout, w_o)
            n, d = len(pos), model.cfg.d_model
            for block in blocks:
                grads: Tensor | None = None
                for k in range(1, steps + 1):
                    alpha = k / steps
                    embed, hooks = _interpolation(block, clean, corrupt, alpha)
                    run = gradient_run(model, layout, batch, pos, metric, embed, prefix, hooks)
                    g = run.grads[block.first_receiver :]
                    grads = g if grads is None else grads.add_(g)
                    bar.update()
                assert grads is not None
                rows = diff[block.senders].reshape(-1, n * d)
                out[block.senders, block.first_receiver :] = (rows @ grads.reshape(-1, n * d).T).double().cpu() / steps
        acc = Accuracy()
        sums.add(
            metric(clean.logits, batch.targets),
            metric(corrupt.logits, batch.targets),
            acc(clean.logits, batch.targets),
            acc(corrupt.logits, batch.targets),
        )
        return out


@dataclass(frozen=True)
class _FullRun:
    """One gradient-free run after the prefix: embeddings, answer logits, and every sender hook's output."""

    embed: Float[Tensor, "batch suffix d_model"]
    logits: Float[Tensor, "batch d_vocab"]
    cache: dict[str, Tensor]


def _full_run(model: HookedTransformer, batch: PromptPairDataset, tokens: Tensor, prefix: SharedPrefix) -> _FullRun:
    """Forward ``tokens`` after ``prefix`` without a graph, keeping every sender hook at every position."""
    embed = embeddings(model, tokens)[:, prefix.length :]
    cache: dict[str, Tensor] = {}
    hooks = [
        (name, lambda out, name=name: cache.__setitem__(name, out)) for name in sender_hook_names(model, terms=True)
    ]
    with torch.inference_mode():
        resid = run_after_prefix(model, embed, prefix, hooks)
        logits = logits_at(model, resid, batch.answer_pos - prefix.length)
    return _FullRun(embed, logits.clone(), {name: t.clone() for name, t in cache.items()})


def _interpolation(
    block: SenderBlock, clean: _FullRun, corrupt: _FullRun, alpha: float
) -> tuple[Tensor, list[tuple[str, HookFn]]]:
    """The embeddings and hooks of the clean run with ``block``'s output moved to ``corrupt + α(clean − corrupt)``."""
    if block.hook is None:
        return clean.embed if alpha == 1.0 else corrupt.embed + alpha * (clean.embed - corrupt.embed), []
    a, b = corrupt.cache[block.hook], clean.cache[block.hook]
    value = b if alpha == 1.0 else a + alpha * (b - a)
    return clean.embed, [(block.hook, lambda _out: value)]
