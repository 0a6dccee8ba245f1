"""``headgraph stages``: Merullo et al.'s stage-wise path-patching circuit of one task.

    headgraph stages --task ioi --model smollm2-135m --n 8 --shortlist 24 --out out/stages-ioi.json

Stage 1 scores the heads' paths to the logits, stage 2 their paths into stage 1's heads' queries,
stage 3 into stage 2's heads' keys and values (:mod:`circuits.seed.stages`); each stage keeps its top
``--fraction`` of the heads. ``--shortlist K`` confirms the top K senders by EAP with exact path
patching (0: every head, exact). Prints the stages and writes them as JSON. The overlap of two
tasks' stages with its curve and a random baseline: ``bench/merullo_overlap.py``.
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from circuits.commands.common import (
    add_dtype_option,
    check_output_file,
    check_pairs,
    dtype_words,
    load_args_model,
    parse_ablation,
)


def run(args: argparse.Namespace) -> int:
    from circuits.measures.roc import MERULLO_FRACTION
    from circuits.model import text_tokenizer
    from circuits.seed.stages import StageRule, find_stages
    from tasks import get_task

    task = get_task(args.task)
    check_pairs(args.n)
    ablation = parse_ablation(args.ablation)
    inputs = ("", *(s.strip() for s in args.inputs.split(",")))
    fraction = MERULLO_FRACTION if args.fraction is None else args.fraction
    rule = StageRule(inputs=inputs, fraction=fraction, shortlist=args.shortlist, ablation=ablation,
                     batch_size=args.batch_size)  # fmt: skip
    out = check_output_file(args.out, "--out")
    model, dev = load_args_model(args)
    data = task.dataset(text_tokenizer(model), args.n, seed=args.seed).to(dev)
    result = find_stages(model, data, task.metric, rule, progress=not args.quiet)
    command = " ".join(
        shlex.quote(w)
        for w in ["headgraph", "stages", "--task", args.task, "--model", args.model, *dtype_words(args.dtype),
                  "--n", str(args.n), "--seed", str(args.seed), "--inputs", args.inputs, "--fraction", str(fraction),
                  "--shortlist", str(args.shortlist), "--ablation", args.ablation, "--out", args.out]
    )  # fmt: skip
    print(f"stages of {args.task} on {args.model} ({len(data)} prompt pairs, {result.seconds:.0f} s)")
    for i, (rec, heads) in enumerate(zip(result.receivers, result.heads, strict=True), start=1):
        print(f"  stage {i} (into {', '.join(map(str, rec))}): {', '.join(map(str, heads))}")
    record = {
        "command": command,
        "task": args.task,
        "model": args.model,
        "n": len(data),
        "seed": args.seed,
        "rule": {"inputs": list(rule.inputs), "fraction": rule.fraction, "shortlist": rule.shortlist},
        "stages": [
            {"receivers": [str(r) for r in rec], "shortlist": [str(s) for s in short], "heads": [str(h) for h in hs]}
            for rec, short, hs in zip(result.receivers, result.shortlists, result.heads, strict=True)
        ],
        "seconds": result.seconds,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


def register(sub: Any) -> None:
    r = sub.add_parser("stages", help="Merullo et al.'s stage-wise path-patching circuit of a task")
    r.add_argument("--task", default="ioi", help="task name (default: ioi)")
    r.add_argument("--model", default="smollm2-135m", help="offline model or TransformerLens name")
    add_dtype_option(r)
    r.add_argument("--n", type=int, default=8, help="prompt pairs (default: 8)")
    r.add_argument("--seed", type=int, default=0, help="seed of the prompt pairs (default: 0)")
    r.add_argument("--inputs", default="q,kv", help="per stage after the first, the inputs patched (default: q,kv)")
    r.add_argument("--fraction", type=float, default=None, help="share of heads kept per stage (default: 0.02)")
    r.add_argument("--shortlist", type=int, default=24, help="senders per stage confirmed exactly (0: all; 24)")
    r.add_argument("--ablation", default="resample", help="what replaces a sender's output (default: resample)")
    r.add_argument("--batch-size", type=int, default=8, help="prompts per forward (default: 8)")
    r.add_argument("--out", default="out/stages.json", help="JSON file of the stages")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=run)
