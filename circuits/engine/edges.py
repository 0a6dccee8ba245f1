"""The dense sender × receiver view of a graph's edges, and sender activations at the positions that matter.

Every edge method works on two dense tensors and one index:

* senders (``S``): the nodes that write to the residual stream, in graph order (input, per layer
  its heads then its MLP);
* receiver inputs (``R``): per layer each head's q, k and v input then the MLP's input, and at
  the end the logits, in graph order;
* :class:`EdgeLayout` maps an ``[S, R]`` matrix to the graph's edge vector and back. A receiver
  reads a *prefix* of the sender list (everything upstream of it), so its edges are one column
  prefix and the edge vector is the concatenation of those prefixes.

Sender outputs are kept only at the *active* positions (:class:`ActivePositions`): at or after
the first token where the clean and ablated inputs differ (earlier positions are identical in
both runs, by causality) and at or before the answer position (later positions cannot change
the metric). On IOI this is about a quarter of the padded batch, and it shrinks every dense
product by the same factor.

Post-norm models (Gemma 2/3): a head's *term* in the residual stream is its output passed through
its block's post-attention RMS norm with the norm's scale of the same run
(:mod:`circuits.model.edges`). Edge methods ask for terms (``terms=True``): heads' ``z`` are then
kept divided by that scale, and :func:`circuits.model.head_term_weights` maps them to the residual
stream. On models without post-norms ``terms`` changes nothing. Node-level methods keep the raw
``z`` (``terms=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.engine.ablation import Ablation, corrupt_means
from circuits.graph import QKV, ComponentGraph, Node, NodeKind
from circuits.model import (
    SharedPrefix,
    embeddings,
    has_mlps,
    hook_attn_post_scale,
    hook_mlp_out,
    hook_resid_pre,
    hook_z,
    logits_at,
    run_after_prefix,
    run_with_cache,
    sender_scale_hooks,
)
from tasks import PromptPairDataset

__all__ = [
    "ActivePositions",
    "EdgeLayout",
    "SenderActs",
    "CorruptRun",
    "corrupt_run",
    "prefix_length",
    "mean_sender_acts",
    "sender_acts",
    "sender_hook_names",
    "term_cache",
]


@dataclass(frozen=True)
class EdgeLayout:
    """Index arithmetic between a graph's edge vector and a dense ``[sender, receiver input]`` matrix.

    Examples:
        >>> layout = EdgeLayout(ComponentGraph(n_layers=2, n_heads=2))
        >>> layout.n_senders, layout.n_receivers, len(layout.graph.edges)
        (7, 15, 46)
        >>> layout.head_receiver(1, 0, QKV.K), layout.mlp_receiver(1), layout.logits_receiver
        (8, 13, 14)
    """

    graph: ComponentGraph

    @property
    def n_heads(self) -> int:
        return self.graph.n_heads

    @property
    def per_layer_senders(self) -> int:
        """Senders each layer adds: its heads and, with MLPs, its MLP."""
        return self.graph.n_heads + int(self.graph.has_mlps)

    @property
    def per_layer_receivers(self) -> int:
        """Receiver inputs of each layer: q, k, v per head and, with MLPs, the MLP input."""
        return 3 * self.graph.n_heads + int(self.graph.has_mlps)

    @property
    def n_senders(self) -> int:
        return 1 + self.graph.n_layers * self.per_layer_senders

    @property
    def n_receivers(self) -> int:
        return self.graph.n_layers * self.per_layer_receivers + 1

    def head_sender(self, layer: int, head: int) -> int:
        return 1 + layer * self.per_layer_senders + head

    def mlp_sender(self, layer: int) -> int:
        return 1 + layer * self.per_layer_senders + self.graph.n_heads

    def head_receiver(self, layer: int, head: int, qkv: QKV) -> int:
        return layer * self.per_layer_receivers + 3 * head + _QKV_INDEX[qkv]

    def mlp_receiver(self, layer: int) -> int:
        return layer * self.per_layer_receivers + 3 * self.graph.n_heads

    @property
    def logits_receiver(self) -> int:
        return self.n_receivers - 1

    def layer_receivers(self, layer: int) -> slice:
        """The receiver inputs of block ``layer`` (heads' q/k/v in head order, then the MLP)."""
        start = layer * self.per_layer_receivers
        return slice(start, start + self.per_layer_receivers)

    def senders_before(self, layer: int, *, mlp: bool = False) -> int:
        """How many senders a head (or with ``mlp``, the MLP) of block ``layer`` reads."""
        return 1 + layer * self.per_layer_senders + (self.graph.n_heads if mlp else 0)

    def sender_node(self, index: int) -> Node:
        return self.graph.senders()[index]

    @cached_property
    def _index(self) -> tuple[Tensor, Tensor]:
        """(sender, receiver) of every edge, in graph edge order."""
        src, dst = [], []
        for r, n_src in enumerate(self.n_src.tolist()):
            src.append(torch.arange(n_src))
            dst.append(torch.full((n_src,), r))
        return torch.cat(src), torch.cat(dst)

    @cached_property
    def n_src(self) -> Int[Tensor, " receivers"]:
        """Number of senders each receiver input reads (a prefix of the sender order)."""
        per = [self.senders_before(layer) for layer in range(self.graph.n_layers) for _ in range(3 * self.n_heads)]
        out: list[int] = []
        for layer in range(self.graph.n_layers):
            out += per[layer * 3 * self.n_heads : (layer + 1) * 3 * self.n_heads]
            if self.graph.has_mlps:
                out.append(self.senders_before(layer, mlp=True))
        out.append(self.n_senders)
        return torch.tensor(out)

    @property
    def senders(self) -> Int[Tensor, " n_edges"]:
        """Sender index of every edge."""
        return self._index[0]

    @property
    def receivers(self) -> Int[Tensor, " n_edges"]:
        """Receiver-input index of every edge."""
        return self._index[1]

    def to_edges(self, dense: Float[Tensor, "*lead senders receivers"]) -> Float[Tensor, "*lead n_edges"]:
        """The graph's edge vector (in :attr:`ComponentGraph.edges` order) of a dense matrix."""
        return dense[..., self.senders, self.receivers]

    def to_dense(
        self, edges: Float[Tensor, "*lead n_edges"], fill: float = 0.0
    ) -> Float[Tensor, "*lead senders receivers"]:
        """Inverse of :meth:`to_edges`; entries that are not edges hold ``fill``."""
        out = torch.full((*edges.shape[:-1], self.n_senders, self.n_receivers), fill, dtype=edges.dtype)
        out[..., self.senders, self.receivers] = edges
        return out

    def check(self) -> None:
        """Assert that the index reproduces :attr:`ComponentGraph.edges` (used by the tests)."""
        senders, receivers = self.graph.senders(), self._receiver_names()
        for e, s, r in zip(self.graph.edges, self.senders.tolist(), self.receivers.tolist(), strict=True):
            if (e.src, e.dst, e.qkv) != (senders[s], *receivers[r]):
                raise AssertionError(f"edge {e} laid out as {senders[s]} -> {receivers[r]}")

    def _receiver_names(self) -> list[tuple[Node, QKV | None]]:
        out: list[tuple[Node, QKV | None]] = []
        for layer in range(self.graph.n_layers):
            out += [(Node.of_head(layer, h), x) for h in range(self.n_heads) for x in QKV]
            if self.graph.has_mlps:
                out.append((Node.of_mlp(layer), None))
        out.append((Node(NodeKind.LOGITS, self.graph.n_layers), None))
        return out


_QKV_INDEX = {QKV.Q: 0, QKV.K: 1, QKV.V: 2}


@dataclass(frozen=True)
class ActivePositions:
    """The (example, position) pairs where an ablated sender can change the metric, packed in a list.

    Attributes:
        rows: example index of each active position.
        cols: token position of each active position.
    """

    rows: Int[Tensor, " n"]
    cols: Int[Tensor, " n"]

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @staticmethod
    def of(batch: PromptPairDataset, *, from_first_difference: bool) -> ActivePositions:
        """Positions up to each answer, starting at the first clean/corrupt difference when asked.

        Examples:
            >>> from tests.helpers.data import random_dataset
            >>> d = random_dataset(n=2, length=5, lengths=[5, 4], diff_from=2)
            >>> p = ActivePositions.of(d, from_first_difference=True)
            >>> p.rows.tolist(), p.cols.tolist()
            ([0, 0, 0, 1, 1], [2, 3, 4, 2, 3])
        """
        width = batch.clean.shape[1]
        cols = torch.arange(width, device=batch.clean.device)[None, :]
        keep = cols <= batch.answer_pos[:, None]  # (b, pos)
        if from_first_difference:
            keep &= cols >= first_difference(batch, otherwise=batch.answer_pos + 1)[:, None]
        rows, pos = keep.nonzero(as_tuple=True)
        return ActivePositions(rows, pos)

    def shift(self, offset: int) -> ActivePositions:
        """The same positions counted from ``offset`` (for runs that start after a shared prefix)."""
        return ActivePositions(self.rows, self.cols - offset)

    def gather(self, x: Float[Tensor, "batch pos ..."]) -> Float[Tensor, "n ..."]:
        """``x`` at the active positions."""
        return x[self.rows, self.cols]

    def mask(self, batch: int, width: int) -> Bool[Tensor, "batch pos"]:
        """The active positions as a boolean mask."""
        out = torch.zeros(batch, width, dtype=torch.bool, device=self.rows.device)
        out[self.rows, self.cols] = True
        return out


def prefix_length(batch: PromptPairDataset, ablation: Ablation) -> int:
    """Leading positions where clean and ablated runs of ``batch`` agree (0 unless resampling).

    Examples:
        >>> from tests.helpers.data import random_dataset
        >>> prefix_length(random_dataset(n=2, length=6, lengths=[6, 4], diff_from=3), Ablation.RESAMPLE)
        3
    """
    if ablation is not Ablation.RESAMPLE:
        return 0
    first = first_difference(batch, otherwise=batch.answer_pos)
    return int(torch.minimum(first, batch.answer_pos).min())


def first_difference(batch: PromptPairDataset, *, otherwise: Int[Tensor, " batch"]) -> Int[Tensor, " batch"]:
    """Per prompt, the first position where the clean and corrupt tokens differ (``otherwise`` where none does).

    The one definition of "first difference" (positions before it are identical in both runs, so
    every patch there is a no-op): active positions, shared prefixes and activation patching's
    prefix use it.

    Examples:
        >>> from tests.helpers.data import random_dataset
        >>> d = random_dataset(n=2, length=5, lengths=[5, 4], diff_from=2)
        >>> first_difference(d, otherwise=d.answer_pos).tolist()
        [2, 2]
    """
    differs = batch.clean != batch.corrupt  # (b, pos)
    return torch.where(differs.any(1), differs.int().argmax(1), otherwise)


@dataclass(frozen=True)
class SenderActs:
    """Every sender's output at the active positions of one batch.

    Heads are kept before ``W_O`` (``z``, one ``d_head`` vector per query head): :meth:`dense`
    projects a difference of two of these once, which costs less than projecting each run.

    Attributes:
        input: the embeddings (the residual stream entering block 0).
        z: per layer, the heads' ``hook_z`` (for edge terms on post-norm models, divided by the
            post-attention norm's scale of the run).
        mlp: per layer, the MLP output (empty on attention-only models).
    """

    input: Float[Tensor, "n d_model"]
    z: list[Float[Tensor, "n head d_head"]]
    mlp: list[Float[Tensor, "n d_model"]]

    def minus(self, other: SenderActs) -> SenderActs:
        """Element-wise ``self - other``."""
        return SenderActs(
            self.input - other.input,
            [a - b for a, b in zip(self.z, other.z, strict=True)],
            [a - b for a, b in zip(self.mlp, other.mlp, strict=True)],
        )

    def dense(self, layout: EdgeLayout, w_o: list[Tensor]) -> Float[Tensor, "senders n d_model"]:
        """All senders' outputs in the residual stream, sender-major ``[S, n, d_model]``.

        ``w_o`` holds per layer the map from ``z`` to the residual stream (``W_O``, or for edge
        terms :func:`circuits.model.head_term_weights`).
        """
        n, d = self.input.shape
        out = torch.empty(layout.n_senders, n, d, dtype=self.input.dtype, device=self.input.device)
        out[0] = self.input
        for layer, z in enumerate(self.z):
            first = layout.head_sender(layer, 0)
            out[first : first + layout.n_heads] = torch.einsum("nhe,hed->hnd", z, w_o[layer])
            if layout.graph.has_mlps:
                out[layout.mlp_sender(layer)] = self.mlp[layer]
        return out


def sender_hook_names(model: HookedTransformer, *, terms: bool = False) -> list[str]:
    """The hooks whose outputs are the senders' outputs (with ``terms``, also the post-norm scales)."""
    names = [hook_resid_pre(0)] + [hook_z(layer) for layer in range(model.cfg.n_layers)]
    if has_mlps(model):
        names += [hook_mlp_out(layer) for layer in range(model.cfg.n_layers)]
    return names + sender_scale_hooks(model) if terms else names


def term_cache(model: HookedTransformer, cache: dict[str, Tensor]) -> dict[str, Tensor]:
    """``cache`` (as filled by ``sender_hook_names(model, terms=True)``) with each ``hook_z`` divided by
    its layer's post-norm scale, and the scales dropped; ``cache`` itself on models without post-norms."""
    scales = sender_scale_hooks(model)
    if not scales:
        return cache
    out = {name: act for name, act in cache.items() if name not in scales}
    for layer in range(model.cfg.n_layers):
        out[hook_z(layer)] = cache[hook_z(layer)] / cache[hook_attn_post_scale(layer)][..., None]
    return out


def acts_from_cache(
    model: HookedTransformer, cache: dict[str, Tensor], pos: ActivePositions, *, terms: bool = False
) -> SenderActs:
    """Gather the sender outputs of a cache (as filled by :func:`sender_hook_names`) at ``pos``.

    With ``terms``, heads' ``z`` are divided by their post-norm scale (:func:`term_cache`).
    """
    n = model.cfg.n_layers
    cache = term_cache(model, cache) if terms else cache
    return SenderActs(
        pos.gather(cache[hook_resid_pre(0)]),
        [pos.gather(cache[hook_z(layer)]) for layer in range(n)],
        [] if not has_mlps(model) else [pos.gather(cache[hook_mlp_out(layer)]) for layer in range(n)],
    )


def sender_acts(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], pos: ActivePositions, *, terms: bool = False
) -> SenderActs:
    """One forward pass of ``tokens`` (no gradients), keeping the senders' outputs (or terms) at ``pos``."""
    with torch.inference_mode():
        _, cache = run_with_cache(model, tokens, sender_hook_names(model, terms=terms))
        return acts_from_cache(model, cache, pos, terms=terms)


def mean_sender_acts(
    model: HookedTransformer, data: PromptPairDataset, batch_size: int, *, terms: bool = False
) -> SenderActs:
    """Each sender's mean output (with ``terms``, mean term) over the corrupt prompts' real (unpadded)
    tokens, as one "position"."""
    transform = (lambda cache: term_cache(model, cache)) if terms else None
    sums = corrupt_means(model, data, sender_hook_names(model, terms=terms), batch_size, transform)
    means = {name: m[None, None] for name, m in sums.items()}  # (1, 1, ...)
    one = ActivePositions(torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    return acts_from_cache(model, means, one)


def expand_acts(acts: SenderActs, n: int) -> SenderActs:
    """A one-position :class:`SenderActs` (means, zeros) repeated for ``n`` positions."""
    return SenderActs(
        acts.input.expand(n, -1), [z.expand(n, -1, -1) for z in acts.z], [m.expand(n, -1) for m in acts.mlp]
    )


def zero_sender_acts(model: HookedTransformer) -> SenderActs:
    """Zero outputs for every sender, as one "position"."""
    cfg = model.cfg
    zeros = torch.zeros(1, cfg.d_model, dtype=cfg.dtype, device=cfg.device)
    return SenderActs(
        zeros,
        [torch.zeros(1, cfg.n_heads, cfg.d_head, dtype=cfg.dtype, device=cfg.device)] * cfg.n_layers,
        [] if not has_mlps(model) else [zeros] * cfg.n_layers,
    )


@dataclass(frozen=True)
class CorruptRun:
    """What one forward pass of the corrupt prompts leaves for the ablation of a batch.

    Attributes:
        logits: answer-position logits of the corrupt prompts.
        ablated: what replaces each sender's clean output at the active positions (its corrupt
            output, its mean, or zero).
        embed: the corrupt prompts' embeddings after the prefix (the residual stream entering block 0).
    """

    logits: Float[Tensor, "batch d_vocab"]
    ablated: SenderActs
    embed: Float[Tensor, "batch pos d_model"]


def corrupt_run(
    model: HookedTransformer,
    batch: PromptPairDataset,
    pos: ActivePositions,
    ablation: Ablation,
    means: SenderActs | None,
    prefix: SharedPrefix,
    *,
    terms: bool = False,
) -> CorruptRun:
    """Forward the corrupt prompts once after ``prefix`` (no gradients); build the ablated outputs.

    ``pos`` counts from the end of the prefix (:meth:`ActivePositions.shift`). With ``terms`` the
    resampled heads are terms of the corrupt run (:func:`term_cache`); ``means`` must then be mean
    terms.
    """
    start = prefix.length
    embed = embeddings(model, batch.corrupt)[:, start:]
    cache: dict[str, Tensor] = {}
    names = sender_hook_names(model, terms=terms) if ablation is Ablation.RESAMPLE else []
    hooks = [(name, lambda out, name=name: cache.__setitem__(name, out)) for name in names]
    with torch.inference_mode():
        resid = run_after_prefix(model, embed, prefix, hooks)
        logits = logits_at(model, resid, batch.answer_pos - start)
        if ablation is Ablation.RESAMPLE:
            ablated = acts_from_cache(model, cache, pos, terms=terms)
        elif ablation is Ablation.MEAN:
            if means is None:
                raise ValueError("mean ablation needs the senders' means (mean_sender_acts)")
            ablated = expand_acts(means, len(pos))
        else:
            ablated = expand_acts(zero_sender_acts(model), len(pos))
        return CorruptRun(logits.clone(), ablated, embed)
