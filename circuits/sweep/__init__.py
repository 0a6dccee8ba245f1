"""Sweeps: a grid of models × tasks × methods × seeds × pair counts, run on Ray, gathered in one table.

Modules: :mod:`.spec` (the TOML grid), :mod:`.cell` (one cell, in any process), :mod:`.runner`
(Ray or in-process), :mod:`.results` (the Parquet table, DuckDB queries), :mod:`.report` (the
markdown summary and plots), :mod:`.shard` (exact patching split across Ray workers). Ray, pyarrow
and DuckDB come with the optional extra ``headgraph[sweep]``; importing this package imports none
of them.
"""

from circuits.sweep.spec import OWN_TASK, PLANTED_PREFIX, Cell, MethodSpec, Resources, SweepSpec, load_spec

__all__ = ["OWN_TASK", "PLANTED_PREFIX", "Cell", "MethodSpec", "Resources", "SweepSpec", "load_spec"]
