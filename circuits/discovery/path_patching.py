"""Path patching (Wang et al. 2022, "Interpretability in the Wild", arXiv 2211.00593, §3 and App. B).

The effect of a sender head on the metric *through chosen receivers only*, in two steps per sender:

1. Run the clean prompt with the sender's output (``hook_z``) replaced by its ablated value (its
   output on the corrupt prompt, by default) and every other head frozen to its clean output;
   MLPs recompute (Wang et al. freeze heads only), unless ``freeze_mlps``. Record the residual
   stream each receiver reads.
2. Run the clean prompt again with only the receiver's chosen input (q, k or v of a head, an MLP's
   input) replaced by what it read in step 1, and record the metric change. For the ``logits``
   receiver, step 1's final residual stream gives the metric directly.

The result is an edge score sender → receiver<input> on the model's graph, in the sign convention
of :mod:`circuits.scores`; edges that were not asked for are NaN. With ``freeze_mlps`` (or on an
attention-only model) the receiver's input changes by exactly the sender's ablated-minus-clean
output, so path patching equals exact edge patching of that edge.

Post-norm models (Gemma 2/3): a head's output is its *term*, its output through its block's
post-attention RMS norm with the scale of the run (:mod:`circuits.model.edges`). Step 1 then keeps
the sender's layer at its clean output and adds the sender's ablated-minus-clean term to that
layer's attention output (patching ``z`` would change the shared scale, and so every other head's
term of the layer).

Grouped-query models: a query head's k and v inputs are patched for that query head alone (keys
and values are computed per query head), the same per-query-head edge as EAP's.

Cost: per sender layer, one partial forward per chunk of senders (stacked on the batch) for step
1, and one partial forward per receiver input for step 2.
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

from circuits.discovery.base import METHODS, Ablation, check_ablation, check_positive, method_params, summed_scores
from circuits.engine.ablation import BaselineSums
from circuits.engine.edges import mean_sender_acts
from circuits.errors import HeadgraphError
from circuits.graph import QKV, Edge, Node, NodeKind
from circuits.model import (
    HookFn,
    ResumableRun,
    check_edge_support,
    graph_of,
    hook_k_input,
    hook_mlp_in,
    hook_mlp_out,
    hook_q_input,
    hook_resid_mid,
    hook_resid_pre,
    hook_v_input,
    hook_z,
    logits_at,
    receiver_inputs,
    resumable_run,
    resume_to_resid,
    run_with_cache,
    sender_scale_hooks,
    stacked_sender_ablation,
    term_z,
)
from circuits.scores import Level, Scores
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = ["PathPatching"]

_INPUT_HOOKS = {QKV.Q: hook_q_input, QKV.K: hook_k_input, QKV.V: hook_v_input}


@METHODS.register("path-patching")
@dataclass(frozen=True)
class PathPatching:
    """Path patching from every upstream head to chosen receivers.

    Attributes:
        receivers: comma-separated receiver nodes: ``logits``, heads (``L9H6``) or MLPs (``MLP3``).
        inputs: which inputs of head receivers to patch, any of ``q``, ``k``, ``v`` (e.g. ``"qk"``).
        senders: comma-separated sender heads to score (``L3H1,L5H0``); empty scores every head
            upstream of a receiver. Restricting the senders only skips work: a sender's scores do not
            depend on which other senders are scored (tested). Merullo et al.'s stage rule
            (:mod:`circuits.seed.stages`) uses it to confirm a shortlist exactly.
        freeze_mlps: also freeze MLP outputs in step 1 (then only the direct path counts).
        ablation: what replaces the sender's clean output.
        batch_size: prompts per forward (before stacking senders).
        max_rows: most rows (senders × prompts) in one forward.
    """

    name: ClassVar[str] = "path-patching"
    level: ClassVar[Level] = Level.EDGE
    receivers: str = "logits"
    inputs: str = "qkv"
    senders: str = ""
    freeze_mlps: bool = False
    ablation: Ablation = Ablation.RESAMPLE
    batch_size: int = 32
    max_rows: int = 256

    def __post_init__(self) -> None:
        check_positive(batch_size=self.batch_size, max_rows=self.max_rows)
        check_ablation(self.ablation)
        if not self.inputs or any(c not in "qkv" for c in self.inputs) or len(set(self.inputs)) != len(self.inputs):
            raise HeadgraphError(f"inputs must be distinct letters among q, k, v, got {self.inputs!r}")
        nodes = self.receiver_nodes(n_layers=10**6)
        if not nodes:
            raise HeadgraphError("path patching needs at least one receiver")
        if any(n.kind is NodeKind.INPUT for n in nodes):
            raise HeadgraphError("the input cannot be a receiver")
        if any(n.kind is not NodeKind.HEAD for n in self.sender_nodes(n_layers=10**6) or []):
            raise HeadgraphError(f"senders must be heads (e.g. L3H1), got {self.senders!r}")

    def sender_nodes(self, n_layers: int) -> list[Node] | None:
        """The chosen sender heads, or None for every head."""
        if not self.senders.strip():
            return None
        return [Node.parse(name.strip(), n_layers) for name in self.senders.split(",") if name.strip()]

    def receiver_nodes(self, n_layers: int) -> list[Node]:
        """The receivers as nodes of a model with ``n_layers`` layers."""
        return [Node.parse(name.strip(), n_layers) for name in self.receivers.split(",") if name.strip()]

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        check_edge_support(model)
        start = time.perf_counter()
        graph = graph_of(model)
        cfg = model.cfg
        receivers = self.receiver_nodes(cfg.n_layers)
        for r in receivers:
            graph.node_index(r)  # raises for a node the model does not have
        inputs = [QKV(c) for c in self.inputs]
        chosen = self.sender_nodes(cfg.n_layers)
        for s in chosen or []:
            graph.node_index(s)  # raises for a head the model does not have
        heads_of = {
            layer: sorted({s.head or 0 for s in chosen if s.layer == layer}) if chosen else list(range(cfg.n_heads))
            for layer in range(cfg.n_layers)
        }
        sender_layers = [
            layer
            for layer in range(cfg.n_layers)
            if heads_of[layer] and any(_feeds_receiver(layer, r) for r in receivers)
        ]
        mlp_layers = sorted({r.layer for r in receivers if r.kind is NodeKind.MLP})
        means = mean_sender_acts(model, data, self.batch_size, terms=True).z if self.ablation is Ablation.MEAN else None
        totals = torch.zeros(len(graph.edges), dtype=torch.float64)
        scored = torch.zeros(len(graph.edges), dtype=torch.bool)
        sums = BaselineSums()
        acc = Accuracy()
        n_batches = -(-len(data) // self.batch_size)
        bar = tqdm(total=n_batches * len(sender_layers), desc=self.name, unit="layer", disable=not progress)
        for batch in data.batches(self.batch_size):
            b = len(batch)
            z_names = [hook_z(layer) for layer in range(cfg.n_layers)] + sender_scale_hooks(model)
            names = z_names + [hook_resid_mid(layer) for layer in mlp_layers]
            if self.freeze_mlps and graph.has_mlps:
                names += [hook_mlp_out(layer) for layer in range(cfg.n_layers)]
            with torch.inference_mode():
                run = resumable_run(model, batch.clean, 0, names)
                m_clean = metric(logits_at(model, run.final_resid, batch.answer_pos), batch.targets)
                c_resid, c_cache = run_with_cache(model, batch.corrupt, z_names)
                c_logits = logits_at(model, c_resid, batch.answer_pos)
            sums.add(
                m_clean,
                metric(c_logits, batch.targets),
                acc(logits_at(model, run.final_resid, batch.answer_pos), batch.targets),
                acc(c_logits, batch.targets),
            )
            k = max(1, self.max_rows // b)
            for layer in sender_layers:
                heads = heads_of[layer]
                for first in range(0, len(heads), k):
                    chunk = heads[first : first + k]
                    ablated_z = self._ablated_z(term_z(model, c_cache, layer), means, layer, run.cache[hook_z(layer)])
                    captured = self._step_one(model, run, layer, chunk, ablated_z, receivers, graph.has_mlps)
                    patched = self._step_two(model, run, batch, metric, layer, chunk, captured, receivers, inputs)
                    for edge, effect in patched:
                        i = graph.edge_index(edge)
                        row = effect.view(len(chunk), b)[chunk.index(edge.src.head or 0)]
                        totals[i] += (row - m_clean).double().sum().cpu()
                        scored[i] = True
                bar.update()
        bar.close()
        values = torch.full((len(graph.edges),), torch.nan, dtype=torch.float64)
        values[scored] = totals[scored]
        return summed_scores(self.name, method_params(self), graph, Level.EDGE, values, sums, len(data), metric, start)

    def _ablated_z(
        self, corrupt_z: Tensor, means: list[Tensor] | None, layer: int, clean_z: Tensor
    ) -> Float[Tensor, "batch pos head d_head"]:
        if self.ablation is Ablation.RESAMPLE:
            return corrupt_z
        if self.ablation is Ablation.MEAN:
            assert means is not None
            return means[layer][0].expand_as(clean_z)
        return torch.zeros_like(clean_z)

    @torch.inference_mode()
    def _step_one(
        self,
        model: HookedTransformer,
        run: ResumableRun,
        layer: int,
        chunk: list[int],
        ablated_z: Tensor,
        receivers: list[Node],
        has_mlps: bool,
    ) -> dict[str, Tensor]:
        """Resume the clean run at ``layer`` with sender ``chunk[i]`` ablated in copy ``i`` and every
        other head frozen; return the residual streams the receivers read (copy-major rows)."""
        v = len(chunk)
        captured: dict[str, Tensor] = {}

        sender_z, extra = stacked_sender_ablation(
            model, layer, chunk, run.cache[hook_z(layer)], term_z(model, run.cache, layer), ablated_z
        )

        def frozen(level: int) -> HookFn:
            z = sender_z if level == layer else run.cache[hook_z(level)].repeat(v, 1, 1, 1)
            return lambda _out: z

        hooks: list[tuple[str, HookFn]] = [(hook_z(level), frozen(level)) for level in range(layer, model.cfg.n_layers)]
        hooks += extra
        if self.freeze_mlps and has_mlps:
            hooks += [
                (hook_mlp_out(level), lambda _out, level=level: run.cache[hook_mlp_out(level)].repeat(v, 1, 1))
                for level in range(layer, model.cfg.n_layers)
            ]
        for r in receivers:
            if r.kind is NodeKind.HEAD and r.layer > layer:
                name = hook_resid_pre(r.layer)
            elif r.kind is NodeKind.MLP and r.layer >= layer:
                name = hook_resid_mid(r.layer)
            else:
                continue
            hooks.append((name, lambda out, name=name: captured.__setitem__(name, out.clone())))
        captured["final"] = resume_to_resid(model, run, layer, v, hooks)
        return captured

    @torch.inference_mode()
    def _step_two(
        self,
        model: HookedTransformer,
        run: ResumableRun,
        batch: PromptPairDataset,
        metric: Metric,
        layer: int,
        chunk: list[int],
        captured: dict[str, Tensor],
        receivers: list[Node],
        inputs: list[QKV],
    ) -> list[tuple[Edge, Tensor]]:
        """Per scored edge, the per-row metric of the clean run with only that receiver input patched."""
        v = len(chunk)
        pos = batch.answer_pos.repeat(v)
        targets = batch.targets.repeat(v)
        out: list[tuple[Edge, Tensor]] = []
        senders = [Node.of_head(layer, h) for h in chunk]
        for r in receivers:
            if r.kind is NodeKind.LOGITS:
                effect = metric(logits_at(model, captured["final"], pos), targets)
                out += [(Edge(s, r), effect) for s in senders]
                continue
            if r.kind is NodeKind.HEAD and r.layer > layer:
                delta = captured[hook_resid_pre(r.layer)] - run.resid_pre[r.layer].repeat(v, 1, 1)
                for qkv in inputs:
                    hook = (_INPUT_HOOKS[qkv](r.layer), _add_to_head(delta, r.head or 0))
                    with receiver_inputs(model, split_qkv=True):
                        resid = resume_to_resid(model, run, r.layer, v, [hook])
                    effect = metric(logits_at(model, resid, pos), targets)
                    out += [(Edge(s, r, qkv), effect) for s in senders]
            elif r.kind is NodeKind.MLP and r.layer >= layer:
                delta = captured[hook_resid_mid(r.layer)] - run.cache[hook_resid_mid(r.layer)].repeat(v, 1, 1)
                with receiver_inputs(model, split_qkv=False):
                    resid = resume_to_resid(model, run, r.layer, v, [(hook_mlp_in(r.layer), lambda x, d=delta: x + d)])
                effect = metric(logits_at(model, resid, pos), targets)
                out += [(Edge(s, r), effect) for s in senders]
        return out


def _feeds_receiver(layer: int, receiver: Node) -> bool:
    """Whether a head of block ``layer`` is upstream of ``receiver``."""
    if receiver.kind is NodeKind.LOGITS:
        return True
    if receiver.kind is NodeKind.MLP:
        return layer <= receiver.layer
    return layer < receiver.layer


def _add_to_head(delta: Tensor, head: int) -> HookFn:
    """A hook adding ``delta`` to one head's slot of a per-head input ``[batch, pos, head, d_model]``."""

    def hook(x: Tensor) -> Tensor:
        x = x.clone()
        x[:, :, head] += delta
        return x

    return hook
