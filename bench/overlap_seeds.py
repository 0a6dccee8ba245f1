"""Seed spread of Merullo et al.'s IOI ↔ Colored Objects overlap: runs of ``bench/merullo_overlap.py``
that differ only in their prompt seed (and, at most, precision), summarised.

Run: ``.venv/bin/python -m bench.overlap_seeds docs/overlap/qwen2.5-coder-0.5b
docs/overlap/qwen2.5-coder-0.5b-seed1 --out docs/overlap/qwen2.5-coder-0.5b-seeds.md``.

Reads each folder's ``stages.json`` and reports, per fraction of heads per stage, the share of the IOI
circuit reused by Colored Objects (Merullo et al. 2023, arXiv 2310.08744: 78 % on GPT-2 medium) as a
mean ± sample standard deviation over the runs, beside the mean of each run's two random baselines
(uniform heads; heads of the same layers). Then how stable each circuit is under a new prompt sample:
the Jaccard index of one task's 2 % circuit between every two runs, and the heads every run kept.
Runs with different models, pair counts, shortlists or stage rules are refused: their spread would not
be a seed spread.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.graph import Node
from circuits.measures.roc import jaccard

SAME = ("model", "n", "rule")
"""Settings every summarised run must share (the seed, and the precision, may differ)."""

TASK_KEYS = {"ioi": "ioi", "colored-objects": "colored_objects"}


@dataclass(frozen=True)
class FractionSpread:
    """One fraction per stage over the runs: IOI-in-CO per run and the baselines' means."""

    fraction: float
    ioi_in_co: tuple[float, ...]
    random: float
    layer_matched: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.ioi_in_co)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.ioi_in_co) if len(self.ioi_in_co) > 1 else 0.0


def load_runs(folders: list[Path]) -> list[dict[str, Any]]:
    """Each folder's ``stages.json``; raises ``ValueError`` when two runs differ in a setting of :data:`SAME`
    or repeat a seed."""
    runs = [json.loads((f / "stages.json").read_text(encoding="utf-8")) for f in folders]
    for key in SAME:
        values = {json.dumps(r[key], sort_keys=True) for r in runs}
        if len(values) > 1:
            raise ValueError(f"the runs differ in {key!r} ({', '.join(sorted(values))}): not a seed spread")
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"a seed is repeated ({seeds})")
    return runs


def spread(runs: list[dict[str, Any]]) -> list[FractionSpread]:
    """IOI-in-CO per fraction over the runs (the fractions every run measured, in order)."""
    fractions = [c["fraction"] for c in runs[0]["curve"]]
    out = []
    for i, fraction in enumerate(fractions):
        points = [r["curve"][i] for r in runs]
        if any(p["fraction"] != fraction for p in points):
            raise ValueError("the runs measured different fractions")
        out.append(
            FractionSpread(
                fraction=fraction,
                ioi_in_co=tuple(p["ioi_in_co"] for p in points),
                random=statistics.fmean(p["random"]["a_in_b_mean"] for p in points),
                layer_matched=statistics.fmean(p["random_layer_matched"]["a_in_b_mean"] for p in points),
            )
        )
    return out


def circuit(run: dict[str, Any], task: str, fraction: float = 0.02) -> frozenset[str]:
    """One task's circuit at ``fraction`` per stage in one run (the union of its stages' heads)."""
    point = next(c for c in run["curve"] if abs(c["fraction"] - fraction) < 1e-9)
    return frozenset(point[TASK_KEYS[task]])


def stability(runs: list[dict[str, Any]], task: str, fraction: float = 0.02) -> tuple[list[float], frozenset[str]]:
    """Jaccard of ``task``'s circuit between every two runs, and the heads in every run's circuit."""
    circuits = [circuit(r, task, fraction) for r in runs]
    pairs = [jaccard(a, b) for a, b in itertools.combinations(circuits, 2)]
    return pairs, frozenset.intersection(*circuits)


def shared_in_every_run(runs: list[dict[str, Any]], fraction: float = 0.02) -> frozenset[str]:
    """Heads in both tasks' circuits in every run."""
    return frozenset.intersection(
        *(circuit(r, "ioi", fraction) & circuit(r, "colored-objects", fraction) for r in runs)
    )


def _heads(names: frozenset[str]) -> str:
    """Head names in layer, then head order (parsed by :meth:`Node.parse`, not by hand)."""
    return ", ".join(sorted(names, key=lambda h: (Node.parse(h).layer, Node.parse(h).head or 0))) or "—"


def _seconds(run: dict[str, Any]) -> str:
    return " + ".join(f"{run['seconds'][t]:.0f} s" for t in TASK_KEYS)


def markdown(runs: list[dict[str, Any]], command: str) -> str:
    """The summary as a Markdown page."""
    first = runs[0]
    lines = [
        f"# Seed spread of the IOI ↔ Colored Objects overlap on {first['model']}",
        "",
        f"`{command}`",
        "",
        f"{len(runs)} runs of `bench/merullo_overlap.py` ({first['n']} prompt pairs per task, shortlist "
        f"{first['rule']['shortlist']}), differing in the prompt seed: "
        + ", ".join(
            f"seed {r['seed']} ({r['dtype']}, {r['seconds']['ioi']:.0f} s + {r['seconds']['colored-objects']:.0f} s)"
            for r in runs
        )
        + ". Merullo et al. report 78 % of the IOI circuit reused by Colored Objects (GPT-2 medium).",
        "",
        "| fraction per stage | IOI in CO per run | mean ± sd over runs | random (mean) | random, same layers (mean) |",
        "|---|---|---|---|---|",
    ]
    for s in spread(runs):
        per_run = " / ".join(f"{v:.0%}" for v in s.ioi_in_co)
        lines.append(
            f"| {s.fraction:.0%} | {per_run} | **{s.mean:.0%} ± {s.sd:.0%}** | {s.random:.0%} | {s.layer_matched:.0%} |"
        )
    lines += ["", "## Stability of each circuit (2 % per stage) under a new prompt sample", ""]
    lines += ["| task | heads per run | Jaccard between runs | heads in every run |", "|---|---|---|---|"]
    for task in TASK_KEYS:
        pairs, kept = stability(runs, task)
        sizes = " / ".join(str(len(circuit(r, task))) for r in runs)
        lines.append(f"| {task} | {sizes} | {', '.join(f'{j:.2f}' for j in pairs)} | {_heads(kept)} |")
    lines += ["", f"Shared by both tasks in every run: {_heads(shared_in_every_run(runs))}.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="output folders of bench/merullo_overlap.py")
    p.add_argument("--out", type=Path, default=None, help="write the Markdown here (default: print it)")
    args = p.parse_args()
    try:
        runs = load_runs(args.folders)
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"error: {err}") from None
    command = "python -m bench.overlap_seeds " + " ".join(map(str, args.folders))
    if args.out:
        command += f" --out {args.out}"
    text = markdown(runs, command)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
