"""Ships: head importance as the KL shift of the next-token distribution under query scaling.

Zhou et al. 2025, "On the Role of Attention Heads in Large Language Model Safety" (ICLR 2025,
arXiv 2410.13708; github.com/ydyjya/SafetyHeadAttribution, ``lib/SHIPS/get_ships.py``). A head is
ablated by *undifferentiated attention*: its query is multiplied by ``ε`` (1e-4 in ``get_ships``),
so its scores go to ~0 and its attention to ~uniform over the causal context. For a prompt ``x``:

    Ships(x; l, h) = KL(p0 || p_ablate(l, h)),  p = softmax(logits at the answer position)

with ``1e-12`` added to both distributions, as the authors' code does. The dataset-level
("generalized") score is the mean over prompts; :meth:`Ships.per_prompt` keeps one row per prompt.

Ships reads only the clean prompts and does not use the task metric (the corrupt prompts and the
metric give the baseline only). It is registered as a discovery method so it runs on every task;
its :class:`~circuits.scores.Scores` hold ``-KL`` (negative = more important, as for a head whose
ablation hurts), so ``order`` and circuit selection rank by KL.

Query scaling is done on the scores (:class:`~circuits.interventions.ScaleQuery`), the same edit as
scaling the query before rotary on models without query norms. The scaled runs resume from the
clean run's residual stream at the head's layer, ``k`` heads stacked on the batch dimension.
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

from circuits.discovery.base import METHODS, check_positive, method_params, summed_scores
from circuits.engine.ablation import BaselineSums
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import (
    HookFn,
    graph_of,
    hook_attn_scores,
    logits_at,
    resumable_run,
    resume_to_logits,
    run_to_logits,
)
from circuits.scores import Level, Scores
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = ["SHIPS_EPS", "SHIPS_SMOOTHING", "Ships", "ships_kl"]

SHIPS_EPS = 1e-4
"""Query scale of the ablation (``get_ships.py``; Sahara uses 1e-5)."""

SHIPS_SMOOTHING = 1e-12
"""Added to both distributions before the KL, as in the authors' code."""


def ships_kl(clean: Float[Tensor, "rows d_vocab"], ablated: Float[Tensor, "rows d_vocab"]) -> Float[Tensor, " rows"]:
    """``KL(softmax(clean) || softmax(ablated))`` per row, both smoothed by :data:`SHIPS_SMOOTHING`.

    Examples:
        >>> x = torch.tensor([[1.0, 2.0, 3.0]])
        >>> float(ships_kl(x, x))
        0.0
    """
    p = clean.double().softmax(-1) + SHIPS_SMOOTHING
    q = ablated.double().softmax(-1) + SHIPS_SMOOTHING
    return (p * (p.log() - q.log())).sum(-1)


def _scale_rows_hook(chunk: list[Node], b: int, eps: float) -> HookFn:
    """Multiply head ``chunk[i]``'s scores by ``eps`` in rows ``i·b … (i+1)·b``."""

    def fn(scores: Float[Tensor, "rows head q k"]) -> Tensor:
        scores = scores.clone()
        for i, node in enumerate(chunk):
            block = scores[i * b : (i + 1) * b, node.head]
            scores[i * b : (i + 1) * b, node.head] = torch.where(torch.isneginf(block), block, block * eps)
        return scores

    return fn


@METHODS.register("ships")
@dataclass(frozen=True)
class Ships:
    """Per-head KL of the next-token distribution when the head's query is scaled by ``eps``.

    Attributes:
        eps: the query scale (0 gives exactly uniform attention).
        batch_size: prompts per forward (before stacking heads).
        max_rows: most rows (heads × prompts) in one forward.
    """

    name: ClassVar[str] = "ships"
    level: ClassVar[Level] = Level.NODE
    eps: float = SHIPS_EPS
    batch_size: int = 16
    max_rows: int = 144

    def __post_init__(self) -> None:
        check_positive(batch_size=self.batch_size, max_rows=self.max_rows)
        if not isinstance(self.eps, int | float) or isinstance(self.eps, bool) or not 0 <= self.eps < 1:
            raise HeadgraphError(f"eps must be a number in [0, 1), got {self.eps!r}")

    @torch.inference_mode()
    def per_prompt(
        self, model: HookedTransformer, data: PromptPairDataset, *, progress: bool = False
    ) -> Float[Tensor, "batch layer head"]:
        """Ships of every head on every clean prompt (``[prompt, layer, head]``, float64)."""
        n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
        out = torch.zeros(len(data), n_layers, n_heads, dtype=torch.float64)
        heads = [Node.of_head(0, h) for h in range(n_heads)]
        bar = tqdm(total=len(data) * n_layers, desc="ships", unit="prompt-layer", disable=not progress)
        done = 0
        for batch in data.batches(self.batch_size):
            b, pos = len(batch), batch.answer_pos
            run = resumable_run(model, batch.clean, 0, [])
            p0 = logits_at(model, run.final_resid, pos)
            k = max(1, self.max_rows // b)
            for layer in range(n_layers):
                for i in range(0, n_heads, k):
                    chunk = [Node.of_head(layer, h.head) for h in heads[i : i + k] if h.head is not None]
                    hook = (hook_attn_scores(layer), _scale_rows_hook(chunk, b, self.eps))
                    logits = resume_to_logits(model, run, layer, len(chunk), pos.repeat(len(chunk)), [hook])
                    kl = ships_kl(p0.repeat(len(chunk), 1), logits).view(len(chunk), b)
                    for node, row in zip(chunk, kl, strict=True):
                        out[done : done + b, layer, node.head] = row.cpu()
                bar.update(b)
            done += b
        bar.close()
        return out

    @torch.inference_mode()
    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        graph = graph_of(model)
        kl = self.per_prompt(model, data, progress=progress)  # (batch, layer, head)
        sums = BaselineSums()
        acc = Accuracy()
        for batch in data.batches(self.batch_size):
            clean, corrupt = (run_to_logits(model, t, batch.answer_pos) for t in (batch.clean, batch.corrupt))
            sums.add(metric(clean, batch.targets), metric(corrupt, batch.targets), acc(clean, batch.targets),
                     acc(corrupt, batch.targets))  # fmt: skip
        totals = torch.full((len(graph.nodes),), torch.nan, dtype=torch.float64)
        summed = kl.sum(0)
        for node in graph.heads:
            totals[graph.node_index(node)] = -summed[node.layer, node.head]
        return summed_scores(self.name, method_params(self), graph, Level.NODE, totals, sums, len(data), metric, start)
