"""``headgraph show``: print a circuit file's table and redraw its picture."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from circuits.commands.common import check_output_file, format_table, parse_top


def run(args: argparse.Namespace) -> int:
    from circuits.headgraph import HeadGraph
    from circuits.plot import plot_headgraph

    top = parse_top(args.top)
    hg = HeadGraph.load(args.circuit)
    png = None if args.no_plot else check_output_file(args.png or Path(args.circuit).with_suffix(".png"), "--png")
    print(format_table(hg, top))
    for note in hg.warnings:
        print(f"warning (recorded when the circuit was made): {note}")
    if hg.code_labels:
        from circuits.analysis.code_labels import format_labels

        print("\nheads labelled by their SAE codes (at the answer position):")
        print(format_labels(hg.code_labels))
    if hg.positions:
        from circuits.pictures.position_plot import format_positions

        print("\nkept (edge, position) pairs (a k/v edge at its key position):")
        print(format_positions(hg.positions, top))
    if png is not None:
        print(f"\nwrote {plot_headgraph(hg, png)}")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("show", help="print a circuit file's table and redraw its picture")
    s.add_argument("circuit", help="a circuit.json written by discover")
    s.add_argument("--top", type=int, default=10, help="rows to print (default: 10)")
    s.add_argument("--png", help="where to draw (default: beside the JSON)")
    s.add_argument("--no-plot", action="store_true", help="print only")
    s.set_defaults(func=run)
