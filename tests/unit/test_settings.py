"""One settings module: every registered method's and task's settings survive JSON and the CLI's strings."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits.discovery import METHODS, build_method, method_params
from circuits.engine import Ablation
from circuits.errors import HeadgraphError
from circuits.pipeline import task_settings
from circuits.settings import from_json, from_strings, to_json
from tasks import TASKS


def _text(v: Any) -> str:
    """How a user types ``v`` after ``--set key=``."""
    if v is None:
        return "none"
    if isinstance(v, Enum):
        return str(v.value)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return ",".join(_text(x) for x in v)
    return repr(v) if isinstance(v, float) else str(v)


CLASSES = [(f"method {n}", METHODS[n]) for n in METHODS.names()] + [(f"task {n}", TASKS[n]) for n in TASKS.names()]


@pytest.mark.parametrize(("label", "cls"), CLASSES, ids=[label for label, _ in CLASSES])
def test_defaults_survive_json_and_strings(label: str, cls: type) -> None:
    obj = cls()
    assert from_json(cls, json.loads(json.dumps(to_json(obj)))) == obj
    typed = {f.name: _text(getattr(obj, f.name)) for f in dataclasses.fields(obj) if getattr(obj, f.name) != ()}
    assert from_strings(cls, typed) == obj


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    ablation=st.sampled_from(list(Ablation)),
    heads=st.none()
    | st.lists(st.sampled_from(["L0H1", "L3H2", "L11H0"]), min_size=1, max_size=3, unique=True).map(tuple),
    batch_size=st.integers(1, 64),
)
def test_activation_patching_settings_round_trip(
    ablation: Ablation, heads: tuple[str, ...] | None, batch_size: int
) -> None:
    """Tuples, optional tuples and enums: object → JSON → object and object → strings → object."""
    cls = METHODS["activation-patching"]
    obj = cls(ablation=ablation, heads=heads, batch_size=batch_size)
    assert from_json(cls, json.loads(json.dumps(method_params(obj)))) == obj
    typed = {"ablation": _text(ablation), "heads": _text(heads), "batch-size": str(batch_size)}
    assert build_method("activation-patching", typed) == obj


def test_tuple_task_settings_round_trip() -> None:
    for name in TASKS.names():
        task = TASKS[name]()
        assert from_json(type(task), task_settings(task)) == task


@pytest.mark.parametrize(
    ("typed", "message"),
    [({"nope": "1"}, "has no setting 'nope'"), ({"ablation": "half"}, "ablation must be one of resample, mean, zero"),
     ({"batch_size": "x"}, "batch_size must be an integer"),
     ({"heads": " , "}, "heads expects comma-separated values")],
)  # fmt: skip
def test_bad_strings_are_one_line_errors(typed: dict[str, str], message: str) -> None:
    with pytest.raises(HeadgraphError, match=message):
        build_method("activation-patching", typed)


def test_every_task_round_trips_though_its_class_variables_name_types_the_run_cannot_import() -> None:
    """Task classes declare ``answer_roles: ClassVar[AnswerRoles | None]`` with ``AnswerRoles`` imported
    for the type checker only; the settings functions read the fields' hints alone."""
    from tasks import TASKS

    for name in TASKS.names():
        cls = TASKS[name]
        task = cls()
        assert from_json(cls, to_json(task)) == task
        assert from_strings(cls, {}) == task
