"""``headgraph ships``: Ships head importance on a task, ranked against exact activation patching.

    headgraph ships --task ioi --model smollm2-135m --n 32 --seed 0 --out out/ships

Runs the ``ships`` method (Zhou et al. 2025: KL of the next-token distribution when one head's query
is scaled by ε) and exact ``activation-patching`` (``--ablation``) on the same prompts, and prints both
top-10 lists, Spearman's rank correlation of the importances and the top-k overlaps. Writes
``ships.md`` and ``ships.json`` under ``--out``. Ships alone on any task: ``headgraph discover
--method ships``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from typing import Any

from circuits.commands.common import (
    add_dtype_option,
    check_pairs,
    dtype_words,
    load_args_model,
    parse_ablation,
    prepare_output_dir,
)
from circuits.errors import HeadgraphError

FILES = ("ships.md", "ships.json")


def run(args: argparse.Namespace) -> int:
    from circuits.discovery import ActivationPatching, Ships, sahara
    from circuits.measures.rank_agreement import rank_agreement
    from circuits.model import text_tokenizer
    from tasks import get_task

    task = get_task(args.task)
    check_pairs(args.n)
    ablation = parse_ablation(args.ablation)
    ships = Ships(eps=args.eps)
    if args.sahara_steps < 0:
        raise HeadgraphError(f"--sahara-steps must be non-negative, got {args.sahara_steps}")
    out = prepare_output_dir(args.out, FILES)
    start = time.perf_counter()
    model, dev = load_args_model(args)
    data = task.dataset(text_tokenizer(model), args.n, seed=args.seed).to(dev)
    s = ships(model, data, task.metric, progress=not args.quiet)
    t_ships = s.seconds
    p = ActivationPatching(ablation=ablation)(model, data, task.metric, progress=not args.quiet)
    agree = rank_agreement(s, p)
    greedy = sahara(model, data, steps=args.sahara_steps) if args.sahara_steps else None
    command = " ".join(
        shlex.quote(w)
        for w in ["headgraph", "ships", "--task", args.task, "--model", args.model, *dtype_words(args.dtype),
                  "--n", str(args.n), "--seed", str(args.seed), "--eps", str(args.eps), "--ablation", args.ablation,
                  *(["--sahara-steps", str(args.sahara_steps)] if args.sahara_steps else [])]
    )  # fmt: skip
    top_s, top_p = s.ranked()[:10], p.ranked()[:10]
    lines = [
        f"# Ships vs activation patching: {args.task} on {args.model}",
        "",
        f"`{command}`",
        "",
        f"{len(data)} prompts; clean accuracy {s.baseline.clean_accuracy:.1%}. Ships (ε = {args.eps}) took "
        f"{t_ships:.0f} s, activation patching ({ablation.value}) {p.seconds:.0f} s.",
        f"Spearman rank correlation of importance over {agree.n_heads} heads: **{agree.spearman:.3f}**; top-k "
        "overlap: " + ", ".join(f"top {k}: {v:.0%}" for k, v in agree.top_overlap.items()) + ".",
        "",
        "| rank | Ships head | mean KL | patching head | Δ metric |",
        "|---:|---|---:|---|---:|",
        *(
            f"| {i} | {a} | {-va:.4f} | {b} | {vb:.4f} |"
            for i, ((a, va), (b, vb)) in enumerate(zip(top_s, top_p, strict=False), 1)
        ),
    ]
    if greedy is not None:
        lines += [
            "",
            "Sahara (greedy subspace-angle search, ε = 1e-5): "
            + ", ".join(f"+{h} → {a:.2f}°" for h, a in zip(greedy.heads, greedy.shifts, strict=True)),
        ]
    md = "\n".join(lines) + "\n"
    print(md)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ships.md").write_text(md, encoding="utf-8")
    result = {
        "command": command,
        "spearman": agree.spearman,
        "top_overlap": agree.top_overlap,
        "ships_kl": (-s.head_matrix(normalized=False)).tolist(),
        "patching": p.head_matrix(normalized=False).tolist(),
        "sahara": None if greedy is None else {"heads": [str(h) for h in greedy.heads], "shifts": list(greedy.shifts)},
        "seconds": time.perf_counter() - start,
    }
    (out / "ships.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out / 'ships.md'} and {out / 'ships.json'} ({result['seconds']:.0f} s)")
    return 0


def register(sub: Any) -> None:
    r = sub.add_parser("ships", help="Ships head importance vs exact patching (Zhou et al. 2025)")
    r.add_argument("--task", default="ioi", help="task name (default: ioi)")
    r.add_argument("--model", default="smollm2-135m", help="offline model or TransformerLens name")
    add_dtype_option(r)
    r.add_argument("--n", type=int, default=32, help="prompt pairs (default: 32)")
    r.add_argument("--seed", type=int, default=0, help="seed of the prompt pairs (default: 0)")
    r.add_argument("--eps", type=float, default=1e-4, help="query scale of the Ships ablation (default: 1e-4)")
    r.add_argument("--ablation", default="resample", help="activation patching's ablation (default: resample)")
    r.add_argument("--sahara-steps", type=int, default=0, help="also run Sahara's greedy search (default: 0, off)")
    r.add_argument("--out", default="out/ships", help="folder for ships.md and ships.json")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=run)
