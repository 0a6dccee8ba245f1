"""Run a sweep's cells on Ray (a local Ray started here, or a cluster joined by address) or in this process.

Each cell is one Ray task with the spec's resources (CPUs, GPUs, memory); at most ``workers`` cells
are in flight. A worker process that dies (killed, out of memory) is Ray's to retry, up to the
spec's ``max_retries``; a cell that still fails, or raises, is recorded with its error and the
others go on. The driver writes each cell's head-graph file and row as they arrive
(``cells/<key>/circuit.json``, then ``row.json``, which marks it finished), so a rerun skips the
finished cells, and at the end gathers the rows into one table (:mod:`.results`).

Ray (Moritz et al. 2018, "Ray: A Distributed Framework for Emerging AI Applications") comes with
the optional extra ``headgraph[sweep]``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from circuits.errors import HeadgraphError
from circuits.sweep.cell import CellOutput, base_row, run_cell
from circuits.sweep.results import write_json_atomic, write_table
from circuits.sweep.spec import Cell, SweepSpec

__all__ = ["OBJECT_STORE_BYTES", "SweepSummary", "cell_dir", "finished", "import_ray", "run_sweep", "start_local_ray"]

OBJECT_STORE_BYTES = 200 * 2**20
"""Object store of a local Ray (cells send back a row and a small JSON text: 200 MB is plenty)."""


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise HeadgraphError("this needs Ray: pip install 'headgraph[sweep]' (make install-sweep)") from None
    return ray


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did.

    Attributes:
        out: the output folder.
        cells: cells in the grid.
        skipped: cells already finished by an earlier run.
        finished: cells that finished now.
        failed: cells recorded with an error now.
        seconds: wall time of the run.
        table: the results table (Parquet).
    """

    out: Path
    cells: int
    skipped: int
    finished: int
    failed: int
    seconds: float
    table: Path


def cell_dir(out: Path, cell: Cell) -> Path:
    """The folder of ``cell``'s files under the sweep's output folder."""
    return out / "cells" / cell.key


def finished(out: Path, cell: Cell, spec: SweepSpec) -> bool:
    """Whether an earlier run finished ``cell`` under the same settings (its row says ok)."""
    try:
        row = json.loads((cell_dir(out, cell) / "row.json").read_text())
    except (OSError, ValueError):
        return False
    return row.get("status") == "ok" and row.get("fingerprint") == spec.fingerprint()


def _record(out: Path, cell: Cell, spec: SweepSpec, result: CellOutput) -> None:
    folder = cell_dir(out, cell)
    folder.mkdir(parents=True, exist_ok=True)
    if result.headgraph:
        write_json_atomic(folder / "circuit.json", result.headgraph)
    row = result.row | {"fingerprint": spec.fingerprint()}
    write_json_atomic(folder / "row.json", json.dumps(row, indent=1, default=str))


def _ray_cell(cell: Cell, spec: SweepSpec) -> CellOutput:
    """The body of a cell's Ray task (module level, so workers import it by name); the row also
    names the Ray node that ran it."""
    import ray

    result = run_cell(cell, spec)
    result.row["ray_node"] = ray.get_runtime_context().get_node_id()[:12]
    return result


def start_local_ray(num_cpus: float, num_gpus: float = 0.0) -> None:
    """Start an embedded Ray on this machine with a small object store and no dashboard."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        object_store_memory=OBJECT_STORE_BYTES,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    address: str | None = None,
    workers: int = 1,
    in_process: bool = False,
    progress: bool = True,
    on_cell: Callable[[dict[str, Any]], None] | None = None,
) -> SweepSummary:
    """Run every unfinished cell of ``spec`` and write the results table under ``out``.

    Args:
        address: a Ray cluster to join (default: ``RAY_ADDRESS``, else a local Ray started here).
        workers: most cells in flight at once (a local Ray gets ``workers × num_cpus`` cores).
        in_process: run the cells one after another in this process, without Ray.
        on_cell: called with each row as it arrives.

    Raises:
        HeadgraphError: a bad ``workers``, or Ray missing or unreachable.
    """
    if workers <= 0:
        raise HeadgraphError(f"--workers must be positive, got {workers}")
    start = time.perf_counter()
    out = Path(out)
    cells = spec.cells()
    todo = [c for c in cells if not finished(out, c, spec)]
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="sweep", unit="cell", disable=not progress)
    counts = {"ok": 0, "failed": 0}

    def arrive(cell: Cell, result: CellOutput) -> None:
        _record(out, cell, spec, result)
        counts[result.row["status"]] += 1
        bar.set_postfix(failed=counts["failed"], refresh=False)
        bar.update(1)
        if on_cell is not None:
            on_cell(result.row)

    try:
        if in_process:
            for cell in todo:
                arrive(cell, run_cell(cell, spec))
        elif todo:
            _run_on_ray(spec, todo, address or os.environ.get("RAY_ADDRESS"), workers, arrive)
    finally:
        bar.close()
    table = write_table(out, cells)
    return SweepSummary(
        out, len(cells), len(cells) - len(todo), counts["ok"], counts["failed"], time.perf_counter() - start, table
    )


def _run_on_ray(
    spec: SweepSpec, todo: list[Cell], address: str | None, workers: int, arrive: Callable[[Cell, CellOutput], None]
) -> None:
    ray = import_ray()
    res = spec.resources
    if ray.is_initialized():
        started = False
    elif address:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise HeadgraphError(f"cannot join the Ray cluster at {address}: {err}".splitlines()[0]) from None
        started = True
    else:
        start_local_ray(workers * res.num_cpus, workers * res.num_gpus)
        started = True
    try:
        task = ray.remote(_ray_cell).options(
            num_cpus=res.num_cpus,
            num_gpus=res.num_gpus,
            memory=res.memory_mb * 2**20 or None,
            max_retries=spec.max_retries,
            retry_exceptions=False,
        )
        spec_ref = ray.put(spec)
        waiting = list(todo)
        flying: dict[Any, Cell] = {}
        while waiting or flying:
            while waiting and len(flying) < workers:
                cell = waiting.pop(0)
                flying[task.remote(cell, spec_ref)] = cell
            done, _ = ray.wait(list(flying), num_returns=1)
            for ref in done:
                cell = flying.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker died more often than max_retries allows
                    error = f"{type(err).__name__} after {spec.max_retries} retries: {err}".splitlines()[0][:500]
                    result = CellOutput(base_row(cell) | {"status": "failed", "error": error})
                arrive(cell, result)
    finally:
        if started:
            ray.shutdown()
