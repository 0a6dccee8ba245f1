"""``headgraph sweep``: run a grid of discovery runs on Ray, and report on it.

    headgraph sweep SPEC.toml --out out/sweep [--workers 2] [--address HOST:PORT]
    headgraph sweep report out/sweep
    headgraph sweep query out/sweep "SELECT label, avg(node_auc) FROM results GROUP BY label"

See :mod:`circuits.sweep` for the spec, the table and the report.
"""

from __future__ import annotations

import argparse
from typing import Any

from circuits.errors import HeadgraphError

USAGE = "headgraph sweep SPEC.toml [options] | headgraph sweep report OUT | headgraph sweep query OUT SQL"


def run(args: argparse.Namespace) -> int:
    words = args.words
    if words[0] == "report":
        return _report(words[1:])
    if words[0] == "query":
        return _query(words[1:])
    if len(words) != 1:
        raise HeadgraphError(f"expected one spec file, got {words}; usage: {USAGE}")
    from circuits.commands.common import prepare_output_dir
    from circuits.sweep.runner import run_sweep
    from circuits.sweep.spec import load_spec

    if args.workers <= 0:
        raise HeadgraphError(f"--workers must be positive, got {args.workers}")
    spec = load_spec(words[0])
    out = prepare_output_dir(args.out, ("results.parquet",))
    cells = spec.cells()
    where = "in this process" if args.in_process else (args.address or "a local Ray (or RAY_ADDRESS)")
    print(f"{len(cells)} cells, at most {args.workers} at a time, on {where}", flush=True)
    summary = run_sweep(
        spec, out, address=args.address, workers=args.workers, in_process=args.in_process, progress=not args.quiet
    )
    print(
        f"{summary.finished} finished, {summary.failed} failed, {summary.skipped} skipped (finished before)"
        f" in {summary.seconds:.1f} s\nwrote {summary.table}"
    )
    return 1 if summary.failed else 0


def _report(words: list[str]) -> int:
    from circuits.sweep.report import REPORT, write_report

    if len(words) != 1:
        raise HeadgraphError(f"sweep report expects one output folder; usage: {USAGE}")
    report = write_report(words[0])
    print(report.markdown)
    print(f"wrote {words[0]}/{REPORT}" + "".join(f", {p}" for p in report.plots))
    return 0


def _query(words: list[str]) -> int:
    from circuits.sweep.report import markdown_table
    from circuits.sweep.results import query

    if len(words) != 2:
        raise HeadgraphError(f"sweep query expects an output folder and one SQL query; usage: {USAGE}")
    rows = query(words[0], words[1])
    if rows:
        print("\n".join(markdown_table(list(rows[0]), [list(r.values()) for r in rows])))
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("sweep", help="run a grid of discovery runs on Ray; report on it", usage=USAGE)
    s.add_argument("words", nargs="+", metavar="SPEC.toml | report OUT | query OUT SQL")
    s.add_argument("--out", default="out/sweep", help="output folder (default: out/sweep)")
    s.add_argument("--workers", type=int, default=1, help="most cells run at once (default: 1)")
    s.add_argument("--address", default=None, help="a Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    s.add_argument("--in-process", action="store_true", help="run the cells here one by one, without Ray")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)
