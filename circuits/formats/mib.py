"""MIB's circuit-localization results files and submission layout.

``run_evaluation.py`` of the MIB circuit track writes one pickle per method, task, model, split and
ranking, ``{output_dir}/{method}_{ablation}_{level}/{task}_{model}_{split}_abs-{True|False}.pkl``
(task with ``_`` replaced by ``-``), holding the dict that ``evaluate_area_under_curve`` returns::

    {"weighted_edge_counts": [...], "area_under": float, "area_from_1": float,
     "average": float, "faithfulnesses": [...]}

``print_results.py`` reports CPR as ``area_under`` of the ``abs-False`` file and CMD as
``area_from_1`` of the ``abs-True`` file. :func:`read_mib_result` reads such a file and
:meth:`MIBResult.recomputed` recomputes its areas from its faithfulness values with
:func:`circuits.measures.faithfulness.mib_areas`; :func:`write_mib_results` writes a headgraph
:class:`~circuits.measures.faithfulness.FaithfulnessReport` as those two files (``print_results.py``
tabulates only the task/model pairs of its own table).

Submissions (README "Submitting to the MIB Leaderboard"): one folder per task and model, named
``{task}_{model}`` (e.g. ``ioi_qwen2.5``), holding one importance file (``.json`` or ``.pt``, the
EAP-IG graph format of :mod:`circuits.formats.eapig`) or nine circuit files;
:func:`submission_path` gives the file's place.

Source: ``hannamw/MIB-circuit-track`` @ b759df3: ``run_evaluation.py``, ``print_results.py``,
``MIB_circuit_track/evaluation.py``, ``README.md``.
"""

from __future__ import annotations

import pickle
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from circuits.errors import CircuitFileError, HeadgraphError
from circuits.measures.faithfulness import (
    MIB_FRACTIONS,
    CurveRule,
    FaithfulnessCurve,
    FaithfulnessReport,
    MIBAreas,
    mib_areas,
)
from circuits.selection import Ranking

__all__ = ["MIBResult", "read_mib_result", "result_name", "submission_path", "write_mib_results"]

_RESULT_NAME = re.compile(r"^(?P<task>[^_]+)_(?P<model>[^_]+)_(?P<split>[^_]+)_abs-(?P<abs>True|False)\.pkl$")
_KEYS = ("weighted_edge_counts", "area_under", "area_from_1", "average", "faithfulnesses")


@dataclass(frozen=True)
class MIBResult:
    """One MIB results file.

    Attributes:
        task: task name as in the file name (``ioi``, ``arithmetic-addition``).
        model: model name as in the file name.
        split: ``train``, ``validation`` or ``test``.
        absolute: whether circuits were ranked by ``|score|`` (the CMD file) or signed (CPR).
        weighted_edge_counts: edges kept at each size.
        area_under: MIB's area under the curve.
        area_from_1: MIB's area of |1 − f|.
        average: MIB's mean faithfulness.
        faithfulnesses: normalized faithfulness at each of MIB's sizes.
    """

    task: str
    model: str
    split: str
    absolute: bool
    weighted_edge_counts: tuple[float, ...]
    area_under: float
    area_from_1: float
    average: float
    faithfulnesses: tuple[float, ...]

    @property
    def metric(self) -> float:
        """What MIB's leaderboard shows for this file: CMD if ``absolute``, else CPR."""
        return self.area_from_1 if self.absolute else self.area_under

    def recomputed(self) -> MIBAreas:
        """The areas recomputed from ``faithfulnesses`` over MIB's fractions."""
        return mib_areas(self.faithfulnesses, MIB_FRACTIONS)


def result_name(task: str, model: str, split: str, absolute: bool) -> str:
    """MIB's results file name.

    Examples:
        >>> result_name("arithmetic_addition", "llama3", "test", False)
        'arithmetic-addition_llama3_test_abs-False.pkl'
    """
    return f"{task.replace('_', '-')}_{model}_{split}_abs-{absolute}.pkl"


def read_mib_result(path: str | Path) -> MIBResult:
    """Read a MIB results pickle (only plain data is unpickled).

    Raises:
        CircuitFileError: missing, not a pickle of plain data, a name not in MIB's pattern, or keys missing.
    """
    from circuits.formats.safe_pickle import safe_load

    path = Path(path)
    m = _RESULT_NAME.match(path.name)
    if not m:
        raise CircuitFileError(f"{path}: not a MIB results file name (TASK_MODEL_SPLIT_abs-True|False.pkl)")
    d = safe_load(path)
    if not isinstance(d, dict) or not all(k in d for k in _KEYS):
        raise CircuitFileError(f"{path}: not a MIB results dict (needs {', '.join(_KEYS)})")
    try:
        faith = tuple(float(x) for x in d["faithfulnesses"])
        if len(faith) != len(MIB_FRACTIONS):
            raise ValueError(f"{len(faith)} faithfulness values, MIB has {len(MIB_FRACTIONS)} sizes")
        return MIBResult(
            task=m["task"],
            model=m["model"],
            split=m["split"],
            absolute=m["abs"] == "True",
            weighted_edge_counts=tuple(float(x) for x in d["weighted_edge_counts"]),
            area_under=float(d["area_under"]),
            area_from_1=float(d["area_from_1"]),
            average=float(d["average"]),
            faithfulnesses=faith,
        )
    except (TypeError, ValueError) as err:
        raise CircuitFileError(f"{path}: malformed MIB results ({err})") from None


def _result_dict(curve: FaithfulnessCurve) -> dict[str, object]:
    if curve.rule is not CurveRule.MIB:
        raise HeadgraphError("MIB results need curves computed with MIB's rule (CurveRule.MIB, --curve mib)")
    faith = [p.faithfulness for p in curve.points]
    a = mib_areas(faith, [p.x() for p in curve.points])
    return {
        "weighted_edge_counts": [float(p.kept) for p in curve.points],
        "area_under": a.area_under,
        "area_from_1": a.area_from_1,
        "average": a.average,
        "faithfulnesses": faith,
    }


def write_mib_results(report: FaithfulnessReport, folder: str | Path, task: str, model: str, split: str) -> list[Path]:
    """Write ``report`` as MIB's two results files (signed → ``abs-False``, absolute → ``abs-True``).

    Raises:
        HeadgraphError: the curves were not computed with MIB's rule.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for curve, absolute in ((report.signed, False), (report.absolute, True)):
        want = Ranking.ABSOLUTE if absolute else Ranking.SIGNED
        if curve.ranking is not want:
            raise HeadgraphError(f"the {'absolute' if absolute else 'signed'} curve is ranked {curve.ranking.value}")
        d = _result_dict(curve)
        path = folder / result_name(task, model, split, absolute)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", delete=False) as tmp:
            pickle.dump(d, tmp)
        Path(tmp.name).replace(path)
        out.append(path)
    return out


def submission_path(root: str | Path, task: str, model: str, *, suffix: str = ".json") -> Path:
    """Where MIB expects an importance file: ``root/{task}_{model}/importances{suffix}``.

    Examples:
        >>> str(submission_path("sub", "ioi", "qwen2.5"))
        'sub/ioi_qwen2.5/importances.json'
    """
    if "_" in model or not task or not model:
        raise HeadgraphError(f"MIB folder names are TASK_MODEL with no '_' in the model name, got {task!r}, {model!r}")
    if suffix not in (".json", ".pt"):
        raise HeadgraphError(f"MIB takes .json or .pt files, got {suffix!r}")
    return Path(root) / f"{task}_{model}" / f"importances{suffix}"
