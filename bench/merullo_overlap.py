"""Merullo et al.'s IOI ↔ Colored Objects overlap from stage-wise path patching (:mod:`circuits.seed.stages`).

Run: ``.venv/bin/python bench/merullo_overlap.py --model qwen2.5-coder-0.5b --dtype bfloat16 --n 8
--threads 1 --out docs/overlap/qwen2.5-coder-0.5b``.

For each task: the stages (EAP shortlist of ``--shortlist`` senders per stage, confirmed by exact path
patching), their heads at Merullo's 2 %, then the overlap curve over the fractions of
:data:`circuits.measures.roc.OVERLAP_FRACTIONS` (each stage's scored heads re-thresholded; the stages'
receivers stay those chosen at 2 %, and a stage can keep at most its shortlist) with a random
baseline: circuits of the same sizes drawn uniformly from the model's heads (``--draws`` times; mean
and standard deviation). Writes ``stages.json``, ``overlap.md`` and ``overlap.png`` to ``--out``.

``--task ioi`` (or ``colored-objects``) searches one task only and saves its stages to
``--out/<task>.pt``, so the two tasks can run in two processes; a run then reuses any saved task
(not checked against its settings: keep ``--n``, ``--seed``, ``--shortlist`` the same for one ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from circuits.graph import Node
from circuits.measures.roc import OVERLAP_FRACTIONS, jaccard, overlap_curve
from circuits.model import graph_of, load_model, text_tokenizer
from circuits.seed.stages import StageResult, StageRule, find_stages
from tasks import get_task

TASKS = ("ioi", "colored-objects")


def _random_overlap(heads: list[Node], size_a: int, size_b: int, draws: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    a_in_b, jac = [], []
    for _ in range(draws):
        a, b = set(rng.sample(heads, size_a)), set(rng.sample(heads, size_b))
        a_in_b.append(len(a & b) / size_a)
        jac.append(jaccard(a, b))
    return {
        "a_in_b_mean": statistics.fmean(a_in_b),
        "a_in_b_sd": statistics.pstdev(a_in_b),
        "jaccard_mean": statistics.fmean(jac),
        "jaccard_sd": statistics.pstdev(jac),
    }


def _layer_matched_overlap(
    a: frozenset[Node], b: frozenset[Node], n_heads: int, draws: int, seed: int
) -> dict[str, float]:
    """Random circuits with each side's heads per layer kept (a stricter baseline: stage heads cluster in
    mid-late layers, so two random circuits of the same layers share more than two uniform ones)."""
    rng = random.Random(seed)
    per_a, per_b = Counter(h.layer for h in a), Counter(h.layer for h in b)
    a_in_b, jac = [], []
    for _ in range(draws):
        ra = {(lay, h) for lay, c in per_a.items() for h in rng.sample(range(n_heads), c)}
        rb = {(lay, h) for lay, c in per_b.items() for h in rng.sample(range(n_heads), c)}
        a_in_b.append(len(ra & rb) / max(1, len(ra)))
        jac.append(len(ra & rb) / max(1, len(ra | rb)))
    return {
        "a_in_b_mean": statistics.fmean(a_in_b),
        "a_in_b_sd": statistics.pstdev(a_in_b),
        "jaccard_mean": statistics.fmean(jac),
        "jaccard_sd": statistics.pstdev(jac),
    }


def _stage_json(result: StageResult) -> list[dict[str, object]]:
    return [
        {
            "receivers": [str(r) for r in rec],
            "shortlist": [str(s) for s in short],
            "heads": [str(h) for h in heads],
        }
        for rec, short, heads in zip(result.receivers, result.shortlists, result.heads, strict=True)
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--n", type=int, default=8, help="prompt pairs per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shortlist", type=int, default=24)
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--task", choices=TASKS, default=None, help="search only this task and save its stages")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, dtype=args.dtype)
    tok = text_tokenizer(model)
    rule = StageRule(shortlist=args.shortlist, batch_size=args.n, max_rows=4 * args.n)
    results: dict[str, StageResult] = {}
    for name in (args.task,) if args.task else TASKS:
        saved = out / f"{name}.pt"
        if saved.exists() and not args.task:
            results[name] = torch.load(saved, weights_only=False)
            continue
        task = get_task(name)
        data = task.dataset(tok, args.n, seed=args.seed)
        results[name] = find_stages(model, data, task.metric, rule)
        torch.save(results[name], saved)
        print(name, [[str(h) for h in s] for s in results[name].heads], f"{results[name].seconds:.0f} s", flush=True)
    if args.task:
        return
    a, b = (results[t].scores for t in TASKS)
    curve = overlap_curve(a, b, OVERLAP_FRACTIONS)
    heads = list(graph_of(model).heads)
    baselines = [_random_overlap(heads, len(o.a), len(o.b), args.draws, args.seed) for o in curve]
    matched = [_layer_matched_overlap(o.a, o.b, model.cfg.n_heads, args.draws, args.seed) for o in curve]
    load = os.getloadavg()[0]
    command = (
        f"`.venv/bin/python bench/merullo_overlap.py --model {args.model} --dtype {args.dtype} --n {args.n} "
        f"--seed {args.seed} --shortlist {args.shortlist} --threads {args.threads or 'default'} --out {args.out}`"
    )
    record = {
        "model": args.model,
        "dtype": args.dtype,
        "n": args.n,
        "seed": args.seed,
        "rule": {"inputs": list(rule.inputs), "fraction": rule.fraction, "shortlist": rule.shortlist},
        "stages": {t: _stage_json(r) for t, r in results.items()},
        "seconds": {t: r.seconds for t, r in results.items()},
        "curve": [
            {
                "fraction": o.fraction,
                "ioi": sorted(map(str, o.a)),
                "colored_objects": sorted(map(str, o.b)),
                "shared": sorted(map(str, o.shared)),
                "ioi_in_co": o.a_in_b,
                "co_in_ioi": o.b_in_a,
                "jaccard": o.jaccard,
                "random": base,
                "random_layer_matched": lm,
            }
            for o, base, lm in zip(curve, baselines, matched, strict=True)
        ],
        "load_average": load,
        "command": command,
    }
    (out / "stages.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    lines = [
        f"# IOI ↔ Colored Objects circuit overlap on {args.model} ({args.dtype}), Merullo et al.'s stage rule",
        "",
        command,
        "",
        f"{args.n} prompt pairs per task (seed {args.seed}); stages: logits, then the previous stage's heads' "
        f"inputs {', '.join(repr(i) for i in rule.inputs[1:])}; per stage the top {args.shortlist} senders by EAP "
        f"are confirmed by exact path patching, which alone ranks them; Merullo's threshold keeps "
        f"{rule.fraction:.0%} of the {len(heads)} heads per stage. Search time: "
        + ", ".join(f"{t} {r.seconds:.0f} s" for t, r in results.items())
        + f"; load average {load:.1f} at the end.",
        "",
        "## Stages at 2 %",
        "",
        "| task | stage | receivers | heads kept (rank order) |",
        "|---|---|---|---|",
    ]
    for t, r in results.items():
        for i, (rec, hs) in enumerate(zip(r.receivers, r.heads, strict=True), start=1):
            lines.append(f"| {t} | {i} | {', '.join(map(str, rec))} | {', '.join(map(str, hs))} |")
    lines += [
        "",
        "## Overlap curve (Merullo et al.: 78 % of the IOI circuit reused by Colored Objects on GPT-2 medium)",
        "",
        "| fraction per stage | IOI heads | CO heads | shared | IOI in CO | random (mean ± sd) | "
        "random, same layers | Jaccard | random |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def capped(per_stage: int) -> str:
        """A note where a stage's share is more heads than its shortlist scored."""
        over = args.shortlist and per_stage > args.shortlist
        return f" (capped: {per_stage} > shortlist {args.shortlist})" if over else ""

    for o, base, lm in zip(curve, baselines, matched, strict=True):
        lines.append(
            f"| {o.fraction:.0%}{capped(o.per_stage)} | {len(o.a)} | {len(o.b)} | "
            f"{', '.join(sorted(map(str, o.shared))) or '—'} | "
            f"{o.a_in_b:.0%} | {base['a_in_b_mean']:.0%} ± {base['a_in_b_sd']:.0%} | "
            f"{lm['a_in_b_mean']:.0%} ± {lm['a_in_b_sd']:.0%} | {o.jaccard:.2f} | "
            f"{base['jaccard_mean']:.2f} ± {base['jaccard_sd']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "overlap.md").write_text(text, encoding="utf-8")
    print(text)

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [o.fraction * 100 for o in curve]
    ax.plot(xs, [o.a_in_b for o in curve], "o-", label="IOI heads also in CO's circuit")
    ax.plot(xs, [o.jaccard for o in curve], "s-", label="Jaccard")
    mean = [b["a_in_b_mean"] for b in baselines]
    sd = [b["a_in_b_sd"] for b in baselines]
    ax.plot(xs, mean, "--", color="grey", label="random heads (mean ± sd)")
    ax.fill_between(xs, [m - s for m, s in zip(mean, sd, strict=True)], [m + s for m, s in zip(mean, sd, strict=True)],
                    color="grey", alpha=0.25)  # fmt: skip
    ax.axhline(0.78, color="tab:red", lw=0.8, ls=":", label="Merullo et al., GPT-2 medium (78 %)")
    ax.set_xlabel("heads kept per stage (% of the model's heads)")
    ax.set_ylabel("overlap")
    ax.set_ylim(0, 1)
    ax.set_title(f"IOI ↔ Colored Objects, {args.model}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "overlap.png", dpi=120)
    print(f"wrote {out}/stages.json, overlap.md, overlap.png")


if __name__ == "__main__":
    main()
