"""``headgraph score``: a circuit file against a named ground truth, or every method on the planted models.

headgraph score out/ioi/circuit.json --truth ioi-wang2022
headgraph score out/ioi/circuit.json --truth golden/ioi-smollm2-135m
headgraph score out/case3/circuit.json --truth interpbench:cases/3
headgraph score out/ioi/circuit.json --truth my-truth.yaml
headgraph score --planted
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from circuits.errors import HeadgraphError


def _fmt(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.3f}"


def score_file(args: argparse.Namespace) -> int:
    from circuits.graph import NodeKind
    from circuits.groundtruth.truth import check_truth_spec, is_named_truth, resolve_truth
    from circuits.measures.regression import Origin, check_same_origin, describe, read_circuit
    from circuits.measures.roc import ZERO_TOL, evaluate, labels, precision_recall_at_k
    from circuits.scores import Level

    check_truth_spec(args.truth)  # fail fast on the name before reading the file
    hg = read_circuit(args.circuit)
    truth_spec = resolve_truth(args.truth, hg.scores.graph)
    truth = truth_spec.circuit(hg.scores.graph)  # the shape first: its message says what the truth is on
    if is_named_truth(args.truth):  # a user's file or an InterpBench folder names no comparable model and task
        origin = _truth_origin(args.truth, truth_spec)
        for note in check_same_origin(Origin.of(hg, args.circuit), origin, force=args.force):
            print(f"headgraph: warning: --force: scoring across {note}", file=sys.stderr)
    zero_tol = ZERO_TOL if args.zero_tol is None else args.zero_tol
    if zero_tol < 0:
        raise HeadgraphError(f"--zero-tol must be non-negative, got {zero_tol}")
    r = evaluate(hg.scores, truth, zero_tol=zero_tol)
    print(f"circuit: {describe(hg)}")
    print(f"ground truth: {truth_spec.name} ({truth_spec.variant})")
    print(f"  {truth_spec.citation}")
    print(f"node ROC AUC: {_fmt(r.node_auc)} (trapezoid), {_fmt(r.node_auc_pessimistic)} (pessimistic, ACDC) "
          f"over {r.n_nodes} nodes, {r.n_truth_nodes} in the ground truth")  # fmt: skip
    if hg.scores.level is Level.EDGE:
        print(f"edge ROC AUC: {_fmt(r.edge_auc)} (trapezoid), {_fmt(r.edge_auc_pessimistic)} (pessimistic)")
    for part, why in r.undefined.items():
        if not (part == "edge" and hg.scores.level is Level.NODE):
            print(f"{part} ROC AUC undefined: {why}")
    imp, lab, idx = labels(hg.scores, truth, Level.NODE)
    k_circuit = sum(1 for n in hg.circuit.nodes if n.kind in (NodeKind.HEAD, NodeKind.MLP))
    for what, k in (("ground-truth size", r.n_truth_nodes), ("the file's circuit", k_circuit)):
        if 0 < k <= len(idx):
            pr = precision_recall_at_k(imp, lab, k)
            print(f"top {k} ({what}): precision {pr.precision:.3f}, recall {pr.recall:.3f}, F1 {pr.f1:.3f} "
                  f"(O'Neill's TPR/TNR F1 {pr.oneill_f1:.3f})")  # fmt: skip
    ranks = {hg.scores.graph.nodes[idx[int(j)]]: rank for rank, j in enumerate(imp.argsort(descending=True), 1)}
    print("ground-truth nodes by role (rank by importance among the evaluated nodes):")
    for role, names in truth_spec.groups.items():
        cells = []
        for name in names:
            node = next(n for n in truth.nodes if str(n) == name)
            cells.append(f"{name} #{ranks[node]}" if node in ranks else f"{name} (unscored)")
        print(f"  {role}: {', '.join(cells)}")
    return 0


def _truth_origin(name: str, spec: Any) -> Any:
    """What a ground truth is of: its model and task (and, for a golden circuit, the config hash)."""
    from circuits.groundtruth.golden import load_golden
    from circuits.groundtruth.truth import GOLDEN_PREFIX
    from circuits.measures.regression import Origin

    config_hash = None
    if name.startswith(GOLDEN_PREFIX):
        config_hash = load_golden(name[len(GOLDEN_PREFIX) :]).pooled.model.config_hash
    return Origin(f"ground truth {spec.name}", spec.model.name, config_hash, spec.task)


def score_planted(args: argparse.Namespace) -> int:
    from circuits.groundtruth.benchmark import format_results, score_methods

    if args.pairs <= 0:
        raise HeadgraphError(f"--pairs must be positive, got {args.pairs}")
    methods = args.methods.split(",") if args.methods else None
    print(format_results(score_methods(methods, n_pairs=args.pairs)))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.planted:
        if args.circuit or args.truth:
            raise HeadgraphError("--planted scores the registered methods; it takes no circuit file or --truth")
        return score_planted(args)
    if not args.circuit or not args.truth:
        raise HeadgraphError("give a circuit file and --truth NAME (or --planted)")
    return score_file(args)


def register(sub: Any) -> None:
    s = sub.add_parser("score", help="score a circuit against a ground truth (ROC AUC, precision/recall)")
    s.add_argument("circuit", nargs="?", help="circuit file from discover (or a golden file)")
    s.add_argument("--truth", help="ground truth: a name (ioi-wang2022, golden/ioi-smollm2-135m), "
                                   "interpbench:FOLDER (an InterpBench case folder) or a JSON/YAML file")  # fmt: skip
    s.add_argument("--zero-tol", type=float, help="importance at most this × the largest counts as 0 (default 1e-6)")
    s.add_argument("--force", action="store_true", help="score a circuit of another model or task than the truth's")
    s.add_argument("--planted", action="store_true", help="score every registered method on the planted models")
    s.add_argument("--methods", help="with --planted: comma-separated method names (default: all)")
    s.add_argument("--pairs", type=int, default=16, help="with --planted: prompt pairs per model (default: 16)")
    s.set_defaults(func=run)
