"""What the prefix check costs, and how far the shortcuts are from a plain forward on the real model.

Run: ``.venv/bin/python bench/prefix_guard.py [--pairs 64] [--repeats 3] [--threads 1]``.

EAP over the full edge graph of SmolLM2 on IOI pairs, with the :class:`~circuits.model.PrefixGuard`
as it runs (one check per run, on the first batch's first prompts) and with the check skipped (a
guard marked as already checked), alternating so load changes hit both; prints the medians and
their ratio with the load average. Also prints the guard's measured answer-logit error and
tolerance, and the same for :func:`~circuits.model.resumable_run`'s check, on this model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from unittest import mock

import torch

from circuits.discovery import EAP
from circuits.engine.edges import prefix_length
from circuits.model import DEFAULT_MODEL, PrefixGuard, load_model, receiver_inputs, resumable_run, text_tokenizer
from circuits.model.forward import logits_at, prefix_tolerance, resume_to_logits
from tasks import IOI


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()} · load average at start {os.getloadavg()}")
    model = load_model(DEFAULT_MODEL, progress=False)
    data = IOI().dataset(text_tokenizer(model), args.pairs, seed=0)
    metric = IOI.metric

    batch = next(data.batches(32))
    guard = PrefixGuard()
    with receiver_inputs(model, split_qkv=False):
        length = prefix_length(batch, EAP().ablation)
        guard.prefix(model, batch.clean, length, batch.answer_pos)
    tol = prefix_tolerance(model, torch.ones(1))
    print(
        f"guard on {DEFAULT_MODEL} IOI: prefix {length} positions, "
        f"answer-logit error {guard.error:.3g}, trusted {guard.trusted}"
    )
    run = resumable_run(model, batch.clean, int(batch.answer_pos.min()), [])
    with torch.no_grad():
        plain = logits_at(model, run.final_resid, batch.answer_pos)
        resumed = resume_to_logits(model, run, 0, 1, batch.answer_pos, [])
    print(
        f"resumable_run: prefix {run.prefix}, error {float((plain - resumed).abs().max()):.3g} (tolerance ≥ {tol:.3g})"
    )

    checked, skipped = [], []

    def skipping_guard() -> PrefixGuard:
        return PrefixGuard(checked=True)

    for _ in range(args.repeats):
        start = time.perf_counter()
        EAP()(model, data, metric, progress=False)
        checked.append(time.perf_counter() - start)
        with mock.patch("circuits.discovery.eap.PrefixGuard", skipping_guard):
            start = time.perf_counter()
            EAP()(model, data, metric, progress=False)
            skipped.append(time.perf_counter() - start)
    a, b = statistics.median(checked), statistics.median(skipped)
    print(f"EAP with the check: runs {[round(x, 1) for x in checked]} s, median {a:.1f} s")
    print(f"EAP check skipped:  runs {[round(x, 1) for x in skipped]} s, median {b:.1f} s")
    print(f"ratio {a / b:.3f} · load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
