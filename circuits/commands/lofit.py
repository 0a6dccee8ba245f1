"""``headgraph lofit``: LoFiT head selection and bias tuning against random heads (Yin et al. 2024).

    headgraph lofit --task arithmetic --operation sub --model smollm2-135m --n-train 32 --n-test 48 \
        --k 8 --epochs 3 --out out/lofit

Trains the per-head scales on ``--n-train`` prompts (seed ``--seed``), keeps the top ``--k`` heads,
trains their output offsets, and reports held-out accuracy (``--n-test`` prompts, seed ``--seed + 1``)
of the untouched model, of LoFiT and of the same tuning on ``--controls`` random head sets
(:mod:`circuits.seed.lofit`). Writes ``lofit.md`` and ``lofit.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from typing import Any

from circuits.commands.common import add_dtype_option, dtype_words, load_args_model, prepare_output_dir
from circuits.commands.tune import task_from_args
from circuits.errors import HeadgraphError

FILES = ("lofit.md", "lofit.json")


def run(args: argparse.Namespace) -> int:
    from circuits.model import text_tokenizer
    from circuits.seed.lofit import LoFiTConfig, lofit

    task = task_from_args(args)
    if args.n_train <= 0 or args.n_test <= 0:
        raise HeadgraphError("--n-train and --n-test must be positive numbers of prompts")
    config = LoFiTConfig(k=args.k, epochs=args.epochs, controls=args.controls, seed=args.seed)
    out = prepare_output_dir(args.out, FILES)
    start = time.perf_counter()
    model, dev = load_args_model(args)
    tok = text_tokenizer(model)
    train = task.dataset(tok, args.n_train, seed=args.seed).to(dev)
    test = task.dataset(tok, args.n_test, seed=args.seed + 1).to(dev)
    r = lofit(model, train, test, config)
    words = ["headgraph", "lofit", "--task", args.task, *(["--operation", args.operation] if args.operation else [])]
    words += ["--model", args.model, *dtype_words(args.dtype), "--n-train", str(args.n_train)]
    words += ["--n-test", str(args.n_test), "--seed", str(args.seed), "--k", str(args.k), "--epochs", str(args.epochs)]
    words += ["--controls", str(args.controls)]
    command = " ".join(shlex.quote(w) for w in words)
    n_heads = model.cfg.n_layers * model.cfg.n_heads
    lines = [
        f"# LoFiT on {task.name} ({args.model})",
        "",
        f"`{command}`",
        "",
        f"Selected {args.k} of {n_heads} heads ({args.k / n_heads:.1%}) by ‖A‖: {', '.join(map(str, r.heads))}; "
        f"{r.n_params} trained parameters.",
        "",
        "| model | train accuracy | held-out accuracy |",
        "|---|---:|---:|",
        f"| untouched | {r.base_train_accuracy:.1%} | {r.base_accuracy:.1%} |",
        f"| LoFiT ({args.k} selected heads) | {r.train_accuracy:.1%} | {r.accuracy:.1%} |",
        *(f"| {args.k} random heads, draw {i} | — | {a:.1%} |" for i, a in enumerate(r.random_accuracy, 1)),
    ]
    md = "\n".join(lines) + "\n"
    print(md)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lofit.md").write_text(md, encoding="utf-8")
    data = {
        "command": command,
        "heads": [str(h) for h in r.heads],
        "scores": r.scores.tolist(),
        "base_accuracy": r.base_accuracy,
        "accuracy": r.accuracy,
        "base_train_accuracy": r.base_train_accuracy,
        "train_accuracy": r.train_accuracy,
        "random_heads": [[str(h) for h in hs] for hs in r.random_heads],
        "random_accuracy": list(r.random_accuracy),
        "seconds": time.perf_counter() - start,
    }
    (out / "lofit.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out / 'lofit.md'} and {out / 'lofit.json'} ({data['seconds']:.0f} s)")
    return 0


def register(sub: Any) -> None:
    r = sub.add_parser("lofit", help="LoFiT head selection and bias tuning (Yin et al. 2024)")
    r.add_argument("--task", default="arithmetic", help="task name (default: arithmetic)")
    r.add_argument("--operation", default=None, help="arithmetic only: add, sub, mul or div (default: the task's)")
    r.add_argument("--model", default="smollm2-135m", help="offline model or TransformerLens name")
    add_dtype_option(r)
    r.add_argument("--n-train", type=int, default=32, help="training prompts (default: 32)")
    r.add_argument("--n-test", type=int, default=48, help="held-out prompts (default: 48)")
    r.add_argument("--seed", type=int, default=0, help="seed of the training prompts and the draws (test: seed + 1)")
    r.add_argument("--k", type=int, default=8, help="heads tuned (default: 8)")
    r.add_argument("--epochs", type=int, default=3, help="epochs of each training step (default: 3)")
    r.add_argument("--controls", type=int, default=1, help="random-head control draws (default: 1)")
    r.add_argument("--out", default="out/lofit", help="folder for lofit.md and lofit.json")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=run)
