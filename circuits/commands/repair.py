"""``headgraph repair``: redirect heads reused from a source task's circuit to repair a target task.

    headgraph repair --source ioi --target colored-objects --model smollm2-135m --n 64 --seed 0 --out out/repair

Writes ``repair.md``, ``repair.json`` and ``repair.png`` under ``--out`` (see :mod:`circuits.repair`).
``--target-set KEY=VALUE`` (repeatable) sets the target task's settings, e.g. a harder Colored Objects
variant (``--target-set shots=0 --target-set n_objects=8``); source and collateral tasks keep their
defaults. Prompts: the source task and the held-out target prompts use ``--seed``; the target's selection
prompts (every choice is made on them) use ``--seed + 1``; the collateral tasks use ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from circuits.commands.common import (
    add_dtype_option,
    check_pairs,
    dtype_words,
    model_device,
    parse_settings,
    prepare_output_dir,
)
from circuits.errors import HeadgraphError

DEFAULT_COLLATERAL = ("ioi", "arithmetic", "mcqa")
"""Tasks whose collateral change is reported by default (minus the target)."""


def _target(args: argparse.Namespace) -> Any:
    """The target task with its ``--target-set`` settings (a one-line error for a bad key or value)."""
    from circuits.settings import from_strings
    from tasks import TASKS

    return from_strings(TASKS[args.target], parse_settings(args.target_set, "--target-set"), what=args.target)


def _tasks(args: argparse.Namespace) -> list[str]:
    """Validate the task names before any model loads; return the collateral tasks."""
    from circuits.repair import require_roles
    from tasks import TASKS

    for name in (args.source, args.target, *args.collateral):
        TASKS[name]  # noqa: B018 (raises UnknownNameError listing the tasks)
    require_roles(args.source)
    require_roles(args.target)
    if args.source == args.target:
        raise HeadgraphError(f"--source and --target must be different tasks, got {args.source!r} twice")
    check_pairs(args.n)
    collateral = list(args.collateral) if args.collateral else [t for t in DEFAULT_COLLATERAL if t != args.target]
    return [t for t in dict.fromkeys(collateral) if t != args.target]


def run(args: argparse.Namespace) -> int:
    from circuits.model import load_model, text_tokenizer
    from circuits.repair import Candidates, Recipe, RepairConfig, plot_repair, repair, repair_markdown, repair_to_dict
    from tasks import get_task

    collateral = _tasks(args)
    target_task = _target(args)
    try:
        candidates = Candidates(args.candidates)
    except ValueError:
        raise HeadgraphError(
            f"--candidates must be one of {', '.join(c.value for c in Candidates)}, got {args.candidates!r}"
        ) from None
    try:
        recipe = Recipe(args.recipe)
    except ValueError:
        raise HeadgraphError(
            f"--recipe must be one of {', '.join(r.value for r in Recipe)}, got {args.recipe!r}"
        ) from None
    config = RepairConfig(
        fraction=args.fraction,
        candidates=candidates,
        recipe=recipe,
        max_heads=args.max_heads,
        shortlist=args.shortlist,
        controls=args.controls,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    out = prepare_output_dir(args.out, ("repair.md", "repair.json", "repair.png"))
    progress = not args.quiet
    print(f"loading {args.model} ...", flush=True)
    model = load_model(args.model, device=model_device(args), dtype=args.dtype, progress=progress)
    tok = text_tokenizer(model)
    dev = model.cfg.device or "cpu"  # the pairs follow the model's device
    source = get_task(args.source).dataset(tok, args.n, seed=args.seed).to(dev)
    target = target_task.dataset(tok, args.n, seed=args.seed).to(dev)
    select = target_task.dataset(tok, args.n, seed=args.seed + 1).to(dev)
    side = {name: get_task(name).dataset(tok, args.n, seed=args.seed).to(dev) for name in collateral}
    result = repair(model, source, target, select=select, collateral=side, config=config, progress=progress)
    command = _command(args)
    md = repair_markdown(result, command)
    print(md)
    out.mkdir(parents=True, exist_ok=True)
    (out / "repair.md").write_text(md, encoding="utf-8")
    data = repair_to_dict(result) | {"command": command}
    (out / "repair.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    plot_repair(result, out / "repair.png")
    print(f"wrote {out / 'repair.md'}, {out / 'repair.json'} and {out / 'repair.png'} ({result.seconds:.0f} s)")
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run."""
    words = ["headgraph", "repair", "--source", args.source, "--target", args.target]
    for setting in args.target_set:
        words += ["--target-set", setting]
    words += ["--model", args.model]
    words += dtype_words(args.dtype)
    words += ["--n", str(args.n), "--seed", str(args.seed), "--fraction", str(args.fraction)]
    words += ["--recipe", args.recipe, "--candidates", args.candidates]
    words += ["--max-heads", str(args.max_heads), "--controls", str(args.controls)]
    words += ["--shortlist", str(args.shortlist)] if args.shortlist else []
    for name in args.collateral:
        words += ["--collateral", name]
    return " ".join(shlex.quote(w) for w in words)


def register(sub: Any) -> None:
    r = sub.add_parser("repair", help="redirect reused heads to repair a task (Merullo et al. 2023)")
    r.add_argument("--source", default="ioi", help="task whose circuit holds the heads (default: ioi)")
    r.add_argument("--target", default="colored-objects", help="task to repair (default: colored-objects)")
    r.add_argument("--target-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of the target task, e.g. n_objects=4 (repeatable)")  # fmt: skip
    r.add_argument("--model", default="smollm2-135m", help="offline model or TransformerLens name")
    add_dtype_option(r)
    r.add_argument("--n", type=int, default=64, help="prompt pairs per task and split (default: 64)")
    r.add_argument("--seed", type=int, default=0, help="seed of the prompts and the control draws (default: 0)")
    r.add_argument("--fraction", type=float, default=0.05, help="circuit size as a fraction of heads (default: 0.05)")
    r.add_argument(
        "--recipe",
        default="oracle",
        help="oracle (Merullo: force inhibition heads onto the wrong answers; reads the label) or parsed (label-free:"
        " force answer-attending heads onto the answer position parsed from the prompt)",
    )
    r.add_argument("--candidates", default="source", help="heads that may be edited: source (default) or shared")
    r.add_argument("--max-heads", type=int, default=4, help="most heads one edit changes (default: 4)")
    r.add_argument("--shortlist", type=int, default=0,
                   help="patch exactly only the top heads by attribution patching (default 0: every head)")  # fmt: skip
    r.add_argument("--controls", type=int, default=10, help="random-head control draws (default: 10)")
    r.add_argument("--collateral", action="append", default=[],
                   help="task for the collateral change (repeatable; default: ioi, arithmetic, mcqa)")  # fmt: skip
    r.add_argument("--batch-size", type=int, default=32, help="prompts per forward pass (default: 32)")
    r.add_argument("--out", default="out/repair", help="folder for repair.md, repair.json and repair.png")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=run)
