"""``sae-codes`` end to end with sparse SAE training against sae-lens's dense training, one process.

On the same pairs, after the model is loaded and warmed up: one plain forward pass of the clean
prompts (the unit), then ``sae-codes`` with ``sparse_products=false`` (sae-lens's dense training:
the old definition) and ``sparse_products=true`` (:mod:`saes.sparse_train`), alternating, ``--repeats``
times each, in wall and CPU seconds, per phase. Both runs' head counts are compared (share of equal
codes, Spearman of the counts) and each is scored against the shipped golden IOI circuit (node AUC
and P@10 of its top 10 heads). Target (issue 13): ``sae-codes`` ≤ 10 s on this CPU.

    python -m bench.sae_codes_speed --threads 1 --repeats 2
    python -m bench.sae_codes_speed --threads 1 --repeats 2 --settings epochs=100,lr=0.005
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.sae_eval import labels_of, precision_at_k, roc_auc
from circuits.discovery import build_method
from circuits.discovery.sae_codes import code_run
from circuits.groundtruth.golden import load_golden
from circuits.measures.rank_agreement import spearman
from circuits.model import load_model, text_tokenizer
from saes import unique_code_counts
from tasks import TASKS


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--settings", default="", help="sae-codes settings, e.g. epochs=100,lr=0.005 (default: the paper's)")
    p.add_argument("--golden", default="ioi-smollm2-135m")
    p.add_argument("--k", type=int, default=10, help="size of the golden circuit scored against")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="out/sae_codes_speed.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    golden = load_golden(args.golden)
    model = load_model(golden.recipe.model, progress=False)
    task = TASKS[golden.recipe.task]()
    data = task.dataset(text_tokenizer(model), args.n, seed=args.seed)
    truth = frozenset(n for n in golden.pooled.scores.top_k(args.k).heads())
    labels = labels_of(truth, model.cfg.n_layers, model.cfg.n_heads)
    base = dict(s.split("=", 1) for s in args.settings.split(",") if s)
    results: dict[str, Any] = {"n": args.n, "seed": args.seed, "threads": torch.get_num_threads(),
                               "settings": base, "load_before": os.getloadavg()}  # fmt: skip
    with torch.inference_mode():
        model(data.clean[:8])  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        model(data.clean)
        results["forward"] = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}
    print(f"one forward of {args.n} clean prompts: {results['forward']}", flush=True)
    times: dict[str, list[dict[str, float]]] = {"dense": [], "sparse": []}
    runs: dict[str, Any] = {}
    for rep in range(args.repeats):
        for label in ("dense", "sparse"):
            method = build_method("sae-codes", {**base, "sparse_products": str(label == "sparse").lower()})
            start, cpu = time.perf_counter(), time.process_time()
            run = code_run(method, model, data, task.metric, progress=False)  # type: ignore[arg-type]
            counts = unique_code_counts(run.positives, run.negatives).double()  # what sae-codes ranks by
            t = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}
            t.update({f"{k} wall": v for k, v in run.seconds.items()})
            times[label].append(t)
            runs[label] = {"run": run, "counts": counts, "auc": roc_auc(counts, labels),
                           "p@k": precision_at_k(counts, labels, args.k)}  # fmt: skip
            print(f"repeat {rep} {label}: {t}, AUC {runs[label]['auc']:.3f}, P@{args.k} {runs[label]['p@k']:.2f}",
                  flush=True)  # fmt: skip
    d, s = runs["dense"]["run"], runs["sparse"]["run"]
    equal = torch.cat([(d.positives == s.positives).flatten(), (d.negatives == s.negatives).flatten()])
    same = float(equal.float().mean())
    counts = [runs[k]["counts"] for k in ("dense", "sparse")]
    med = {label: {k: statistics.median(t[k] for t in times[label]) for k in times[label][0]} for label in times}
    results.update({
        "times": times,
        "median": med,
        "dense / sparse (cpu)": med["dense"]["cpu"] / med["sparse"]["cpu"],
        "dense / sparse (wall)": med["dense"]["wall"] / med["sparse"]["wall"],
        "sparse / forward (cpu)": med["sparse"]["cpu"] / results["forward"]["cpu"],
        "codes equal": same,
        "counts spearman": spearman(counts[0], counts[1]),
        "counts equal": bool(torch.equal(counts[0], counts[1])),
        "auc": {k: v["auc"] for k, v in runs.items()},
        "dense counts": counts[0].tolist(),
        "sparse counts": counts[1].tolist(),
        f"p@{args.k}": {k: v["p@k"] for k, v in runs.items()},
        "load_after": os.getloadavg(),
    })  # fmt: skip
    print(json.dumps({k: v for k, v in results.items() if k != "times"}, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
