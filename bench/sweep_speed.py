"""The 4-cell sweep run three ways: in one process, on a local Ray with 1 worker, and with 2 workers.

    .venv/bin/python bench/sweep_speed.py --out out/bench-sweep

Prints the wall time of each, the ratio 1 worker / 2 workers (the parallel speed-up, at most 2 on
two cores), the ratio Ray with 1 worker / one process (Ray's overhead: starting the local Ray,
worker processes importing torch and TransformerLens, moving the rows back), and the load average
seen before and after each run. Every run writes its own fresh output folder, so none skips a cell.
Not a test: the figures depend on the machine's load. Writes bench/results/sweep-speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from circuits.sweep.runner import run_sweep
from circuits.sweep.spec import load_spec

SPEC = """
[sweep]
top_k = 4
truth = "planted"

[resources]
num_cpus = 1

[grid]
models = ["planted:ioi"]
tasks = ["own"]
seeds = [0, 1]
n = [48]

[[methods]]
name = "activation-patching"

[[methods]]
name = "edge-patching"
"""
"""Four cells: planted IOI × exact node and exact edge patching × two seeds (edge patching: seconds)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench-sweep")
    ap.add_argument("--results", default="bench/results/sweep-speed.json")
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "spec.toml").write_text(SPEC)
    spec = load_spec(out / "spec.toml")
    runs: dict[str, dict[str, object]] = {}
    for name, kwargs in (
        ("one process", {"in_process": True}),
        ("ray, 1 worker", {"workers": 1}),
        ("ray, 2 workers", {"workers": 2}),
    ):
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        summary = run_sweep(spec, out / name.replace(" ", "-").replace(",", ""), progress=False, **kwargs)
        wall = time.perf_counter() - start
        if summary.failed:
            raise SystemExit(f"{name}: {summary.failed} cells failed")
        runs[name] = {"wall_s": round(wall, 2), "load_before": load_before, "load_after": os.getloadavg()[0]}
        print(f"{name:>15}: {wall:7.1f} s  (load average {load_before:.1f} → {os.getloadavg()[0]:.1f})", flush=True)
    w1, w2, one = (float(runs[k]["wall_s"]) for k in ("ray, 1 worker", "ray, 2 workers", "one process"))  # type: ignore[arg-type]
    ratios = {
        "speed-up 1→2 workers": w1 / w2,
        "ray 1 worker / one process": w1 / one,
        "ray 2 workers / one process": w2 / one,
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    doc = {"cells": len(spec.cells()), "cpus": os.cpu_count(), "runs": runs, "ratios": ratios}
    Path(args.results).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
