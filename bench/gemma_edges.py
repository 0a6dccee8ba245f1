"""Gemma-3-270M on IOI at the edge level: EAP-IG's time and the faithfulness of its top edges.

Run: ``.venv/bin/python bench/gemma_edges.py --pairs 16 --threads 1`` (needs ``make install-gemma``).
Prints the time of one clean forward of the pairs (answer-position logits), EAP-IG (``--ig-steps``,
default 5) over the full edge graph as a time and a ratio to that forward, and the normalized
faithfulness (resample ablation) of the top ``--percent`` % of edges ranked by signed score and by
|score|, evaluated on ``--eval-pairs`` held-out pairs (another seed) with
:class:`circuits.measures.faithfulness.CircuitRunner`. Edge terms on Gemma's post-norms are defined in
:mod:`circuits.model.edges`. With ``--check K``, the top ``K`` edges by |score| are also patched
exactly (one edge at a time, :func:`circuits.engine.edge_ablation.ablated_logits`) on the same
pairs, and the estimate's sign agreement and correlations with the exact effects are printed.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from circuits.discovery import EAPIG, Ablation
from circuits.engine.edge_ablation import ablated_logits, prepare_batch
from circuits.engine.edges import EdgeLayout
from circuits.measures.faithfulness import CircuitRunner, faithfulness_curve
from circuits.model import GEMMA_MODEL, load_model, run_to_logits, text_tokenizer
from circuits.selection import Ranking
from tasks import IOI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--eval-pairs", type=int, default=16)
    parser.add_argument("--ig-steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--percent", type=float, default=5.0)
    parser.add_argument("--check", type=int, default=0, help="patch the top K edges exactly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")

    model = load_model(GEMMA_MODEL, progress=False)
    tok = text_tokenizer(model)
    task = IOI()
    data = task.dataset(tok, args.pairs, seed=args.seed)
    held_out = task.dataset(tok, args.eval_pairs, seed=args.seed + 1)
    print(f"{len(data)} pairs ({data.clean.shape[1]} positions), {len(held_out)} held-out pairs")

    start = time.perf_counter()
    with torch.inference_mode():
        for batch in data.batches(args.batch_size):
            run_to_logits(model, batch.clean, batch.answer_pos)
    forward = time.perf_counter() - start
    print(f"one clean forward: {forward:.1f} s")

    start = time.perf_counter()
    scores = EAPIG(ig_steps=args.ig_steps, batch_size=args.batch_size)(model, data, IOI.metric, progress=False)
    eap_ig = time.perf_counter() - start
    b = scores.baseline
    print(
        f"EAP-IG ({args.ig_steps} steps, {len(scores.graph.edges)} edges): {eap_ig:.1f} s, "
        f"{eap_ig / forward:.1f}× one forward; clean metric {b.clean:.3f}, corrupt {b.corrupt:.3f}"
    )

    if args.check:
        start = time.perf_counter()
        top = scores.values.abs().argsort(descending=True)[: args.check]
        layout = EdgeLayout(scores.graph)
        exact = torch.zeros(len(top), dtype=torch.float64)
        for batch in data.batches(args.batch_size):
            prepared = prepare_batch(model, batch, Ablation.RESAMPLE)
            with torch.inference_mode():
                m_clean = IOI.metric(run_to_logits(model, batch.clean, batch.answer_pos), batch.targets)
            for i, edge in enumerate(top.tolist()):
                ablate = torch.zeros(1, len(scores.graph.edges), dtype=torch.bool)
                ablate[0, edge] = True
                logits = ablated_logits(model, layout, prepared, ablate)[0]
                exact[i] += float((IOI.metric(logits, batch.targets) - m_clean).sum())
        exact /= len(data)
        est = scores.values[top].double()
        agree = float((torch.sign(est) == torch.sign(exact)).double().mean())
        pearson = float(torch.corrcoef(torch.stack([est, exact]))[0, 1])
        ranks = torch.stack([est.argsort().argsort(), exact.argsort().argsort()]).double()
        print(
            f"top {len(top)} edges patched exactly ({time.perf_counter() - start:.1f} s): sign agreement {agree:.2f}, "
            f"Pearson {pearson:.3f}, Spearman {float(torch.corrcoef(ranks)[0, 1]):.3f}"
        )
        for i in range(min(5, len(top))):
            print(f"  {scores.graph.edges[int(top[i])]}: estimate {float(est[i]):+.4f}, exact {float(exact[i]):+.4f}")

    start = time.perf_counter()
    runner = CircuitRunner(model, held_out, IOI.metric, batch_size=args.batch_size)
    for ranking in (Ranking.SIGNED, Ranking.ABSOLUTE):
        curve = faithfulness_curve(runner, scores, ranking, percentages=(args.percent,), progress=False)
        point = curve.points[0]
        print(
            f"top {args.percent:g}% by {ranking.value} score: {point.kept} edges kept (of {point.asked} asked), "
            f"metric {point.metric:.3f} (clean {runner.clean:.3f}, all ablated {runner.empty:.3f}), "
            f"faithfulness {point.faithfulness:.3f}"
        )
    print(f"faithfulness evaluation: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
