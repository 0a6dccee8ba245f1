"""A repair result as markdown, JSON and a figure.

The figure (matplotlib's object interface, no pyplot state) has three panels: where the chosen heads
attend from the answer position before and after the edit (share on the answer's tokens, the wrong
answers' tokens, and elsewhere), the candidate accuracy of the target before / after / under the
random-head control and of each collateral task before and after, and the same for the mean logit
difference.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits.repair.answer_roles import AnswerRole
from circuits.repair.edits import Outcome
from circuits.repair.workflow import Control, Recipe, RepairResult

__all__ = ["plot_repair", "repair_markdown", "repair_to_dict"]


def repair_to_dict(r: RepairResult) -> dict[str, Any]:
    """JSON-ready form of ``r``."""
    config = {f.name: getattr(r.config, f.name) for f in dataclasses.fields(r.config)}
    config["candidates"] = r.config.candidates.value
    config["recipe"] = r.config.recipe.value
    config["gammas"] = list(r.config.gammas)
    ctrl = {k: dict(zip(("mean", "sd"), r.control.mean_sd(k), strict=True)) for k in _FIELDS}
    return {
        "model": r.model,
        "source": r.source,
        "target": r.target,
        "n": {"source": r.n_source, "select": r.n_select, "target": r.n_target},
        "config": config,
        "overlap": {
            "fraction": r.overlap.fraction,
            "source_circuit": sorted(map(str, r.overlap.a)),
            "target_circuit": sorted(map(str, r.overlap.b)),
            "shared": sorted(map(str, r.overlap.shared)),
            "jaccard": r.overlap.jaccard,
        },
        "heads": [h.to_dict() for h in r.heads],
        "trials": [{"edit": t.edit.to_dict(), "select": t.outcome.to_dict()} for t in r.trials],
        "chosen": r.chosen.to_dict(),
        "before": r.before.to_dict(),
        "after": r.after.to_dict(),
        "control": {
            "heads": [[str(h) for h in d] for d in r.control.heads],
            "outcomes": [o.to_dict() for o in r.control.outcomes],
            "summary": ctrl,
        },
        "errors": None
        if r.errors is None
        else {
            "indices": list(r.errors.indices),
            "before": r.errors.before.to_dict(),
            "after": r.errors.after.to_dict(),
            "control": {
                "outcomes": [o.to_dict() for o in r.errors.control.outcomes],
                "summary": {k: dict(zip(("mean", "sd"), r.errors.control.mean_sd(k), strict=True)) for k in _FIELDS},
            },
        },
        "collateral": [
            {"task": c.task, "edit": c.form.to_dict(), "before": c.before.to_dict(), "after": c.after.to_dict()}
            for c in r.collateral
        ],
        "seconds": r.seconds,
        "timings": dict(r.timings),
    }


_FIELDS = ("metric", "accuracy", "candidate_accuracy")


def _timings(r: RepairResult) -> str:
    return ", ".join(f"{stage} {s:.0f} s" for stage, s in r.timings.items())


def _row(label: str, o: Outcome) -> str:
    return f"| {label} | {o.metric:+.3f} | {o.accuracy:.1%} | {o.candidate_accuracy:.1%} |"


def _pm(control: Control, name: str, pct: bool) -> str:
    mean, sd = control.mean_sd(name)
    return f"{mean:.1%} ± {sd:.1%}" if pct else f"{mean:+.3f} ± {sd:.3f}"


def _control_row(label: str, control: Control) -> str:
    return (
        f"| {label}: control, same edit on random heads of the same layers ({len(control.outcomes)} draws,"
        f" mean ± sd) | {_pm(control, 'metric', False)} | {_pm(control, 'accuracy', True)} |"
        f" {_pm(control, 'candidate_accuracy', True)} |"
    )


def _effect(x: float) -> str:
    """A patching effect; ``—`` for a head outside the shortlist (not patched).

    Examples:
        >>> _effect(-0.25), _effect(float("nan"))
        ('-0.250', '—')
    """
    return "—" if math.isnan(x) else f"{x:+.3f}"


def _att(a: dict[AnswerRole, float] | Any) -> str:
    return f"{a[AnswerRole.ANSWER]:.2f} / {a[AnswerRole.WRONG]:.2f} / {a[AnswerRole.CANDIDATES]:.2f}"


_RECIPE_TEXT = {
    Recipe.ORACLE: "**oracle** (Merullo et al.: heads that attend to the wrong answer on the source, forced onto the"
    " target's wrong answers; the edit reads the label at test time)",
    Recipe.PARSED: "**label-free** (heads that attend to the answer on the source, forced onto the target's answer"
    " position parsed from the prompt's structure; no label is read at test time)",
}


def _shortlist(r: RepairResult) -> str:
    n = r.config.shortlist
    return f" among {n} heads shortlisted by attribution patching (—: not patched)" if n else ""


def repair_markdown(r: RepairResult, command: str = "") -> str:
    """The result as markdown: target table with control, collateral, candidate heads, edits tried."""
    o = r.overlap
    src, tgt = r.config.recipe.roles
    lines = [
        f"# Repair: {r.source} → {r.target} on {r.model}",
        "",
        *([f"`{command}`", ""] if command else []),
        f"Target: {r.n_target} held-out prompts; every choice made on {r.n_select} other prompts of the target"
        f" task; source: {r.n_source} prompts; {r.seconds:.0f} s ({_timings(r)}). Metric: logit difference"
        " (answer − competing answer) at the answer position.",
        "",
        f"Recipe: {_RECIPE_TEXT[r.config.recipe]}.",
        "",
        f"**Chosen edit: {r.chosen.label}** (best mean logit difference on the selection prompts among"
        f" {len(r.trials)} edits tried).",
        "",
        "| run | logit diff | accuracy (vocab) | accuracy (candidates) |",
        "|---|---|---|---|",
        _row(f"{r.target}: before", r.before),
        _row(f"{r.target}: after ({r.chosen.label})", r.after),
        _control_row(r.target, r.control),
    ]
    if r.errors is not None:
        e, label = r.errors, f"{r.target}, the {len(r.errors.indices)} errors"
        lines += [_row(f"{label}: before", e.before), _row(f"{label}: after", e.after), _control_row(label, e.control)]
    if r.collateral:
        lines += ["", "**Collateral** (other tasks, before → after):", ""]
        lines += ["| task | edit | logit diff | accuracy (vocab) | accuracy (candidates) |", "|---|---|---|---|---|"]
        for c in r.collateral:
            lines.append(
                f"| {c.task} | {c.form.label} | {c.before.metric:+.3f} → {c.after.metric:+.3f} |"
                f" {c.before.accuracy:.1%} → {c.after.accuracy:.1%} |"
                f" {c.before.candidate_accuracy:.1%} → {c.after.candidate_accuracy:.1%} |"
            )
    lines += [
        "",
        "**Chosen heads' attention from the answer position** on the target (answer / wrong / all candidates):",
        "",
        "| head | before | after |",
        "|---|---|---|",
    ]
    for h in r.chosen.heads:
        lines.append(f"| {h} | {_att(r.before.attention[h])} | {_att(r.after.attention[h])} |")
    lines += [
        "",
        f"**Candidate heads.** Circuits: top {o.per_stage} heads ({o.fraction:.0%}) by |Δ logit diff| when patched at"
        f" the answer position{_shortlist(r)}; source {len(o.a)}, target {len(o.b)}, shared {len(o.shared)} (Jaccard"
        f" {o.jaccard:.2f}). Candidates: {r.config.candidates.value} circuit heads. Attention: answer / wrong /"
        f" all candidates; eligible: ≥ {r.config.min_source_attention:.0%} on the {src.value} tokens on the source;"
        f" misdirection: attention on the {src.value} tokens on the source − on the {tgt.value} tokens on the target.",
        "",
        "| head | shared | Δ source | Δ target | attention, source | attention, target | misdirection | eligible |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for hr in sorted(r.heads, key=lambda x: (not x.eligible, -x.misdirection)):
        lines.append(
            f"| {hr.head} | {'yes' if hr.shared else ''} | {_effect(hr.source_effect)} | {_effect(hr.target_effect)} |"
            f" {_att(hr.source)} | {_att(hr.target)} | {hr.misdirection:+.2f} | {'yes' if hr.eligible else ''} |"
        )
    lines += ["", "**Edits tried** (selection prompts):", "",
              "| edit | logit diff | accuracy (vocab) | accuracy (candidates) |", "|---|---|---|---|"]  # fmt: skip
    lines += [_row(t.edit.label + (" ← chosen" if t.edit == r.chosen else ""), t.outcome) for t in r.trials]
    return "\n".join(lines) + "\n"


def _attention_panel(ax: Axes, r: RepairResult) -> None:
    labels, answer, wrong, rest = [], [], [], []
    for h in r.chosen.heads:
        for when, o in (("before", r.before), ("after", r.after)):
            a = o.attention[h]
            labels.append(f"{h}\n{when}")
            answer.append(a[AnswerRole.ANSWER])
            wrong.append(a[AnswerRole.WRONG])
            rest.append(max(0.0, 1 - a[AnswerRole.CANDIDATES]))
    x = range(len(labels))
    ax.bar(x, answer, color="tab:green", label="answer")
    ax.bar(x, wrong, bottom=answer, color="tab:red", label="wrong answers")
    ax.bar(x, rest, bottom=[a + w for a, w in zip(answer, wrong, strict=True)], color="lightgrey", label="elsewhere")
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("attention from the answer position")
    ax.set_title(f"chosen heads on {r.target}", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")


def _bars_panel(ax: Axes, r: RepairResult, name: str, ylabel: str) -> None:
    groups: list[tuple[str, list[tuple[str, float, float]]]] = []
    ctrl_mean, ctrl_sd = r.control.mean_sd(name)
    groups.append((r.target, [("before", getattr(r.before, name), 0.0), ("after", getattr(r.after, name), 0.0),
                              ("control", ctrl_mean, ctrl_sd)]))  # fmt: skip
    for c in r.collateral:
        form = "ablate" if c.form.kind.value == "ablate" else c.form.kind.value
        groups.append((f"{c.task}\n({form})", [("before", getattr(c.before, name), 0.0),
                                               ("after", getattr(c.after, name), 0.0)]))  # fmt: skip
    colours = {"before": "tab:blue", "after": "tab:orange", "control": "tab:grey"}
    x, ticks, tick_labels, seen = 0.0, [], [], set()
    for label, bars in groups:
        for i, (kind, value, sd) in enumerate(bars):
            ax.bar(x + i * 0.8, value, 0.8, yerr=sd or None, color=colours[kind], capsize=3,
                   label=None if kind in seen else kind)  # fmt: skip
            seen.add(kind)
        ticks.append(x + 0.4 * (len(bars) - 1))
        tick_labels.append(label)
        x += 0.8 * len(bars) + 1.0
    ax.set_xticks(ticks, tick_labels, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize=7)


def plot_repair(r: RepairResult, path: Path | None = None) -> Figure:
    """The three-panel figure (module docstring); saved to ``path`` when given."""
    fig = Figure(figsize=(15, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    a1, a2, a3 = fig.subplots(1, 3, width_ratios=[1.0, 1.4, 1.4])
    _attention_panel(a1, r)
    _bars_panel(a2, r, "candidate_accuracy", "accuracy among candidates")
    a2.set_title("accuracy among candidates", fontsize=10)
    _bars_panel(a3, r, "metric", "mean logit difference")
    a3.set_title("logit difference (answer − competing)", fontsize=10)
    fig.suptitle(f"repair {r.source} → {r.target} on {r.model}: {r.chosen.label}", fontsize=11)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
