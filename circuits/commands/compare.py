"""``headgraph compare A B``: how two circuits differ, and how much two tasks' circuits overlap.

    headgraph compare out/ioi/circuit.json out/co/circuit.json
    headgraph compare ioi_stage1.json,ioi_stage2.json co_stage1.json,co_stage2.json --fractions 0.02

``A`` and ``B`` are circuit files (``headgraph discover``) or golden files; a comma-separated list
is one task's path-patching stages (Merullo et al.'s overlap takes each stage's top heads and their
union). Printed: the top-k diff of the first files of A and B (lost, gained, moved heads) and the
overlap curve over the threshold.

With ``--roles``, two IOI circuits (typically of different models, whose head indices do not
correspond) are compared by role instead: each model is loaded, its task's pairs regenerated (the file's task,
seed and, at most, ``--n`` pairs), and its heads given Wang et al.'s IOI roles from their attention,
direct and total effects (:mod:`circuits.analysis.head_roles`):

    headgraph compare circuits/groundtruth/data/golden/ioi-smollm2-135m.json \
        out/ioi-gemma/circuit.json --roles --n 64 --out out/roles
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.commands.common import add_dtype_option, check_pairs, model_device, prepare_output_dir
from circuits.errors import HeadgraphError

if TYPE_CHECKING:
    from circuits.analysis.head_roles import RoleAssignment
    from circuits.headgraph import HeadGraph


def parse_fractions(text: str) -> tuple[float, ...]:
    """``"0.01,0.02"`` as fractions in (0, 1]."""
    try:
        out = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise HeadgraphError(f"--fractions expects comma-separated numbers, got {text!r}") from None
    if not all(0 < f <= 1 for f in out):
        raise HeadgraphError(f"--fractions must lie in (0, 1], got {text!r}")
    return out


def run(args: argparse.Namespace) -> int:
    from circuits.measures.regression import describe, diff_circuits, read_circuit
    from circuits.measures.roc import overlap_curve

    if args.top_k <= 0:
        raise HeadgraphError(f"--top-k must be positive, got {args.top_k}")
    fractions = parse_fractions(args.fractions)
    check_pairs(args.n)
    paths = {"A": args.a.split(","), "B": args.b.split(",")}
    a = [read_circuit(p) for p in paths["A"]]
    b = [read_circuit(p) for p in paths["B"]]
    if args.roles:
        if len(a) > 1 or len(b) > 1:
            raise HeadgraphError("a role comparison takes one circuit file on each side, not stages")
        if args.out:
            prepare_output_dir(args.out, ("roles.md", "roles.json"))
        return _compare_roles(a[0], b[0], args)
    ga, gb = a[0].scores.graph, b[0].scores.graph
    if (ga.n_layers, ga.n_heads) != (gb.n_layers, gb.n_heads):
        raise HeadgraphError(
            f"cannot compare circuits of a {gb.n_layers}×{gb.n_heads} and a {ga.n_layers}×{ga.n_heads} model "
            "head by head; --roles compares two models' IOI circuits by role"
        )
    _check_origins(a, b, paths, force=args.force)
    for name, stages in (("A", a), ("B", b)):
        print(f"{name}: {describe(stages[0])}" + (f" (+{len(stages) - 1} more stages)" if len(stages) > 1 else ""))
    diff = diff_circuits(b[0].scores, a[0].scores, args.top_k)
    print(f"\ntop-{args.top_k} heads of B against A: Jaccard {diff.jaccard:.3f}")
    print(diff.format(found="B", golden="A"))
    print("\ntask overlap (Merullo et al.: top fraction of heads per stage, union over stages)")
    header = ("fraction", "per stage", "|A|", "|B|", "shared", "Jaccard", "A in B", "B in A")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (8, 9, 4, 4, 6, 7, 6, 6), strict=True)))
    for o in overlap_curve([h.scores for h in a], [h.scores for h in b], fractions):
        print(f"{o.fraction:>8.0%} {o.per_stage:>9} {len(o.a):>4} {len(o.b):>4} {len(o.shared):>6} "
              f"{o.jaccard:>7.3f} {o.a_in_b:>6.3f} {o.b_in_a:>6.3f}")  # fmt: skip
    return 0


def _check_origins(a: list[HeadGraph], b: list[HeadGraph], paths: dict[str, list[str]], *, force: bool) -> None:
    """Head-by-head comparison needs one model: A and B on the same model (name and config hash),
    and each side's stages on one task. A and B may be different tasks (their overlap is the point)."""
    from circuits.measures.regression import Origin, check_same_origin

    for side, stages in (("A", a), ("B", b)):
        for path, hg in zip(paths[side][1:], stages[1:], strict=True):
            check_same_origin(Origin.of(stages[0], paths[side][0]), Origin.of(hg, path), force=force)
    first_a, first_b = Origin.of(a[0], paths["A"][0]), Origin.of(b[0], paths["B"][0])
    no_task = (Origin(first_a.label, first_a.model, first_a.config_hash, None),
               Origin(first_b.label, first_b.model, first_b.config_hash, None))  # fmt: skip
    for diff in check_same_origin(*no_task, force=force):
        print(f"headgraph: warning: --force: comparing across {diff}", file=sys.stderr)


def _compare_roles(a: HeadGraph, b: HeadGraph, args: argparse.Namespace) -> int:
    from circuits.analysis.head_roles import compare_roles
    from circuits.measures.regression import describe

    print(f"comparing by role (Wang et al. 2022 classes)\nA: {describe(a)}\nB: {describe(b)}", flush=True)
    found = [_assign(hg, args.n, dtype=args.dtype, device=model_device(args), progress=not args.quiet) for hg in (a, b)]
    for name, ra in zip("AB", found, strict=True):
        print(f"\n{name}: {ra.model}, candidate heads on {ra.n_pairs} pairs\n{ra.markdown()}")
    cmp = compare_roles(*found)
    text = cmp.markdown()
    print(f"\nroles (layer as a fraction of depth: 0 first, 1 last)\n{text}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        doc = [f"# IOI roles: {found[0].model} and {found[1].model}", "", f"A: {describe(a)}", f"B: {describe(b)}", ""]
        doc += [text, ""] + [f"## {ra.model}\n\n{ra.markdown()}\n" for ra in found]
        (out / "roles.md").write_text("\n".join(doc), encoding="utf-8")
        (out / "roles.json").write_text(json.dumps(cmp.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {out / 'roles.md'} and {out / 'roles.json'}")
    return 0


def _assign(hg: HeadGraph, n: int, *, dtype: str, device: str, progress: bool) -> RoleAssignment:
    """Load ``hg``'s model, regenerate its task's pairs and give its heads roles."""
    from circuits.analysis.head_roles import assign_roles, head_signals
    from circuits.groundtruth.planted import PLANTED
    from circuits.groundtruth.planted_ioi import PlantedIOITask
    from circuits.model import load_model, model_info, text_tokenizer
    from circuits.pipeline import task_settings
    from tasks import TASKS

    if hg.task.name == PlantedIOITask.name:  # the planted IOI model of the default configuration
        planted = PLANTED["ioi"]()
        _check_hash(hg, model_info(planted.model).config_hash)
        data = planted.task.dataset(min(n, hg.task.n_pairs), seed=hg.task.seed)
        return assign_roles(head_signals(planted.model, data, hg.scores))
    task = TASKS[hg.task.name]()
    settings = {k: v for k, v in hg.task.settings.items() if k != "pooled_seeds"}
    if settings != task_settings(task):
        raise HeadgraphError(
            f"role comparison regenerates {task.name!r} with its default settings {task_settings(task)}, "
            f"but the circuit used {settings}"
        )
    print(f"loading {hg.model.name} ...", flush=True)
    model = load_model(hg.model.name, device=device, dtype=dtype, progress=progress)
    _check_hash(hg, model_info(model).config_hash)
    data = task.dataset(text_tokenizer(model), min(n, hg.task.n_pairs), seed=hg.task.seed).to(device)
    return assign_roles(head_signals(model, data, hg.scores))


def _check_hash(hg: HeadGraph, config_hash: str) -> None:
    if config_hash != hg.model.config_hash:
        raise HeadgraphError(f"the model loaded as {hg.model.name!r} is not the one the circuit file was made on")


def register(sub: Any) -> None:
    c = sub.add_parser("compare", help="diff two circuits and measure how much two tasks' circuits overlap")
    c.add_argument("a", help="circuit or golden file (comma-separated: one task's stages)")
    c.add_argument("b", help="circuit or golden file (comma-separated: one task's stages)")
    c.add_argument("--top-k", type=int, default=20, help="heads compared in the diff (default: 20)")
    c.add_argument(
        "--fractions",
        default="0.01,0.02,0.05,0.1",
        help="overlap thresholds as fractions of the heads, in (0, 1] (default: 0.01,0.02,0.05,0.1)",
    )
    c.add_argument("--roles", action="store_true", help="compare two IOI circuits by role (works across models)")
    c.add_argument("--n", type=int, default=64, help="pairs measured per model for roles (default: 64)")
    add_dtype_option(c)
    c.add_argument("--out", default=None, help="folder for roles.md and roles.json (roles only)")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.add_argument("--force", action="store_true", help="compare circuits of different models (name or config hash)")
    c.set_defaults(func=run)
