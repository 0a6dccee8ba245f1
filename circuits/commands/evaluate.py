"""``headgraph evaluate``: faithfulness curves of a circuit file's scores, with MIB's CPR and CMD.

    headgraph evaluate out/ioi/circuit.json

Rebuilds the file's prompt pairs (same task, settings, seed and count unless overridden), runs the
model with every edge outside each top-k % circuit ablated (:mod:`circuits.measures.faithfulness`), prints
the curve and writes ``faithfulness.png`` and ``faithfulness.json`` beside the file.
"""

from __future__ import annotations

import argparse
import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from circuits.commands.common import add_dtype_option, model_device, prepare_output_dir
from circuits.errors import HeadgraphError
from circuits.settings import parse_choice

if typing.TYPE_CHECKING:
    from circuits.measures.faithfulness import FaithfulnessReport


def run(args: argparse.Namespace) -> int:
    from circuits.engine.ablation import Ablation
    from circuits.headgraph import HeadGraph
    from circuits.measures.faithfulness import (
        PERCENTAGES,
        CircuitRunner,
        CurveRule,
        FaithfulnessReport,
        Selection,
        faithfulness_curve,
    )
    from circuits.model import load_model, model_info, text_tokenizer
    from circuits.pictures.faithfulness_plot import plot_faithfulness
    from circuits.selection import Ranking

    hg = HeadGraph.load(args.circuit)
    ablation = parse_choice(Ablation, args.ablation, "--ablation")
    selection = parse_choice(Selection, args.selection, "--selection")
    percentages = _percentages(args.percentages) if args.percentages else PERCENTAGES
    rule = parse_choice(CurveRule, args.curve, "--curve")
    if rule is CurveRule.MIB and args.percentages:
        raise HeadgraphError("--curve mib uses MIB's ten circuit sizes; drop --percentages")
    if args.mib_results and rule is not CurveRule.MIB:
        raise HeadgraphError("--mib-results needs --curve mib (MIB's results hold MIB's curve)")
    task = task_from_run(hg.task.name, hg.task.settings)
    n = args.n if args.n is not None else hg.task.n_pairs
    seed = args.seed if args.seed is not None else hg.task.seed
    if n <= 0 or args.batch_size <= 0:
        raise HeadgraphError("--n and --batch-size must be positive")
    if task.metric.name != hg.scores.baseline.metric:
        raise HeadgraphError(
            f"the file's scores use metric {hg.scores.baseline.metric!r}, task {task.name} uses {task.metric.name!r}"
        )
    out = prepare_output_dir(args.out or Path(args.circuit).parent, ("faithfulness.png", "faithfulness.json"))
    progress = not args.quiet
    print(f"loading {hg.model.name} ...", flush=True)
    model = load_model(hg.model.name, device=model_device(args), dtype=args.dtype, progress=progress)
    if model_info(model).config_hash != hg.model.config_hash:
        raise HeadgraphError(f"{args.circuit} was computed on another configuration of {hg.model.name}")
    data = task.dataset(text_tokenizer(model), n, seed=seed).to(model.cfg.device or "cpu")
    runner = CircuitRunner(model, data, task.metric, ablation, args.batch_size)
    curves = [
        faithfulness_curve(
            runner, hg.scores, r, selection=selection, percentages=percentages, progress=progress, rule=rule
        )
        for r in (Ranking.SIGNED, Ranking.ABSOLUTE)
    ]
    report = FaithfulnessReport(curves[0], curves[1], ablation, len(data))
    own = runner.circuit_faithfulness(hg.circuit, hg.scores)
    print(format_report(report, f"{hg.model.name} · task {task.name} · {len(data)} pairs (seed {seed})"
                        f" · scores {hg.scores.method} ({hg.scores.level.value} level)"))  # fmt: skip
    kept = len(hg.circuit.edges) if hg.circuit.edges else len(hg.circuit.nodes)
    print(f"\nthe file's own circuit ({kept} {'edges' if hg.circuit.edges else 'nodes'}): faithfulness {own:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    png = plot_faithfulness(report, out / "faithfulness.png", f"{hg.model.name} · {task.name} · {hg.scores.method}")
    doc = {**report.to_dict(), "circuit_file": str(args.circuit), "own_circuit_faithfulness": own, "seed": seed}
    json_path = out / "faithfulness.json"
    json_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {png} and {json_path}")
    if args.mib_results:
        from circuits.formats import write_mib_results

        model_name = hg.model.name.replace("_", "-")  # MIB splits its file names on '_'
        for path in write_mib_results(report, args.mib_results, task.name, model_name, args.mib_split):
            print(f"wrote {path} (MIB's results format)")
    return 0


def format_report(report: FaithfulnessReport, title: str) -> str:
    """The curve as a table with CPR and CMD."""
    s, a = report.signed, report.absolute
    unit = "edges" if s.level.value == "edge" else "nodes"
    lines = [
        title,
        f"{report.ablation.value} ablation · {s.selection.value} selection · metric: full model {s.clean:.3f},"
        f" everything ablated {s.empty:.3f}",
        "",
        f"{'size %':>7}  {'asked':>7}  {'kept (signed)':>13}  {'f (signed)':>10}  {'kept (|s|)':>10}  {'f (|s|)':>8}",
    ]
    for p, q in zip(s.points, a.points, strict=True):
        row = f"{p.percent:>7g}  {p.asked:>7}  {p.kept:>13}  {p.faithfulness:>10.3f}"
        lines.append(f"{row}  {q.kept:>10}  {q.faithfulness:>8.3f}")
    lines += [
        "",
        f"CPR {report.cpr:.3f}  (area under the signed curve over the fraction of {unit}; higher is better)",
        f"CMD {report.cmd:.3f}  (area between the |score| curve and 1; lower is better)",
    ]
    return "\n".join(lines)


def task_from_run(name: str, settings: Mapping[str, Any]) -> Any:
    """The registered task ``name`` with the settings a circuit file recorded (:func:`circuits.settings.from_json`)."""
    from circuits.settings import from_json
    from tasks import TASKS

    return from_json(TASKS[name], settings)


def _percentages(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise HeadgraphError(f"--percentages must be numbers separated by commas, got {text!r}") from None
    if not values or any(not 0 <= v <= 100 for v in values) or list(values) != sorted(values):
        raise HeadgraphError(f"--percentages must be increasing numbers between 0 and 100, got {text!r}")
    return values


def register(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="faithfulness curve (MIB CPR/CMD) of a circuit file's scores")
    e.add_argument("circuit", help="a circuit.json written by discover")
    e.add_argument("--n", type=int, help="prompt pairs (default: the file's)")
    e.add_argument("--seed", type=int, help="seed of the prompt pairs (default: the file's)")
    e.add_argument("--ablation", default="resample", help="resample, mean or zero (default: resample)")
    e.add_argument("--selection", default="top-k", help="top-k or greedy (default: top-k)")
    e.add_argument("--curve", default="headgraph",
                   help="headgraph (sizes in %% of scored items) or mib (MIB's exact fractions of all edges, "
                        "trapezoid over the raw fractions; default: headgraph)")  # fmt: skip
    e.add_argument("--mib-results", help="with --curve mib: folder for MIB's results pickles (abs-False/True)")
    e.add_argument("--mib-split", default="validation", help="split named in the MIB results file names")
    e.add_argument("--percentages", help="circuit sizes in %% of edges, e.g. 1,5,100 (default: MIB's ten)")
    add_dtype_option(e)
    e.add_argument("--batch-size", type=int, default=32, help="prompts per forward pass (default: 32)")
    e.add_argument("--out", help="folder for faithfulness.png/json (default: beside the file)")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=run)
