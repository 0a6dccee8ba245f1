"""Position-aware edge circuits against position-blind ones on MIB's terms (CPR, CMD, scoring time).

Run: ``.venv/bin/python bench/position_circuits.py [--tasks ioi,greater-than,arithmetic] [--pairs 8]
[--eval-pairs 16] [--threads 1]``.

For each task (SmolLM2-135M) ``eap``, ``eap-ig`` and ``relp`` score ``--pairs`` pairs (seed 0) with
``positions=named`` (:mod:`circuits.discovery.position_setting`); the same scores give a
position-blind circuit curve (sum over labels, exactly the blind method's scores) and a
position-level one (:func:`circuits.discovery.position_circuits.position_report`: top (edge, label)
pairs, an edge ablated at the positions where it is not kept), both on ``--eval-pairs`` held-out
pairs (seed 1), MIB's ten fractions (of edges, or of (edge, label) pairs: the same pair budget),
resample ablation. The blind ``eap-ig`` is also timed in the same process for the time ratios.
Writes ``--out`` (default ``out/bench-position-circuits.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from circuits.discovery import build_method
from circuits.discovery.position_circuits import PositionRunner, position_report
from circuits.discovery.position_setting import PositionScores
from circuits.discovery.positions import position_labels
from circuits.measures.faithfulness import CircuitRunner, CurveRule, FaithfulnessReport, faithfulness_curve
from circuits.model import DEFAULT_MODEL, load_model, text_tokenizer
from circuits.selection import Ranking
from tasks import get_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="ioi,greater-than,arithmetic")
    p.add_argument("--methods", default="eap,eap-ig,relp")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--eval-pairs", type=int, default=16)
    p.add_argument("--threads", type=int)
    p.add_argument("--position-only", action="store_true", help="skip the blind eap-ig timing and the blind curves")
    p.add_argument("--out", default="out/bench-position-circuits.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()} · load average at start {os.getloadavg()}", flush=True)
    model = load_model(DEFAULT_MODEL, progress=False)
    tok = text_tokenizer(model)
    doc: dict[str, object] = {"model": DEFAULT_MODEL, "pairs": args.pairs, "eval_pairs": args.eval_pairs, "tasks": {}}
    table: list[str] = []
    for task_name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        task = get_task(task_name)
        data = task.dataset(tok, args.pairs, seed=0)
        held_out = task.dataset(tok, args.eval_pairs, seed=1)
        runner = CircuitRunner(model, held_out, task.metric)
        names, _ = position_labels(held_out)
        pos_runner = PositionRunner(runner, len(names))
        ref = math.nan
        if not args.position_only:
            ref = build_method("eap-ig")(model, data, task.metric, progress=False).seconds
        print(f"{task.name}: labels {names}; blind eap-ig scoring {ref:.1f} s", flush=True)
        rows: dict[str, dict[str, float]] = {"eap-ig(blind) seconds": {"seconds": ref}}
        for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
            scores = build_method(name, {"positions": "named"})(model, data, task.metric, progress=False)
            assert isinstance(scores, PositionScores) and scores.by_position is not None
            assert scores.by_position.labels == names
            start = time.perf_counter()
            blind_cpr = blind_cmd = math.nan
            if not args.position_only:
                curves = [
                    faithfulness_curve(runner, scores, r, rule=CurveRule.MIB, progress=False)
                    for r in (Ranking.SIGNED, Ranking.ABSOLUTE)
                ]
                blind = FaithfulnessReport(curves[0], curves[1], runner.ablation, len(held_out), 0.0)
                blind_cpr, blind_cmd = blind.cpr, blind.cmd
            blind_s = time.perf_counter() - start
            start = time.perf_counter()
            pos = position_report(pos_runner, scores.by_position)
            pos_s = time.perf_counter() - start
            row = {
                "seconds": scores.seconds,
                "ratio": scores.seconds / ref,
                "blind_cpr": blind_cpr,
                "blind_cmd": blind_cmd,
                "pos_cpr": pos.cpr,
                "pos_cmd": pos.cmd,
                "blind_eval_s": blind_s,
                "pos_eval_s": pos_s,
            }
            rows[name] = row
            print(
                f"  {name:<8} {scores.seconds:6.1f} s ({row['ratio']:.2f}× eap-ig) blind CPR {blind_cpr:.3f} CMD"
                f" {blind_cmd:.3f} | positions CPR {pos.cpr:.3f} CMD {pos.cmd:.3f}"
                f" (eval {blind_s:.0f} s / {pos_s:.0f} s)",
                flush=True,
            )
            table.append(
                f"| {task.name} | {name} | {blind_cpr:.3f} | {blind_cmd:.3f} | {pos.cpr:.3f} | {pos.cmd:.3f}"
                f" | {scores.seconds:.1f} | {row['ratio']:.2f} |"
            )
        doc["tasks"][task.name] = rows  # type: ignore[index]
    print("\n| task | method | blind CPR ↑ | blind CMD ↓ | position CPR ↑ | position CMD ↓ | scoring s | × eap-ig |")
    print("|---|---|---|---|---|---|---|---|\n" + "\n".join(table))
    doc["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"\nload average at end {os.getloadavg()} · wrote {out}")


if __name__ == "__main__":
    main()
