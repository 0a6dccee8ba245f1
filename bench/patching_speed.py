"""Exact all-head activation patching against TransformerLens's own helper, same data, one process.

Run: ``.venv/bin/python bench/patching_speed.py [--pairs 16] [--repeats 1]``.

TransformerLens's ``get_act_patch_attn_head_out_all_pos`` runs one full forward (all positions,
full logits) per head on the clean tokens with that head's ``hook_z`` taken from the corrupt
cache; headgraph's :class:`~circuits.discovery.ActivationPatching` computes the same numbers
(resample ablation, all positions) while resuming each patched run at the head's layer, sharing
the unchanged prompt prefix and stacking a layer's heads on the batch dimension. Both timings
include the corrupt run each needs. The script checks that the two results are equal (largest
absolute difference of the logit-difference changes) and prints the ratio of the times.

TransformerLens's helper takes about 10 minutes on 64 pairs on a quiet 2-core machine, so the
default is 16 pairs for both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from transformer_lens.patching import get_act_patch_attn_head_out_all_pos

from circuits.discovery import ActivationPatching
from circuits.model import DEFAULT_MODEL, load_model, text_tokenizer
from tasks import IOI


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument(
        "--threads", type=int, help="torch threads (default: torch's choice); 1 is steadier on a busy machine"
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()} · load average at start {os.getloadavg()}", flush=True)
    model = load_model(DEFAULT_MODEL, progress=False)
    data = IOI().dataset(text_tokenizer(model), args.pairs, seed=0)
    metric = IOI.metric
    rows = torch.arange(len(data))
    print(f"{DEFAULT_MODEL}: {args.pairs} IOI pairs, {model.cfg.n_layers * model.cfg.n_heads} heads", flush=True)

    def tl_metric(logits: torch.Tensor) -> torch.Tensor:
        return metric(logits[rows, data.answer_pos], data.targets).mean()

    ours_t, tl_t, diffs = [], [], []
    for r in range(args.repeats):
        start = time.perf_counter()
        ours = ActivationPatching(batch_size=args.pairs)(model, data, metric, progress=False)
        ours_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.inference_mode():
            _, corrupt_cache = model.run_with_cache(data.corrupt)
            reference = get_act_patch_attn_head_out_all_pos(model, data.clean, corrupt_cache, tl_metric)
        tl_t.append(time.perf_counter() - start)
        with torch.inference_mode():
            clean = tl_metric(model(data.clean))
        diff = float(((reference - clean).float() - ours.head_matrix(normalized=False)).abs().max())
        diffs.append(diff)
        print(
            f"run {r + 1}/{args.repeats}: headgraph {ours_t[-1]:.1f} s, TransformerLens {tl_t[-1]:.1f} s,"
            f" ratio {tl_t[-1] / ours_t[-1]:.2f}, largest |difference| {diff:.2e} · load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    ratios = [t / o for t, o in zip(tl_t, ours_t, strict=True)]
    print(
        f"\nmedians of {args.repeats} runs: headgraph {statistics.median(ours_t):.1f} s,"
        f" TransformerLens {statistics.median(tl_t):.1f} s; speed-up (median of runs) {statistics.median(ratios):.2f}×;"
        f" largest |difference| {max(diffs):.2e} (logit-difference units)"
    )
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
