"""``headgraph tasks report``: can the model do each task? Writes tasks_report.md and .json."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import time
from typing import Any

from circuits.commands.common import add_dtype_option, check_pairs, dtype_words, model_device, prepare_output_dir


def report(args: argparse.Namespace) -> int:
    from circuits.model import load_model
    from circuits.task_report import default_rows, task_report

    rows = default_rows(args.task or None, variants=not args.defaults_only)  # unknown names fail before loading
    check_pairs(args.n)
    out = prepare_output_dir(args.out, ("tasks_report.md", "tasks_report.json"))
    progress = not args.quiet
    print(f"loading {args.model} ...", flush=True)
    model = load_model(args.model, device=model_device(args), dtype=args.dtype, progress=progress)
    start = time.perf_counter()
    rep = task_report(model, rows, n=args.n, seed=args.seed, progress=progress)
    rep = dataclasses.replace(rep, command=_command(args), seconds=time.perf_counter() - start)
    print(rep.markdown_table())
    out.mkdir(parents=True, exist_ok=True)
    (out / "tasks_report.md").write_text(rep.to_markdown(), encoding="utf-8")
    (out / "tasks_report.json").write_text(json.dumps(rep.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out / 'tasks_report.md'} and {out / 'tasks_report.json'} ({rep.seconds:.0f} s)")
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this report."""
    words = ["headgraph", "tasks", "report", "--model", args.model, *dtype_words(args.dtype)]
    words += ["--n", str(args.n), "--seed", str(args.seed)]
    for name in args.task:
        words += ["--task", name]
    if args.defaults_only:
        words.append("--defaults-only")
    return " ".join(shlex.quote(w) for w in words)


def register(sub: Any) -> None:
    t = sub.add_parser("tasks", help="task utilities (report: task baselines on a model)")
    tsub = t.add_subparsers(dest="tasks_command", required=True)
    r = tsub.add_parser("report", help="clean/corrupt baselines of every task on a model, as markdown and JSON")
    r.add_argument("--model", default="smollm2-135m", help="offline model or TransformerLens name")
    add_dtype_option(r)
    r.add_argument("--n", type=int, default=64, help="prompt pairs per task (default: 64)")
    r.add_argument("--seed", type=int, default=0, help="seed of the prompt pairs (default: 0)")
    r.add_argument("--task", action="append", default=[], help="only this task (repeatable; default: all)")
    r.add_argument("--defaults-only", action="store_true", help="skip the variant settings")
    r.add_argument("--out", default="out/tasks", help="folder for tasks_report.md and tasks_report.json")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=report)
