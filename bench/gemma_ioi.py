"""Gemma-3-270M on IOI: load times, one forward, all-heads activation patching, head roles.

Run: ``.venv/bin/python bench/gemma_ioi.py [--n 64] [--seed 0]`` (needs ``make install-gemma``).
Prints the load time (cold when the cache folder is missing), the tokenizer facts the IOI task
relies on, the time of one clean forward of ``n`` pairs (answer-position logits only, and full
logits), activation patching of all 72 heads as a ratio to that forward, the clean/corrupt logit
difference and accuracy, and, for the top heads, their attention from the final position to the
indirect object (IO), the first and second subject mentions (S1, S2), and their direct effect
on the logit difference: the signals that role identification across models can use.
"""

from __future__ import annotations

import argparse
import time

import torch

from circuits.discovery import ActivationPatching
from circuits.model import (
    DEFAULT_MODEL,
    GEMMA_MODEL,
    OFFLINE_MODELS,
    hook_pattern,
    load_model,
    run_to_logits,
    run_with_cache,
    text_tokenizer,
)
from tasks import IOI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")

    cold = not (OFFLINE_MODELS[GEMMA_MODEL].cache_folder(GEMMA_MODEL) / "config.json").is_file()
    start = time.perf_counter()
    model = load_model(GEMMA_MODEL, progress=False)
    print(
        f"load ({'cold: assemble + dequantize + convert' if cold else 'cached'}): {time.perf_counter() - start:.1f} s"
    )

    tok = text_tokenizer(model)
    names, kept = IOI.names(None), IOI.names(tok)
    print(
        f"tokenizer: BOS {tok.hf.bos_token!r} (id {tok.hf.bos_token_id}) prepended={tok.prepend_bos}; "
        f"{len(kept)}/{len(names)} IOI names are one token with their leading space"
    )

    data = IOI().dataset(tok, args.n, seed=args.seed)
    print(f"{len(data)} pairs, {data.clean.shape[1]} positions (dropped: {dict(data.dropped) or 'none'})")
    with torch.inference_mode():
        run_to_logits(model, data.clean[:2], data.answer_pos[:2])  # warm-up
        start = time.perf_counter()
        logits = run_to_logits(model, data.clean, data.answer_pos)
        forward = time.perf_counter() - start
        start = time.perf_counter()
        model(data.clean)
        full = time.perf_counter() - start
    print(f"one forward of {len(data)} clean prompts: {forward:.2f} s answer-position logits, {full:.2f} s full logits")
    del logits
    default = load_model(DEFAULT_MODEL, progress=False)
    small = IOI().dataset(text_tokenizer(default), args.n, seed=args.seed)
    with torch.inference_mode():
        run_to_logits(default, small.clean[:2], small.answer_pos[:2])
        start = time.perf_counter()
        run_to_logits(default, small.clean, small.answer_pos)
        reference = time.perf_counter() - start
    print(
        f"  ({DEFAULT_MODEL}, same pairs, its tokenizer: {reference:.2f} s; Gemma/SmolLM2 {forward / reference:.1f}×)"
    )
    del default

    start = time.perf_counter()
    scores = ActivationPatching()(model, data, IOI.metric, progress=False)
    patching = time.perf_counter() - start
    b = scores.baseline
    print(
        f"activation patching, all {model.cfg.n_layers * model.cfg.n_heads} heads: {patching:.1f} s "
        f"= {patching / forward:.1f} forwards"
    )
    print(
        f"logit diff clean {b.clean:.3f}, corrupt {b.corrupt:.3f}; accuracy clean {b.clean_accuracy:.3f}, "
        f"corrupt {b.corrupt_accuracy:.3f}"
    )

    ranked = scores.ranked()[: args.top]
    layers = sorted({node.layer for node, _ in ranked})
    with torch.inference_mode():
        _, cache = run_with_cache(model, data.clean, [hook_pattern(layer) for layer in layers])
    rows = torch.arange(len(data))
    end = data.answer_pos
    pos = {k: data.positions[k] for k in ("IO", "S1", "S2")}
    print("\nhead      norm.score  attn END→IO  END→S1  END→S2  S2→S1  (layer fraction)")
    for node, _ in ranked:
        pattern = cache[hook_pattern(node.layer)][:, node.head]  # (batch, query, key)
        to = {k: float(pattern[rows, end, p].mean()) for k, p in pos.items()}
        dup = float(pattern[rows, pos["S2"], pos["S1"]].mean())
        norm = float(scores.normalized[scores.graph.node_index(node)])
        print(
            f"{str(node):9s} {norm:+10.3f}  {to['IO']:11.3f}  {to['S1']:6.3f}  {to['S2']:6.3f}  {dup:5.3f}"
            f"  ({node.layer / (model.cfg.n_layers - 1):.2f})"
        )


if __name__ == "__main__":
    main()
