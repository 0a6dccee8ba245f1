"""The head-graph document: a circuit with its scores, model, task and method, as JSON.

A :class:`HeadGraph` is what ``headgraph discover`` writes and ``headgraph show`` reads. The file
carries a schema name and version; reading a file that is not a head graph, or has a version this
code does not know, raises :class:`~circuits.errors.CircuitFileError` with one readable line.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from circuits.errors import CircuitFileError, HeadgraphError
from circuits.graph import ComponentGraph, Edge, Node
from circuits.model import ModelInfo
from circuits.scores import Baseline, Circuit, Level, Scores

__all__ = ["SCHEMA", "SCHEMA_VERSION", "HeadGraph", "TaskRun"]

SCHEMA = "headgraph.circuit"
SCHEMA_VERSION = 1


def _package_version() -> str:
    try:
        return version("headgraph")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class TaskRun:
    """Which data a result was computed on.

    Attributes:
        name: registered task name.
        settings: the task's settings (its dataclass fields), JSON-ready.
        seed: seed of the prompt pairs.
        n_pairs: number of valid pairs used.
        tokenizer: the tokenizer the pairs were validated for.
        dropped: pairs dropped in validation, by reason.
    """

    name: str
    seed: int
    n_pairs: int
    tokenizer: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    dropped: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HeadGraph:
    """A discovered circuit and everything needed to interpret and reproduce it.

    ``warnings`` are the problems found with the result when it was made (a degenerate baseline,
    :mod:`circuits.result_checks`), kept with it so that every reader sees them. ``code_labels``
    (optional) labels circuit heads by their discrete SAE codes: head name →
    :meth:`circuits.analysis.code_labels.HeadLabel.to_dict`.
    """

    model: ModelInfo
    task: TaskRun
    scores: Scores
    circuit: Circuit
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    headgraph_version: str = field(default_factory=_package_version)
    warnings: tuple[str, ...] = ()
    code_labels: Mapping[str, Any] = field(default_factory=dict)
    positions: Mapping[str, Any] = field(default_factory=dict)
    """Optional (``--set positions=named``): ``labels`` and the kept ``pairs`` ``[edge, label, score,
    normalized]``, best first (:func:`circuits.discovery.position_setting.position_selection`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (scored items only; NaN scores are omitted)."""
        s = self.scores
        order = s.order()
        norm = s.normalized.tolist()
        vals = s.values.tolist()
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "headgraph_version": self.headgraph_version,
            "created": self.created,
            "warnings": list(self.warnings),
            "model": self.model.to_dict(),
            "task": {
                "name": self.task.name,
                "seed": self.task.seed,
                "n_pairs": self.task.n_pairs,
                "tokenizer": self.task.tokenizer,
                "settings": dict(self.task.settings),
                "dropped": dict(self.task.dropped),
            },
            "method": {
                "name": s.method,
                "params": dict(s.params),
                "seconds": _finite(s.seconds),
                "warnings": list(s.warnings),
            },
            "baseline": {k: _finite(v) if isinstance(v, float) else v for k, v in s.baseline.__dict__.items()},
            "graph": {
                "n_layers": s.graph.n_layers,
                "n_heads": s.graph.n_heads,
                "has_mlps": s.graph.has_mlps,
                "split_qkv": s.graph.split_qkv,
            },
            "scores": {
                "level": s.level.value,
                "ids": [str(s.items[i]) for i in order],
                "values": [vals[i] for i in order],
                "normalized": [norm[i] for i in order],
            },
            "circuit": {
                "nodes": [str(n) for n in sorted(self.circuit.nodes, key=Node.sort_key)],
                "edges": sorted(str(e) for e in self.circuit.edges),
                "selection": dict(self.circuit.selection),
            },
            **({"code_labels": dict(self.code_labels)} if self.code_labels else {}),
            **({"positions": dict(self.positions)} if self.positions else {}),
        }

    def save(self, path: str | Path) -> Path:
        """Write the JSON file atomically (parent folders are created).

        Raises:
            HeadgraphError: a non-finite baseline metric or score (such a file could not be read back).
        """
        path = Path(path)
        data = self.to_dict()
        b = data["baseline"]
        if not _baseline_ok(b["clean"], b["corrupt"]):
            raise HeadgraphError(
                f"not saving {path}: the baseline is not finite (clean {b['clean']}, corrupt {b['corrupt']})"
            )
        if not all(math.isfinite(v) for v in data["scores"]["values"]):
            raise HeadgraphError(f"not saving {path}: some scores are infinite")
        try:
            text = json.dumps(data, indent=1, allow_nan=False) + "\n"
        except ValueError:
            raise HeadgraphError(f"not saving {path}: it would hold a non-finite number") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)  # readers see the old file or the whole new one
        finally:
            Path(tmp).unlink(missing_ok=True)
        return path

    @staticmethod
    def load(path: str | Path) -> HeadGraph:
        """Read a head-graph JSON file.

        Raises:
            CircuitFileError: the file is missing, not JSON, not a head graph, or of another schema
                version.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CircuitFileError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise CircuitFileError(f"{path}: is a folder, not a circuit file") from None
        except OSError as err:
            raise CircuitFileError(f"{path}: cannot read ({err.strerror or type(err).__name__})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CircuitFileError(f"{path}: not a headgraph circuit file (not JSON: {err})") from None
        return HeadGraph.from_dict(data, source=str(path))

    @staticmethod
    def from_dict(data: Any, *, source: str = "<dict>") -> HeadGraph:
        """Inverse of :meth:`to_dict`; see :meth:`load` for the errors."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise CircuitFileError(f'{source}: not a headgraph circuit file (no "schema": "{SCHEMA}")')
        if data.get("schema_version") != SCHEMA_VERSION:
            raise CircuitFileError(
                f"{source}: circuit schema version {data.get('schema_version')!r} is not supported "
                f"(this headgraph reads version {SCHEMA_VERSION})"
            )
        try:
            return _from_dict(data)
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            AttributeError,
            ArithmeticError,
            RuntimeError,
            HeadgraphError,
        ) as err:
            first = str(err).splitlines()[0] if str(err) else "no detail"
            raise CircuitFileError(f"{source}: malformed circuit file ({type(err).__name__}: {first})") from None


def _baseline_ok(clean: object, corrupt: object) -> bool:
    """Both baseline metrics finite numbers, or both unknown (``null``: a circuit imported from a format
    that does not carry them, e.g. an EAP-IG graph file). One unknown, NaN or infinity is not a result.

    Examples:
        >>> _baseline_ok(4.2, 0.1), _baseline_ok(None, None), _baseline_ok(None, 0.1), _baseline_ok(float("inf"), 0.0)
        (True, True, False, False)
    """
    if clean is None and corrupt is None:
        return True
    return all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in (clean, corrupt))


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def _int(x: Any) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise TypeError(f"expected an integer, got {x!r}")
    return x


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _from_dict(data: dict[str, Any]) -> HeadGraph:
    g = data["graph"]
    graph = ComponentGraph(_int(g["n_layers"]), _int(g["n_heads"]), bool(g["has_mlps"]), bool(g["split_qkv"]))
    sc = data["scores"]
    level = Level(sc["level"])
    if level is Level.NODE:
        ids = [graph.node_index(Node.parse(i, graph.n_layers)) for i in sc["ids"]]
        n = len(graph.nodes)
    else:
        ids = [graph.edge_index(Edge.parse(i, graph.n_layers)) for i in sc["ids"]]
        n = len(graph.edges)
    scored = [float(v) for v in sc["values"]]
    if len(scored) != len(ids) or len(sc["normalized"]) != len(ids):
        raise ValueError(f"{len(ids)} scored ids but {len(scored)} values and {len(sc['normalized'])} normalized")
    if len(set(ids)) != len(ids):
        raise ValueError("an id is scored twice")
    if not all(math.isfinite(v) for v in scored):
        raise ValueError("a score is not a finite number")
    values = torch.full((n,), math.nan)
    values[torch.tensor(ids, dtype=torch.long)] = torch.tensor(scored)
    b = data["baseline"]
    if not _baseline_ok(b["clean"], b["corrupt"]):
        raise ValueError(f"the baseline is not finite (clean {b['clean']}, corrupt {b['corrupt']})")
    baseline = Baseline(
        metric=str(b["metric"]),
        clean=_nan(b["clean"]),
        corrupt=_nan(b["corrupt"]),
        clean_accuracy=_nan(b.get("clean_accuracy")),
        corrupt_accuracy=_nan(b.get("corrupt_accuracy")),
    )
    m = data["method"]
    scores = Scores(
        graph,
        level,
        values,
        str(m["name"]),
        baseline,
        dict(m.get("params", {})),
        _nan(m.get("seconds")),
        tuple(str(w) for w in m.get("warnings", [])),
    )
    c = data["circuit"]
    circuit = Circuit(
        graph,
        frozenset(Node.parse(x, graph.n_layers) for x in c["nodes"]),
        frozenset(Edge.parse(x, graph.n_layers) for x in c["edges"]),
        dict(c.get("selection", {})),
    )
    t = data["task"]
    task = TaskRun(
        name=str(t["name"]),
        seed=_int(t["seed"]),
        n_pairs=_int(t["n_pairs"]),
        tokenizer=str(t.get("tokenizer", "")),
        settings=dict(t.get("settings", {})),
        dropped={str(k): int(v) for k, v in t.get("dropped", {}).items()},
    )
    model = ModelInfo(**data["model"])
    notes = data.get("warnings", [])
    if not isinstance(notes, list):
        raise TypeError("warnings must be a list")
    labels = data.get("code_labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, dict) for v in labels.values()):
        raise TypeError("code_labels must map head names to objects")
    for head in labels:
        Node.parse(head, graph.n_layers)
    positions = data.get("positions", {})
    if positions:
        names = [str(x) for x in positions["labels"]]
        for edge, label, *_ in positions["pairs"]:
            Edge.parse(edge, graph.n_layers)
            if label not in names:
                raise ValueError(f"position pair label {label!r} is not one of {names}")
    return HeadGraph(
        model,
        task,
        scores,
        circuit,
        str(data["created"]),
        str(data["headgraph_version"]),
        tuple(map(str, notes)),
        labels,
        positions,
    )
