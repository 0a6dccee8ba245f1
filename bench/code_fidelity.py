"""Code fidelity of a task's top heads on a real model: does each head's discrete SAE code carry its
exact patching effect? (:mod:`circuits.discovery.code_patching`)

The top ``k`` heads are those with the largest ``|effect|`` under exact activation patching of every
head on the reference pairs (``--reference-seed``; cached as a head-graph file, shared with
``bench.sae_eval`` when ``--out`` is the same folder). Code books are trained and patched on other
pairs (``--seed``). Prints, per head, the exact and code-patching effects in both directions and the
fidelities, then the circuit of the top ``k`` reduced to its codes; writes JSON.

    python -m bench.code_fidelity --task ioi --threads 1 --out out/sae_eval_ioi
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.sae_eval import reference
from circuits.discovery.code_patching import CodePatchingSettings, circuit_reduction, code_fidelity
from circuits.model import load_model, text_tokenizer
from saes import CodebookConfig, CodeVector
from tasks import TASKS


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--task", default="ioi")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reference-seed", type=int, default=0)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--vector", default="decoder", choices=[v.value for v in CodeVector])
    p.add_argument("--d-sae", type=int, default=CodebookConfig.d_sae)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="out/sae_eval")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, progress=False)
    task = TASKS[args.task]()
    ref = reference(model, task, args.n, args.reference_seed, out / f"reference_seed{args.reference_seed}.json")
    heads = [n for n, _ in ref.ranked() if n.head is not None][: args.k]
    data = task.dataset(text_tokenizer(model), args.n, seed=args.seed)
    settings = CodePatchingSettings(
        codebook=CodebookConfig(d_sae=args.d_sae, vector=CodeVector(args.vector)), seed=args.seed
    )
    start = time.perf_counter()
    fid = code_fidelity(settings, model, data, task.metric, heads)
    circuit = circuit_reduction(settings, model, data, task.metric, heads, codebooks=fid.codebooks)
    seconds = time.perf_counter() - start
    print(f"{args.model} {args.task}, {args.n} pairs (seed {args.seed}); top {args.k} heads of exact patching "
          f"(seed {args.reference_seed}); vector {args.vector}, d_sae {args.d_sae}; {seconds:.1f} s "
          f"({ {k: round(v, 1) for k, v in fid.seconds.items()} })\n")  # fmt: skip
    print("| head | exact | code | fidelity | converse exact | converse code | converse fidelity | reduced | codes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for h in fid.heads:
        print(f"| {h.head} | {h.exact:.3f} | {h.code:.3f} | {h.fidelity:.2f} | {h.exact_converse:.3f} | "
              f"{h.code_converse:.3f} | {h.converse_fidelity:.2f} | {h.reduced:.3f} | {h.n_codes} |")  # fmt: skip
    c = circuit.to_dict()
    print(f"\ncircuit of {len(heads)} heads: clean {c['clean']:.3f}, corrupt {c['corrupt']:.3f}, reduced to codes "
          f"{c['reduced']:.3f} (faithfulness {c['faithfulness']:.3f}); exact patched {c['exact_patched']:.3f}, "
          f"code patched {c['code_patched']:.3f} (fidelity {c['fidelity']:.3f})")  # fmt: skip
    result = {
        "argv": list(argv) if argv is not None else None,
        "heads": [h.to_dict() for h in fid.heads],
        "circuit": c,
        "seconds": seconds,
        "phases": dict(fid.seconds),
    }
    (out / f"code_fidelity_{args.vector}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
