"""``headgraph discover``: find a task's circuit in a model and write circuit.json / circuit.png."""

from __future__ import annotations

import argparse
import time
from typing import Any

from circuits.commands.common import (
    add_dtype_option,
    check_pairs,
    format_table,
    model_device,
    parse_settings,
    prepare_output_dir,
)
from circuits.errors import HeadgraphError

OUTPUTS = ("circuit.json", "circuit.png")
"""The files discover writes under ``--out`` (checked before the model loads)."""


def run(args: argparse.Namespace) -> int:
    from circuits.discovery import build_method
    from circuits.model import load_model, text_tokenizer
    from circuits.pipeline import discover
    from circuits.plot import plot_headgraph
    from tasks import TASKS

    task = TASKS[args.task]()  # fail fast on names before the model loads
    method = build_method(args.method, parse_settings(args.set))
    if args.shards > 1:  # exact patching split across Ray workers (circuits.sweep.shard)
        from circuits.sweep.shard import ShardedMethod

        method = ShardedMethod(method, shards=args.shards, address=args.address)  # type: ignore[assignment]
    elif args.shards <= 0:
        raise HeadgraphError(f"--shards must be positive, got {args.shards}")
    check_pairs(args.n)
    if args.top_k <= 0:
        raise HeadgraphError(f"--top-k must be positive, got {args.top_k}")
    repeats = task.check_distinct(args.n, seed=args.seed)  # --n beyond the task's distinct pairs fails here
    out = prepare_output_dir(args.out, OUTPUTS)  # before the work, not after it
    device = model_device(args)  # --device cuda without CUDA fails before the model loads
    progress = not args.quiet
    print(f"loading {args.model} ...", flush=True)
    model = load_model(args.model, device=device, dtype=args.dtype, progress=progress)
    print(f"loaded in {getattr(model, 'headgraph_load_seconds', float('nan')):.1f} s", flush=True)
    same = f" ({repeats} repeat an earlier pair)" if repeats else ""
    print(f"task {task.name}: {args.n} prompt pairs{same}, seed {args.seed}; method {method.name}", flush=True)
    start = time.perf_counter()
    data = task.dataset(text_tokenizer(model), args.n, seed=args.seed) if args.code_labels else None
    hg = discover(
        model,
        task,
        method,
        n=args.n,
        seed=args.seed,
        top_k=args.top_k,
        progress=progress,
        strict=args.strict,
        data=data,
    )
    print(f"{method.name} took {time.perf_counter() - start:.1f} s\n", flush=True)
    if data is not None:
        hg = _with_code_labels(hg, model, data, task.metric)
    print(format_table(hg, args.top_k))
    if hg.code_labels:
        from circuits.analysis.code_labels import format_labels

        print("\nheads labelled by their SAE codes (at the answer position):")
        print(format_labels(hg.code_labels))
    if hg.positions:
        from circuits.pictures.position_plot import format_positions

        print("\nkept (edge, position) pairs (a k/v edge at its key position):")
        print(format_positions(hg.positions, args.top_k))
    out.mkdir(parents=True, exist_ok=True)
    png_path = plot_headgraph(hg, out / "circuit.png")  # the picture first: circuit.json marks a finished run
    json_path = hg.save(out / "circuit.json")
    print(f"\nwrote {json_path} and {png_path}")
    return 0


def _with_code_labels(hg: Any, model: Any, data: Any, metric: Any) -> Any:
    """``hg`` with its circuit heads' code labels and code fidelity (:mod:`circuits.analysis.code_labels`)."""
    import dataclasses

    from circuits.analysis.code_labels import label_heads
    from circuits.discovery.code_patching import CodePatchingSettings, code_fidelity
    from circuits.model import text_tokenizer

    heads = hg.circuit.heads()
    if not heads:
        return hg
    start = time.perf_counter()
    fid = code_fidelity(CodePatchingSettings(), model, data, metric, heads)
    decode = text_tokenizer(model).decode if model.tokenizer is not None else str
    labels = label_heads(model, data, heads, fid.codebooks, decode=decode, fidelity={h.head: h for h in fid.heads})
    print(f"code labels and code fidelity of {len(heads)} heads took {time.perf_counter() - start:.1f} s", flush=True)
    return dataclasses.replace(
        hg,
        code_labels={str(h): lab.to_dict() for h, lab in labels.items()},
        warnings=(*hg.warnings, *fid.warnings),
    )


def register(sub: Any) -> None:
    d = sub.add_parser("discover", help="find a task's circuit in a model")
    d.add_argument("--task", default="ioi", help="task name (default: ioi)")
    d.add_argument("--model", default="smollm2-135m", help="offline model or TransformerLens name")
    add_dtype_option(d)
    d.add_argument("--method", default="activation-patching", help="discovery method")
    d.add_argument("--n", type=int, default=64, help="number of prompt pairs (default: 64)")
    d.add_argument("--seed", type=int, default=0, help="seed of the prompt pairs (default: 0)")
    d.add_argument("--top-k", type=int, default=10, help="components kept in the circuit (default: 10)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a method setting")
    d.add_argument(
        "--shards",
        type=int,
        default=1,
        help="split exact patching (activation-patching of heads, edge-patching) into this many Ray tasks "
        "(default: 1, no Ray; needs headgraph[sweep])",
    )
    d.add_argument("--address", default=None, help="with --shards: a Ray cluster to join (default: RAY_ADDRESS, else "
                   "a local Ray)")  # fmt: skip
    d.add_argument("--out", default="out", help="folder for circuit.json and circuit.png")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.add_argument("--strict", action="store_true", help="fail on a degenerate baseline instead of warning")
    d.add_argument(
        "--code-labels",
        action="store_true",
        help="label the circuit's heads by their discrete SAE codes and measure their code fidelity",
    )
    d.set_defaults(func=run)
