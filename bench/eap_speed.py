"""EAP over the full edge graph against one forward + backward pass of the same batch, in one process.

Run: ``.venv/bin/python bench/eap_speed.py [--pairs 64] [--repeats 3] [--ig-steps 5]``.

The reference is the bare cost of one clean forward of the batch (answer-position logits) and
one backward of the summed metric to the embeddings, the least any gradient method must do. EAP
(one corrupt forward, one clean forward and backward, every edge score as one product per block)
and, with ``--ig-steps``, EAP-IG alternate with the reference so load changes hit both; the
medians of the runs and their ratio are printed, with the load average seen.

Peak memory is measured in fresh subprocesses (``--memory eap``): load the model and the data,
reset the kernel's peak-resident counter (``/proc/self/clear_refs``), run the method once and read
the peak (``VmHWM``), so loading the weights (which peaks higher) does not hide the method's peak.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from circuits.discovery import EAP, EAPIG
from circuits.model import DEFAULT_MODEL, hook_resid_pre, load_model, logits_at, text_tokenizer, with_hooks
from tasks import IOI, PromptPairDataset
from tasks.metrics import Metric


def forward_backward(model: torch.nn.Module, data: PromptPairDataset, metric: Metric) -> None:
    """One clean forward (answer-position logits) and one backward of the summed metric."""
    hooks = [(hook_resid_pre(0), lambda x: x.detach().requires_grad_(True))]
    with torch.enable_grad(), with_hooks(model, hooks):  # type: ignore[arg-type]
        resid = model(data.clean, stop_at_layer=model.cfg.n_layers)  # type: ignore[operator]
        metric(logits_at(model, resid, data.answer_pos), data.targets).sum().backward()  # type: ignore[arg-type]


def peak_gb() -> float:
    """This process's peak resident set size so far, in GB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _status_gb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1e6  # kB
    return float("nan")


def memory_child(what: str, pairs: int) -> None:
    model = load_model(DEFAULT_MODEL, progress=False)
    data = IOI().dataset(text_tokenizer(model), pairs, seed=0)
    gc.collect()
    before = _status_gb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current size
    if what == "eap":
        EAP(batch_size=pairs)(model, data, IOI.metric, progress=False)
    elif what == "eap-ig":
        EAPIG(batch_size=pairs)(model, data, IOI.metric, progress=False)
    elif what == "forward-backward":
        forward_backward(model, data, IOI.metric)
    print(f"PEAK_GB {_status_gb('VmHWM'):.3f} BEFORE_GB {before:.3f} LOAD_PEAK_GB {peak_gb():.3f}")


def measure_memory(what: str, pairs: int) -> tuple[float, float]:
    """Peak resident memory while running ``what`` in a fresh process, and its size just before (GB)."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory", what, "--pairs", str(pairs), "--threads", str(torch.get_num_threads())],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    words = next(line.split() for line in out.splitlines() if line.startswith("PEAK_GB"))
    return float(words[1]), float(words[3])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ig-steps", type=int, default=0, help="also time EAP-IG with this many steps (0: skip)")
    p.add_argument("--memory", help=argparse.SUPPRESS)
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument(
        "--threads", type=int, help="torch threads (default: torch's choice); 1 is steadier on a busy machine"
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory:
        memory_child(args.memory, args.pairs)
        return
    print(f"torch threads {torch.get_num_threads()} · load average at start {os.getloadavg()}", flush=True)
    model = load_model(DEFAULT_MODEL, progress=False)
    data = IOI().dataset(text_tokenizer(model), args.pairs, seed=0)
    metric = IOI.metric
    print(f"{DEFAULT_MODEL}: {args.pairs} IOI pairs of up to {data.clean.shape[1]} tokens", flush=True)
    forward_backward(model, data.select(slice(0, 4)), metric)  # warm-up
    times: dict[str, list[float]] = {"forward+backward": [], "eap": []}
    if args.ig_steps:
        times["eap-ig"] = []
    n_edges = 0
    for r in range(args.repeats):
        start = time.perf_counter()
        forward_backward(model, data, metric)
        times["forward+backward"].append(time.perf_counter() - start)
        scores = EAP(batch_size=args.pairs)(model, data, metric, progress=False)
        times["eap"].append(scores.seconds)
        n_edges = len(scores.graph.edges)
        if args.ig_steps:
            ig = EAPIG(ig_steps=args.ig_steps, batch_size=args.pairs)(model, data, metric, progress=False)
            times["eap-ig"].append(ig.seconds)
        row = ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items())
        print(f"run {r + 1}/{args.repeats}: {row} · load {os.getloadavg()[0]:.2f}", flush=True)
    base = statistics.median(times["forward+backward"])
    print(f"\nEAP scored {n_edges} edges. Medians of {args.repeats} runs:")
    for k, v in times.items():
        ratios = [t / b for t, b in zip(v, times["forward+backward"], strict=True)]
        print(
            f"  {k:<17} {statistics.median(v):7.2f} s   ratio to forward+backward: median of runs"
            f" {statistics.median(ratios):.2f} (runs: {', '.join(f'{x:.2f}' for x in ratios)})"
            f", ratio of medians {statistics.median(v) / base:.2f}"
        )
    print(f"load average at end {os.getloadavg()}")
    if not args.no_memory:
        print("\npeak resident memory while the method runs in a fresh process (model and data loaded):", flush=True)
        for what in ("forward-backward", "eap", "eap-ig"):
            peak, before = measure_memory(what, args.pairs)
            print(f"  {what:<17} peak {peak:.2f} GB (resident before it started: {before:.2f} GB)", flush=True)


if __name__ == "__main__":
    main()
