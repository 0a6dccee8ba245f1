"""Harder Colored Objects variants on one model: accuracy of the clean prompts (issue 12, part 2).

Run: ``.venv/bin/python bench/colored_objects_harder.py --model qwen2.5-coder-1.5b --dtype bfloat16 --n 16
--threads 1 --out docs/repair/qwen2.5-coder-1.5b-harder.json``.

Variants: Merullo's (1 shot, 3 objects), the most the few-shot task lists (1 shot, 4 objects), and zero-shot
with 4, 6 and 8 objects (:data:`tasks.colored_objects.MAX_OBJECTS_ZERO_SHOT`). Each row: vocabulary and
candidate accuracy, chance, clean logit difference (:func:`circuits.task_report.task_baseline`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from circuits.model import load_model, text_tokenizer
from circuits.task_report import task_baseline
from tasks import ColoredObjects

VARIANTS = ((1, 3), (1, 4), (0, 4), (0, 6), (0, 8))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, dtype=args.dtype)
    tok = text_tokenizer(model)
    rows = []
    for shots, k in VARIANTS:
        start = time.perf_counter()
        task = ColoredObjects(shots=shots, n_objects=k)
        b = task_baseline(model, task.dataset(tok, args.n, seed=args.seed), task, batch_size=8)
        row = {
            "shots": shots,
            "n_objects": k,
            "n": b.n_pairs,
            "chance": b.chance,
            "accuracy": b.clean_accuracy,
            "candidate_accuracy": b.clean_candidate_accuracy,
            "logit_diff": b.clean_logit_diff,
            "seconds": time.perf_counter() - start,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {
        "model": args.model,
        "dtype": args.dtype,
        "seed": args.seed,
        "load_average": os.getloadavg()[0],
        "command": f"bench/colored_objects_harder.py --model {args.model} --dtype {args.dtype} --n {args.n} "
        f"--seed {args.seed}",
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
