"""The field's file formats: MIB submissions and results, EAP-IG graphs, GraphML, InterpBench cases.

:func:`export_headgraph` and :func:`import_headgraph` convert a head graph (``headgraph discover``'s
``circuit.json``) to and from the formats of :class:`Format`; an export read back gives the same
head graph (its facts travel in an extension key the other tools ignore,
:mod:`circuits.formats.document`). The naming maps are in :mod:`circuits.formats.names`.

* ``mib``: an importance file for MIB's circuit track (EAP-IG's graph JSON, or ``.pt`` by the file
  name), checked against what MIB evaluates: every edge scored, MLPs present, q/k/v split.
* ``eap-ig``: the same EAP-IG ``Graph`` file without MIB's checks (unscored edges are left out;
  attention-only graphs are allowed), for EAP-IG's own tools (``Graph.from_json``/``from_pt``).
* ``graphml``: GraphML for graph tools (:mod:`circuits.formats.graphml`).
* ``auto-circuit``: auto-circuit's ``PruneScores`` (one tensor per destination module) and the
  kept edges, in a ``.pt`` file (:mod:`circuits.formats.autocircuit`); edge scores only.

InterpBench case folders (:func:`load_interpbench`) and MIB results files (:func:`read_mib_result`)
are read here too.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import torch

from circuits.errors import HeadgraphError
from circuits.formats.autocircuit import read_autocircuit, write_autocircuit
from circuits.formats.eapig import read_eapig, write_eapig
from circuits.formats.graphml import read_graphml, write_graphml
from circuits.formats.interpbench import InterpBenchCase, load_interpbench, read_interpbench_truth
from circuits.formats.mib import MIBResult, read_mib_result, submission_path, write_mib_results
from circuits.headgraph import HeadGraph
from circuits.scores import Level

__all__ = [
    "Format",
    "InterpBenchCase",
    "MIBResult",
    "check_mib_submission",
    "export_headgraph",
    "import_headgraph",
    "load_interpbench",
    "read_interpbench_truth",
    "read_mib_result",
    "submission_path",
    "write_mib_results",
]


class Format(Enum):
    """File formats a head graph is exported to and imported from."""

    MIB = "mib"
    EAP_IG = "eap-ig"
    GRAPHML = "graphml"
    AUTO_CIRCUIT = "auto-circuit"


def check_mib_submission(hg: HeadGraph) -> None:
    """Raise unless MIB would evaluate ``hg``'s scores as they are.

    MIB's graphs have MLPs and split q/k/v, and give every edge a score (0 where a file has none),
    so an unscored edge would silently rank as a 0.

    Raises:
        HeadgraphError: attention-only graph, unsplit q/k/v, or unscored edges of edge scores.
    """
    g = hg.scores.graph
    if not g.has_mlps:
        raise HeadgraphError("MIB's graphs have MLPs; export an attention-only circuit with --format eap-ig")
    if not g.split_qkv:
        raise HeadgraphError("MIB's graphs split head inputs into q, k and v; this circuit's graph does not")
    if hg.scores.level is Level.EDGE:
        n_nan = int(torch.isnan(hg.scores.values).sum())
        if n_nan:
            raise HeadgraphError(
                f"{n_nan} of {len(g.edges)} edges are unscored; MIB would rank them as score 0 "
                "(score every edge, or export with --format eap-ig)"
            )


def export_headgraph(hg: HeadGraph, fmt: Format, path: str | Path) -> Path:
    """Write ``hg`` in ``fmt`` (``.pt`` or JSON for mib/eap-ig, by the file name)."""
    if fmt is Format.GRAPHML:
        return write_graphml(hg, path)
    if fmt is Format.AUTO_CIRCUIT:
        return write_autocircuit(hg, path)
    if fmt is Format.MIB:
        check_mib_submission(hg)
    return write_eapig(hg, path)


def import_headgraph(path: str | Path, fmt: Format) -> HeadGraph:
    """Read a file of ``fmt`` as a head graph."""
    if fmt is Format.GRAPHML:
        return read_graphml(path)
    if fmt is Format.AUTO_CIRCUIT:
        return read_autocircuit(path)
    return read_eapig(path)
