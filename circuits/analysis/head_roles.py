"""Roles of IOI heads from measured signals, and two models' IOI circuits compared by role.

Head indices do not correspond between models, but the jobs heads do in the IOI circuit can.
Wang et al. (2022, "Interpretability in the Wild: a Circuit for Indirect Object Identification in
GPT-2 small", arXiv 2211.00593, §3) sort the circuit's heads into classes by where they attend and
what they write; :data:`RULES` turns each class (and one more) into a test on signals measured here:

* **name mover** (§3.1): attends from END to IO and copies it: a positive direct effect on
  logit(IO) − logit(S);
* **negative name mover** (§3.1): attends from END to IO and writes against it: a negative direct
  effect;
* **subject suppressor** (not a class of Wang et al.; the copy suppression of McDougall et al. 2023,
  "Copy Suppression: Comprehensively Understanding an Attention Head", arXiv 2310.04625, aimed at
  the subject): attends from END to S2 and has a positive direct effect, i.e. writes against S;
* **S-inhibition** (§3.2): attends from END to S2 and acts through later heads, not the logits:
  little direct effect, but ablating it lowers the logit difference;
* **induction** (§3.3): attends from S2 to the token after S1 (S1+1);
* **duplicate token** (§3.3): attends from S2 to S1;
* **previous token** (§3.3): attends from S1+1 to S1, and from each position to the previous one
  in general (so a late head that happens to look back from S1+1 is not one).

The last three act on the heads after them, not on the logits: a head with a large direct effect
that is none of the first three gets no role.

Backup name movers (name movers that only act when others are ablated) are not told apart.

Signals, per head, on ``n`` IOI pairs: the mean attention probability of each :class:`Probe`
(query position → key position) on clean prompts; the **direct effect**, the mean over pairs of the
head's direct logit attribution (:func:`circuits.model.head_direct_logits`, norm scales frozen) on
the clean minus on the corrupt prompt, i.e. how much of the logit-difference gap the head writes
straight into the logits; and the **total effect**, its activation-patching score. Both effects are
divided by the circuit's clean − corrupt gap. Note the signs: the total effect follows the score
convention (ablating a helpful head gives a negative value), the direct effect is a contribution
(a helpful head has a positive one), as in Wang et al.'s figures.

Only *candidate* heads get a role: those whose total effect or direct effect reaches
:data:`EFFECT_MIN` or :data:`DIRECT_MIN` (in absolute value); attention alone does not make a head
part of the circuit. A head takes the first role in :data:`ROLE_ORDER` whose rule it passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import head_direct_logits, hook_pattern, model_info, run_with_cache
from circuits.scores import Level, Scores
from tasks import PromptPairDataset

__all__ = [
    "ATTENTION_MIN",
    "DIRECT_MIN",
    "EFFECT_MIN",
    "ROLE_ORDER",
    "RULES",
    "HeadRole",
    "HeadSignal",
    "Probe",
    "Role",
    "RoleAssignment",
    "RoleComparison",
    "assign_roles",
    "compare_roles",
    "depth_fraction",
    "head_signals",
    "HeadSignals",
]

ATTENTION_MIN = 0.2
"""Mean attention probability a probe needs for an attention-defined role."""

DIRECT_MIN = 0.05
"""|direct effect| (fraction of the logit-difference gap) that makes a head a (negative) name mover."""

EFFECT_MIN = 0.02
"""|total effect| (fraction of the gap) that makes a head a candidate for a role."""


class Probe(Enum):
    """An attention probe: from a query position to a key position of the IOI prompt."""

    END_IO = "END→IO"
    END_S1 = "END→S1"
    END_S2 = "END→S2"
    S2_S1 = "S2→S1"
    S2_S1_NEXT = "S2→S1+1"
    S1_NEXT_S1 = "S1+1→S1"
    PREVIOUS = "→previous"  # every position (BOS excluded) to the one before it, mean over positions


class Role(Enum):
    """Wang et al.'s head classes (module docstring)."""

    NAME_MOVER = "name mover"
    NEGATIVE_MOVER = "negative name mover"
    S_SUPPRESSOR = "subject suppressor"
    S_INHIBITION = "S-inhibition"
    INDUCTION = "induction"
    DUPLICATE_TOKEN = "duplicate token"
    PREVIOUS_TOKEN = "previous token"


@dataclass(frozen=True)
class HeadSignal:
    """One head's signals.

    Attributes:
        node: the head.
        attention: mean attention probability of each probe.
        direct: direct effect ÷ gap (positive: the head writes the answer into the logits).
        total: activation-patching score ÷ gap (negative: ablating it lowers the metric).
    """

    node: Node
    attention: Mapping[Probe, float]
    direct: float
    total: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "head": str(self.node),
            "attention": {p.value: self.attention[p] for p in Probe},
            "direct": self.direct,
            "total": self.total,
        }


def _attends(s: HeadSignal, probe: Probe, *others: Probe) -> bool:
    """``probe`` gets at least ATTENTION_MIN and more than the sum of ``others``."""
    a = s.attention
    return a[probe] >= ATTENTION_MIN and a[probe] > sum(a[o] for o in others)


RULES: dict[Role, Callable[[HeadSignal], bool]] = {
    Role.NAME_MOVER: lambda s: s.direct >= DIRECT_MIN and _attends(s, Probe.END_IO, Probe.END_S1, Probe.END_S2),
    Role.NEGATIVE_MOVER: lambda s: s.direct <= -DIRECT_MIN and _attends(s, Probe.END_IO, Probe.END_S1, Probe.END_S2),
    Role.S_SUPPRESSOR: lambda s: s.direct >= DIRECT_MIN and _attends(s, Probe.END_S2, Probe.END_IO),
    Role.S_INHIBITION: lambda s: (
        abs(s.direct) < DIRECT_MIN and s.total <= -EFFECT_MIN and _attends(s, Probe.END_S2, Probe.END_IO)
    ),
    Role.INDUCTION: lambda s: abs(s.direct) < DIRECT_MIN and _attends(s, Probe.S2_S1_NEXT, Probe.S2_S1),
    Role.DUPLICATE_TOKEN: lambda s: abs(s.direct) < DIRECT_MIN and _attends(s, Probe.S2_S1, Probe.S2_S1_NEXT),
    Role.PREVIOUS_TOKEN: lambda s: (
        abs(s.direct) < DIRECT_MIN and _attends(s, Probe.S1_NEXT_S1) and _attends(s, Probe.PREVIOUS)
    ),
}
"""Each role's test (Wang et al. 2022 §3, McDougall et al. 2023; module docstring). The only place
roles are defined."""

ROLE_ORDER: tuple[Role, ...] = tuple(RULES)
"""Precedence when a head passes several rules: effects on the logits first, then END's attention."""


def depth_fraction(layer: int, n_layers: int) -> float:
    """Where ``layer`` sits in the model: 0 for the first layer, 1 for the last.

    >>> depth_fraction(12, 18), depth_fraction(0, 30), depth_fraction(29, 30)
    (0.7058823529411765, 0.0, 1.0)
    """
    return layer / (n_layers - 1) if n_layers > 1 else 0.0


@dataclass(frozen=True)
class HeadSignals:
    """Every head's signals on one model.

    Attributes:
        model: the model's name.
        n_layers: layers.
        n_heads: heads per layer.
        n_pairs: IOI pairs measured.
        attention: per probe, mean attention probability ``[layer, head]``.
        direct: direct effect ÷ gap ``[layer, head]``.
        total: activation-patching score ÷ gap ``[layer, head]``.
    """

    model: str
    n_layers: int
    n_heads: int
    n_pairs: int
    attention: Mapping[Probe, Float[Tensor, "layer head"]]
    direct: Float[Tensor, "layer head"]
    total: Float[Tensor, "layer head"]

    def head(self, layer: int, head: int) -> HeadSignal:
        """The signals of one head."""
        return HeadSignal(
            Node.of_head(layer, head),
            {p: float(a[layer, head]) for p, a in self.attention.items()},
            float(self.direct[layer, head]),
            float(self.total[layer, head]),
        )

    def candidates(self) -> list[HeadSignal]:
        """Heads whose total or direct effect is large enough for a role, largest first."""
        out = []
        for layer in range(self.n_layers):
            for h in range(self.n_heads):
                s = self.head(layer, h)
                if abs(s.total) >= EFFECT_MIN or abs(s.direct) >= DIRECT_MIN:
                    out.append(s)
        return sorted(out, key=lambda s: -max(abs(s.total), abs(s.direct)))


_PROBE_POSITIONS: dict[Probe, tuple[str, str]] = {
    Probe.END_IO: ("END", "IO"),
    Probe.END_S1: ("END", "S1"),
    Probe.END_S2: ("END", "S2"),
    Probe.S2_S1: ("S2", "S1"),
    Probe.S2_S1_NEXT: ("S2", "S1+1"),
    Probe.S1_NEXT_S1: ("S1+1", "S1"),
}


def head_signals(
    model: HookedTransformer, data: PromptPairDataset, scores: Scores, *, batch_size: int = 16
) -> HeadSignals:
    """Measure every head's signals on ``data`` (IOI-shaped: positions ``IO``, ``S1``, ``S2``).

    Args:
        model: the model ``scores`` were computed on.
        data: IOI prompt pairs; END is each prompt's answer position.
        scores: node-level activation-patching scores of the same task on ``model``.
        batch_size: pairs per forward pass.

    Raises:
        HeadgraphError: ``data`` lacks a position, ``scores`` are not node scores of this model's
            heads, or their clean − corrupt gap is zero.
    """
    missing = {"IO", "S1", "S2"} - set(data.positions)
    if missing:
        raise HeadgraphError(f"role assignment needs IOI positions; {data.task!r} lacks {sorted(missing)}")
    cfg = model.cfg
    if scores.level is not Level.NODE or (scores.graph.n_layers, scores.graph.n_heads) != (cfg.n_layers, cfg.n_heads):
        raise HeadgraphError(
            f"scores of a {scores.graph.n_layers}×{scores.graph.n_heads} graph do not fit "
            f"model {cfg.model_name!r} ({cfg.n_layers}×{cfg.n_heads}), or are not node scores"
        )
    gap = scores.baseline.gap
    if not math.isfinite(gap) or gap == 0:
        raise HeadgraphError(f"the circuit's clean − corrupt gap is {gap}: effects cannot be normalized")
    attn = {p: torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.float64) for p in Probe}
    direct = torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.float64)
    names = [hook_pattern(layer) for layer in range(cfg.n_layers)]
    for b in data.batches(batch_size):
        rows = torch.arange(len(b), device=b.clean.device)
        pos = {"END": b.answer_pos, "IO": b.positions["IO"], "S1": b.positions["S1"], "S2": b.positions["S2"]}
        pos["S1+1"] = pos["S1"] + 1
        with torch.inference_mode():
            _, cache = run_with_cache(model, b.clean, names)
        for layer, name in enumerate(names):
            pattern = cache[name]  # (batch, head, query, key)
            for p, (q, k) in _PROBE_POSITIONS.items():
                attn[p][layer] += pattern[rows, :, pos[q], pos[k]].double().sum(0).cpu()
            attn[Probe.PREVIOUS][layer] += _previous_token_attention(pattern, b.answer_pos).sum(0).cpu()
        answer, wrong = b.targets.answers[:, 0], b.targets.wrong[:, 0]
        clean = head_direct_logits(model, b.clean, b.answer_pos, answer, wrong)
        corrupt = head_direct_logits(model, b.corrupt, b.answer_pos, answer, wrong)
        direct += (clean - corrupt).double().sum(0).cpu()
    n = len(data)
    return HeadSignals(
        model=model_info(model).name,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        n_pairs=n,
        attention={p: a / n for p, a in attn.items()},
        direct=direct / n / gap,
        total=scores.head_matrix(normalized=True).double().cpu(),
    )


def _previous_token_attention(
    pattern: Float[Tensor, "batch head query key"], last: Int[Tensor, " batch"]
) -> Float[Tensor, "batch head"]:
    """Mean attention from each position 1..``last`` to the position before it.

    >>> p = torch.eye(3)[None, None].roll(-1, dims=-1).tril()  # row q puts 1 on q-1 (row 0: nothing)
    >>> _previous_token_attention(p, torch.tensor([2])).tolist()
    [[1.0]]
    """
    diag = pattern.diagonal(offset=-1, dim1=-2, dim2=-1).double()  # [..., i] = pattern[q=i+1, k=i]
    idx = torch.arange(diag.shape[-1], device=diag.device)
    valid = (idx[None, :] < last[:, None]).double()[:, None, :]  # q = i+1 <= last
    return (diag * valid).sum(-1) / valid.sum(-1).clamp(min=1)


@dataclass(frozen=True)
class HeadRole:
    """A candidate head, its role (None: it passes no rule) and its signals."""

    signal: HeadSignal
    role: Role | None
    n_layers: int

    @property
    def depth(self) -> float:
        """The head's layer as a fraction of depth (:func:`depth_fraction`)."""
        return depth_fraction(self.signal.node.layer, self.n_layers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"role": self.role.value if self.role else None, "depth": self.depth, **self.signal.to_dict()}


@dataclass(frozen=True)
class RoleAssignment:
    """The roles of one model's candidate heads."""

    model: str
    n_layers: int
    n_heads: int
    n_pairs: int
    heads: tuple[HeadRole, ...]

    def holders(self, role: Role) -> list[HeadRole]:
        """The heads holding ``role``, largest effect first."""
        return [h for h in self.heads if h.role is role]

    def unassigned(self) -> list[HeadRole]:
        """Candidate heads that pass no rule."""
        return [h for h in self.heads if h.role is None]

    def markdown(self) -> str:
        """Every candidate head with its role and signals, as a markdown table."""
        probes = list(Probe)
        lines = [
            "| head | depth | role | " + " | ".join(p.value for p in probes) + " | direct | total |",
            "|" + "---|" * (len(probes) + 5),
        ]
        for h in self.heads:
            s = h.signal
            att = " | ".join(f"{s.attention[p]:.2f}" for p in probes)
            role = h.role.value if h.role else "—"
            lines.append(f"| {s.node} | {h.depth:.2f} | {role} | {att} | {s.direct:+.3f} | {s.total:+.3f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_pairs": self.n_pairs,
            "heads": [h.to_dict() for h in self.heads],
        }


def assign_roles(signals: HeadSignals) -> RoleAssignment:
    """Give each candidate head the first role in :data:`ROLE_ORDER` whose rule it passes."""
    heads = []
    for s in signals.candidates():
        role = next((r for r in ROLE_ORDER if RULES[r](s)), None)
        heads.append(HeadRole(s, role, signals.n_layers))
    return RoleAssignment(signals.model, signals.n_layers, signals.n_heads, signals.n_pairs, tuple(heads))


@dataclass(frozen=True)
class RoleComparison:
    """Two models' IOI circuits side by side, role by role."""

    a: RoleAssignment
    b: RoleAssignment

    @property
    def shared(self) -> list[Role]:
        """Roles both circuits contain."""
        return [r for r in ROLE_ORDER if self.a.holders(r) and self.b.holders(r)]

    def markdown(self) -> str:
        """The role table (heads with their depth fraction) and the shared roles."""

        def cell(heads: list[HeadRole]) -> str:
            return ", ".join(f"{h.signal.node} ({h.depth:.2f})" for h in heads) or "—"

        lines = [
            f"| role | {self.a.model} ({self.a.n_layers}×{self.a.n_heads}) "
            f"| {self.b.model} ({self.b.n_layers}×{self.b.n_heads}) | both? |",
            "|---|---|---|---|",
        ]
        for r in ROLE_ORDER:
            both = "yes" if r in self.shared else "no"
            lines.append(f"| {r.value} | {cell(self.a.holders(r))} | {cell(self.b.holders(r))} | {both} |")
        lines.append(f"| (no role) | {cell(self.a.unassigned())} | {cell(self.b.unassigned())} | |")
        shared = ", ".join(r.value for r in self.shared) or "none"
        return "\n".join(lines) + f"\n\nRoles in both circuits: {shared}."

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the rules' thresholds."""
        return {
            "schema": "headgraph.roles",
            "version": 1,
            "thresholds": {"attention_min": ATTENTION_MIN, "direct_min": DIRECT_MIN, "effect_min": EFFECT_MIN},
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "shared": [r.value for r in self.shared],
        }


def compare_roles(a: RoleAssignment, b: RoleAssignment) -> RoleComparison:
    """Which roles each circuit contains, where they sit, and which both share."""
    return RoleComparison(a, b)
