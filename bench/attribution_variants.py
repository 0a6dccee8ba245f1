"""Edge attribution methods side by side on MIB's terms: EAP, EAP-IG-inputs, EAP-IG-activations, RelP.

Run: ``.venv/bin/python bench/attribution_variants.py [--tasks ioi,greater-than,arithmetic] [--pairs 8]
[--eval-pairs 16] [--ig-steps 5] [--act-steps 2] [--threads 1] [--planted]``.

For each task (SmolLM2-135M, the default model) every method scores the 123,211 edges on ``--pairs``
pairs (seed 0), and its circuits are evaluated on ``--eval-pairs`` held-out pairs (seed 1) with MIB's
curve rule (:attr:`circuits.measures.faithfulness.CurveRule.MIB`: MIB's ten edge fractions, signed ranking
for CPR, |score| ranking for CMD, resample ablation). All methods run in one process, so the time
ratios against EAP-IG-inputs (``eap-ig``) are comparable; the load average is printed at start and
end (the machine is shared). Exact edge patching is not run: one forward per edge is 123,211
forwards per batch, days on this CPU (README, "Edge patching").

``--planted`` also prints node and edge AUC of every method on the planted families
(:func:`circuits.groundtruth.benchmark.default_suite`, 8 pairs), the MLP-routed threshold one included.
Writes ``--out`` (default ``out/bench-attribution-variants.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from circuits.discovery import EAP, EAPIG, DiscoveryMethod, EAPIGActivations, QKRule, RelP
from circuits.groundtruth.benchmark import default_suite, format_results, score_methods
from circuits.measures.faithfulness import CircuitRunner, CurveRule, FaithfulnessReport, faithfulness_curve
from circuits.model import DEFAULT_MODEL, load_model, text_tokenizer
from circuits.selection import Ranking
from circuits.task_report import task_baseline
from tasks import get_task


def methods(ig_steps: int, act_steps: int) -> dict[str, DiscoveryMethod]:
    """The edge methods compared, by the name their row gets."""
    return {
        "eap": EAP(),
        "eap-ig": EAPIG(ig_steps=ig_steps),
        "relp": RelP(),
        "relp(qk=none)": RelP(qk=QKRule.NONE),
        f"eap-ig-activations({act_steps})": EAPIGActivations(ig_steps=act_steps),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="ioi,greater-than,arithmetic")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--eval-pairs", type=int, default=16)
    p.add_argument("--ig-steps", type=int, default=5)
    p.add_argument("--act-steps", type=int, default=2)
    p.add_argument("--skip", default="", help="comma-separated method rows to leave out")
    p.add_argument("--threads", type=int)
    p.add_argument("--planted", action="store_true")
    p.add_argument("--out", default="out/bench-attribution-variants.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()} · load average at start {os.getloadavg()}", flush=True)
    doc: dict[str, object] = {"model": DEFAULT_MODEL, "pairs": args.pairs, "eval_pairs": args.eval_pairs, "tasks": {}}
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    chosen = {k: m for k, m in methods(args.ig_steps, args.act_steps).items() if k not in skip}
    if args.planted:
        start = time.perf_counter()
        results = score_methods([m.name for m in chosen.values()], default_suite(), n_pairs=8)
        print(format_results(results) + f"\n(planted: {time.perf_counter() - start:.0f} s)\n", flush=True)
        doc["planted"] = [
            {"method": r.method, "planted": r.planted, "node_auc": r.node_auc, "edge_auc": r.edge_auc} for r in results
        ]
    model = load_model(DEFAULT_MODEL, progress=False)
    tok = text_tokenizer(model)
    table: list[str] = []
    for task_name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        task = get_task(task_name)
        data = task.dataset(tok, args.pairs, seed=0)
        held_out = task.dataset(tok, args.eval_pairs, seed=1)
        base = task_baseline(model, held_out, task)
        runner = CircuitRunner(model, held_out, task.metric)
        print(
            f"{task.name}: metric {task.metric.name}, held-out clean {base.clean_metric:.3f} corrupt"
            f" {base.corrupt_metric:.3f}, candidate accuracy {base.clean_candidate_accuracy:.1%}"
            f" (chance {base.chance:.1%}); circuit runner clean {runner.clean:.3f} empty {runner.empty:.3f}",
            flush=True,
        )
        rows: dict[str, dict[str, float]] = {}
        for label, method in chosen.items():
            scores = method(model, data, task.metric, progress=False)
            curves = [
                faithfulness_curve(runner, scores, r, rule=CurveRule.MIB, progress=False)
                for r in (Ranking.SIGNED, Ranking.ABSOLUTE)
            ]
            report = FaithfulnessReport(curves[0], curves[1], runner.ablation, len(held_out), 0.0)
            rows[label] = {"seconds": scores.seconds, "cpr": report.cpr, "cmd": report.cmd}
            print(f"  {label:<26} {scores.seconds:>8.1f} s  CPR {report.cpr:>7.3f}  CMD {report.cmd:>7.3f}", flush=True)
        ref = rows.get("eap-ig")
        for label, r in rows.items():
            ratio = r["seconds"] / ref["seconds"] if ref else float("nan")
            beats = ref is not None and r["cpr"] > ref["cpr"] and r["cmd"] < ref["cmd"]
            r["time_ratio_to_eap_ig"] = ratio
            table.append(
                f"| {task.name} | {label} | {r['cpr']:.3f} | {r['cmd']:.3f} | {r['seconds']:.1f} | {ratio:.2f}"
                f" | {'yes' if beats and ratio <= 2.0 else 'no'} |"
            )
        doc["tasks"][task.name] = rows  # type: ignore[index]
    print("\n| task | method | CPR ↑ | CMD ↓ | seconds | × eap-ig time | beats eap-ig on both at ≤ 2× |")
    print("|---|---|---|---|---|---|---|\n" + "\n".join(table))
    doc["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"\nload average at end {os.getloadavg()} · wrote {out}")


if __name__ == "__main__":
    main()
