"""``headgraph export``: a circuit file in another tool's format.

headgraph export out/ioi/circuit.json --format mib --out submission/ioi_smollm2/importances.json
headgraph export out/ioi/circuit.json --format eap-ig --out ioi-eap-ig.pt
headgraph export out/ioi/circuit.json --format graphml --out ioi.graphml
"""

from __future__ import annotations

import argparse
from typing import Any

from circuits.errors import HeadgraphError


def _format(value: str) -> Any:
    from circuits.formats import Format

    try:
        return Format(value)
    except ValueError:
        raise HeadgraphError(f"--format must be one of {', '.join(f.value for f in Format)}, got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    from circuits.formats import export_headgraph
    from circuits.headgraph import HeadGraph

    fmt = _format(args.format)
    hg = HeadGraph.load(args.circuit)
    path = export_headgraph(hg, fmt, args.out)
    s = hg.scores
    print(f"wrote {path} ({fmt.value}: {s.level.value} scores on a {s.graph.n_layers}×{s.graph.n_heads} graph, "
          f"{len(hg.circuit.nodes)} circuit nodes, {len(hg.circuit.edges)} circuit edges)")  # fmt: skip
    return 0


def register(sub: Any) -> None:
    e = sub.add_parser("export", help="write a circuit file as MIB/EAP-IG (JSON or .pt), GraphML or auto-circuit (.pt)")
    e.add_argument("circuit", help="a circuit.json written by discover")
    e.add_argument("--format", required=True, help="mib, eap-ig, graphml or auto-circuit")
    e.add_argument("--out", required=True, help="file to write (.pt for a torch file with mib/eap-ig, else JSON)")
    e.set_defaults(func=run)
