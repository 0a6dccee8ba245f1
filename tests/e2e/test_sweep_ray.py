"""Sweeps on Ray: a local Ray, a two-node cluster joined by --address, and a worker node killed mid-sweep.

Each starts real Ray processes (tens of seconds on the shared 2-core machine), hence ``slow``; every
cluster is stopped in teardown and the test fails if one of its processes outlives it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.sweep import COMPARED, SPEC_4, Cluster, _leftovers, ray_cluster, session_processes, write_spec

ray = pytest.importorskip("ray", reason="Ray (the headgraph[sweep] extra: make install-sweep) is not installed")
pytest.importorskip("duckdb", reason="duckdb (the headgraph[sweep] extra: make install-sweep) is not installed")

from circuits.sweep.results import query  # noqa: E402
from circuits.sweep.runner import run_sweep  # noqa: E402
from circuits.sweep.spec import load_spec  # noqa: E402

pytestmark = pytest.mark.slow

SWEEP_TIMEOUT_S = 480
EDGE_SPEC = SPEC_4.replace('name = "attribution-patching"', 'name = "edge-patching"').replace("n = [8]", "n = [48]")
"""Four cells slow enough (edge patching, seconds each) for a node to die while one runs."""


def _compared(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {r["cell"]: tuple(r[c] for c in COMPARED) for r in rows}


def _in_process(tmp: Path, text: str) -> dict[str, tuple[Any, ...]]:
    out = tmp / "in-process"
    summary = run_sweep(load_spec(write_spec(tmp, text)), out, in_process=True, progress=False)
    return _compared(query(summary.table, "SELECT * FROM results"))


def _sweep_cli(spec: Path, out: Path, cluster: Cluster) -> subprocess.Popen[str]:
    headgraph = str(Path(sys.executable).with_name("headgraph"))
    words = [
        headgraph,
        "sweep",
        str(spec),
        "--out",
        str(out),
        "--workers",
        "2",
        "--address",
        cluster.address,
        "--quiet",
    ]
    return subprocess.Popen(words, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cluster.env)


def test_local_ray_sweep_gives_the_in_process_results(tmp_path: Path) -> None:
    expected = _in_process(tmp_path, SPEC_4)
    spec = load_spec(write_spec(tmp_path))
    summary = run_sweep(spec, tmp_path / "ray", workers=2, progress=False)
    assert (summary.finished, summary.failed) == (4, 0)
    assert not ray.is_initialized()  # the sweep shut down the Ray it started
    assert _compared(query(summary.table, "SELECT * FROM results")) == expected


def test_two_node_cluster_via_address_gives_the_local_results(tmp_path: Path) -> None:
    expected = _in_process(tmp_path, SPEC_4)
    spec = write_spec(tmp_path)
    with ray_cluster(tmp_path / "cluster") as cluster:
        proc = _sweep_cli(spec, tmp_path / "out", cluster)
        log, _ = proc.communicate(timeout=SWEEP_TIMEOUT_S)
        assert proc.returncode == 0, log
    assert not _leftovers(cluster.ray_dir)  # stop() ended every process of the cluster
    rows = query(tmp_path / "out", "SELECT * FROM results")
    assert _compared(rows) == expected
    assert len({r["ray_node"] for r in rows}) == 2  # both nodes ran cells


def _busy_worker(cluster: Cluster, cpu_seconds: float) -> int | None:
    """A Ray worker process of the second node that has used ``cpu_seconds`` of CPU (it runs a cell)."""
    assert cluster.worker is not None
    for pid, cmd, cpu in session_processes(cluster.worker.pid):
        if ("default_worker" in cmd or cmd.startswith("ray::")) and cpu >= cpu_seconds:  # Ray retitles its workers
            return pid
    return None


def test_a_worker_node_killed_mid_sweep_is_survived(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, EDGE_SPEC)
    with ray_cluster(tmp_path / "cluster") as cluster:
        proc = _sweep_cli(spec, tmp_path / "out", cluster)
        end = time.monotonic() + SWEEP_TIMEOUT_S
        while _busy_worker(cluster, cpu_seconds=4.0) is None:
            assert proc.poll() is None and time.monotonic() < end, "no cell started on the second node"
            time.sleep(0.5)
        done_before = len(list((tmp_path / "out" / "cells").glob("*/row.json")))
        cluster.kill_worker()
        log, _ = proc.communicate(timeout=SWEEP_TIMEOUT_S)
        assert proc.returncode in (0, 1), log  # 1: a cell was recorded as failed
        survivors = cluster.alive_nodes()
    assert not _leftovers(cluster.ray_dir)  # stop() ended every process of the cluster
    rows = query(tmp_path / "out", "SELECT * FROM results")
    assert len(rows) == 4 and done_before < 4
    for r in rows:
        assert r["status"] == "ok" or r["error"], r  # retried and finished, or recorded with its error
    ok = {c: v for c, v in _compared(rows).items() if v[1] == "ok"}
    expected = _in_process(tmp_path, EDGE_SPEC)
    assert ok == {c: expected[c] for c in ok}
    (tmp_path / "summary.json").write_text(json.dumps({"ok": len(ok), "survivors": survivors}))
    print(f"killed the second node with {done_before} of 4 cells done: {len(ok)} finished, {4 - len(ok)} recorded")
