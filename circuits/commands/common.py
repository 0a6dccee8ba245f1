"""Helpers shared by several subcommands."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from circuits.errors import HeadgraphError
from circuits.headgraph import HeadGraph
from circuits.model.device import DEFAULT_DEVICE, Device, resolve_device
from circuits.model.precision import DEFAULT_PRECISION, Precision

__all__ = [
    "add_device_option",
    "add_dtype_option",
    "check_output_file",
    "dtype_words",
    "format_table",
    "model_device",
    "parse_settings",
    "parse_top",
    "prepare_output_dir",
]


def prepare_output_dir(folder: str | Path, files: tuple[str, ...], option: str = "--out") -> Path:
    """Check, before any work is done, that ``files`` can be written in ``folder``.

    Nothing is created: a missing folder needs a writable existing ancestor (the writer creates it).

    Raises:
        HeadgraphError: ``folder`` (or an ancestor) is a file, the folder cannot be written, or one
            of ``files`` exists as a folder or cannot be overwritten.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise HeadgraphError(f"{option} {folder}: {existing} is a file, not a folder")
    try:
        shutil.rmtree(tempfile.mkdtemp(prefix=".write-probe.", dir=existing))
    except OSError as err:
        raise HeadgraphError(f"{option} {folder} cannot be written ({err.strerror or type(err).__name__})") from None
    for name in files:
        _check_target(folder / name, option)
    return folder


def check_output_file(path: str | Path, option: str) -> Path:
    """Check, before any work, that the file ``path`` can be written (see :func:`prepare_output_dir`).

    Raises:
        HeadgraphError: ``path`` is a folder, or its folder cannot be written.
    """
    path = Path(path)
    prepare_output_dir(path.parent, (path.name,), option)
    return path


def _check_target(path: Path, option: str) -> None:
    if path.is_dir():
        raise HeadgraphError(f"{option}: {path} is a folder; cannot write the file there")
    if path.exists() and not os.access(path, os.W_OK):
        raise HeadgraphError(f"{option}: {path} exists and cannot be overwritten")


def parse_top(top: int) -> int:
    """``--top`` rows to print: a positive number."""
    if top <= 0:
        raise HeadgraphError(f"--top must be a positive number of rows, got {top}")
    return top


def add_device_option(parser: Any) -> None:
    """``--device cpu|cuda|auto`` on a command that loads a model (resolved by :func:`resolve_device`)."""
    parser.add_argument(
        "--device",
        default=DEFAULT_DEVICE.value,
        choices=Device.names(),
        help="where the model runs (default: cpu; auto: CUDA when present, else the CPU)",
    )


def model_device(args: Any) -> str:
    """The torch device of ``--device`` (fails in one line on ``cuda`` without a CUDA device)."""
    return resolve_device(getattr(args, "device", DEFAULT_DEVICE.value))


def load_args_model(args: Any) -> tuple[Any, str]:
    """Load ``--model`` with ``--device``/``--dtype`` (announced, bars unless ``--quiet``); return the
    model and the device its prompts must follow."""
    from circuits.model import load_model

    print(f"loading {args.model} ...", flush=True)
    model = load_model(args.model, device=model_device(args), dtype=args.dtype, progress=not args.quiet)
    return model, model.cfg.device or "cpu"


def add_dtype_option(parser: Any) -> None:
    """``--dtype float32|bfloat16`` (parsed by :class:`Precision`) and ``--device`` on a command that
    loads a model."""
    add_device_option(parser)
    parser.add_argument(
        "--dtype",
        default=DEFAULT_PRECISION.value,
        choices=Precision.names(),
        help="precision of the model (default: float32, the precision of the exactness checks; bfloat16 is "
        "faster only on CPUs with bfloat16 instructions, AVX512-BF16 or AMX; ~30x slower on AVX2-only CPUs)",
    )


def dtype_words(dtype: str) -> list[str]:
    """The ``--dtype`` words of a reproducing command line (none for the default).

    Examples:
        >>> dtype_words("bfloat16"), dtype_words("float32")
        (['--dtype', 'bfloat16'], [])
    """
    precision = Precision.parse(dtype)
    return [] if precision is DEFAULT_PRECISION else ["--dtype", precision.value]


def check_pairs(n: int) -> None:
    """``--n`` must be a positive number of prompt pairs (a one-line error otherwise)."""
    if n <= 0:
        raise HeadgraphError(f"--n must be a positive number of prompt pairs, got {n}")


def parse_ablation(text: str) -> Any:
    """``--ablation`` as an :class:`~circuits.engine.Ablation` (a one-line error naming the choices)."""
    from circuits.engine import Ablation
    from circuits.settings import parse_choice

    return parse_choice(Ablation, text, "--ablation")


def parse_settings(pairs: list[str], option: str = "--set") -> dict[str, str]:
    """``["k=v", ...]`` from a repeated ``option`` (``--set``) as a dict."""
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise HeadgraphError(f"{option} expects KEY=VALUE, got {p!r}")
        out[key] = value
    return out


def format_table(hg: HeadGraph, top: int) -> str:
    """The baseline and the ``top`` highest-ranked items of a head graph, as text."""
    b = hg.scores.baseline
    lines = [
        f"model {hg.model.name} · task {hg.task.name} · {hg.task.n_pairs} pairs (seed {hg.task.seed})"
        f" · method {hg.scores.method}",
        f"{b.metric}: clean {b.clean:.3f}, corrupt {b.corrupt:.3f} · accuracy: clean {b.clean_accuracy:.1%},"
        f" corrupt {b.corrupt_accuracy:.1%}",
        *(f"warning: {w}" for w in hg.scores.warnings),
        "",
        f"{'rank':>4}  {'component':<16} {'Δ ' + b.metric:>14} {'normalized':>11}",
    ]
    norm = hg.scores.normalized.tolist()
    values = hg.scores.values.tolist()
    for rank, i in enumerate(hg.scores.order()[:top], 1):
        lines.append(f"{rank:>4}  {hg.scores.items[i]!s:<16} {values[i]:>14.4f} {norm[i]:>11.4f}")
    return "\n".join(lines)
