"""Merullo et al.'s stage-wise circuits: path patching backwards from the logits, one stage at a time.

Merullo, Eickhoff and Pavlick (2024, "Circuit Component Reuse Across Tasks in Transformer Language
Models", ICLR, §3) find each task's circuit with Wang et al.'s (2022, arXiv 2211.00593, §3) path
patching, in stages: stage 1 scores every head's path to the **logits** (the mover heads); stage 2
every head's path into the **queries** of stage 1's heads (the inhibition heads); stage 3 every
head's path into the **keys and values** of stage 2's heads (the induction and duplicate-token
heads; Wang et al. patch the S-inhibition heads' values, and a head can as well tell its stage-2
head *where* to look, through its keys, as in the planted IOI model of
:mod:`circuits.groundtruth.planted_ioi`). Each stage keeps its top ``fraction`` of the model's heads
(Merullo: 2 %), and the circuit is the union of the stages (:func:`circuits.measures.roc.stage_heads`);
two tasks' overlap is :func:`circuits.measures.roc.task_overlap`.

A stage's score of a sender is the sum of its path-patching edge effects into the stage's
receivers, each receiver patched on its own (:class:`~circuits.discovery.PathPatching`; Wang et al.
patch the receiver set at once, which differs by the receivers' interactions).

Exact path patching of every head costs a partial forward per sender layer and per receiver, too
slow for a 1.5B model on a CPU. With ``shortlist=K`` each stage first ranks senders by EAP (Syed et
al. 2023: one forward and backward for every edge at once, run once for all stages) over the same
edges (sender → the stage's receivers, through the stage's inputs), and then confirms the top K by
exact path patching, which alone decides what the stage keeps. ``shortlist=0`` patches every head.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.discovery import EAP, Ablation, PathPatching
from circuits.engine.ablation import check_ablation, check_positive
from circuits.errors import HeadgraphError
from circuits.graph import Node, NodeKind
from circuits.measures.roc import MERULLO_FRACTION, importance, stage_heads
from circuits.model import graph_of
from circuits.scores import Level, Scores
from tasks import PromptPairDataset
from tasks.metrics import Metric

__all__ = ["MERULLO_INPUTS", "StageResult", "StageRule", "find_stages", "shortlist_senders"]

MERULLO_INPUTS = ("", "q", "kv")
"""Per stage, which inputs of the previous stage's heads are patched (stage 1 reads the logits)."""


@dataclass(frozen=True)
class StageRule:
    """Settings of the stage-wise search.

    Attributes:
        inputs: per stage, the receiver inputs patched (``q``, ``k``, ``v`` letters); the first
            stage's receiver is the logits, so its entry is ignored. The number of stages is its length.
        fraction: share of the model's heads each stage keeps (``ceil(fraction · heads)``).
        shortlist: senders confirmed by exact path patching per stage, ranked by EAP; 0 patches every head.
        ablation: what replaces a sender's clean output.
        batch_size: prompts per forward.
        max_rows: most rows (senders × prompts) in one forward.
    """

    inputs: tuple[str, ...] = MERULLO_INPUTS
    fraction: float = MERULLO_FRACTION
    shortlist: int = 24
    ablation: Ablation = Ablation.RESAMPLE
    batch_size: int = 8
    max_rows: int = 32

    def __post_init__(self) -> None:
        if not self.inputs:
            raise HeadgraphError("the stage rule needs at least one stage")
        for letters in self.inputs[1:]:
            if not letters or any(c not in "qkv" for c in letters) or len(set(letters)) != len(letters):
                raise HeadgraphError(f"a stage's inputs must be distinct letters among q, k, v, got {letters!r}")
        if not 0 < self.fraction <= 1:
            raise HeadgraphError(f"the fraction of heads must be in (0, 1], got {self.fraction}")
        if not isinstance(self.shortlist, int) or self.shortlist < 0:
            raise HeadgraphError(f"shortlist must be a non-negative integer, got {self.shortlist!r}")
        check_positive(batch_size=self.batch_size, max_rows=self.max_rows)
        check_ablation(self.ablation)


@dataclass(frozen=True)
class StageResult:
    """The stages of one task's circuit.

    Attributes:
        scores: per stage, path-patching edge scores (NaN off the stage's senders and receivers).
        heads: per stage, the heads it keeps (top ``fraction``), in rank order.
        receivers: per stage, the receivers it patched (``logits``, or the previous stage's heads).
        shortlists: per stage, the senders confirmed exactly (every upstream head without a shortlist).
        seconds: wall time of the search.
    """

    scores: tuple[Scores, ...]
    heads: tuple[tuple[Node, ...], ...]
    receivers: tuple[tuple[Node, ...], ...]
    shortlists: tuple[tuple[Node, ...], ...]
    seconds: float

    @property
    def circuit(self) -> frozenset[Node]:
        """The union of the stages' heads."""
        return frozenset(h for stage in self.heads for h in stage)


def shortlist_senders(eap: Scores, receivers: Sequence[Node], inputs: str, k: int) -> tuple[Node, ...]:
    """The ``k`` heads with the largest summed ``|EAP|`` over their edges into ``receivers`` (via ``inputs``).

    Ties keep the graph's order (earlier layer first); heads with no such edge are never listed.
    """
    graph = eap.graph
    wanted = set(receivers)
    totals: dict[Node, float] = {}
    for i, e in enumerate(graph.edges):
        if e.src.kind is not NodeKind.HEAD or e.dst not in wanted:
            continue
        if e.qkv is not None and e.dst.kind is NodeKind.HEAD and e.qkv.value not in inputs:
            continue
        v = float(eap.values[i])
        totals[e.src] = totals.get(e.src, 0.0) + (0.0 if math.isnan(v) else abs(v))
    ranked = sorted(totals, key=lambda n: (-totals[n], n.sort_key()))
    return tuple(ranked[:k])


def _ranked_heads(scores: Scores, fraction: float) -> tuple[Node, ...]:
    """A stage's kept heads in rank order (the same heads as :func:`stage_heads`)."""
    kept = stage_heads([scores], fraction)
    node_imp = importance(scores, Level.NODE)
    graph = scores.graph
    return tuple(sorted(kept, key=lambda h: (-float(node_imp[graph.node_index(h)]), h.sort_key())))


def find_stages(
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    rule: StageRule | None = None,
    *,
    progress: bool = True,
) -> StageResult:
    """Merullo et al.'s stages of ``data``'s circuit in ``model`` (module docstring).

    Stops early when a stage keeps no head with an upstream head (a layer-0 stage has no senders).
    """
    rule = rule or StageRule()
    start = time.perf_counter()
    eap = (
        EAP(ablation=rule.ablation, batch_size=rule.batch_size)(model, data, metric, progress=False)
        if rule.shortlist
        else None
    )
    n_layers = model.cfg.n_layers
    receivers: tuple[Node, ...] = (Node(NodeKind.LOGITS, n_layers),)
    out_scores: list[Scores] = []
    out_heads: list[tuple[Node, ...]] = []
    out_receivers: list[tuple[Node, ...]] = []
    out_short: list[tuple[Node, ...]] = []
    bar = tqdm(total=len(rule.inputs), desc="stages", unit="stage", disable=not progress)
    for stage, letters in enumerate(rule.inputs):
        inputs = letters or "qkv"
        if stage:
            receivers = tuple(h for h in out_heads[-1] if h.layer > 0)
            if not receivers:
                break
        if eap is not None:
            senders = shortlist_senders(eap, receivers, inputs, rule.shortlist)
        else:
            top = max(r.layer for r in receivers)
            senders = tuple(h for h in graph_of(model).heads if h.layer < top)
        if not senders:
            break
        method = PathPatching(
            receivers=",".join(str(r) for r in receivers),
            inputs=inputs,
            senders=",".join(str(s) for s in senders),
            ablation=rule.ablation,
            batch_size=rule.batch_size,
            max_rows=rule.max_rows,
        )
        scores = method(model, data, metric, progress=progress)
        out_scores.append(scores)
        out_heads.append(_ranked_heads(scores, rule.fraction))
        out_receivers.append(receivers)
        out_short.append(senders)
        bar.update()
    bar.close()
    if not out_scores:
        raise HeadgraphError("no stage could be scored: the model has no heads upstream of the logits")
    return StageResult(
        scores=tuple(out_scores),
        heads=tuple(out_heads),
        receivers=tuple(out_receivers),
        shortlists=tuple(out_short),
        seconds=time.perf_counter() - start,
    )
