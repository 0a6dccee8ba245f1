"""``headgraph golden``: build (regenerate) and list the golden circuits of the embedded model.

headgraph golden build                      # every registered golden circuit, into the package data
headgraph golden build --name ioi-smollm2-135m --out out/golden.json --pairs 32 --seeds 0,1
headgraph golden list
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any

from circuits.commands.common import check_output_file
from circuits.errors import HeadgraphError


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` as a tuple of seeds."""
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise HeadgraphError(f"--seeds expects comma-separated integers, got {text!r}") from None
    return seeds


def build(args: argparse.Namespace) -> int:
    from circuits.groundtruth.golden import GOLDEN_RECIPES, build_golden, golden_dir

    names = [args.name] if args.name else GOLDEN_RECIPES.names()
    recipes = {n: GOLDEN_RECIPES[n] for n in names}  # fail fast on unknown names
    if args.out and len(names) > 1:
        raise HeadgraphError("--out needs --name (one golden circuit per file)")
    if args.out:
        check_output_file(args.out, "--out")
    overrides: dict[str, Any] = {}
    if args.pairs is not None:
        overrides["n_pairs"] = args.pairs
        overrides["quick_pairs"] = min(args.pairs, recipes[names[0]].quick_pairs)
    if args.seeds is not None:
        overrides["seeds"] = parse_seeds(args.seeds)
    command = "headgraph " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["golden"] else ""
    for name in names:
        recipe = dataclasses.replace(recipes[name], **overrides)
        print(f"building golden circuit {name}: {recipe.task} on {recipe.model}, {recipe.method}, "
              f"{recipe.n_pairs} pairs × seeds {list(recipe.seeds)}", flush=True)  # fmt: skip
        golden = build_golden(
            name, recipe, progress=not args.quiet, command=command or f"headgraph golden build --name {name}", log=print
        )
        out = Path(args.out) if args.out else golden_dir() / f"{name}.json"
        golden.save(out)
        st = golden.stability
        print(f"top-{st.top_k} Jaccard across seeds: mean {st.mean_pairwise:.3f}, min {st.min_pairwise:.3f}")
        print(f"golden heads: {' '.join(str(n) for n in golden.circuit_heads())}")
        print(f"wrote {out} ({golden.made['seconds_total']:.0f} s)")
    return 0


def show_list(_args: argparse.Namespace) -> int:
    from circuits.groundtruth.golden import GOLDEN_RECIPES, load_golden

    for name in GOLDEN_RECIPES.names():
        try:
            g = load_golden(name)
        except HeadgraphError as err:
            print(f"{name}: {err}")
            continue
        st = g.stability
        r = g.recipe
        print(f"{name}: {r.task} on {r.model}, {r.method}, {r.n_pairs} pairs × seeds {list(r.seeds)}; "
              f"top-{st.top_k} Jaccard across seeds mean {st.mean_pairwise:.3f} (min {st.min_pairwise:.3f}); "
              f"made {g.made.get('created', '?')} in {g.made.get('seconds_total', float('nan')):.0f} s")  # fmt: skip
        print(f"  {' '.join(str(n) for n in g.circuit_heads())}")
    return 0


def register(sub: Any) -> None:
    g = sub.add_parser("golden", help="build or list the golden circuits of the embedded model")
    gsub = g.add_subparsers(dest="golden_command", required=True)
    b = gsub.add_parser("build", help="recompute golden circuits (exact method, several seeds) and save them")
    b.add_argument("--name", help="one golden circuit (default: all registered)")
    b.add_argument("--out", help="output file (default: the package data folder)")
    b.add_argument("--pairs", type=int, help="prompt pairs per seed (default: the recipe's)")
    b.add_argument("--seeds", help="comma-separated seeds (default: the recipe's)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=build)
    ls = gsub.add_parser("list", help="the shipped golden circuits and how they were made")
    ls.set_defaults(func=show_list)
