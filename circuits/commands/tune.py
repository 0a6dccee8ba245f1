"""``headgraph tune``: training-free attention tuning (ZeroTuning, ACT) with a random-head control.

    headgraph tune --recipe zerotuning --task arithmetic --operation sub --model smollm2-135m \
        --n-val 24 --n-test 48 --layers 0-5 --k 4 --out out/tune

Profiles single-head edits on validation prompts (seed ``--seed``), picks the group and its γ (or β)
there, supervised (``--objective accuracy``) or unsupervised (``--objective entropy``), and reports
accuracy on held-out test prompts (seed ``--seed + 1``) against the untouched model and against
``--controls`` random head groups given the same search (:mod:`circuits.seed.tune`). Writes ``tune.md``
and ``tune.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from typing import Any

from circuits.commands.common import add_dtype_option, dtype_words, load_args_model, prepare_output_dir
from circuits.errors import HeadgraphError

FILES = ("tune.md", "tune.json")


def parse_layers(text: str | None) -> tuple[int, ...] | None:
    """``"0-5"`` or ``"0,2,4"`` as layer indices (None for all).

    Examples:
        >>> parse_layers("0-2"), parse_layers("1,4"), parse_layers(None)
        ((0, 1, 2), (1, 4), None)
    """
    if text is None:
        return None
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            if hi < lo:
                raise ValueError
            return tuple(range(lo, hi + 1))
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise HeadgraphError(f"--layers must look like 0-5 or 0,2,4, got {text!r}") from None


def task_from_args(args: argparse.Namespace) -> Any:
    """The task named by ``--task`` (with ``--operation`` for arithmetic)."""
    from tasks import Arithmetic, Operation, get_task

    if args.operation is None:
        return get_task(args.task)
    if args.task != "arithmetic":
        raise HeadgraphError("--operation applies to the arithmetic task only")
    try:
        return Arithmetic(operations=(Operation(args.operation),))
    except ValueError:
        raise HeadgraphError(f"--operation must be one of {', '.join(o.value for o in Operation)}") from None


def run(args: argparse.Namespace) -> int:
    from circuits.model import text_tokenizer
    from circuits.seed.tune import Objective, Recipe, TuneConfig, tune

    task = task_from_args(args)
    try:
        recipe, objective = Recipe(args.recipe), Objective(args.objective)
    except ValueError:
        raise HeadgraphError("--recipe must be zerotuning or act and --objective accuracy or entropy") from None
    if args.n_val <= 0 or args.n_test <= 0:
        raise HeadgraphError("--n-val and --n-test must be positive numbers of prompts")
    config = TuneConfig(
        recipe=recipe,
        objective=objective,
        k=args.k,
        layers=parse_layers(args.layers),
        controls=args.controls,
        seed=args.seed,
    )
    out = prepare_output_dir(args.out, FILES)
    start = time.perf_counter()
    model, dev = load_args_model(args)
    tok = text_tokenizer(model)
    val = task.dataset(tok, args.n_val, seed=args.seed).to(dev)
    test = task.dataset(tok, args.n_test, seed=args.seed + 1).to(dev)
    r = tune(model, val, test, config, progress=not args.quiet)
    words = ["headgraph", "tune", "--recipe", args.recipe, "--objective", args.objective, "--task", args.task]
    if args.operation:
        words += ["--operation", args.operation]
    words += ["--model", args.model, *dtype_words(args.dtype), "--n-val", str(args.n_val), "--n-test", str(args.n_test)]
    words += ["--seed", str(args.seed), "--k", str(args.k), "--controls", str(args.controls)]
    if args.layers:
        words += ["--layers", args.layers]
    command = " ".join(shlex.quote(w) for w in words)
    what = "γ" if recipe is Recipe.ZEROTUNING else "β"
    c = r.chosen
    lines = [
        f"# {recipe.value} on {task.name} ({args.model})",
        "",
        f"`{command}`",
        "",
        f"Profiled {what} ∈ {list(r.profile.values)} on {len(val)} validation prompts; group: {r.direction}, "
        f"{len(c.heads)} heads ({', '.join(map(str, c.heads))}), {what} = {c.value} chosen by {objective.value}.",
        "",
        "| model | val accuracy | test accuracy | test answer log-prob | test entropy |",
        "|---|---:|---:|---:|---:|",
        f"| untouched | {r.val_base.accuracy:.1%} | {r.test_base.accuracy:.1%} | {r.test_base.logprob:.3f} | "
        f"{r.test_base.entropy:.3f} |",
        f"| tuned ({what} = {c.value}) | {c.val.accuracy:.1%} | {c.test.accuracy:.1%} | {c.test.logprob:.3f} | "
        f"{c.test.entropy:.3f} |",
        *(
            f"| random heads {i} ({what} = {x.value}) | {x.val.accuracy:.1%} | {x.test.accuracy:.1%} | "
            f"{x.test.logprob:.3f} | {x.test.entropy:.3f} |"
            for i, x in enumerate(r.controls, 1)
        ),
    ]
    md = "\n".join(lines) + "\n"
    print(md)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune.md").write_text(md, encoding="utf-8")

    def choice(x: Any) -> dict[str, Any]:
        return {"heads": [str(h) for h in x.heads], "value": x.value, "val": vars(x.val), "test": vars(x.test)}

    data = {
        "command": command,
        "direction": r.direction,
        "profile_values": list(r.profile.values),
        "profile_gain": r.profile.gain.tolist(),
        "val_base": vars(r.val_base),
        "test_base": vars(r.test_base),
        "chosen": choice(c),
        "controls": [choice(x) for x in r.controls],
        "seconds": time.perf_counter() - start,
    }
    (out / "tune.json").write_text(json.dumps(data, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    print(f"wrote {out / 'tune.md'} and {out / 'tune.json'} ({data['seconds']:.0f} s)")
    return 0


def register(sub: Any) -> None:
    r = sub.add_parser("tune", help="ZeroTuning / ACT attention tuning with a random-head control")
    r.add_argument("--recipe", default="zerotuning", help="zerotuning (default) or act")
    r.add_argument("--objective", default="accuracy", help="accuracy (supervised, default) or entropy (unsupervised)")
    r.add_argument("--task", default="arithmetic", help="task name (default: arithmetic)")
    r.add_argument("--operation", default=None, help="arithmetic only: add, sub, mul or div (default: the task's)")
    r.add_argument("--model", default="smollm2-135m", help="offline model or TransformerLens name")
    add_dtype_option(r)
    r.add_argument("--n-val", type=int, default=24, help="validation prompts (default: 24)")
    r.add_argument("--n-test", type=int, default=48, help="held-out test prompts (default: 48)")
    r.add_argument("--seed", type=int, default=0, help="seed of the validation prompts (test: seed + 1)")
    r.add_argument("--k", type=int, default=4, help="heads in the tuned group (default: 4)")
    r.add_argument("--layers", default=None, help="layers profiled, e.g. 0-5 or 0,2,4 (default: all)")
    r.add_argument("--controls", type=int, default=2, help="random-head control draws (default: 2)")
    r.add_argument("--out", default="out/tune", help="folder for tune.md and tune.json")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=run)
