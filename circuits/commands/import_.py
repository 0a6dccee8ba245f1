"""``headgraph import``: another tool's circuit file as a headgraph circuit file.

headgraph import ioi-eap-ig.json --format eap-ig --out out/imported/circuit.json
headgraph import importances.pt --format mib --out out/mib/circuit.json
headgraph import ioi.graphml --format graphml --out out/graphml/circuit.json
"""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from circuits.commands.export import _format
    from circuits.formats import import_headgraph

    fmt = _format(args.format)
    hg = import_headgraph(args.file, fmt)
    path = hg.save(args.out)
    s = hg.scores
    print(f"wrote {path} ({s.level.value} scores on a {s.graph.n_layers}×{s.graph.n_heads} graph, "
          f"method {s.method}, model {hg.model.name})")  # fmt: skip
    return 0


def register(sub: Any) -> None:
    i = sub.add_parser(
        "import", help="read a MIB/EAP-IG (JSON or .pt), GraphML or auto-circuit (.pt) file as a circuit file"
    )
    i.add_argument("file", help="the file to read")
    i.add_argument("--format", required=True, help="mib, eap-ig, graphml or auto-circuit")
    i.add_argument("--out", required=True, help="circuit.json to write")
    i.set_defaults(func=run)
