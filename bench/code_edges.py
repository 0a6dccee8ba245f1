"""Edges from codes weighted by effect on a real model, against EAP-IG's edges (rank agreement).

The heads are the top ``--heads`` of exact activation patching on other pairs (seed 0) or given by
``--head-list``; code books and code edges (:mod:`circuits.discovery.code_edges`) and EAP-IG (5
steps) on the same ``--n`` pairs (``--seed``). Prints the kept edges, the dropped pairs with the
largest co-occurrence, and Spearman / top-k overlap of the pairs' code-edge weights with EAP-IG's
``|score|`` summed over each pair's q, k, v edges.

    python -m bench.code_edges --task ioi --n 32 --threads 1 \
        --head-list L23H3,L20H0,L17H4,L29H1,L24H4,L29H0,L19H2,L24H5,L24H7,L23H7
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from circuits.discovery import ActivationPatching, build_method
from circuits.discovery.code_edges import CodeEdgeSettings, code_edges, edge_agreement
from circuits.discovery.code_patching import CodePatchingSettings
from circuits.graph import Node
from circuits.model import load_model, text_tokenizer
from tasks import TASKS


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--task", default="ioi")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--heads", type=int, default=10)
    p.add_argument("--head-list", default="", help="comma-separated heads (skips the exact-patching reference)")
    p.add_argument("--train-pairs", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="out/bench-code-edges.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, progress=False)
    task = TASKS[args.task]()
    tok = text_tokenizer(model)
    data = task.dataset(tok, args.n, seed=args.seed)
    if args.head_list:
        heads = [Node.parse(h) for h in args.head_list.split(",")]
    else:
        ref = ActivationPatching()(model, task.dataset(tok, args.n, seed=0), task.metric, progress=False)
        ranked = [ref.items[i] for i in ref.order()]
        heads = [n for n in ranked if isinstance(n, Node) and n.head is not None][: args.heads]
    start = time.perf_counter()
    settings = CodeEdgeSettings(patching=CodePatchingSettings(train_pairs=args.train_pairs, seed=args.seed))
    edges = code_edges(settings, model, data, heads)
    t_codes = time.perf_counter() - start
    start = time.perf_counter()
    eap = build_method("eap-ig", {})(model, data, task.metric, progress=False)
    t_eap = time.perf_counter() - start
    agree = edge_agreement(edges, eap)
    result = {
        "model": args.model,
        "task": args.task,
        "n": args.n,
        "seed": args.seed,
        "heads": [str(h) for h in heads],
        "pairs": [e.to_dict() for e in edges.pairs],
        "kept": len(edges.edges),
        "spearman": agree.spearman,
        "top_overlap": agree.top_overlap,
        "n_pairs": agree.n_pairs,
        "seconds_code_edges": t_codes,
        "seconds_by_phase": edges.seconds,
        "seconds_eap_ig": t_eap,
        "load_average": os.getloadavg(),
    }
    for e in edges.edges:
        print(f"kept {e.sender} -> {e.receiver}: effect {e.effect:.3f}, co-occurrence {e.cooccurrence:.3f}")
    dropped = sorted((e for e in edges.pairs if not e.kept), key=lambda e: -e.cooccurrence)[:5]
    for e in dropped:
        print(f"dropped {e.sender} -> {e.receiver}: effect {e.effect:.3f}, co-occurrence {e.cooccurrence:.3f}")
    print(json.dumps({k: v for k, v in result.items() if k != "pairs"}, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
