"""``headgraph show``: print a circuit file's table and redraw its picture."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from circuits.commands.common import format_table


def run(args: argparse.Namespace) -> int:
    from circuits.headgraph import HeadGraph
    from circuits.plot import plot_headgraph

    hg = HeadGraph.load(args.circuit)
    print(format_table(hg, args.top))
    if not args.no_plot:
        png = Path(args.png) if args.png else Path(args.circuit).with_suffix(".png")
        print(f"\nwrote {plot_headgraph(hg, png)}")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("show", help="print a circuit file's table and redraw its picture")
    s.add_argument("circuit", help="a circuit.json written by discover")
    s.add_argument("--top", type=int, default=10, help="rows to print (default: 10)")
    s.add_argument("--png", help="where to draw (default: beside the JSON)")
    s.add_argument("--no-plot", action="store_true", help="print only")
    s.set_defaults(func=run)
