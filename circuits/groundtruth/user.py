"""A user's own ground truth, as a JSON or YAML file that ``headgraph score --truth FILE`` reads.

The format (every key but ``citation`` and one of ``heads``/``nodes``/``groups``/``edges`` is
optional)::

    name: ioi-mine                # default: the file's name without its suffix
    task: ioi
    citation: "Me (2026). The IOI circuit of SmolLM2, by hand."
    source: "notebook 03, exhaustive path patching"
    notes: "positions: S2 and END"
    model:                        # checked against the scored circuit's graph when given;
      name: smollm2-135m          # without it the truth takes the circuit's shape
      n_layers: 30
      n_heads: 9                  # query heads (grouped-query models: not the key/value heads)
      attn_only: false
    heads: [L9H9, L10H0]          # nodes of the circuit (heads) ...
    nodes: [MLP0]                 # ... and any other nodes (heads or MLPs)
    groups:                       # ... or by role, as the published circuits are
      name mover: [L9H9, L10H0]
    edges: ["L0H1->L9H9<v>", "L9H9->logits"]      # headgraph edge names (q/k/v for head inputs)
    edge_rules:                                    # group-to-group connections, expanded on the graph
      - {from: duplicate token, to: name mover, qkv: v}

Node and edge names are headgraph's (:mod:`circuits.graph`; the maps to EAP-IG, auto-circuit and
InterpBench names are in :mod:`circuits.formats.names`). ``heads`` and ``nodes`` become the group
``circuit``. A file with ``"schema": "headgraph.groundtruth"`` is read as a full published-style
document (:mod:`circuits.groundtruth.published`) instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from circuits.errors import CircuitFileError
from circuits.graph import ComponentGraph
from circuits.groundtruth.published import TRUTH_SCHEMA, TRUTH_SCHEMA_VERSION, GroundTruth, from_dict

__all__ = ["TRUTH_SUFFIXES", "load_truth_file"]

TRUTH_SUFFIXES = (".json", ".yaml", ".yml")
_KEYS = {"name", "task", "citation", "source", "notes", "variant", "model", "heads", "nodes", "groups", "edges",
         "edge_rules", "edge_positions"}  # fmt: skip


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CircuitFileError(f"{path}: no such ground-truth file") from None
    except UnicodeDecodeError as err:
        raise CircuitFileError(f"{path}: not a text file ({err})") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise CircuitFileError(f"{path}: not YAML ({str(err).splitlines()[0]})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CircuitFileError(f"{path}: not JSON ({err})") from None


def _names(data: Mapping[str, Any], key: str, src: str) -> list[str]:
    value = data.get(key, [])
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise CircuitFileError(f"{src}: '{key}' must be a list of names")
    return list(value)


def load_truth_file(path: str | Path, graph: ComponentGraph | None = None) -> GroundTruth:
    """Read a user ground-truth file (module docstring); ``graph`` supplies the shape if it has no ``model``.

    Raises:
        CircuitFileError: unreadable, malformed, unknown keys, names that are not on the model's
            graph, or no ``model`` and no ``graph``.
    """
    path = Path(path)
    src = str(path)
    data = _read(path)
    if not isinstance(data, dict):
        raise CircuitFileError(f"{src}: a ground-truth file holds one mapping (JSON object / YAML mapping)")
    if "schema" in data:
        return from_dict(data, source=src)
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise CircuitFileError(f"{src}: unknown keys {unknown} (known: {sorted(_KEYS)})")
    if not isinstance(data.get("citation"), str) or not data["citation"].strip():
        raise CircuitFileError(f"{src}: 'citation' is required (who found this circuit, where)")
    groups = data.get("groups", {})
    if not isinstance(groups, dict):
        raise CircuitFileError(f"{src}: 'groups' must map a role to a list of nodes")
    groups = {str(k): _names(groups, k, src) for k in groups}
    members = _names(data, "heads", src) + _names(data, "nodes", src)
    if members:
        groups = {"circuit": members, **groups}
    edges = _names(data, "edges", src)
    if not groups and not edges:
        raise CircuitFileError(f"{src}: give the circuit as 'heads', 'nodes', 'groups' or 'edges'")
    model = data.get("model")
    if model is None:
        if graph is None:
            raise CircuitFileError(f"{src}: no 'model' shape; give one, or score it against a circuit file")
        model = {"name": "the scored circuit's model", "n_layers": graph.n_layers, "n_heads": graph.n_heads,
                 "attn_only": not graph.has_mlps}  # fmt: skip
    if not isinstance(model, dict):
        raise CircuitFileError(f"{src}: 'model' must be a mapping with n_layers and n_heads")
    doc = {
        "schema": TRUTH_SCHEMA,
        "schema_version": TRUTH_SCHEMA_VERSION,
        "name": str(data.get("name", path.stem.removesuffix(".truth"))),
        "task": str(data.get("task", "")),
        "variant": str(data.get("variant", "user ground truth")),
        "model": {"d_model": 0, "attn_only": False, "name": "unspecified", **model},
        "citation": data["citation"],
        "source": str(data.get("source", src)),
        "notes": str(data.get("notes", "")),
        "groups": groups,
        "edge_rules": data.get("edge_rules", []),
        "edges": edges,
        "edge_positions": data.get("edge_positions", {}),
    }
    return from_dict(doc, source=src)
