"""A sweep's specification: the grid of models × tasks × methods × seeds × pair counts, from TOML.

    [sweep]
    top_k = 5                 # circuit size kept per cell
    truth = "planted"         # ground truth for the AUC columns ("planted", a --truth name, or "")
    faithfulness = false      # CPR/CMD curves per cell (costly)
    dtype = "float32"
    device = "cpu"            # cpu | cuda | auto
    max_retries = 2           # re-runs of a cell whose worker process died

    [resources]               # per cell, as Ray schedules it
    num_cpus = 1
    num_gpus = 0
    memory_mb = 0

    [grid]
    models = ["planted:ioi", "planted:induction"]
    tasks = ["own"]
    seeds = [0, 1]
    n = [16]

    [[methods]]
    name = "activation-patching"
    [[methods]]
    name = "eap-ig"
    label = "eap-ig-5"
    settings = { ig_steps = 5 }

A ``planted:NAME`` model (:data:`circuits.groundtruth.PLANTED`) pairs only with the task ``own`` (its
own token-level task); any other model pairs with every registered task of the ``tasks`` list
(``own`` is skipped for it). Each combination is one :class:`Cell`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuits.errors import HeadgraphError
from circuits.model.precision import Precision

__all__ = ["OWN_TASK", "PLANTED_PREFIX", "Cell", "MethodSpec", "Resources", "SweepSpec", "load_spec"]

PLANTED_PREFIX = "planted:"
"""Model names ``planted:NAME`` mean a planted-circuit model (with its exact ground truth)."""

OWN_TASK = "own"
"""The task word that pairs a planted model with its own task."""

DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class Resources:
    """What one cell asks Ray for.

    Attributes:
        num_cpus: CPU cores (also the torch threads of the cell).
        num_gpus: GPUs (0 on a CPU machine; fractions share one).
        memory_mb: memory to reserve (0: no reservation).
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int = 0

    def __post_init__(self) -> None:
        if not self.num_cpus > 0:
            raise HeadgraphError(f"resources.num_cpus must be positive, got {self.num_cpus}")
        if self.num_gpus < 0 or self.memory_mb < 0:
            raise HeadgraphError(
                f"resources.num_gpus and memory_mb must be >= 0, got {self.num_gpus}, {self.memory_mb}"
            )


def _setting_text(value: Any) -> str:
    """A TOML setting value as the text ``--set`` would give (lists comma-separated)."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class MethodSpec:
    """One method of the grid with its settings; ``label`` tells apart two settings of one method.

    ``settings`` may be given as a mapping; it is kept as sorted ``(key, text)`` pairs, the texts
    ``--set KEY=VALUE`` would give.
    """

    name: str
    settings: tuple[tuple[str, str], ...] | Mapping[str, Any] = ()
    label: str = ""

    def __post_init__(self) -> None:
        from circuits.discovery import METHODS

        pairs = self.settings.items() if isinstance(self.settings, Mapping) else self.settings
        object.__setattr__(self, "settings", tuple(sorted((str(k), _setting_text(v)) for k, v in pairs)))
        if self.name not in METHODS:
            raise HeadgraphError(f"unknown method {self.name!r}; valid methods: {', '.join(METHODS.names())}")
        self.build()  # bad settings fail here
        if not self.label:
            object.__setattr__(self, "label", self.name)
        if not re.fullmatch(r"[A-Za-z0-9._+-]+", self.label):
            raise HeadgraphError(f"method label {self.label!r}: use letters, digits and . _ + - only")

    def build(self) -> Any:
        """The configured discovery method."""
        from circuits.discovery import build_method

        return build_method(self.name, dict(self.settings))


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a method on ``n`` pairs of a task in a model, for one seed."""

    model: str
    task: str
    method: MethodSpec
    seed: int
    n: int

    @property
    def key(self) -> str:
        """A file-system-safe, unique name of the cell (its folder under ``cells/``).

        A model or task name with other characters than letters, digits and ``._+-`` has them
        replaced by ``-`` and the key ends in a hash of the original names, so keys stay distinct.

        Examples:
            >>> Cell("smollm2-135m", "ioi", MethodSpec("activation-patching"), 0, 8).key
            'smollm2-135m__ioi__activation-patching__s0__n8'
            >>> Cell("planted:ioi", "own", MethodSpec("eap"), 1, 8).key
            'planted-ioi__own__eap__s1__n8__c0f58e'
        """
        words = [self.model, self.task, self.method.label, f"s{self.seed}", f"n{self.n}"]
        safe = [re.sub(r"[^A-Za-z0-9._+-]", "-", w) for w in words]
        if safe != words:
            safe.append(hashlib.sha256("\0".join(words).encode()).hexdigest()[:6])
        return "__".join(safe)

    @property
    def settings_json(self) -> str:
        """The method's settings as canonical JSON (a column of the results table)."""
        return json.dumps(dict(self.method.settings), sort_keys=True)


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep (module docstring)."""

    models: tuple[str, ...]
    tasks: tuple[str, ...]
    methods: tuple[MethodSpec, ...]
    seeds: tuple[int, ...]
    n: tuple[int, ...]
    top_k: int = 10
    truth: str = ""
    faithfulness: bool = False
    dtype: Precision = Precision.FLOAT32
    device: str = "cpu"
    max_retries: int = 2
    resources: Resources = field(default_factory=Resources)

    def __post_init__(self) -> None:
        for name in ("models", "tasks", "methods", "seeds", "n"):
            if not getattr(self, name):
                raise HeadgraphError(f"grid.{name} is empty: a sweep needs at least one")
        if any(n <= 0 for n in self.n) or self.top_k <= 0:
            raise HeadgraphError(f"n and top_k must be positive, got n={list(self.n)}, top_k={self.top_k}")
        if self.device not in DEVICES:
            raise HeadgraphError(f"unknown device {self.device!r}; valid devices: {', '.join(DEVICES)}")
        if self.max_retries < 0:
            raise HeadgraphError(f"max_retries must be >= 0, got {self.max_retries}")
        labels = [m.label for m in self.methods]
        if len(set(labels)) != len(labels):
            raise HeadgraphError(f"two methods share a label in {labels}: give each setting its own label")
        from circuits.groundtruth.planted import PLANTED
        from tasks import TASKS

        for m in self.models:
            if m.startswith(PLANTED_PREFIX) and m[len(PLANTED_PREFIX) :] not in PLANTED:
                raise HeadgraphError(f"unknown planted model {m!r}; valid: {', '.join(PLANTED.names())}")
        for t in self.tasks:
            if t != OWN_TASK and t not in TASKS:
                raise HeadgraphError(f"unknown task {t!r}; valid tasks: {OWN_TASK}, {', '.join(TASKS.names())}")
        if not self.cells():
            raise HeadgraphError("the grid has no cell: planted models need the task 'own', others a named task")

    def cells(self) -> list[Cell]:
        """Every cell of the grid, in a fixed order (models, tasks, methods, n, seeds)."""
        out = []
        for model, task, method, n, seed in itertools.product(
            self.models, self.tasks, self.methods, self.n, self.seeds
        ):
            if model.startswith(PLANTED_PREFIX) == (task == OWN_TASK):
                out.append(Cell(model, task, method, seed, n))
        return out

    def fingerprint(self) -> str:
        """A hash of what a cell's result depends on besides the cell (top-k, truth, dtype, ...)."""
        words = [self.top_k, self.truth, self.faithfulness, self.dtype.value, self.device]
        return hashlib.sha256(json.dumps(words).encode()).hexdigest()[:12]


def _tuple(table: Mapping[str, Any], key: str, kind: type, where: str) -> tuple[Any, ...]:
    value = table.get(key, [])
    if not isinstance(value, list):
        value = [value]
    for v in value:
        if not isinstance(v, kind) or isinstance(v, bool):
            raise HeadgraphError(f"{where}.{key} must hold {kind.__name__} values, got {v!r}")
    return tuple(value)


def _known(table: Mapping[str, Any], keys: set[str], where: str) -> None:
    if bad := sorted(set(table) - keys):
        raise HeadgraphError(f"{where}: unknown keys {bad}; valid: {sorted(keys)}")


def load_spec(path: str | Path) -> SweepSpec:
    """Read a sweep specification from a TOML file.

    Raises:
        HeadgraphError: the file is missing, not TOML, or holds an unknown key or a bad value.
    """
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise HeadgraphError(f"{path}: no such sweep specification") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise HeadgraphError(f"{path}: not a readable TOML file ({err})") from None
    return spec_from_dict(doc, str(path))


def spec_from_dict(doc: Mapping[str, Any], where: str = "spec") -> SweepSpec:
    """A :class:`SweepSpec` from a parsed TOML document (see :func:`load_spec`)."""
    _known(doc, {"sweep", "grid", "methods", "resources"}, where)
    sweep, grid, res = doc.get("sweep", {}), doc.get("grid", {}), doc.get("resources", {})
    _known(sweep, {"top_k", "truth", "faithfulness", "dtype", "device", "max_retries"}, f"{where} [sweep]")
    _known(grid, {"models", "tasks", "seeds", "n"}, f"{where} [grid]")
    _known(res, {"num_cpus", "num_gpus", "memory_mb"}, f"{where} [resources]")
    methods = []
    for m in doc.get("methods", []):
        _known(m, {"name", "settings", "label"}, f"{where} [[methods]]")
        if not isinstance(m.get("name"), str):
            raise HeadgraphError(f"{where}: each [[methods]] needs a name")
        settings = m.get("settings", {})
        if not isinstance(settings, dict):
            raise HeadgraphError(f"{where}: [[methods]] settings must be a table, got {settings!r}")
        methods.append(MethodSpec(m["name"], settings, str(m.get("label", ""))))
    try:
        return SweepSpec(
            models=_tuple(grid, "models", str, "grid"),
            tasks=_tuple(grid, "tasks", str, "grid") or (OWN_TASK,),
            methods=tuple(methods),
            seeds=_tuple(grid, "seeds", int, "grid") or (0,),
            n=_tuple(grid, "n", int, "grid"),
            top_k=int(sweep.get("top_k", 10)),
            truth=str(sweep.get("truth", "")),
            faithfulness=bool(sweep.get("faithfulness", False)),
            dtype=Precision.parse(sweep.get("dtype", "float32")),
            device=str(sweep.get("device", "cpu")),
            max_retries=int(sweep.get("max_retries", 2)),
            resources=Resources(
                float(res.get("num_cpus", 1)), float(res.get("num_gpus", 0)), int(res.get("memory_mb", 0))
            ),
        )
    except (TypeError, ValueError) as err:
        raise HeadgraphError(f"{where}: {err}") from None
