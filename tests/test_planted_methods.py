"""Every registered discovery method, scored on the planted models (new methods join automatically)."""

from __future__ import annotations

import pytest

from circuits.discovery import METHODS
from circuits.groundtruth.benchmark import default_suite, format_results, score_methods

EXACT_METHODS = {"activation-patching"}
"""Methods that compute exact effects: they must rank the planted circuit perfectly (AUC 1)."""

CHANCE = 0.5


@pytest.mark.parametrize("name", METHODS.names())
def test_method_on_planted_models(name: str) -> None:
    results = score_methods([name], default_suite(), n_pairs=8)
    assert len(results) == len(default_suite())
    for r in results:
        assert not r.error, f"{name} failed on {r.planted}: {r.error}"
        assert 0.0 <= r.node_auc_pessimistic <= r.node_auc + 1e-12 <= 1.0 + 1e-12
        if name in EXACT_METHODS:
            assert r.node_auc == r.node_auc_pessimistic == 1.0, r
            assert r.edge_auc != r.edge_auc or r.edge_auc == 1.0, r  # NaN for node-level methods
        else:  # approximate methods may tie upstream heads with the inert distractors, never rank them below
            assert r.node_auc >= CHANCE, r


def test_table_lists_every_method_and_model() -> None:
    table = format_results(score_methods(["activation-patching"], default_suite()[:1], n_pairs=4))
    assert table.splitlines()[0].startswith("| method | planted model | node AUC")
    assert "| activation-patching | induction L0H1→L1H2 | 1.000 | 1.000 | — | — |" in table
