"""How well do ``sae-codes`` and ``sae-patching`` find a task's heads? ROC AUC, precision/recall at k, seconds.

Everything a comparison needs is a model, prompt pairs with their metric, and one or more
ground-truth sets of heads (:func:`evaluate`). On the embedded model there is no published
circuit, so :func:`main` computes a reference once: exact activation patching of every head on
``--reference-seed``'s pairs; "truth" is its top k heads by ``|effect|`` (k = 10 and 20 by
default). The methods then run on *other* pairs (``--seeds``; each seed draws new pairs and, for
the SAE methods, new training prompts and initial weights), so exact patching itself is scored
against the reference too (its AUC is not 1).
Planted-circuit models have an exact truth: call :func:`evaluate` with it. The table also has a
baseline without an SAE (:class:`OutputDifference`: how far each head's pooled output moves between
a clean prompt and its corrupt twin), to show what the SAE's discretisation adds or loses.

Metrics, over the model's heads only:
  * ROC AUC: probability that a true head has a larger importance than a false one (ties count
    half), importance = ``|value|``; unscored heads (NaN, e.g. off sae-patching's shortlist) rank
    below every scored head.
  * P@k: the fraction of the method's top k heads (by importance, ties in graph order) that are
    true. With a truth of k heads this is also the recall at k.

Run from the repository root (``python -m bench.sae_eval --help``); results print as a Markdown
table (mean ± sd over seeds) and are written as JSON. Times are wall seconds and this process's CPU
seconds (with one torch thread on a shared machine, the CPU seconds approximate a quiet machine's
wall time).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.discovery import (
    ActivationPatching,
    DiscoveryMethod,
    SAECodes,
    SAECodeSettings,
    SAEPatching,
    build_method,
    pair_outputs,
)
from circuits.discovery.sae_codes import head_values
from circuits.graph import Node
from circuits.headgraph import HeadGraph
from circuits.model import graph_of, load_model, text_tokenizer
from circuits.pipeline import discover
from circuits.scores import Level, Scores
from tasks import TASKS, Metric, PromptPairDataset, Task


def head_importance(scores: Scores) -> Float[Tensor, " head"]:
    """``|value|`` per head (layer-major); unscored heads get ``-inf``. Edge scores (EAP-IG) count
    per head as the sum of the head's outgoing edges (:meth:`Scores.to_nodes`)."""
    v = scores.to_nodes().head_matrix(normalized=False).flatten().abs()
    return torch.where(v.isnan(), torch.full_like(v, -math.inf), v)


def roc_auc(importance: Float[Tensor, " n"], labels: Bool[Tensor, " n"]) -> float:
    """Area under the ROC curve (Mann–Whitney U with ties counted half).

    Examples:
        >>> roc_auc(torch.tensor([3.0, 2.0, 1.0, 0.0]), torch.tensor([True, False, True, False]))
        0.75
        >>> roc_auc(torch.tensor([1.0, 1.0]), torch.tensor([True, False]))
        0.5
    """
    pos, neg = importance[labels], importance[~labels]
    if not len(pos) or not len(neg):
        return math.nan
    greater = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def precision_at_k(importance: Float[Tensor, " n"], labels: Bool[Tensor, " n"], k: int) -> float:
    """Fraction of the ``k`` most important items (ties in index order) that are labelled true.

    Examples:
        >>> precision_at_k(torch.tensor([0.0, 5.0, 5.0, 1.0]), torch.tensor([True, True, False, False]), 2)
        0.5
    """
    order = sorted(range(len(importance)), key=lambda i: -float(importance[i]))[:k]
    return float(labels[order].double().mean())


def labels_of(truth: frozenset[Node], n_layers: int, n_heads: int) -> Bool[Tensor, " head"]:
    """Layer-major membership vector of a set of heads."""
    out = torch.zeros(n_layers * n_heads, dtype=torch.bool)
    for n in truth:
        out[n.layer * n_heads + int(n.head or 0)] = True
    return out


def top_heads(scores: Scores, k: int) -> frozenset[Node]:
    """The ``k`` heads with the largest ``|value|`` (a reference's "truth")."""
    return frozenset(n for n in scores.top_k(k).heads())


@dataclass(frozen=True)
class Row:
    """One method on one seed's pairs, scored against every truth set."""

    method: str
    seed: int
    seconds: float
    cpu_seconds: float
    auc: Mapping[str, float]
    precision: Mapping[str, float]
    n_scored: int


def evaluate(
    model: HookedTransformer,
    datasets: Mapping[int, PromptPairDataset],
    metric: Metric,
    truths: Mapping[str, frozenset[Node]],
    methods: Mapping[str, DiscoveryMethod],
    *,
    progress: bool = True,
) -> list[Row]:
    """Run every method on every seed's pairs and score its heads against every truth set.

    This is all a comparison needs: a model, prompt pairs (per seed) with their metric, and sets of
    true heads (a planted model's exact circuit, or a reference's top k). A method with a ``seed``
    field gets the pair seed as its own (new SAE training prompts and initial weights per seed).
    Precision is taken at k = the size of each truth set.
    """
    rows: list[Row] = []
    for seed, data in datasets.items():
        for label, method in methods.items():
            if dataclasses.is_dataclass(method) and "seed" in {f.name for f in dataclasses.fields(method)}:
                method = dataclasses.replace(method, seed=seed)
            start, cpu = time.perf_counter(), time.process_time()
            scores = method(model, data, metric, progress=progress)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            imp = head_importance(scores)
            auc, prec = {}, {}
            for name, truth in truths.items():
                lab = labels_of(truth, model.cfg.n_layers, model.cfg.n_heads)
                auc[name] = roc_auc(imp, lab)
                prec[name] = precision_at_k(imp, lab, len(truth))
            rows.append(Row(label, seed, seconds, cpu, auc, prec, int(torch.isfinite(imp).sum())))
            print(f"seed {seed} {label}: {seconds:.1f} s ({cpu:.1f} s cpu), AUC {auc}, P@k {prec}", flush=True)
    return rows


@dataclass(frozen=True)
class OutputDifference(SAECodeSettings):
    """Baseline without an SAE: a head's mean ``‖x_clean − x_corrupt‖`` over the positive pairs, on
    the same pooled head outputs ``sae-codes`` codes (value = −distance: an importance, like
    sae-codes'). Only the collection settings (pooling, positives, batch_size) matter."""

    name: ClassVar[str] = "output-difference"
    level: ClassVar[Level] = Level.NODE

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        outputs = pair_outputs(self, model, data, metric, progress=progress)
        graph = graph_of(model)
        return Scores(graph, Level.NODE, head_values(graph, outputs.distance()), self.name, outputs.baseline,
                      {}, time.perf_counter() - start)  # fmt: skip


def _ms(xs: list[float]) -> str:
    if len(xs) < 2:
        return f"{xs[0]:.3f}" if xs else "–"
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"


def table(rows: Sequence[Row], truths: Sequence[str]) -> str:
    """Markdown table: per method, mean ± sd over seeds of AUC and P@k per truth set, and seconds."""
    head = ["method", *(f"AUC ({t})" for t in truths), *(f"P@k=R@k ({t})" for t in truths), "wall s", "cpu s", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        cells = [method]
        cells += [_ms([r.auc[t] for r in mine]) for t in truths]
        cells += [_ms([r.precision[t] for r in mine]) for t in truths]
        for secs in ([r.seconds for r in mine], [r.cpu_seconds for r in mine]):
            cells.append(f"{statistics.mean(secs):.1f} ± {statistics.stdev(secs) if len(secs) > 1 else 0:.1f}")
        cells.append(str(len(mine)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reference(model: HookedTransformer, task: Task, n: int, seed: int, path: Path) -> Scores:
    """Exact all-head activation patching on ``seed``'s pairs, cached as a head-graph file."""
    if path.is_file():
        return HeadGraph.load(path).scores
    hg = discover(model, task, ActivationPatching(), n=n, seed=seed, top_k=20)
    hg.save(path)
    return hg.scores


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--task", default="ioi")
    p.add_argument("--n", type=int, default=64, help="pairs per seed (default 64)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--reference-seed", type=int, default=0)
    p.add_argument("--reference-n", type=int, default=64)
    p.add_argument("--k", type=int, nargs="+", default=[10, 20], help="truth = reference's top k heads")
    p.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="LABEL=NAME[:KEY=VALUE,...]",
        help="a method to evaluate (repeatable); default: sae-codes, sae-patching, activation-patching",
    )
    p.add_argument("--no-baseline", action="store_true", help="leave out the output-difference baseline")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="out/sae_eval")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, progress=not args.quiet)
    task = TASKS[args.task]()
    ref = reference(
        model, task, args.reference_n, args.reference_seed, out / f"reference_seed{args.reference_seed}.json"
    )
    truths = {f"top{k}": top_heads(ref, k) for k in args.k}
    methods: dict[str, DiscoveryMethod] = {}
    for spec in args.method:
        label, _, rest = spec.partition("=")
        name, _, settings = rest.partition(":")
        kv = dict(s.split("=", 1) for s in settings.split(",") if s)
        methods[label] = build_method(name, kv)
    if not methods:
        methods = {"sae-codes": SAECodes(), "sae-patching": SAEPatching(), "activation-patching": ActivationPatching()}
    if not args.no_baseline:
        methods["output-difference (no SAE)"] = OutputDifference()
    tok = text_tokenizer(model)
    datasets = {seed: task.dataset(tok, args.n, seed=seed) for seed in args.seeds}
    rows = evaluate(model, datasets, task.metric, truths, methods, progress=not args.quiet)
    text = table(rows, list(truths))
    print(f"\n{args.model} {args.task}, {args.n} pairs per seed, seeds {args.seeds}; truth: reference "
          f"(exact patching, seed {args.reference_seed}, {args.reference_n} pairs) top k by |effect|; "
          f"torch threads {torch.get_num_threads()}\n")  # fmt: skip
    print(text)
    (out / "results.json").write_text(
        json.dumps(
            {
                "argv": list(argv) if argv is not None else None,
                "truths": {k: sorted(map(str, v)) for k, v in truths.items()},
                "rows": [dataclasses.asdict(r) for r in rows],
            },
            indent=1,
        )
    )
    (out / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
