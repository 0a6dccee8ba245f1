"""The sweep's spec, cells, in-process runs, resumption, failures, the results table and the report.

No Ray here (tests/e2e/test_sweep_ray.py runs the same sweeps on Ray); the table and report need the
``headgraph[sweep]`` extra (pyarrow, DuckDB).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from circuits.cli import main
from circuits.errors import HeadgraphError
from circuits.sweep.spec import Cell, MethodSpec, load_spec, spec_from_dict
from tests.helpers.sweep import SPEC_4, write_spec

pytest.importorskip("pyarrow", reason="pyarrow (the headgraph[sweep] extra: make install-sweep) is not installed")
pytest.importorskip("duckdb", reason="duckdb (the headgraph[sweep] extra: make install-sweep) is not installed")

from circuits.sweep.report import spearman, stability, write_report  # noqa: E402
from circuits.sweep.results import query  # noqa: E402
from circuits.sweep.runner import run_sweep  # noqa: E402

GRID = {"grid": {"models": ["planted:ioi"], "n": [4]}, "methods": [{"name": "activation-patching"}]}


def test_spec_cells_expand_the_grid_and_pair_planted_models_with_their_own_task(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    cells = spec.cells()
    assert len(cells) == 4
    assert {c.key.rsplit("__", 1)[0] for c in cells} == {
        f"planted-ioi__own__{m}__s{s}__n8" for m in ("activation-patching", "attribution-patching") for s in (0, 1)
    }
    mixed = spec_from_dict(
        {
            "grid": {"models": ["planted:ioi", "smollm2-135m"], "tasks": ["own", "ioi"], "n": [4]},
            "methods": [{"name": "eap"}],
        }  # fmt: skip
    )
    assert [(c.model, c.task) for c in mixed.cells()] == [("planted:ioi", "own"), ("smollm2-135m", "ioi")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid": {"models": [], "n": [4]}}, "grid.models is empty"),
        ({"grid": {"models": ["planted:nope"], "n": [4]}}, "unknown planted model"),
        ({"grid": {"models": ["planted:ioi"], "tasks": ["nope"], "n": [4]}}, "unknown task"),
        ({"grid": {"models": ["planted:ioi"], "n": [0]}}, "must be positive"),
        ({"grid": {"models": ["planted:ioi"], "n": ["4"]}}, "must hold int"),
        ({"methods": [{"name": "nope"}]}, "unknown method"),
        ({"methods": [{"name": "eap-ig", "settings": {"steps": "x"}}]}, "steps"),
        ({"methods": [{"name": "eap"}, {"name": "eap"}]}, "share a label"),
        ({"sweep": {"device": "tpu"}}, "unknown device"),
        ({"sweep": {"dtype": "fp8"}}, "unknown dtype"),
        ({"sweep": {"colour": 1}}, "unknown keys"),
        ({"resources": {"num_cpus": 0}}, "num_cpus must be positive"),
        ({"grid": {"models": ["smollm2-135m"], "tasks": ["own"], "n": [4]}}, "no cell"),
    ],
)
def test_bad_specs_raise_one_line_errors(change: dict[str, object], message: str) -> None:
    with pytest.raises(HeadgraphError, match=message):
        spec_from_dict(GRID | change)


def test_unreadable_spec_files_raise(tmp_path: Path) -> None:
    with pytest.raises(HeadgraphError, match="no such sweep"):
        load_spec(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[grid\n")
    with pytest.raises(HeadgraphError, match="not a readable TOML"):
        load_spec(tmp_path / "bad.toml")


def test_cell_keys_are_distinct_for_distinct_cells() -> None:
    cells = {Cell(m, t, MethodSpec("eap", label=lab), s, n) for m in ("a/b", "a:b") for t in ("x",)
             for lab in ("eap", "eap-2") for s in (0, 1) for n in (4, 8)}  # fmt: skip
    assert len({c.key for c in cells}) == len(cells)  # a/b and a:b differ by the hash ending their keys


def test_in_process_sweep_writes_every_cell_and_a_queryable_table(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    summary = run_sweep(spec, tmp_path / "out", in_process=True, progress=False)
    assert (summary.finished, summary.failed, summary.skipped) == (4, 0, 0)
    for cell in spec.cells():
        assert (tmp_path / "out" / "cells" / cell.key / "circuit.json").is_file()
    rows = query(summary.table, "SELECT * FROM results ORDER BY cell")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    exact = [r for r in rows if r["method"] == "activation-patching"]
    # the planted model's exact ground truth: exact patching ranks the circuit heads first (AUC 1)
    assert all(r["node_auc"] == 1.0 for r in exact)
    assert all(len(r["top_k"]) == 4 and r["wall_seconds"] > 0 and r["peak_memory_mb"] > 0 for r in rows)
    means = query(tmp_path / "out", "SELECT method, avg(node_auc) AS auc FROM results GROUP BY method ORDER BY 1")
    assert [m["method"] for m in means] == ["activation-patching", "attribution-patching"]


def test_a_rerun_skips_finished_cells_and_retries_failed_ones(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, SPEC_4.replace("seeds = [0, 1]", "seeds = [0]")))
    out = tmp_path / "out"
    first = run_sweep(spec, out, in_process=True, progress=False)
    assert (first.finished, first.skipped) == (2, 0)
    stamp = (out / "cells" / spec.cells()[0].key / "row.json").stat().st_mtime_ns
    again = run_sweep(spec, out, in_process=True, progress=False)
    assert (again.finished, again.skipped) == (0, 2)
    assert (out / "cells" / spec.cells()[0].key / "row.json").stat().st_mtime_ns == stamp
    changed = load_spec(
        write_spec(tmp_path, SPEC_4.replace("seeds = [0, 1]", "seeds = [0]").replace("top_k = 4", "top_k = 3"))
    )
    assert run_sweep(changed, out, in_process=True, progress=False).skipped == 0  # other settings: not the same result


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path: Path) -> None:
    text = SPEC_4.replace(
        'name = "attribution-patching"', 'name = "activation-patching"\nlabel = "bad"\nsettings = { heads = "L9H0" }'
    )  # fmt: skip  (the planted model has 3 layers)
    spec = load_spec(write_spec(tmp_path, text))
    summary = run_sweep(spec, tmp_path / "out", in_process=True, progress=False)
    assert (summary.finished, summary.failed) == (2, 2)
    bad = query(summary.table, "SELECT cell, error FROM results WHERE status = 'failed'")
    assert len(bad) == 2 and all("L9H0" in r["error"] and "__bad__" in r["cell"] for r in bad)
    assert not any((tmp_path / "out" / "cells" / r["cell"] / "circuit.json").exists() for r in bad)


def test_report_has_the_table_stability_agreement_and_plots(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    out = tmp_path / "out"
    run_sweep(spec, out, in_process=True, progress=False)
    report = write_report(out)
    text = (out / "report.md").read_text()
    assert "## Results (means over seeds)" in text and "## Top-k stability" in text and "## Method agreement" in text
    assert {p.name for p in report.plots} == {"stability.png", "agreement.png"}
    assert all(p.stat().st_size > 1000 for p in report.plots)
    rows = query(out, "SELECT * FROM results")
    stab = stability(rows)
    for (model, task, label, n), value in stab.items():
        sets = [set(r["top_k"]) for r in rows if (r["model"], r["task"], r["label"], r["n"]) == (model, task, label, n)]
        assert value == pytest.approx(len(sets[0] & sets[1]) / len(sets[0] | sets[1]))


def test_spearman_matches_scipy_on_ties() -> None:
    from scipy.stats import spearmanr

    a, b = [0.0, 0.0, 1.0, 3.0, 2.0], [0.5, 0.1, 0.1, 4.0, 4.0]
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert math.isnan(spearman([1.0, 1.0], [1.0, 2.0]))


def test_cli_sweep_in_process_report_and_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, SPEC_4.replace("seeds = [0, 1]", "seeds = [0]"))
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--in-process", "--quiet"]) == 0
    assert "2 finished, 0 failed" in capsys.readouterr().out
    assert main(["sweep", "report", str(out)]) == 0
    assert "# Sweep report" in capsys.readouterr().out
    assert main(["sweep", "query", str(out), "SELECT count(*) AS n FROM results"]) == 0
    assert "| 2 |" in capsys.readouterr().out
    assert main(["sweep", "query", str(out), "SELECT nope FROM results"]) == 2
    assert "headgraph: error: query failed" in capsys.readouterr().err
    assert main(["sweep", "report", str(tmp_path / "none")]) == 2
    row = json.loads(next((out / "cells").glob("*/row.json")).read_text())
    assert row["status"] == "ok" and row["fingerprint"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "a.toml", "b.toml"], "expected one spec file"),
        (["sweep", "missing.toml"], "no such sweep specification"),
        (["sweep", "report"], "sweep report expects one output folder"),
        (["sweep", "query", "out"], "expects an output folder and one SQL query"),
    ],
)
def test_cli_sweep_usage_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("headgraph: error: ") and message in err and err.count("\n") == 1


def test_cli_sweep_refuses_zero_workers_before_reading_the_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", str(write_spec(tmp_path)), "--workers", "0", "--out", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert "--workers must be positive" in captured.err and captured.out == ""


def test_an_edge_level_cell_has_an_edge_auc_and_a_readable_head_graph(tmp_path: Path) -> None:
    from circuits.headgraph import HeadGraph

    text = SPEC_4.replace('name = "attribution-patching"', 'name = "edge-patching"').replace(
        "seeds = [0, 1]", "seeds = [0]"
    )
    spec = load_spec(write_spec(tmp_path, text))
    summary = run_sweep(spec, tmp_path / "out", in_process=True, progress=False)
    assert summary.failed == 0
    (row,) = query(summary.table, "SELECT * FROM results WHERE method = 'edge-patching'")
    assert row["level"] == "edge" and 0.5 < row["edge_auc"] <= 1.0  # exact edge patching on the planted truth
    hg = HeadGraph.load(tmp_path / "out" / "cells" / row["cell"] / "circuit.json")
    assert hg.circuit.selection["pruned"] is True  # edge circuits are selected as discover does (pruned top-k)
    assert row["top_k"] == [str(e) for e, _ in hg.scores.ranked()[:4]]
