"""bench/overlap_seeds.py: the seed spread against its definitions on generated runs."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.overlap_seeds import load_runs, markdown, shared_in_every_run, spread, stability

HEADS = [f"L{layer}H{head}" for layer in range(6) for head in range(4)]
FRACTIONS = (0.01, 0.02, 0.05)


def _run(seed: int, rng: random.Random, **overrides: Any) -> dict[str, Any]:
    """A stages.json record with random circuits (only the fields the summary reads)."""
    curve = []
    for fraction in FRACTIONS:
        ioi, co = set(rng.sample(HEADS, rng.randint(1, 8))), set(rng.sample(HEADS, rng.randint(1, 8)))
        curve.append(
            {
                "fraction": fraction,
                "ioi": sorted(ioi),
                "colored_objects": sorted(co),
                "ioi_in_co": len(ioi & co) / len(ioi),
                "random": {"a_in_b_mean": rng.random()},
                "random_layer_matched": {"a_in_b_mean": rng.random()},
            }
        )
    record = {
        "model": "m",
        "dtype": "float32",
        "n": 6,
        "seed": seed,
        "rule": {"shortlist": 20},
        "seconds": {"ioi": 1.0, "colored-objects": 2.0},
        "curve": curve,
    }
    return {**record, **overrides}


def _write(tmp: Path, runs: list[dict[str, Any]]) -> list[Path]:
    folders = []
    for i, run in enumerate(runs):
        (tmp / str(i)).mkdir()
        (tmp / str(i) / "stages.json").write_text(json.dumps(run))
        folders.append(tmp / str(i))
    return folders


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5))
def test_spread_and_stability_follow_their_definitions(seed: int, n_runs: int) -> None:
    rng = random.Random(seed)
    runs = [_run(s, rng) for s in range(n_runs)]
    for i, s in enumerate(spread(runs)):
        values = [r["curve"][i]["ioi_in_co"] for r in runs]
        assert s.fraction == FRACTIONS[i] and list(s.ioi_in_co) == values
        assert s.mean == pytest.approx(sum(values) / n_runs)
        assert s.sd == pytest.approx(statistics.stdev(values) if n_runs > 1 else 0.0)
        assert s.random == pytest.approx(sum(r["curve"][i]["random"]["a_in_b_mean"] for r in runs) / n_runs)
    for task, key in (("ioi", "ioi"), ("colored-objects", "colored_objects")):
        sets = [set(r["curve"][1][key]) for r in runs]
        pairs, kept = stability(runs, task)
        assert len(pairs) == n_runs * (n_runs - 1) // 2
        expected = [len(a & b) / len(a | b) for i, a in enumerate(sets) for b in sets[i + 1 :]]
        assert pairs == pytest.approx(expected)
        assert kept == set.intersection(*sets)
    both = [set(r["curve"][1]["ioi"]) & set(r["curve"][1]["colored_objects"]) for r in runs]
    assert shared_in_every_run(runs) == set.intersection(*both)
    assert "mean ± sd over runs" in markdown(runs, "cmd")


@pytest.mark.parametrize(("override", "message"), [({"n": 8}, "differ in 'n'"), ({"seed": 0}, "seed is repeated")])
def test_runs_that_are_not_a_seed_spread_are_refused(tmp_path: Path, override: dict[str, Any], message: str) -> None:
    rng = random.Random(0)
    folders = _write(tmp_path, [_run(0, rng), {**_run(1, rng), **override}])
    with pytest.raises(ValueError, match=message):
        load_runs(folders)


def test_a_precision_difference_is_allowed_and_shown(tmp_path: Path) -> None:
    rng = random.Random(1)
    runs = load_runs(_write(tmp_path, [_run(0, rng, dtype="bfloat16"), _run(1, rng)]))
    text = markdown(runs, "cmd")
    assert "seed 0 (bfloat16" in text and "seed 1 (float32" in text
