"""Training-free attention tuning: ZeroTuning and ACT, head profiling and the γ / β search.

* **ZeroTuning** (Han et al. 2025, arXiv 2505.11739): scale a head's attention to the first token by
  ``γ`` and renormalise each row (:class:`~circuits.interventions.ScaleAttention` at key 0). Head
  profiling applies ``γ`` to one head at a time (a few ``γ`` values); a head is *up-effective* when
  its best profiled ``γ`` is above 1 and helps, *down-effective* when it is below 1 and helps. The
  ``k`` most helpful heads of one direction form the group, and ``γ`` for the group is searched on
  validation prompts, **supervised** (accuracy, ties broken by the answer's log-probability) or
  **unsupervised** (lowest mean entropy of the next-token distribution; no labels used anywhere).
* **ACT** (Yu et al. 2024, "Unveiling and Harnessing Hidden Attention Sinks", arXiv 2406.15765):
  calibrate the hidden sinks of a head (:class:`~circuits.interventions.CalibrateSinks`, β = 0.4,
  τ = 0.1). Its offline head search keeps the heads whose calibration alone helps; here the ``k``
  most helpful, then β is searched for the group as above.

Profiling signal per head: the change of the answer's mean log-probability (supervised) or minus
the change of the mean entropy (unsupervised). Everything is chosen on the validation prompts and
reported on held-out test prompts, against the untouched model and against ``controls`` draws of
``k`` random heads (from the profiled layers) that get the same search.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.interventions import CalibrateSinks, Intervention, ScaleAttention, intervene
from circuits.model import run_to_logits
from tasks import PromptPairDataset
from tasks.metrics import Accuracy

__all__ = [
    "Evaluation",
    "HeadProfile",
    "Objective",
    "Recipe",
    "TuneConfig",
    "TuneResult",
    "evaluate",
    "profile",
    "tune",
]


class Recipe(Enum):
    """Which attention edit is tuned."""

    ZEROTUNING = "zerotuning"
    ACT = "act"


class Objective(Enum):
    """What the profiling and the search maximise on the validation prompts."""

    ACCURACY = "accuracy"  # supervised
    ENTROPY = "entropy"  # unsupervised: minimise the output entropy


@dataclass(frozen=True)
class TuneConfig:
    """Settings of a tuning run.

    Attributes:
        recipe: ZeroTuning or ACT.
        objective: supervised (accuracy) or unsupervised (entropy).
        profile_values: ZeroTuning's single-head γ sweep (ACT profiles at ``act_beta``).
        gammas: ZeroTuning's group γ grid (each side of 1 is searched for its direction).
        act_beta: ACT's profiling β (the paper's default 0.4).
        betas: ACT's group β grid.
        tau: ACT's sink threshold.
        k: heads in the group.
        layers: the layers profiled (None: all).
        controls: random-head control draws.
        seed: seed of the controls.
        batch_size: prompts per forward.
    """

    recipe: Recipe = Recipe.ZEROTUNING
    objective: Objective = Objective.ACCURACY
    profile_values: tuple[float, ...] = (0.5, 2.0)
    gammas: tuple[float, ...] = (0.25, 0.5, 0.75, 1.5, 2.0, 4.0)
    act_beta: float = 0.4
    betas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8)
    tau: float = 0.1
    k: int = 8
    layers: tuple[int, ...] | None = None
    controls: int = 2
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, Recipe) or not isinstance(self.objective, Objective):
            raise HeadgraphError("recipe must be a Recipe and objective an Objective")
        for name in ("k", "controls", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise HeadgraphError(f"{name} must be a positive integer, got {v!r}")
        if any(g < 0 or g == 1 for g in (*self.profile_values, *self.gammas)) or not self.gammas:
            raise HeadgraphError("γ values must be non-negative and different from 1 (1 changes nothing)")
        if any(not 0 <= b <= 1 for b in (*self.betas, self.act_beta)) or not self.betas or not 0 < self.tau < 1:
            raise HeadgraphError("β values must lie in [0, 1] and τ in (0, 1)")
        if self.layers is not None and (not self.layers or min(self.layers) < 0):
            raise HeadgraphError(f"layers must be non-negative layer indices, got {self.layers}")


@dataclass(frozen=True)
class Evaluation:
    """Means over a dataset: argmax accuracy, answer log-probability, next-token entropy (nats)."""

    accuracy: float
    logprob: float
    entropy: float

    def objective(self, objective: Objective) -> tuple[float, float]:
        """The value to maximise (with its tie-breaker)."""
        if objective is Objective.ACCURACY:
            return (self.accuracy, self.logprob)
        return (-self.entropy, 0.0)


def _edits(
    recipe: Recipe, heads: Sequence[Node], value: float, batch: PromptPairDataset, tau: float
) -> list[Intervention]:
    key0 = torch.zeros(len(batch), 1, dtype=torch.long, device=batch.clean.device)
    if recipe is Recipe.ZEROTUNING:
        return [ScaleAttention(h.layer, h.head, key0, value) for h in heads if h.head is not None]
    return [CalibrateSinks(h.layer, h.head, value, tau) for h in heads if h.head is not None]


@torch.inference_mode()
def evaluate(
    model: HookedTransformer,
    data: PromptPairDataset,
    recipe: Recipe,
    heads: Sequence[Node] = (),
    value: float = 1.0,
    *,
    tau: float = 0.1,
    batch_size: int = 32,
) -> Evaluation:
    """Accuracy, answer log-probability and entropy with ``heads`` edited by ``recipe`` at ``value``."""
    acc, lp, ent = 0.0, 0.0, 0.0
    for b in data.batches(batch_size):
        with intervene(model, *_edits(recipe, heads, value, b, tau)):
            logits = run_to_logits(model, b.clean, b.answer_pos).double()
        logp = logits.log_softmax(-1)
        acc += float(Accuracy()(logits, b.targets).sum())
        lp += float(logp.gather(-1, b.targets.answers[:, :1].clamp(min=0)).sum())
        ent += float(-(logp.exp() * logp).sum(-1).sum())
    n = len(data)
    return Evaluation(acc / n, lp / n, ent / n)


@dataclass(frozen=True)
class HeadProfile:
    """Single-head edits: the signal of each head at each profiled value.

    Attributes:
        values: the profiled γ (ZeroTuning) or β (ACT) values.
        gain: ``[value, layer, head]`` change of the profiling signal (NaN for layers not profiled).
        base: the unedited validation evaluation.
    """

    values: tuple[float, ...]
    gain: Float[Tensor, "value layer head"]
    base: Evaluation


def _signal(e: Evaluation, base: Evaluation, objective: Objective) -> float:
    return e.logprob - base.logprob if objective is Objective.ACCURACY else base.entropy - e.entropy


def profile(
    model: HookedTransformer, val: PromptPairDataset, config: TuneConfig, *, progress: bool = False
) -> HeadProfile:
    """Edit each head of the profiled layers alone at each profiled value and record the gain."""
    values = config.profile_values if config.recipe is Recipe.ZEROTUNING else (config.act_beta,)
    layers = _layers(model, config)
    base = evaluate(model, val, config.recipe, tau=config.tau, batch_size=config.batch_size)
    gain = torch.full((len(values), model.cfg.n_layers, model.cfg.n_heads), math.nan, dtype=torch.float64)
    bar = tqdm(total=len(values) * len(layers) * model.cfg.n_heads, desc="profiling", disable=not progress)
    for i, v in enumerate(values):
        for layer in layers:
            for h in range(model.cfg.n_heads):
                e = evaluate(
                    model, val, config.recipe, [Node.of_head(layer, h)], v, tau=config.tau, batch_size=config.batch_size
                )
                gain[i, layer, h] = _signal(e, base, config.objective)
                bar.update()
    bar.close()
    return HeadProfile(tuple(values), gain, base)


def _layers(model: HookedTransformer, config: TuneConfig) -> list[int]:
    layers = list(range(model.cfg.n_layers)) if config.layers is None else sorted(set(config.layers))
    if layers[-1] >= model.cfg.n_layers:
        raise HeadgraphError(f"layer {layers[-1]} does not exist in a {model.cfg.n_layers}-layer model")
    return layers


@dataclass(frozen=True)
class Choice:
    """A group of heads, the edit value chosen for it on validation, and its evaluations."""

    heads: tuple[Node, ...]
    value: float
    val: Evaluation
    test: Evaluation


@dataclass(frozen=True)
class TuneResult:
    """A tuning run: the profile, the chosen group (and direction), the test gains and the controls.

    Attributes:
        config: the settings.
        profile: single-head gains.
        direction: ``up`` or ``down`` (ZeroTuning: γ above or below 1) or ``act``.
        chosen: the selected heads with their value and evaluations.
        val_base: the untouched model on the validation prompts; ``test_base`` on the test prompts.
        controls: random heads given the same search, one per draw.
    """

    config: TuneConfig
    profile: HeadProfile
    direction: str
    chosen: Choice
    val_base: Evaluation
    test_base: Evaluation
    controls: tuple[Choice, ...] = field(default_factory=tuple)


def _search(
    model: HookedTransformer,
    val: PromptPairDataset,
    test: PromptPairDataset,
    heads: Sequence[Node],
    grid: Sequence[float],
    config: TuneConfig,
) -> Choice:
    best: tuple[tuple[float, float], float, Evaluation] | None = None
    for v in grid:
        e = evaluate(model, val, config.recipe, heads, v, tau=config.tau, batch_size=config.batch_size)
        key = e.objective(config.objective)
        if best is None or key > best[0]:
            best = (key, v, e)
    assert best is not None
    t = evaluate(model, test, config.recipe, heads, best[1], tau=config.tau, batch_size=config.batch_size)
    return Choice(tuple(heads), best[1], best[2], t)


def tune(
    model: HookedTransformer,
    val: PromptPairDataset,
    test: PromptPairDataset,
    config: TuneConfig,
    *,
    progress: bool = False,
) -> TuneResult:
    """Profile heads on ``val``, pick a group and its value on ``val``, report on ``test`` (module docstring)."""
    prof = profile(model, val, config, progress=progress)
    n_heads = model.cfg.n_heads
    best_value = prof.gain.nan_to_num(-math.inf).max(0)  # (values, layer, head) → best over values
    flat_gain, flat_arg = best_value.values.flatten(), best_value.indices.flatten()
    if config.recipe is Recipe.ZEROTUNING:
        groups = {}
        for direction, side in (("up", lambda g: g > 1), ("down", lambda g: g < 1)):
            ok = [i for i in range(flat_gain.numel()) if flat_gain[i] > 0 and side(prof.values[int(flat_arg[i])])]
            ok.sort(key=lambda i: -float(flat_gain[i]))
            groups[direction] = [Node.of_head(i // n_heads, i % n_heads) for i in ok[: config.k]]
        grids = {"up": [g for g in config.gammas if g > 1], "down": [g for g in config.gammas if g < 1]}
        candidates = [(d, hs, grids[d]) for d, hs in groups.items() if hs and grids[d]]
    else:
        ok = sorted((i for i in range(flat_gain.numel()) if flat_gain[i] > 0), key=lambda i: -float(flat_gain[i]))
        heads = [Node.of_head(i // n_heads, i % n_heads) for i in ok[: config.k]]
        candidates = [("act", heads, list(config.betas))] if heads else []
    if not candidates:
        raise HeadgraphError("no head helps on its own in the profile; nothing to tune (try other layers or values)")
    choices = [(d, _search(model, val, test, hs, grid, config)) for d, hs, grid in candidates]
    direction, chosen = max(choices, key=lambda dc: dc[1].val.objective(config.objective))
    test_base = evaluate(model, test, config.recipe, tau=config.tau, batch_size=config.batch_size)
    grid = dict((d, g) for d, _, g in candidates)[direction]
    rng = random.Random(config.seed)
    pool = [Node.of_head(layer, h) for layer in _layers(model, config) for h in range(n_heads)]
    controls = tuple(
        _search(model, val, test, sorted(rng.sample(pool, len(chosen.heads)), key=str), grid, config)
        for _ in range(config.controls)
    )
    return TuneResult(config, prof, direction, chosen, prof.base, test_base, controls)
