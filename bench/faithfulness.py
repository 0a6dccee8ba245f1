"""Faithfulness of one task's circuits on the default model: EAP-IG, EAP and exact activation patching compared.

Run: ``.venv/bin/python bench/faithfulness.py [--task ioi] [--methods all] [--pairs 64] [--eval-pairs 64]
[--threads 1]``.

Scores are computed on ``--pairs`` pairs of ``--task`` (seed 0) and every circuit is evaluated on
held-out pairs (``--eval-seed``, default 1), as MIB evaluates on a test split, with the task's own
metric (logit difference; probability difference for greater-than). Edge level: EAP-IG (5 steps)
and EAP, MIB's two curves (top-k % of the 123,211 edges by signed score, for CPR, and by |score|,
for CMD), resample ablation. Node level (the head graphs ``make demo`` draws): exact activation
patching of the 270 heads, EAP-IG's edge scores summed per head, and node attribution patching,
with circuits of k % of the 270 heads (MLPs always kept). ``--methods`` picks a comma-separated
subset (``eap-ig-heads`` needs ``eap-ig``). Prints the held-out baseline (clean and corrupt metric,
candidate accuracy against chance: a circuit of a task the model cannot do explains noise), one row
per method with its time, the faithfulness at 5 % and CPR/CMD, and writes the curves to ``--out``
(JSON and PNGs; default ``out/bench-faithfulness/<task>``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformer_lens import HookedTransformer

from circuits.discovery import EAP, EAPIG, ActivationPatching, AttributionPatching
from circuits.measures.faithfulness import CircuitRunner, FaithfulnessReport, faithfulness_curve
from circuits.model import DEFAULT_MODEL, load_model, text_tokenizer
from circuits.pictures.faithfulness_plot import plot_faithfulness
from circuits.scores import Scores
from circuits.selection import Ranking
from circuits.task_report import task_baseline
from tasks import TASKS, Metric, PromptPairDataset, get_task

Method = Callable[[HookedTransformer, PromptPairDataset, Metric], Scores]
METHODS: dict[str, Method] = {
    "eap-ig": lambda model, data, metric: EAPIG(ig_steps=5)(model, data, metric),
    "eap": lambda model, data, metric: EAP()(model, data, metric),
    "activation-patching": lambda model, data, metric: ActivationPatching()(model, data, metric),
    "attribution-patching": lambda model, data, metric: AttributionPatching()(model, data, metric),
}
HEADS_FROM_EAP_IG = "eap-ig-heads"
"""EAP-IG's edge scores summed per head (no extra method run)."""


def heads_only(scores: Scores) -> Scores:
    """Node scores with every non-head node unscored (NaN), so node circuits choose among heads
    only and keep the MLPs, as activation patching of heads does."""
    keep = torch.zeros(len(scores.graph.nodes), dtype=torch.bool)
    keep[[scores.graph.node_index(h) for h in scores.graph.heads]] = True
    values = torch.where(keep, scores.values, torch.full_like(scores.values, torch.nan))
    return dataclasses.replace(scores, values=values)


def parse_methods(text: str) -> list[str]:
    """``all`` or a comma-separated list of :data:`METHODS` names and ``eap-ig-heads``."""
    valid = [*METHODS, HEADS_FROM_EAP_IG]
    names = valid if text == "all" else [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in valid]
    if bad or not names:
        raise SystemExit(f"unknown methods {bad}; valid: all or any of {', '.join(valid)}")
    if HEADS_FROM_EAP_IG in names and "eap-ig" not in names:
        raise SystemExit(f"{HEADS_FROM_EAP_IG} needs eap-ig in --methods")
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="ioi", choices=TASKS.names())
    p.add_argument("--methods", default="all", help="all, or comma-separated: " + ", ".join(METHODS))
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--eval-pairs", type=int, default=64)
    p.add_argument("--eval-seed", type=int, default=1)
    p.add_argument("--threads", type=int)
    p.add_argument("--out", help="default out/bench-faithfulness/<task>")
    args = p.parse_args()
    names = parse_methods(args.methods)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()} · load average at start {os.getloadavg()}", flush=True)
    model = load_model(DEFAULT_MODEL, progress=False)
    tok = text_tokenizer(model)
    task = get_task(args.task)
    data = task.dataset(tok, args.pairs, seed=0)
    held_out = task.dataset(tok, args.eval_pairs, seed=args.eval_seed)
    base = task_baseline(model, held_out, task)
    print(
        f"{DEFAULT_MODEL} · {task.name} · metric {task.metric.name} · score pairs {len(data)} (seed 0),"
        f" held-out pairs {len(held_out)} (seed {args.eval_seed})\nheld-out baseline: clean {base.clean_metric:.3f},"
        f" corrupt {base.corrupt_metric:.3f}, candidate accuracy {base.clean_candidate_accuracy:.1%}"
        f" (chance {base.chance:.1%}, z {base.accuracy_z:.1f}, can do: {base.can_do})",
        flush=True,
    )
    scores: dict[str, Scores] = {}
    for name in names:
        if name in METHODS:
            start = time.perf_counter()
            scores[name] = METHODS[name](model, data, task.metric)
            print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    if HEADS_FROM_EAP_IG in names:
        scores[HEADS_FROM_EAP_IG] = heads_only(scores["eap-ig"].to_nodes())
    start = time.perf_counter()
    runner = CircuitRunner(model, held_out, task.metric)
    print(
        f"evaluation pairs: clean {runner.clean:.3f}, everything ablated {runner.empty:.3f}"
        f" ({time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    out = Path(args.out or f"out/bench-faithfulness/{task.name}")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    doc: dict[str, object] = {
        "model": DEFAULT_MODEL,
        "task": task.name,
        "metric": task.metric.name,
        "score_pairs": len(data),
        "eval_pairs": len(held_out),
        "eval_seed": args.eval_seed,
        "baseline": base.to_dict(),
    }
    reports: dict[str, object] = {}
    for name, s in scores.items():
        start = time.perf_counter()
        curves = [faithfulness_curve(runner, s, r) for r in (Ranking.SIGNED, Ranking.ABSOLUTE)]
        report = FaithfulnessReport(curves[0], curves[1], runner.ablation, len(held_out), time.perf_counter() - start)
        five_s, five_a = report.signed.at(5.0), report.absolute.at(5.0)
        row = f"{name:<24} {s.level.value:<5} {s.seconds:>8.1f} {report.seconds:>7.1f} {five_s.kept:>7}"
        row += f" {five_s.faithfulness:>8.3f} {five_a.kept:>7} {five_a.faithfulness:>8.3f}"
        rows.append(f"{row} {report.cpr:>7.3f} {report.cmd:>7.3f}")
        print(rows[-1], flush=True)
        reports[name] = {**report.to_dict(), "method_seconds": s.seconds}
        plot_faithfulness(report, out / f"{name.replace(' ', '-')}.png", f"{DEFAULT_MODEL} · {task.name} · {name}")
    header = (
        f"{'method':<24} {'level':<5} {'time s':>8} {'eval s':>7} {'kept@5%':>7} {'f signed':>8} {'kept@5%':>7}"
        f" {'f |s|':>8} {'CPR':>7} {'CMD':>7}"
    )
    print("\n" + header + "\n" + "\n".join(rows))
    doc["methods"] = reports
    (out / "faithfulness.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"\nload average at end {os.getloadavg()} · wrote {out}")


if __name__ == "__main__":
    main()
