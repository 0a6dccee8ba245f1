"""Ships on refusals of an instruct model (Zhou et al. 2025), issue 19.

    OMP_NUM_THREADS=1 python bench/refusal_ships.py --model qwen2.5-coder-0.5b --k 8 --draws 3 \
        --out docs/seed/refusal-qwen05

Greedy replies to the request set (tasks/data/refusal-requests.json) in ChatML, the refusal detector
(circuits.seed.refusal.is_refusal) on them, Ships ranked on the declined prompts, and the refusal rate with
the top-k Ships heads ablated (query × 1e-4) against k random heads (several draws).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import torch

from circuits.model import load_model
from circuits.seed.refusal import chat_prompt, is_refusal, load_requests, refusal_rate, ships_on_prompts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=12)
    ap.add_argument("--out", default="docs/seed/refusal")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = load_model(a.model, dtype=a.dtype, progress=False)
    tok = model.tokenizer
    template = getattr(tok, "chat_template", None)
    req = load_requests()
    base_d, rep_d = refusal_rate(model, req["decline"], max_new_tokens=a.tokens)
    base_a, rep_a = refusal_rate(model, req["answer"], max_new_tokens=a.tokens)
    refused = [r for r, x in zip(req["decline"], rep_d, strict=True) if is_refusal(x)]
    answered = [r for r, x in zip(req["answer"], rep_a, strict=True) if not is_refusal(x)]
    print(f"baseline refusal: decline {base_d:.0%}, answer {base_a:.0%}", flush=True)
    kl = ships_on_prompts(model, [chat_prompt(r) for r in refused]).sum(0) if refused else None
    res: dict = {
        "model": a.model,
        "dtype": a.dtype,
        "chat_template_in_tokenizer": bool(template),
        "baseline": {"decline": base_d, "answer": base_a},
        "replies_decline": rep_d,
        "replies_answer": rep_a,
        "n_refused": len(refused),
        "n_answered": len(answered),
        "k": a.k,
        "seed": a.seed,
    }
    if kl is not None:
        L, H = kl.shape
        order = sorted(((float(kl[ly, h]), ly, h) for ly in range(L) for h in range(H)), reverse=True)
        top = [(ly, h) for _, ly, h in order[: a.k]]
        res["ships_top"] = [{"head": f"L{ly}H{h}", "kl_sum": v} for v, ly, h in order[:20]]
        r_top, rep_top = refusal_rate(model, refused, top, max_new_tokens=a.tokens)
        a_top, _ = refusal_rate(model, answered, top, max_new_tokens=a.tokens)
        rng = random.Random(a.seed)
        rand = []
        for _ in range(a.draws):
            heads = rng.sample([(ly, h) for ly in range(L) for h in range(H)], a.k)
            rand.append(refusal_rate(model, refused, heads, max_new_tokens=a.tokens)[0])
        res |= {"refusal_top": r_top, "replies_top": rep_top, "answer_refusal_top": a_top, "refusal_random": rand}
        print(f"top-{a.k} ablated: {r_top:.0%} of {len(refused)} refused prompts still refused; random: {rand}")
    res["seconds"] = time.perf_counter() - t0
    res["loadavg"] = os.getloadavg()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "refusal.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in res.items() if not k.startswith("replies")}, indent=1))


if __name__ == "__main__":
    main()
