"""Repair a task by redirecting heads reused from another task's circuit (Merullo et al. 2023).

Merullo, Eickhoff & Pavlick (2023, arXiv 2310.08744) found that GPT-2 medium's Colored Objects
circuit reuses much of its IOI circuit, but that the IOI S-inhibition heads and a negative mover,
which attend from the final position to the wrong answer in IOI, attend to every colour on Colored
Objects; forcing them onto the wrong colours raised accuracy from 49.6% to 93.7%. :func:`repair`
runs that recipe on any model and pair of tasks with answer roles
(:mod:`circuits.repair.answer_roles`), choosing everything from data:

1. **Circuits.** Exact activation patching of every head at the answer position (resample
   ablation) on the source task and on the target task's selection prompts; each circuit is the top
   ``fraction`` of heads by |effect| and their overlap is Merullo's
   (:func:`circuits.measures.roc.task_overlap`). On a large model, ``shortlist`` heads ranked by
   attribution patching (one forward/backward per batch, all positions) are patched exactly and the
   others are left unscored (NaN): the circuit is exact among the shortlist.
2. **Candidates.** The source circuit's heads (default), or only the heads both circuits share.
   The default is wider on purpose: Merullo's repaired heads were IOI-only (an inhibition head that
   is misdirected on the target has little effect there, so it drops out of the target circuit).
3. **Misdirected heads.** Each candidate's attention from the answer position onto the wrong
   answer's tokens is measured on the source and on the target; a candidate is *eligible* when on
   the source it puts at least ``min_source_attention`` there, and eligible heads are ranked by how
   much of that attention they lose on the target (``source − target``).
4. **The edit.** For ``k = 1 … max_heads`` top-ranked heads, FORCE their attention onto the
   target's wrong-answer tokens, or SCALE it by each ``γ`` (:mod:`circuits.repair.edits`); the edit
   with the best mean metric on the *selection* prompts wins (ties: fewer heads, FORCE first).
5. **Report**, on held-out evaluation prompts: the target before and after, on all of them and on
   the model's *errors* alone (the prompts whose best candidate was wrong before the edit); a
   control, the same edit on random heads of the same layers (``controls`` draws); the collateral
   change on other tasks, under the same edit directed to each task's own tokens of that role
   (where the task has them) and with the chosen heads mean-ablated at the answer position.

Two recipes (:class:`Recipe`) say which heads are redirected where:

* ``ORACLE`` (Merullo et al.): heads that attend to the *wrong* answer on the source (inhibition
  heads) are forced onto the target's wrong answers. The edit reads the label at test time (which
  listed colours are wrong), so it shows a mechanism, not a usable repair.
* ``PARSED`` (label-free): heads that attend to the *answer* on the source (IOI: the movers, onto
  the indirect object) are forced onto the target's answer position as found from the prompt's
  structure alone (:data:`~circuits.repair.answer_roles.AnswerRole.PARSED`: the colour listed before the object
  the question names). Heads are ranked by how much of that attention they lose on the target;
  selection prompts (labels allowed) choose the heads and the edit; at test time nothing but the
  prompt's tokens and named spans is read.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from transformer_lens import HookedTransformer

from circuits.discovery.activation_patching import ActivationPatching, PatchPositions
from circuits.discovery.attribution_patching import AttributionPatching
from circuits.engine.ablation import check_positive
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.measures.roc import Overlap, task_overlap
from circuits.model import logits_at, model_info, run_with_cache
from circuits.repair.answer_roles import AnswerRole, has_roles, require_roles, role_positions
from circuits.repair.edits import EditEvaluator, EditKind, HeadEdit, Outcome
from circuits.scores import Scores
from tasks import PromptPairDataset
from tasks.metrics import CandidateAccuracy, LogitDiff, Metric

__all__ = [
    "Candidates",
    "Collateral",
    "Control",
    "Errors",
    "HeadReport",
    "Recipe",
    "RepairConfig",
    "RepairResult",
    "Trial",
    "repair",
    "wrong_indices",
]

IMPROVEMENT_TOL = 1e-6
"""A larger edit must beat a smaller one's selection metric by more than this (relative) to win."""


class Recipe(Enum):
    """Which heads are redirected where (module docstring): Merullo's oracle edit or a label-free one."""

    ORACLE = "oracle"
    PARSED = "parsed"

    @property
    def roles(self) -> tuple[AnswerRole, AnswerRole]:
        """(the role a head must attend to on the source, the role it is directed to on the target)."""
        return (AnswerRole.WRONG, AnswerRole.WRONG) if self is Recipe.ORACLE else (AnswerRole.ANSWER, AnswerRole.PARSED)


class Candidates(Enum):
    """Which heads may be edited: the source circuit's, or only those both circuits share."""

    SOURCE = "source"
    SHARED = "shared"


@dataclass(frozen=True)
class RepairConfig:
    """Settings of :func:`repair` (module docstring, steps 1-5).

    Attributes:
        fraction: a task's circuit is its top ``ceil(fraction · heads)`` heads by |effect|.
        candidates: heads that may be edited.
        recipe: which heads are redirected where (:class:`Recipe`).
        min_source_attention: least attention onto the recipe's source role (the wrong answer for
            ``ORACLE``, the answer for ``PARSED``) on the source task for a head to be redirected.
        shortlist: patch exactly only this many heads, the top ones by |attribution patching| (0:
            every head).
        max_heads: most heads one edit changes.
        gammas: ScaleAttention factors tried beside ForceAttention (empty: force only).
        controls: random-head draws of the control.
        seed: seed of the control draws.
        batch_size: prompts per forward pass.
    """

    fraction: float = 0.05
    candidates: Candidates = Candidates.SOURCE
    recipe: Recipe = Recipe.ORACLE
    min_source_attention: float = 0.2
    shortlist: int = 0
    max_heads: int = 4
    gammas: tuple[float, ...] = (4.0,)
    controls: int = 10
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, float | int) and 0 < self.fraction <= 1):
            raise HeadgraphError(f"fraction must be in (0, 1], got {self.fraction!r}")
        if not isinstance(self.candidates, Candidates):
            raise HeadgraphError(f"candidates must be a Candidates, got {self.candidates!r}")
        if not isinstance(self.recipe, Recipe):
            raise HeadgraphError(f"recipe must be a Recipe, got {self.recipe!r}")
        if not (isinstance(self.min_source_attention, float | int) and 0 <= self.min_source_attention <= 1):
            raise HeadgraphError(f"min_source_attention must be in [0, 1], got {self.min_source_attention!r}")
        if not isinstance(self.shortlist, int) or self.shortlist < 0:
            raise HeadgraphError(f"shortlist must be a non-negative number of heads, got {self.shortlist!r}")
        check_positive(max_heads=self.max_heads, controls=self.controls, batch_size=self.batch_size)
        if any(not (g > 0 and g != 1) for g in self.gammas):
            raise HeadgraphError(f"every gamma must be > 0 and != 1, got {self.gammas}")


@dataclass(frozen=True)
class HeadReport:
    """A candidate head: its patching effects and its attention from the answer position.

    Attributes:
        head: the head.
        source_effect: metric change when it is patched on the source task (sign convention of
            :mod:`circuits.scores`).
        target_effect: the same on the target task.
        shared: whether it is in both circuits.
        source: its mean attention on each role, on the source task.
        target: the same on the target task (selection prompts).
        eligible: whether it attends to the recipe's source role on the source task
            (``min_source_attention``).
        roles: the recipe's (source role, target role) (:attr:`Recipe.roles`).
    """

    head: Node
    source_effect: float
    target_effect: float
    shared: bool
    source: Mapping[AnswerRole, float]
    target: Mapping[AnswerRole, float]
    eligible: bool
    roles: tuple[AnswerRole, AnswerRole] = (AnswerRole.WRONG, AnswerRole.WRONG)

    @property
    def misdirection(self) -> float:
        """Attention lost from the source role on the source task to the target role on the target."""
        return self.source[self.roles[0]] - self.target[self.roles[1]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": str(self.head),
            "source_effect": self.source_effect,
            "target_effect": self.target_effect,
            "shared": self.shared,
            "source_attention": {r.value: v for r, v in self.source.items()},
            "target_attention": {r.value: v for r, v in self.target.items()},
            "misdirection": self.misdirection,
            "eligible": self.eligible,
            "roles": [r.value for r in self.roles],
        }


@dataclass(frozen=True)
class Trial:
    """One candidate edit and the target's behaviour under it on the selection prompts."""

    edit: HeadEdit
    outcome: Outcome


@dataclass(frozen=True)
class Control:
    """The chosen edit on random heads of the same layers, one outcome per draw."""

    heads: tuple[tuple[Node, ...], ...]
    outcomes: tuple[Outcome, ...]

    def mean_sd(self, name: str) -> tuple[float, float]:
        """Mean and sample standard deviation over draws of an :class:`Outcome` field."""
        xs = [float(getattr(o, name)) for o in self.outcomes]
        mean = sum(xs) / len(xs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
        return mean, sd


@dataclass(frozen=True)
class Errors:
    """The held-out prompts the model got wrong before the edit (best candidate not the answer).

    Attributes:
        indices: their indices in the held-out prompts.
        before: the model on them as it is (candidate accuracy 0 by construction).
        after: under the chosen edit.
        control: under the random-head control draws.
    """

    indices: tuple[int, ...]
    before: Outcome
    after: Outcome
    control: Control


@dataclass(frozen=True)
class Collateral:
    """Another task before and after the chosen heads' edit, in one form.

    Attributes:
        task: the task.
        form: the edit applied (the chosen edit directed to this task's wrong-answer tokens, or the
            chosen heads mean-ablated).
        before: the task as the model does it.
        after: under ``form``.
    """

    task: str
    form: HeadEdit
    before: Outcome
    after: Outcome


@dataclass(frozen=True)
class RepairResult:
    """Everything :func:`repair` measured (module docstring).

    ``source_scores`` and ``target_scores`` are the two all-head patching sweeps of step 1 (source
    task; target selection prompts), kept so that callers can draw them or recompute the overlap at
    other thresholds (:func:`circuits.measures.roc.overlap_curve`) without patching again.
    """

    model: str
    source: str
    target: str
    n_source: int
    n_select: int
    n_target: int
    config: RepairConfig
    overlap: Overlap
    source_scores: Scores
    target_scores: Scores
    heads: tuple[HeadReport, ...]
    trials: tuple[Trial, ...]
    chosen: HeadEdit
    before: Outcome
    after: Outcome
    control: Control
    errors: Errors | None = None
    collateral: tuple[Collateral, ...] = ()
    seconds: float = 0.0
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def ranked(self) -> list[HeadReport]:
        """Eligible heads, most misdirected first."""
        return sorted((h for h in self.heads if h.eligible), key=lambda h: -h.misdirection)


def _circuit_scores(
    model: HookedTransformer, data: PromptPairDataset, metric: Metric, config: RepairConfig, progress: bool
) -> Scores:
    heads = None
    if config.shortlist:
        atp = AttributionPatching(batch_size=config.batch_size)(model, data, metric, progress=progress)
        graph = atp.graph
        ranked = sorted(graph.heads, key=lambda h: -abs(float(atp.values[graph.node_index(h)])))
        heads = tuple(str(h) for h in ranked[: config.shortlist])
    method = ActivationPatching(positions=PatchPositions.LAST, batch_size=config.batch_size, heads=heads)
    return method(model, data, metric, progress=progress)


def _draw_controls(chosen: Sequence[Node], n_heads: int, draws: int, seed: int) -> list[tuple[Node, ...]]:
    """``draws`` sets of heads, each chosen head replaced by a random other head of its layer.

    Examples:
        >>> sorted({str(h) for d in _draw_controls([Node.of_head(1, 3)], 4, 20, 0) for h in d})
        ['L1H0', 'L1H1', 'L1H2']
    """
    rng = random.Random(seed)
    out = []
    for _ in range(draws):
        picked: list[Node] = []
        for node in chosen:
            pool = [
                Node.of_head(node.layer, h)
                for h in range(n_heads)
                if Node.of_head(node.layer, h) not in chosen and Node.of_head(node.layer, h) not in picked
            ]
            if not pool:
                raise HeadgraphError(f"layer {node.layer} has no head besides the chosen ones for the control")
            picked.append(rng.choice(pool))
        out.append(tuple(picked))
    return out


@torch.inference_mode()
def wrong_indices(model: HookedTransformer, data: PromptPairDataset, batch_size: int = 32) -> list[int]:
    """Indices of the examples whose best candidate is not an answer (the model's errors)."""
    cand, out, offset = CandidateAccuracy(), [], 0
    for batch in data.batches(batch_size):
        resid, _ = run_with_cache(model, batch.clean, [])
        right = cand(logits_at(model, resid, batch.answer_pos), batch.targets)
        out += [offset + i for i, r in enumerate(right.tolist()) if r < 0.5]
        offset += len(batch)
    return out


def _errors(
    model: HookedTransformer,
    target: PromptPairDataset,
    chosen: HeadEdit,
    draws: Sequence[tuple[Node, ...]],
    watch: Sequence[Node],
    progress: bool,
    kw: Mapping[str, Any],
) -> Errors | None:
    """The chosen edit and its control on the held-out prompts the model gets wrong (None: no errors)."""
    idx = wrong_indices(model, target, int(kw["batch_size"]))
    if not idx:
        return None
    sub = target.select(torch.tensor(idx))
    res = EditEvaluator(model, sub, progress=progress, **kw)([None, chosen, *(chosen.with_heads(d) for d in draws)],
                                                             watch=watch)  # fmt: skip
    return Errors(tuple(idx), res[0], res[1], Control(tuple(draws), tuple(res[2:])))


def _select(trials: list[Trial]) -> Trial:
    """The trial with the best selection metric; a later (larger) one must beat earlier ones clearly."""
    best = trials[0]
    for t in trials[1:]:
        if t.outcome.metric > best.outcome.metric + IMPROVEMENT_TOL * max(1.0, abs(best.outcome.metric)):
            best = t
    return best


def repair(
    model: HookedTransformer,
    source: PromptPairDataset,
    target: PromptPairDataset,
    *,
    select: PromptPairDataset,
    collateral: Mapping[str, PromptPairDataset] | None = None,
    config: RepairConfig | None = None,
    source_model: HookedTransformer | None = None,
    metric: Metric | None = None,
    scores: tuple[Scores, Scores] | None = None,
    progress: bool = True,
) -> RepairResult:
    """Find misdirected reused heads, choose an attention edit, and measure it (module docstring).

    Args:
        model: the model to repair.
        source: prompts of the task whose circuit holds the heads (e.g. IOI).
        target: held-out prompts of the task to repair, for the report.
        select: other prompts of the target task, from which every choice is made.
        collateral: other tasks' prompts by name, for the collateral change.
        config: the settings.
        source_model: the model the source circuit is measured on (default: ``model``); the planted
            check passes the intact model here and a broken copy as ``model``.
        metric: per-example metric (default: logit difference).
        scores: the two patching sweeps of step 1 (source, target selection prompts) of an earlier
            run on the same prompts (``RepairResult.source_scores``/``target_scores``), to try
            another recipe without patching again; they must be of this model's shape.
        progress: show progress bars.

    Raises:
        UnknownNameError: the source or target task defines no answer roles.
        HeadgraphError: no candidate head attends to the wrong answer on the source task.
    """
    start = time.perf_counter()
    config = config or RepairConfig()
    metric = metric or LogitDiff()
    src_model = source_model or model
    for d in (source, target, select):
        require_roles(d.task)
    if config.recipe is Recipe.PARSED:
        for d in (target, select):
            if not role_positions(d).has(AnswerRole.PARSED):
                raise HeadgraphError(f"the label-free recipe needs {d.task!r} prompts whose answer position the"
                                     " prompt's structure gives; this task has none (use --recipe oracle)")  # fmt: skip
    if select.task != target.task:
        raise HeadgraphError(f"the selection prompts are from {select.task!r}, the target is {target.task!r}")
    kw: dict[str, Any] = {"metric": metric, "batch_size": config.batch_size}
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        timings[stage] = now - clock[0]
        clock[0] = now

    if scores is None:
        src_scores = _circuit_scores(src_model, source, metric, config, progress)
        tgt_scores = _circuit_scores(model, select, metric, config, progress)
    else:
        src_scores, tgt_scores = scores
        shape = (model.cfg.n_layers, model.cfg.n_heads)
        if any((s.graph.n_layers, s.graph.n_heads) != shape for s in scores):
            raise HeadgraphError(f"the given patching sweeps are not of a {shape[0]}×{shape[1]} model")
    overlap = task_overlap([src_scores], [tgt_scores], config.fraction)
    lap("circuits")
    pool = overlap.a if config.candidates is Candidates.SOURCE else overlap.shared
    candidates = sorted(pool, key=Node.sort_key)
    if not candidates:
        raise HeadgraphError(f"no {config.candidates.value} heads to edit (fraction {config.fraction})")
    on_select = EditEvaluator(model, select, progress=progress, **kw)
    (src_att,) = EditEvaluator(src_model, source, **kw)([None], watch=candidates)
    (tgt_att,) = on_select([None], watch=candidates)
    graph = src_scores.graph
    src_role, tgt_role = config.recipe.roles
    heads = tuple(
        HeadReport(
            head=h,
            source_effect=float(src_scores.values[graph.node_index(h)]),
            target_effect=float(tgt_scores.values[graph.node_index(h)]),
            shared=h in overlap.shared,
            source=src_att.attention[h],
            target=tgt_att.attention[h],
            eligible=src_att.attention[h][src_role] >= config.min_source_attention,
            roles=config.recipe.roles,
        )
        for h in candidates
    )
    ranked = sorted((h for h in heads if h.eligible), key=lambda h: -h.misdirection)
    lap("attention")
    if not ranked:
        best = max(heads, key=lambda h: h.source[src_role])
        raise HeadgraphError(
            f"no candidate head puts {config.min_source_attention:.0%} of its attention on the {src_role.value} tokens"
            f" on {source.task!r} (most: {best.head} with {best.source[src_role]:.1%}); nothing to redirect"
        )

    kinds = [(EditKind.FORCE, 1.0)] + [(EditKind.SCALE, g) for g in config.gammas]
    edits = [
        HeadEdit(tuple(h.head for h in ranked[:k]), kind, tgt_role, gamma)
        for k in range(1, min(config.max_heads, len(ranked)) + 1)
        for kind, gamma in kinds
    ]
    outcomes = on_select(edits)
    trials = tuple(Trial(e, o) for e, o in zip(edits, outcomes, strict=True))
    chosen = _select(list(trials)).edit
    lap("selection")

    draws = _draw_controls(chosen.heads, model.cfg.n_heads, config.controls, config.seed)
    watch = list(chosen.heads)
    on_target = EditEvaluator(model, target, progress=progress, **kw)
    results = on_target([None, chosen, *(chosen.with_heads(d) for d in draws)], watch=watch)
    before, after, controls = results[0], results[1], tuple(results[2:])
    lap("target and control")
    errors = _errors(model, target, chosen, draws, watch, progress, kw)
    lap("errors")

    side: list[Collateral] = []
    for name, data in (collateral or {}).items():
        forms = [chosen] if has_roles(data.task) and role_positions(data).has(chosen.role) else []
        forms.append(HeadEdit(chosen.heads, EditKind.ABLATE))
        base, *rest = EditEvaluator(model, data, progress=progress, **kw)([None, *forms])
        side += [Collateral(name, f, base, o) for f, o in zip(forms, rest, strict=True)]
        lap(f"collateral {name}")

    return RepairResult(
        model=model_info(model).name,
        source=source.task,
        target=target.task,
        n_source=len(source),
        n_select=len(select),
        n_target=len(target),
        config=config,
        overlap=overlap,
        source_scores=src_scores,
        target_scores=tgt_scores,
        heads=heads,
        trials=trials,
        chosen=chosen,
        before=before,
        after=after,
        control=Control(tuple(draws), controls),
        errors=errors,
        collateral=tuple(side),
        seconds=time.perf_counter() - start,
        timings=timings,
    )
