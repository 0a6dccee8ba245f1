"""Every registered discovery method, scored on the planted models (new methods join automatically)."""

from __future__ import annotations

import pytest

from circuits.discovery import METHODS, SAECodes
from circuits.groundtruth.benchmark import MethodResult, default_suite, format_results, score_methods

EXACT_METHODS = {"activation-patching", "sae-patching"}
"""Methods that compute exact effects on what they score: they must rank the planted circuit
perfectly (AUC 1). ``sae-patching`` patches its whole shortlist, which covers every head of these
small models."""

CORRELATIONAL_METHODS = {
    "sae-codes": "measured node AUC 0.17-0.50 on the four planted models (n_pairs 8 and 16)",
    "sae-code-edges": "measured node AUC 0.00-0.32, edge AUC 0.11-0.49 on the four planted models (n_pairs 8 and 16)",
}
"""Methods that count where the discrete SAE codes change between clean and corrupt. On the planted
models the inert distractor heads read the changed tokens too, so their codes change at least as
often as the circuit's: counting change is not measuring effect, and these methods rank the planted
circuit below chance. The test holds them to the chance bound as a strict xfail: it fails the day
they beat chance, so the README's claim gets revisited."""

CHANCE = 0.5


def _check_ranges(name: str, results: list[MethodResult]) -> None:
    assert len(results) == len(default_suite())
    for r in results:
        assert not r.error, f"{name} failed on {r.planted}: {r.error}"
        assert 0.0 <= r.node_auc_pessimistic <= r.node_auc + 1e-12 <= 1.0 + 1e-12


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            marks=[
                pytest.mark.xfail(strict=True, raises=AssertionError, reason=CORRELATIONAL_METHODS[n]),
                pytest.mark.slow,  # retrains the SAEs to see a known failure: not on every fast run
            ],
        )
        if n in CORRELATIONAL_METHODS
        else n
        for n in METHODS.names()
    ],
)
def test_method_on_planted_models(name: str) -> None:
    results = score_methods([name], default_suite(), n_pairs=8)
    _check_ranges(name, results)
    for r in results:
        if name in EXACT_METHODS:
            assert r.node_auc == r.node_auc_pessimistic == 1.0, r
            assert r.edge_auc != r.edge_auc or r.edge_auc == 1.0, r  # NaN for node-level methods
        else:  # approximate methods may tie upstream heads with the inert distractors, never rank them below
            assert r.node_auc >= CHANCE, r


@pytest.mark.parametrize("name", sorted(CORRELATIONAL_METHODS))
def test_correlational_methods_run_on_planted_models(name: str) -> None:
    """The part of the contract the SAE-count methods do meet: they run and give valid AUCs."""
    _check_ranges(name, score_methods([name], default_suite(), n_pairs=8))


def test_table_lists_every_method_and_model() -> None:
    table = format_results(score_methods(["activation-patching"], default_suite()[:1], n_pairs=4))
    assert table.splitlines()[0].startswith("| method | planted model | node AUC")
    assert "| activation-patching | induction L0H1→L1H2 | 1.000 | 1.000 | — | — |" in table


SAE_SEEDS = range(5)
"""The issue's acceptance: on the IOI-like planted model, ``sae-codes`` ranks the planted heads above
every distractor in at least 4 of 5 seeds."""


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "measured 0 of 5 seeds on both default IOI placements (16 pairs): the circuit heads show 0-2 "
        "positive-only codes, the best distractor 2-6 (shared SAE, the paper's settings); per-head SAEs "
        "also 0 of 5 (circuit 0-7, best distractor 4-8); last-position pooling 0 of 5. README, 'SAE codes'"
    ),
)
def test_sae_codes_ranks_the_planted_ioi_heads_above_every_distractor() -> None:
    wins = 0
    for seed in SAE_SEEDS:
        for planted in (p for p in default_suite() if p.name == "ioi"):
            data = planted.task.dataset(16, seed=seed)
            scores = SAECodes(seed=seed)(planted.model, data, planted.task.metric, progress=False)
            count = {n: -v for n, v in scores.ranked()}
            circuit = [count.get(h, 0.0) for h in planted.circuit_heads]
            distractors = [v for n, v in count.items() if n not in planted.circuit_heads]
            wins += min(circuit) > max(distractors)
    assert wins >= 4 * sum(p.name == "ioi" for p in default_suite())
