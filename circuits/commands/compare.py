"""``headgraph compare A B``: how two circuits differ, and how much two tasks' circuits overlap.

    headgraph compare out/ioi/circuit.json out/co/circuit.json
    headgraph compare ioi_stage1.json,ioi_stage2.json co_stage1.json,co_stage2.json --fractions 0.02

``A`` and ``B`` are circuit files (``headgraph discover``) or golden files; a comma-separated list
is one task's path-patching stages (Merullo et al.'s overlap takes each stage's top heads and their
union). Printed: the top-k diff of the first files of A and B (lost, gained, moved heads) and the
overlap curve over the threshold.
"""

from __future__ import annotations

import argparse
from typing import Any

from circuits.errors import HeadgraphError


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
    from circuits.evaluation import overlap_curve
    from circuits.regression import describe, diff_circuits, read_circuit

    if args.top_k <= 0:
        raise HeadgraphError(f"--top-k must be positive, got {args.top_k}")
    fractions = parse_fractions(args.fractions)
    a = [read_circuit(p) for p in args.a.split(",")]
    b = [read_circuit(p) for p in args.b.split(",")]
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


def register(sub: Any) -> None:
    c = sub.add_parser("compare", help="diff two circuits and measure how much two tasks' circuits overlap")
    c.add_argument("a", help="circuit or golden file (comma-separated: one task's stages)")
    c.add_argument("b", help="circuit or golden file (comma-separated: one task's stages)")
    c.add_argument("--top-k", type=int, default=20, help="heads compared in the diff (default: 20)")
    c.add_argument("--fractions", default="0.01,0.02,0.05,0.1", help="overlap thresholds (default: 1,2,5,10%%)")
    c.set_defaults(func=run)
