"""``headgraph retrieval``: a model's retrieval heads, and what knocking them out does (Wu et al. 2024).

    headgraph retrieval --model smollm2-135m --n 12 --haystack 10 --knockout 10 --draws 2 --out out/retrieval

Scores every head on the ``retrieval`` task's needle prompts (:mod:`circuits.seed.retrieval`), prints the
retrieval heads (score above ``--threshold``) and their share of all heads, then decodes the same
prompts with the top ``--knockout`` heads' attention made uniform, and with ``--draws`` random sets of
as many other heads, and prints the retrieval accuracy of each. Writes ``retrieval.md`` and
``retrieval.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from typing import Any

from circuits.commands.common import add_dtype_option, dtype_words, load_args_model, prepare_output_dir
from circuits.errors import HeadgraphError

FILES = ("retrieval.md", "retrieval.json")


def _check(args: argparse.Namespace) -> None:
    from tasks import Retrieval

    Retrieval(haystack=args.haystack, depth=args.depth, needle_words=args.needle_words)  # raises TaskError
    for name in ("n", "draws", "knockout"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise HeadgraphError(f"--{name} must be a positive number, got {getattr(args, name)}")
    if not 0 < args.threshold < 1:
        raise HeadgraphError(f"--threshold must lie between 0 and 1, got {args.threshold}")


def run(args: argparse.Namespace) -> int:
    from circuits.model import text_tokenizer
    from circuits.seed.retrieval import needle_prompts, retrieval_knockout, retrieval_scores
    from tasks import Retrieval

    _check(args)
    out = prepare_output_dir(args.out, FILES)
    start = time.perf_counter()
    model, dev = load_args_model(args)
    task = Retrieval(haystack=args.haystack, depth=args.depth, needle_words=args.needle_words)
    prompts = needle_prompts(task.dataset(text_tokenizer(model), args.n, seed=args.seed).to(dev))
    scores = retrieval_scores(model, prompts)
    heads = scores.heads(args.threshold)
    n_heads = scores.scores.numel()
    k = args.knockout if args.knockout is not None else max(1, len(heads))
    if k >= n_heads:
        raise HeadgraphError(f"--knockout {k} leaves no other heads of the {n_heads} to draw random ones from")
    knock = retrieval_knockout(model, prompts, scores.top(k), draws=args.draws, seed=args.seed)
    command = _command(args)
    lengths = [int(p.tokens.shape[0]) for p in prompts]
    lines = [
        f"# Retrieval heads of {args.model}",
        "",
        f"`{command}`",
        "",
        f"{len(prompts)} needle prompts of {min(lengths)}–{max(lengths)} tokens; the needle (greedy) was "
        f"recalled in {scores.n_success} (exact in {sum(scores.exact)}).",
        f"Retrieval heads (score > {args.threshold}): **{len(heads)} of {n_heads} ({len(heads) / n_heads:.1%})**.",
        "",
        "| rank | head | retrieval score |",
        "|---:|---|---:|",
        *(f"| {i} | {node} | {s:.3f} |" for i, (node, s) in enumerate(heads[:20], 1)),
        "",
        f"Knockout (attention made uniform) of the top {k} heads vs {args.draws} draws of {k} random other heads:",
        "",
        "| heads knocked out | retrieval accuracy (whole needle) | needle recall |",
        "|---|---:|---:|",
        f"| none | {knock.accuracy:.1%} | {knock.recall:.1%} |",
        f"| top {k} retrieval heads | {knock.top_accuracy:.1%} | {knock.top_recall:.1%} |",
        *(
            f"| random {k} (draw {i}) | {a:.1%} | {r:.1%} |"
            for i, (a, r) in enumerate(zip(knock.random_accuracy, knock.random_recall, strict=True), 1)
        ),
    ]
    md = "\n".join(lines) + "\n"
    print(md)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.md").write_text(md, encoding="utf-8")
    data = {
        "command": command,
        "model": args.model,
        "threshold": args.threshold,
        "n_prompts": scores.n_prompts,
        "n_success": scores.n_success,
        "prompt_tokens": lengths,
        "scores": scores.scores.tolist(),
        "retrieval_heads": [[str(n), s] for n, s in heads],
        "fraction": len(heads) / n_heads,
        "knockout": {
            "heads": [str(n) for n in knock.heads],
            "accuracy": knock.accuracy,
            "recall": knock.recall,
            "top_accuracy": knock.top_accuracy,
            "top_recall": knock.top_recall,
            "random_accuracy": list(knock.random_accuracy),
            "random_recall": list(knock.random_recall),
            "random_heads": [[str(n) for n in hs] for hs in knock.random_heads],
        },
        "seconds": time.perf_counter() - start,
    }
    (out / "retrieval.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out / 'retrieval.md'} and {out / 'retrieval.json'} ({data['seconds']:.0f} s)")
    return 0


def _command(args: argparse.Namespace) -> str:
    words = ["headgraph", "retrieval", "--model", args.model, *dtype_words(args.dtype)]
    words += ["--n", str(args.n), "--seed", str(args.seed), "--haystack", str(args.haystack)]
    if args.depth is not None:
        words += ["--depth", str(args.depth)]
    words += ["--needle-words", str(args.needle_words), "--threshold", str(args.threshold)]
    if args.knockout is not None:
        words += ["--knockout", str(args.knockout)]
    words += ["--draws", str(args.draws)]
    return " ".join(shlex.quote(w) for w in words)


def register(sub: Any) -> None:
    r = sub.add_parser("retrieval", help="retrieval heads and their knockout (Wu et al. 2024)")
    r.add_argument("--model", default="smollm2-135m", help="offline model or TransformerLens name")
    add_dtype_option(r)
    r.add_argument("--n", type=int, default=12, help="needle prompts (default: 12)")
    r.add_argument("--seed", type=int, default=0, help="seed of the prompts and random heads (default: 0)")
    r.add_argument("--haystack", type=int, default=10, help="filler sentences around the needle (default: 10)")
    r.add_argument("--depth", type=float, default=None, help="needle depth in [0, 1] (default: random per prompt)")
    r.add_argument("--needle-words", type=int, default=4, help="words in the needle (default: 4)")
    r.add_argument("--threshold", type=float, default=0.1, help="retrieval-head score threshold (default: 0.1)")
    r.add_argument("--knockout", type=int, default=None,
                   help="top heads knocked out (default: as many as there are retrieval heads)")  # fmt: skip
    r.add_argument("--draws", type=int, default=2, help="random-head control draws (default: 2)")
    r.add_argument("--out", default="out/retrieval", help="folder for retrieval.md and retrieval.json")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=run)
