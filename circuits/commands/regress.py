"""``headgraph regress GOLDEN``: recompute a golden circuit and compare it with the stored one.

    headgraph regress ioi-smollm2-135m            # the full recipe (every seed; minutes per seed)
    headgraph regress ioi-smollm2-135m --quick    # the stored quick run only: exact reproduction
    headgraph regress golden.json --seeds 0 --pairs 32 --top-k 10 --min-jaccard 0.6

Exit status 0 when the circuits match, 1 with the diff (lost, gained, moved heads) when not.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from circuits.errors import HeadgraphError

QUICK_MAX_SCORE_CHANGE = 1e-3
"""Default bound on score changes when reproducing the quick run (same pairs: float noise only)."""


def run(args: argparse.Namespace) -> int:
    from circuits.commands.golden import parse_seeds
    from circuits.groundtruth.golden import load_golden, pool, recipe_model, recipe_runner
    from circuits.measures.regression import (
        CircuitRegressionError,
        Origin,
        assert_circuit_matches,
        check_same_origin,
        describe,
    )
    from circuits.model import model_info

    if args.min_jaccard is not None and not 0.0 <= args.min_jaccard <= 1.0:
        raise HeadgraphError(f"min_jaccard must be in [0, 1], got {args.min_jaccard}")
    if args.top_k is not None and args.top_k <= 0:
        raise HeadgraphError(f"--top-k must be positive, got {args.top_k}")
    golden = load_golden(args.golden)
    recipe = golden.recipe
    if args.quick and (args.seeds or args.pairs):
        raise HeadgraphError("--quick reproduces the stored quick run; it takes no --seeds or --pairs")
    overrides: dict[str, Any] = {}
    if args.pairs is not None:
        overrides.update(n_pairs=args.pairs, quick_pairs=min(args.pairs, recipe.quick_pairs))
    if args.seeds is not None:
        overrides["seeds"] = parse_seeds(args.seeds)
    recipe = dataclasses.replace(recipe, **overrides)
    top_k = args.top_k or recipe.top_k
    reference = golden.quick if args.quick else golden.pooled
    min_jaccard = args.min_jaccard if args.min_jaccard is not None else (1.0 if args.quick else 0.8)
    max_change = args.max_score_change
    if max_change is None and args.quick:
        max_change = QUICK_MAX_SCORE_CHANGE
    print(f"golden: {describe(reference)}", flush=True)
    model = recipe_model(recipe, not args.quiet)
    info = model_info(model)
    found_origin = Origin(f"the model loaded for {recipe.model!r}", info.name, info.config_hash, None)
    for note in check_same_origin(Origin.of(reference, "the golden circuit"), found_origin, force=args.force):
        print(f"headgraph: warning: --force: recomputing across {note}", file=sys.stderr)
    runner = recipe_runner(recipe, model, progress=not args.quiet)
    if args.quick:
        found = runner(recipe.quick_pairs, recipe.seeds[0]).scores
    else:
        found = pool([runner(recipe.n_pairs, seed).scores for seed in recipe.seeds])
    print(f"recomputed: {recipe.quick_pairs if args.quick else recipe.n_pairs} pairs, "
          f"seeds {[recipe.seeds[0]] if args.quick else list(recipe.seeds)}, {found.seconds:.0f} s")  # fmt: skip
    try:
        diff = assert_circuit_matches(found, reference, top_k, min_jaccard, max_change)
    except CircuitRegressionError as err:
        print(f"FAIL {err}")
        return 1
    print(f"PASS top-{top_k} Jaccard {diff.jaccard:.3f} ≥ {min_jaccard}")
    print(diff.format())
    return 0


def register(sub: Any) -> None:
    r = sub.add_parser("regress", help="recompute a golden circuit and fail on drift")
    r.add_argument("golden", help="golden circuit name (ioi-smollm2-135m) or golden file")
    r.add_argument("--quick", action="store_true", help="reproduce only the stored quick run (exact)")
    r.add_argument("--pairs", type=int, help="prompt pairs per seed (default: the golden's)")
    r.add_argument("--seeds", help="comma-separated seeds (default: the golden's)")
    r.add_argument("--top-k", type=int, help="heads compared (default: the golden's top k)")
    r.add_argument("--min-jaccard", type=float, help="least top-k Jaccard (default 0.8; 1.0 with --quick)")
    r.add_argument("--max-score-change", type=float, help="largest normalized score change of a golden head")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--force", action="store_true", help="recompute even if the model differs from the golden's")
    r.set_defaults(func=run)
