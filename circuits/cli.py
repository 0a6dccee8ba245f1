"""The ``headgraph`` command line.

    headgraph discover --task ioi --model smollm2-135m --method activation-patching --n 64 --seed 0 --out out/ioi
    headgraph show out/ioi/circuit.json

Errors caused by the input (unknown names, bad numbers, a file that is not a circuit) are printed
as one ``headgraph: error: ...`` line with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from circuits.errors import USER_ERRORS, HeadgraphError

__all__ = ["main"]


def _settings(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise HeadgraphError(f"--set expects KEY=VALUE, got {p!r}")
        out[key] = value
    return out


def format_table(hg: object, top: int) -> str:
    """The baseline and the ``top`` highest-ranked items of a head graph, as text."""
    from circuits.headgraph import HeadGraph

    assert isinstance(hg, HeadGraph)
    b = hg.scores.baseline
    lines = [
        f"model {hg.model.name} · task {hg.task.name} · {hg.task.n_pairs} pairs (seed {hg.task.seed})"
        f" · method {hg.scores.method}",
        f"{b.metric}: clean {b.clean:.3f}, corrupt {b.corrupt:.3f} · accuracy: clean {b.clean_accuracy:.1%},"
        f" corrupt {b.corrupt_accuracy:.1%}",
        "",
        f"{'rank':>4}  {'component':<16} {'Δ ' + b.metric:>14} {'normalized':>11}",
    ]
    norm = hg.scores.normalized.tolist()
    values = hg.scores.values.tolist()
    for rank, i in enumerate(hg.scores.order()[:top], 1):
        lines.append(f"{rank:>4}  {hg.scores.items[i]!s:<16} {values[i]:>14.4f} {norm[i]:>11.4f}")
    return "\n".join(lines)


def _discover(args: argparse.Namespace) -> int:
    from circuits.discovery import build_method
    from circuits.model import load_model
    from circuits.pipeline import discover
    from circuits.plot import plot_headgraph
    from tasks import TASKS

    task = TASKS[args.task]()  # fail fast on names before the model loads
    method = build_method(args.method, _settings(args.set))
    if args.n <= 0:
        raise HeadgraphError(f"--n must be a positive number of prompt pairs, got {args.n}")
    if args.top_k <= 0:
        raise HeadgraphError(f"--top-k must be positive, got {args.top_k}")
    progress = not args.quiet
    print(f"loading {args.model} ...", flush=True)
    model = load_model(args.model, progress=progress)
    print(f"loaded in {getattr(model, 'headgraph_load_seconds', float('nan')):.1f} s", flush=True)
    print(f"task {task.name}: {args.n} prompt pairs, seed {args.seed}; method {method.name}", flush=True)
    start = time.perf_counter()
    hg = discover(model, task, method, n=args.n, seed=args.seed, top_k=args.top_k, progress=progress)
    print(f"{method.name} took {time.perf_counter() - start:.1f} s\n", flush=True)
    print(format_table(hg, args.top_k))
    out = Path(args.out)
    json_path = hg.save(out / "circuit.json")
    png_path = plot_headgraph(hg, out / "circuit.png")
    print(f"\nwrote {json_path} and {png_path}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from circuits.headgraph import HeadGraph
    from circuits.plot import plot_headgraph

    hg = HeadGraph.load(args.circuit)
    print(format_table(hg, args.top))
    if not args.no_plot:
        png = Path(args.png) if args.png else Path(args.circuit).with_suffix(".png")
        print(f"\nwrote {plot_headgraph(hg, png)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="headgraph", description="Find, score and draw attention-head circuits.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("discover", help="find a task's circuit in a model")
    d.add_argument("--task", default="ioi", help="task name (default: ioi)")
    d.add_argument("--model", default="smollm2-135m", help="offline model or TransformerLens name")
    d.add_argument("--method", default="activation-patching", help="discovery method")
    d.add_argument("--n", type=int, default=64, help="number of prompt pairs (default: 64)")
    d.add_argument("--seed", type=int, default=0, help="seed of the prompt pairs (default: 0)")
    d.add_argument("--top-k", type=int, default=10, help="components kept in the circuit (default: 10)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a method setting")
    d.add_argument("--out", default="out", help="folder for circuit.json and circuit.png")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_discover)

    s = sub.add_parser("show", help="print a circuit file's table and redraw its picture")
    s.add_argument("circuit", help="a circuit.json written by discover")
    s.add_argument("--top", type=int, default=10, help="rows to print (default: 10)")
    s.add_argument("--png", help="where to draw (default: beside the JSON)")
    s.add_argument("--no-plot", action="store_true", help="print only")
    s.set_defaults(func=_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``headgraph`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except USER_ERRORS as err:
        print(f"headgraph: error: {err}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
