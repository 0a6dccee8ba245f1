"""Faithfulness of IOI circuits on the default model: EAP-IG, EAP and exact activation patching compared.

Run: ``.venv/bin/python bench/ioi_faithfulness.py [--pairs 64] [--eval-pairs 64] [--threads 1]``.

Scores are computed on ``--pairs`` IOI pairs (seed 0) and every circuit is evaluated on held-out
pairs (``--eval-seed``, default 1), as MIB evaluates on a test split. Edge level: EAP-IG (5 steps)
and EAP, MIB's two curves (top-k % of the 123,211 edges by signed score, for CPR, and by |score|,
for CMD), resample ablation. Node level (the head graphs ``make demo`` draws): exact activation
patching of the 270 heads, EAP-IG's edge scores summed per head, and node attribution patching,
with circuits of k % of the 270 heads (MLPs always kept). Prints one row per method with its time, the
faithfulness at 5 % and CPR/CMD, and writes the curves to ``--out`` (JSON and PNGs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from circuits.discovery import EAP, EAPIG, ActivationPatching, AttributionPatching
from circuits.faithfulness import CircuitRunner, FaithfulnessReport, faithfulness_curve
from circuits.faithfulness_plot import plot_faithfulness
from circuits.model import DEFAULT_MODEL, load_model, text_tokenizer
from circuits.scores import Scores
from circuits.selection import Ranking
from tasks import IOI


def heads_only(scores: Scores) -> Scores:
    """Node scores with every non-head node unscored (NaN), so node circuits choose among heads
    only and keep the MLPs, as activation patching of heads does."""
    keep = torch.zeros(len(scores.graph.nodes), dtype=torch.bool)
    keep[[scores.graph.node_index(h) for h in scores.graph.heads]] = True
    values = torch.where(keep, scores.values, torch.full_like(scores.values, torch.nan))
    return dataclasses.replace(scores, values=values)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--eval-pairs", type=int, default=64)
    p.add_argument("--eval-seed", type=int, default=1)
    p.add_argument("--threads", type=int)
    p.add_argument("--out", default="out/bench-ioi-faithfulness")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()} · load average at start {os.getloadavg()}", flush=True)
    model = load_model(DEFAULT_MODEL, progress=False)
    tok = text_tokenizer(model)
    task = IOI()
    data = task.dataset(tok, args.pairs, seed=0)
    held_out = task.dataset(tok, args.eval_pairs, seed=args.eval_seed)
    methods = {
        "eap-ig": lambda: EAPIG()(model, data, task.metric),
        "eap": lambda: EAP()(model, data, task.metric),
        "activation-patching": lambda: ActivationPatching()(model, data, task.metric),
        "attribution-patching": lambda: AttributionPatching()(model, data, task.metric),
    }
    scores: dict[str, Scores] = {}
    for name, run in methods.items():
        start = time.perf_counter()
        scores[name] = run()
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    scores["eap-ig summed per head"] = heads_only(scores["eap-ig"].to_nodes())
    start = time.perf_counter()
    runner = CircuitRunner(model, held_out, task.metric)
    print(
        f"evaluation pairs (seed {args.eval_seed}): clean {runner.clean:.3f}, everything ablated {runner.empty:.3f}"
        f" ({time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, doc = [], {}
    for name, s in scores.items():
        start = time.perf_counter()
        curves = [faithfulness_curve(runner, s, r) for r in (Ranking.SIGNED, Ranking.ABSOLUTE)]
        report = FaithfulnessReport(curves[0], curves[1], runner.ablation, len(held_out), time.perf_counter() - start)
        five_s, five_a = report.signed.at(5.0), report.absolute.at(5.0)
        row = f"{name:<24} {s.level.value:<5} {s.seconds:>8.1f} {five_s.kept:>7} {five_s.faithfulness:>8.3f}"
        rows.append(f"{row} {five_a.kept:>7} {five_a.faithfulness:>8.3f} {report.cpr:>7.3f} {report.cmd:>7.3f}")
        print(rows[-1], flush=True)
        doc[name] = {**report.to_dict(), "method_seconds": s.seconds}
        plot_faithfulness(report, out / f"{name.replace(' ', '-')}.png", f"{DEFAULT_MODEL} · IOI · {name}")
    header = (
        f"{'method':<24} {'level':<5} {'time s':>8} {'kept@5%':>7} {'f signed':>8} {'kept@5%':>7} {'f |s|':>8}"
        f" {'CPR':>7} {'CMD':>7}"
    )
    print("\n" + header + "\n" + "\n".join(rows))
    (out / "faithfulness.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"\nload average at end {os.getloadavg()} · wrote {out}")


if __name__ == "__main__":
    main()
