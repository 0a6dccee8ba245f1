"""The sweep's one results table: a row per cell, written as Parquet, queried with DuckDB.

    duckdb -c "SELECT method, avg(node_auc) FROM 'out/sweep/results.parquet' WHERE status = 'ok' GROUP BY method"

Columns (:data:`COLUMNS`): what names the cell (model, task, method, label, settings as JSON, seed,
n), its status and error, the baseline (metric, clean, corrupt, gap, accuracies), the top-k items,
the ROC AUCs against the spec's ground truth, faithfulness CPR/CMD and curve (when asked), the
method's and the cell's seconds, the worker's peak memory, host, process and Ray node. A column a cell
does not have is null.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from circuits.errors import HeadgraphError
from circuits.sweep.spec import Cell

__all__ = ["COLUMNS", "TABLE", "query", "read_rows", "write_json_atomic", "write_table"]

TABLE = "results.parquet"
"""The table's file name under the sweep's output folder."""

COLUMNS: dict[str, str] = {
    "cell": "string", "model": "string", "task": "string", "method": "string", "label": "string",
    "settings": "string", "seed": "int64", "n": "int64", "status": "string", "error": "string",
    "level": "string", "metric": "string", "baseline_clean": "float64", "baseline_corrupt": "float64",
    "baseline_gap": "float64", "clean_accuracy": "float64", "corrupt_accuracy": "float64",
    "top_k": "list<string>", "truth": "string", "node_auc": "float64", "edge_auc": "float64",
    "cpr": "float64", "cmd": "float64", "curve_x": "list<float64>", "curve_y": "list<float64>",
    "method_seconds": "float64", "wall_seconds": "float64", "peak_memory_mb": "float64",
    "device": "string", "dtype": "string", "host": "string", "pid": "int64", "ray_node": "string",
    "warnings": "list<string>",
}  # fmt: skip
"""Column name → Arrow type of the results table."""


FILE_MODE = 0o644
"""Mode of the files written (a temporary file is created 0600)."""


def write_json_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    scalar = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    if name.startswith("list<"):
        return pa.list_(scalar[name[5:-1]])
    return scalar[name]


def read_rows(out: Path, cells: Sequence[Cell] | None = None) -> list[dict[str, Any]]:
    """The rows of ``cells`` (every cell folder when None) that have been written under ``out``."""
    folders = [out / "cells" / c.key for c in cells] if cells is not None else sorted((out / "cells").glob("*"))
    rows = []
    for folder in folders:
        try:
            rows.append(json.loads((folder / "row.json").read_text()))
        except (OSError, ValueError):
            continue
    return rows


def write_table(out: Path, cells: Sequence[Cell]) -> Path:
    """Gather the rows of ``cells`` into ``out/results.parquet`` (atomically) and return its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = read_rows(out, cells)
    schema = pa.schema([(name, _arrow_type(kind)) for name, kind in COLUMNS.items()])
    columns = {name: [_value(r.get(name), kind) for r in rows] for name, kind in COLUMNS.items()}
    table = pa.table(columns, schema=schema)
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{TABLE}.", dir=out)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, out / TABLE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out / TABLE


def _value(v: Any, kind: str) -> Any:
    if v is None:
        return None
    if kind == "float64":
        return float(v)
    if kind == "int64":
        return int(v)
    if kind == "string":
        return str(v)
    return list(v)


def query(table: str | Path, sql: str) -> list[dict[str, Any]]:
    """Run ``sql`` with DuckDB over the results table, named ``results`` in the query.

    Raises:
        HeadgraphError: no such table, or the query fails.
    """
    import duckdb

    table = Path(table)
    if table.is_dir():
        table = table / TABLE
    if not table.is_file():
        raise HeadgraphError(f"{table}: no results table (run headgraph sweep first)")
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW results AS SELECT * FROM read_parquet('{_sql_string(str(table))}')")
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except duckdb.Error as err:
        raise HeadgraphError(f"query failed: {err}".splitlines()[0]) from None
    finally:
        con.close()


def _sql_string(s: str) -> str:
    """``s`` inside a single-quoted SQL string.

    Examples:
        >>> _sql_string("it's")
        "it''s"
    """
    return s.replace("'", "''")
