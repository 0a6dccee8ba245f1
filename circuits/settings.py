"""Settings written once: a frozen-dataclass setting object ⇄ JSON ⇄ command-line strings.

Methods, tasks, the CLI (``--set key=value``) and the files that record a run (head-graph files,
golden circuits, sweep cells) all go through these three functions, so a setting type added to one
dataclass works everywhere:

* :func:`to_json`: fields by name; enums by value; tuples as lists (their enum items by value).
* :func:`from_json`: the inverse, guided by the dataclass's type hints (fields not given keep their
  defaults; keys that are not fields are ignored, as files may hold more than a class reads).
* :func:`from_strings`: values typed as text (the CLI): enums by value, ``true``/``false``, numbers,
  tuples as comma-separated items (``heads=L23H3,L20H0``), optional fields as ``none``.

Bad input raises :class:`~circuits.errors.HeadgraphError` naming the setting and what it accepts.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from circuits.errors import HeadgraphError

__all__ = ["field_hints", "from_json", "from_strings", "parse_choice", "to_json"]

T = TypeVar("T")
E = TypeVar("E", bound=Enum)


def to_json(obj: object) -> dict[str, Any]:
    """A dataclass's fields, JSON-ready (``{}`` for an object that is not a dataclass).

    Examples:
        >>> from circuits.engine import Ablation
        >>> @dataclasses.dataclass(frozen=True)
        ... class S:
        ...     ablation: Ablation = Ablation.MEAN
        ...     heads: tuple[str, ...] = ("L1H2",)
        >>> to_json(S())
        {'ablation': 'mean', 'heads': ['L1H2']}
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return {}
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v


def field_hints(cls: type) -> dict[str, Any]:
    """The evaluated type hints of a dataclass's *fields* (a field's own class and module resolve it).

    Unlike :func:`typing.get_type_hints`, class variables are left alone: they may name types imported
    only for the type checker (``Task.answer_roles: ClassVar[AnswerRoles | None]``), which cannot be
    evaluated at run time and are never settings.

    Examples:
        >>> @dataclasses.dataclass(frozen=True)
        ... class S:
        ...     only: typing.ClassVar["NotImportedHere"]
        ...     n: int = 1
        >>> field_hints(S)
        {'n': <class 'int'>}
    """
    names = {f.name for f in dataclasses.fields(cls)}
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        module = vars(sys.modules[klass.__module__]) if klass.__module__ in sys.modules else {}
        for name, hint in klass.__dict__.get("__annotations__", {}).items():
            if name in names:
                hints[name] = eval(hint, module, dict(vars(klass))) if isinstance(hint, str) else hint  # noqa: S307
    return hints


def from_json(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls`` built from :func:`to_json`'s output (module docstring)."""
    if not dataclasses.is_dataclass(cls):
        return cls()
    hints = field_hints(cls)
    kwargs = {
        f.name: _typed(hints.get(f.name), values[f.name], f.name) for f in dataclasses.fields(cls) if f.name in values
    }
    return cls(**kwargs)


def _typed(hint: Any, value: Any, name: str) -> Any:
    """``value`` from JSON as ``hint`` (enums from values, tuples from lists)."""
    hint = _unoptional(hint)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return parse_choice(hint, value, name)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        inner = args[0] if args else None
        return tuple(_typed(inner, v, name) for v in value)
    return value


def from_strings(cls: type[T], values: Mapping[str, str], *, what: str = "") -> T:
    """``cls`` built from settings typed as text (module docstring); ``-`` in keys reads as ``_``.

    Raises:
        HeadgraphError: a key that is not a setting of ``cls``, or a value of the wrong type
            (also when ``cls`` itself rejects a value).
    """
    label = what or cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = field_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, text in values.items():
        key = key.replace("-", "_")
        if key not in fields:
            raise HeadgraphError(f"{label} has no setting {key!r}; its settings: {', '.join(fields)}")
        kwargs[key] = _parse(hints.get(key), fields[key], text)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise HeadgraphError(f"{label}: {err}") from None


def _unoptional(hint: Any) -> Any:
    """``X`` for ``X | None`` (and ``Optional[X]``); ``hint`` otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _parse(hint: Any, field: dataclasses.Field[Any], text: str) -> Any:
    """``text`` as the type of ``field``."""
    name = field.name
    optional = _unoptional(hint) is not hint
    if optional and text.strip().lower() == "none":
        return None
    hint = _unoptional(hint)
    if typing.get_origin(hint) is tuple:
        items = tuple(x.strip() for x in text.split(",") if x.strip())
        if not items:
            raise HeadgraphError(f"{name} expects comma-separated values, got {text!r}")
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        inner = args[0] if len(set(args)) == 1 else str
        return tuple(_scalar(inner, x, name) for x in items)
    if hint is None or hint is Any:
        default = field.default
        hint = type(default) if default is not dataclasses.MISSING and default is not None else str
    return _scalar(hint, text, name)


def _scalar(hint: Any, text: str, name: str) -> Any:
    if isinstance(hint, type) and issubclass(hint, Enum):
        return parse_choice(hint, text, name)
    if hint is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise HeadgraphError(f"{name} must be true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            kind = "an integer" if hint is int else "a number"
            raise HeadgraphError(f"{name} must be {kind}, got {text!r}") from None
    return text


def parse_choice(enum: type[E], value: Any, name: str) -> E:
    """The member of ``enum`` whose value is ``value``; else a one-line error naming ``name`` and the choices."""
    try:
        return enum(value)
    except ValueError:
        raise HeadgraphError(f"{name} must be one of {', '.join(str(e.value) for e in enum)}, got {value!r}") from None
