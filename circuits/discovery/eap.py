"""Edge attribution patching (EAP) and EAP with integrated gradients (EAP-IG) over the full edge graph.

**EAP** (Syed, Rager & Conmy 2023, arXiv 2310.10348) is the first-order Taylor estimate of ablating
one edge u → v: the change of v's input is u's ablated-minus-clean output, so

    score(u → v) = mean over examples of Σ_positions (a_u^ablated − a_u^clean) · ∂m/∂x_v,

where x_v is v's *own* input: the residual stream as v reads it, before v's normalization and,
for a head, through its q, k or v projection only. The value is the estimated metric change when
the edge is ablated, the sign convention of :mod:`circuits.scores`.

**EAP-IG** (Hanna, Pezzelle & Belinkov 2024, arXiv 2403.17806; the "EAP-IG-inputs" variant)
averages the gradient over ``m`` runs whose input embeddings are interpolated between the corrupt
and the clean prompt, e_k = e_corrupt + (k/m)(e_clean − e_corrupt) for k = 1…m. Step k = m is the
clean run, so one step is EAP exactly. (The reference implementation sums k = 0…m−1 and never
evaluates the clean input; with m ≥ 5 the two differ little, and this one contains EAP.)

Grouped-query attention: inside :func:`circuits.model.receiver_inputs` keys and values are
computed per query head, so the gradient at a query head's key is the effect through *that* query
head's use of its group's shared key input. The edge u → LℓHh<k> is that path; the query heads of
one group sum exactly to the score of the shared key input (the gradient is linear), and nothing
is averaged. The same holds for v.

Post-norm models (Gemma 2/3): u's output is its *term*, its output through its block's
post-attention RMS norm with the scale of the run (:mod:`circuits.model.edges`), so the change of
v's input is u's corrupt-run term minus its clean-run term, the change exact edge patching makes.

Where the time goes (../shared/DESIGN.md §6): one corrupt forward without a graph keeps every
sender's output at the active positions (:class:`~circuits.engine.edges.ActivePositions`);
each gradient run keeps the clean outputs and, with one backward pass, the gradient at every
head's q/k/v (``d_head`` wide), every MLP input and the final residual. A head's q gradient g
becomes the gradient at its input residual x through the projection and the block's norm,
J_norm(x)ᵀ W_Q[h] g, for all heads and inputs of a layer in one autograd call. Every edge score of a
block is then one matrix product, [senders before it, n·d_model] × [n·d_model, its receivers].
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.discovery.base import METHODS, Ablation, check_ablation, check_positive, method_params, summed_scores
from circuits.discovery.position_setting import EdgePositions, check_positions, named_position_scores
from circuits.engine.ablation import BaselineSums
from circuits.engine.edges import (
    ActivePositions,
    EdgeLayout,
    SenderActs,
    acts_from_cache,
    corrupt_run,
    mean_sender_acts,
    prefix_length,
    sender_hook_names,
)
from circuits.model import (
    HookFn,
    PrefixGuard,
    SharedPrefix,
    attn_input_norm,
    check_edge_support,
    embeddings,
    graph_of,
    head_term_weights,
    head_weights,
    hook_k,
    hook_mlp_in,
    hook_q,
    hook_resid_pre,
    hook_v,
    logits_at,
    receiver_inputs,
    run_after_prefix,
    with_hooks,
)
from circuits.scores import Level, Scores
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = ["EAP", "EAPIG", "edge_attribution"]


@METHODS.register("eap")
@dataclass(frozen=True)
class EAP:
    """Edge attribution patching: one corrupt forward, one clean forward and one backward per batch.

    Attributes:
        ablation: what replaces a sender's clean output (corrupt-run output, mean, or zero).
        batch_size: prompts per forward/backward pass.
    """

    name: ClassVar[str] = "eap"
    level: ClassVar[Level] = Level.EDGE
    ablation: Ablation = Ablation.RESAMPLE
    batch_size: int = 32
    positions: EdgePositions = EdgePositions.BLIND

    def __post_init__(self) -> None:
        check_positive(batch_size=self.batch_size)
        check_ablation(self.ablation)
        check_positions(self.positions, self.ablation)

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        if self.positions is EdgePositions.NAMED:
            return named_position_scores(
                model, data, metric, self.name, method_params(self), batch_size=self.batch_size
            )
        return edge_attribution(
            model, data, metric, self.name, method_params(self), self.ablation, 1, self.batch_size, progress
        )


@METHODS.register("eap-ig")
@dataclass(frozen=True)
class EAPIG:
    """EAP with integrated gradients over interpolated input embeddings (resample ablation).

    Attributes:
        ig_steps: interpolation steps ``m`` (one forward and backward each); 1 is EAP. Hanna et al.
            find no gain beyond about 5.
        batch_size: prompts per forward/backward pass.
    """

    name: ClassVar[str] = "eap-ig"
    level: ClassVar[Level] = Level.EDGE
    ig_steps: int = 5
    batch_size: int = 32
    positions: EdgePositions = EdgePositions.BLIND

    def __post_init__(self) -> None:
        check_positive(ig_steps=self.ig_steps, batch_size=self.batch_size)
        check_positions(self.positions)

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        if self.positions is EdgePositions.NAMED:
            params = method_params(self)
            return named_position_scores(
                model, data, metric, self.name, params, ig_steps=self.ig_steps, batch_size=self.batch_size
            )
        return edge_attribution(
            model,
            data,
            metric,
            self.name,
            method_params(self),
            Ablation.RESAMPLE,
            self.ig_steps,
            self.batch_size,
            progress,
        )


def edge_attribution(
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    name: str,
    params: dict[str, object],
    ablation: Ablation,
    steps: int,
    batch_size: int,
    progress: bool = True,
    hooks: Sequence[tuple[str, HookFn]] = (),
) -> Scores:
    """EAP (``steps == 1``) or EAP-IG edge scores of ``model``'s graph, averaged over ``data``.

    ``hooks`` change the gradient runs' backward pass (:func:`gradient_run`; RelP's rules).
    """
    check_edge_support(model)
    start = time.perf_counter()
    graph = graph_of(model)
    layout = EdgeLayout(graph)
    means = mean_sender_acts(model, data, batch_size, terms=True) if ablation is Ablation.MEAN else None
    total = torch.zeros(layout.n_senders, layout.n_receivers, dtype=torch.float64)
    sums = BaselineSums()
    n_batches = -(-len(data) // batch_size)
    bar = tqdm(total=n_batches * steps, desc=f"{name} ({len(data)} pairs)", unit="pass", disable=not progress)
    guard = PrefixGuard()
    for batch in data.batches(batch_size):
        total += _batch_scores(model, layout, batch, metric, ablation, means, steps, bar, guard, hooks, sums)
    bar.close()
    return summed_scores(name, params, graph, Level.EDGE, layout.to_edges(total), sums, len(data), metric, start)


@dataclass(frozen=True)
class GradientRun:
    """What one clean (or interpolated) forward and backward pass leaves.

    Attributes:
        grads: per receiver input, the gradient of the summed metric at its own input, at the
            active positions (``[R, n, d_model]``, receiver order of :class:`EdgeLayout`).
        acts: the senders' outputs (terms, on post-norm models) at the active positions.
        metric: the per-example metric of this run.
        logits: the answer-position logits of this run.
    """

    grads: Float[Tensor, "receivers n d_model"]
    acts: SenderActs
    metric: Float[Tensor, " batch"]
    logits: Float[Tensor, "batch d_vocab"]


def gradient_run(
    model: HookedTransformer,
    layout: EdgeLayout,
    batch: PromptPairDataset,
    pos: ActivePositions,
    metric: Metric,
    embed: Float[Tensor, "batch suffix d_model"],
    prefix: SharedPrefix,
    hooks: Sequence[tuple[str, HookFn]] = (),
) -> GradientRun:
    """Forward the embeddings ``embed`` of positions ``prefix.length…`` and backward the metric.

    Call inside :func:`~circuits.model.receiver_inputs` (``split_qkv=False``, as ``prefix`` was
    built): keys and values are then per query head. ``pos`` counts from the end of the prefix.
    Returns the metric's gradient at every receiver's own input (see :class:`GradientRun`).

    ``hooks`` run before the hooks that keep activations, in the forward pass and in the pull-back
    of q/k/v gradients through each block's input norm: methods that change the backward pass
    (:mod:`.relp`) or replace activations (:mod:`.eap_ig_activations`) pass them here.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    store: dict[str, Tensor] = {}

    def keep(name: str) -> HookFn:
        return lambda out: store.__setitem__(name, out)

    senders = sender_hook_names(model, terms=True)
    names = [hook_resid_pre(layer) for layer in range(n_layers)] + senders[1:]
    names += [h(layer) for layer in range(n_layers) for h in (hook_q, hook_k, hook_v)]
    if layout.graph.has_mlps:
        names += [hook_mlp_in(layer) for layer in range(n_layers)]
    all_hooks = [*hooks, *((name, keep(name)) for name in names)]
    with torch.enable_grad():
        resid = run_after_prefix(model, embed.detach().requires_grad_(True), prefix, all_hooks)
        logits = logits_at(model, resid, batch.answer_pos - prefix.length)
        values = metric(logits, batch.targets)
        wrt = [store[h(layer)] for layer in range(n_layers) for h in (hook_q, hook_k, hook_v)]
        if layout.graph.has_mlps:
            wrt += [store[hook_mlp_in(layer)] for layer in range(n_layers)]
        grads = torch.autograd.grad(values.sum(), [*wrt, resid], allow_unused=True, materialize_grads=True)

    n, d = len(pos), model.cfg.d_model
    out = torch.empty(layout.n_receivers, n, d, dtype=resid.dtype, device=resid.device)
    for layer in range(n_layers):
        w = head_weights(model, layer)
        per_input = []  # each (n, head, d_model): the gradient pulled back through the projection
        for i, weight in enumerate((w.W_Q, w.W_K, w.W_V)):
            per_input.append(torch.einsum("nhe,hde->nhd", pos.gather(grads[3 * layer + i]), weight))
        pulled = torch.stack(per_input, dim=2).reshape(n, 3 * n_heads, d)  # head-major: h0 q, h0 k, h0 v, h1 q, ...
        x = pos.gather(store[hook_resid_pre(layer)]).detach()  # (n, d_model): the block's input
        copies = x[:, None, :].expand(n, 3 * n_heads, d).clone().requires_grad_(True)
        with torch.enable_grad(), with_hooks(model, hooks):
            (through_norm,) = torch.autograd.grad(attn_input_norm(model, layer)(copies), copies, pulled)
        cols = layout.layer_receivers(layer)
        out[cols.start : cols.start + 3 * n_heads] = through_norm.transpose(0, 1)
        if layout.graph.has_mlps:
            out[layout.mlp_receiver(layer)] = pos.gather(grads[3 * n_layers + layer])
    out[layout.logits_receiver] = pos.gather(grads[-1])
    cache = {name: store[name].detach() for name in senders}
    return GradientRun(out, acts_from_cache(model, cache, pos, terms=True), values.detach(), logits.detach())


def dense_scores(
    layout: EdgeLayout, diff: Float[Tensor, "senders n d_model"], grads: Float[Tensor, "receivers n d_model"]
) -> Float[Tensor, "senders receivers"]:
    """Σ over positions of ``diff[s] · grads[r]`` for every sender and receiver, one product per block.

    Entries that are not edges (a sender downstream of the receiver) hold garbage or zero; read
    the result with :meth:`EdgeLayout.to_edges`.
    """
    s, n, d = diff.shape
    out = torch.zeros(s, layout.n_receivers, dtype=diff.dtype, device=diff.device)
    flat = diff.reshape(s, n * d)
    for layer in range(layout.graph.n_layers):
        cols = layout.layer_receivers(layer)
        reads = layout.senders_before(layer, mlp=layout.graph.has_mlps)
        out[:reads, cols] = flat[:reads] @ grads[cols].reshape(-1, n * d).T
    out[:, layout.logits_receiver] = flat @ grads[layout.logits_receiver].reshape(n * d)
    return out


def _batch_scores(
    model: HookedTransformer,
    layout: EdgeLayout,
    batch: PromptPairDataset,
    metric: Metric,
    ablation: Ablation,
    means: SenderActs | None,
    steps: int,
    bar: tqdm,
    guard: PrefixGuard,
    hooks: Sequence[tuple[str, HookFn]],
    sums: BaselineSums,
) -> Float[Tensor, "senders receivers"]:
    """Summed (not averaged) dense edge scores of one batch (its baseline added to ``sums``)."""
    acc = Accuracy()
    grads: Tensor | None = None
    run: GradientRun | None = None
    with receiver_inputs(model, split_qkv=False):  # per-query-head keys and values, also in the prefix
        prefix = guard.prefix(model, batch.clean, prefix_length(batch, ablation), batch.answer_pos)
        pos = ActivePositions.of(batch, from_first_difference=ablation is Ablation.RESAMPLE).shift(prefix.length)
        corrupt = corrupt_run(model, batch, pos, ablation, means, prefix, terms=True)
        clean_embed = embeddings(model, batch.clean)[:, prefix.length :]
        for k in range(1, steps + 1):
            # k == steps is the clean run itself, unmixed (so one step is EAP exactly)
            alpha = k / steps
            embed = clean_embed if k == steps else corrupt.embed + alpha * (clean_embed - corrupt.embed)
            run = gradient_run(model, layout, batch, pos, metric, embed, prefix, hooks)
            grads = run.grads if grads is None else grads.add_(run.grads)
            bar.update()
    c_logits = corrupt.logits
    assert run is not None and grads is not None
    if steps > 1:
        grads /= steps
    w_o = [head_term_weights(model, layer) for layer in range(model.cfg.n_layers)]
    diff = corrupt.ablated.minus(run.acts).dense(layout, w_o)
    dense = dense_scores(layout, diff, grads).double()
    sums.add(run.metric, metric(c_logits, batch.targets), acc(run.logits, batch.targets), acc(c_logits, batch.targets))
    return dense.cpu()
