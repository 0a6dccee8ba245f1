"""bench/sae_eval.py: its metrics against their definitions, and an evaluation with an exact truth."""

from __future__ import annotations

import itertools

import pytest
import torch

from bench.sae_eval import OutputDifference, evaluate, precision_at_k, roc_auc, table
from circuits.discovery import ActivationPatching, Positives, SAECodes
from tasks import LogitDiff
from tests.helpers.models import TinyFactory
from tests.helpers.sae import FAST, LIVE, marked_dataset, planted

METRIC = LogitDiff()


@pytest.mark.parametrize("seed", range(3))
def test_roc_auc_is_the_fraction_of_correctly_ordered_pairs(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    imp = torch.randint(0, 4, (12,), generator=g).float()
    imp[0] = -torch.inf  # an unscored item
    lab = torch.rand(12, generator=g) < 0.4
    lab[:2] = torch.tensor([True, False])
    pairs = list(itertools.product(imp[lab].tolist(), imp[~lab].tolist()))
    expected = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert roc_auc(imp, lab) == pytest.approx(expected)
    k = int(lab.sum())
    top = sorted(range(12), key=lambda i: (-float(imp[i]), i))[:k]
    assert precision_at_k(imp, lab, k) == pytest.approx(float(lab[top].float().mean()))


def test_evaluate_with_a_planted_truth(tiny_model: TinyFactory) -> None:
    """A model, pairs per seed and a set of true heads are all an evaluation needs."""
    model = planted(tiny_model)
    datasets = {seed: marked_dataset(seed=seed) for seed in (0, 1)}
    methods = {
        "sae-codes": SAECodes(positives=Positives.ALL, l1_coefficient=1e-3, **FAST),  # type: ignore[arg-type]
        "activation-patching": ActivationPatching(),
        "output-difference": OutputDifference(positives=Positives.ALL),
    }
    rows = evaluate(model, datasets, METRIC, {"planted": frozenset(LIVE)}, methods, progress=False)
    assert [(r.method, r.seed) for r in rows] == [(m, s) for s in (0, 1) for m in methods]
    for r in rows:
        if r.method != "activation-patching":  # the marked task's metric need not depend on the heads
            assert r.auc["planted"] == 1.0 and r.precision["planted"] == 1.0, r
    text = table(rows, ["planted"])
    assert text.count("\n") == 1 + len(methods) and "1.000 ± 0.000" in text
