"""Wall time of ``sae-codes`` end to end and of ``sae-patching`` against exact patching of every head.

All in one process on the same pairs, after the model is loaded: one plain forward pass of the
clean prompts (the unit), ``sae-codes`` with the paper's defaults and with the given fast settings
(collecting head outputs, training the SAE, coding, scoring; per phase), exact activation patching
of all heads, and ``sae-patching``. Targets (issue 6): ``sae-codes`` ≤ 10 s on this CPU;
``sae-patching`` ≤ ½ of exact patching. Every step is timed in wall seconds and in this process's
CPU seconds: on a shared machine, CPU seconds with one torch thread approximate the wall time on a
quiet one.

    python -m bench.sae_bench --n 64 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from circuits.discovery import ActivationPatching, SAECodes, SAEPatching, build_method
from circuits.model import load_model, text_tokenizer
from tasks import TASKS

FAST = "epochs=100,lr=0.005"
"""Default fast settings (sae-patching's SAE): see the README section "SAE codes"."""


def _settings(text: str) -> dict[str, str]:
    return dict(s.split("=", 1) for s in text.split(",") if s)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--task", default="ioi")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fast", default=FAST, help=f"sae settings of the fast runs (default {FAST})")
    p.add_argument("--shortlist", type=int, default=SAEPatching.shortlist)
    p.add_argument("--skip-paper", action="store_true", help="do not time sae-codes with the paper's defaults")
    p.add_argument("--skip-exact", action="store_true", help="do not time exact patching of every head")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="out/sae_bench.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, progress=False)
    task = TASKS[args.task]()
    data = task.dataset(text_tokenizer(model), args.n, seed=args.seed)
    results: dict[str, Any] = {"n": args.n, "seed": args.seed, "threads": torch.get_num_threads(), "fast": args.fast}

    def timed(label: str, fn: Any) -> Any:
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        results[label] = time.perf_counter() - start
        results[f"{label} cpu"] = time.process_time() - cpu
        print(f"{label}: {results[label]:.2f} s wall, {results[label + ' cpu']:.2f} s cpu", flush=True)
        return out

    with torch.inference_mode():
        model(data.clean)  # warm-up
        timed("forward", lambda: model(data.clean))
    fast = _settings(args.fast)
    runs: list[tuple[str, Any]] = [("sae-codes fast", build_method("sae-codes", fast))]
    if not args.skip_paper:
        runs.insert(0, ("sae-codes paper", SAECodes()))
    for label, method in runs:
        scores = timed(label, lambda method=method: method(model, data, task.metric, progress=False))
        results[f"{label} phases"] = scores.params["seconds_by_phase"]
        print(f"  phases {scores.params['seconds_by_phase']}", flush=True)
    sp: SAEPatching = build_method("sae-patching", {**fast, "shortlist": str(args.shortlist)})  # type: ignore[assignment]
    scores = timed("sae-patching", lambda: sp(model, data, task.metric, progress=False))
    results["sae-patching phases"] = scores.params["seconds_by_phase"]
    results["sae-patching shortlisted"] = len(scores.params["shortlisted"])
    print(f"  phases {scores.params['seconds_by_phase']}, {results['sae-patching shortlisted']} heads", flush=True)
    if not args.skip_exact:
        timed("exact patching", lambda: ActivationPatching()(model, data, task.metric, progress=False))
        results["sae-patching / exact"] = results["sae-patching"] / results["exact patching"]
    if not args.skip_exact:
        results["sae-patching / exact (cpu)"] = results["sae-patching cpu"] / results["exact patching cpu"]
    for key in [k for k in list(results) if k.startswith("sae-codes") and not k.endswith(("phases", "cpu"))]:
        results[f"{key} / forward"] = results[key] / results["forward"]
        results[f"{key} / forward (cpu)"] = results[f"{key} cpu"] / results["forward cpu"]
    print(json.dumps(results, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
