"""The ``headgraph`` command line.

    headgraph discover --task ioi --model smollm2-135m --method activation-patching --n 64 --seed 0 --out out/ioi
    headgraph show out/ioi/circuit.json
    headgraph evaluate out/ioi/circuit.json
    headgraph view out/ioi/circuit.json

Each subcommand is a module of :mod:`circuits.commands` listed in :data:`COMMANDS`. Errors caused
by the input (unknown names, bad numbers, a file that is not a circuit) are printed as one
``headgraph: error: ...`` line with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from circuits.errors import USER_ERRORS, HeadgraphWarning

__all__ = ["COMMANDS", "main"]

COMMANDS = [
    "circuits.commands.discover",
    "circuits.commands.show",
    "circuits.commands.evaluate",
    "circuits.commands.compare",
    "circuits.commands.score",
    "circuits.commands.export",
    "circuits.commands.import_",
    "circuits.commands.golden",
    "circuits.commands.regress",
    "circuits.commands.tasks_report",
    "circuits.commands.repair",
    "circuits.commands.view",
    "circuits.commands.sweep",
    "circuits.commands.retrieval",
    "circuits.commands.ships",
    "circuits.commands.tune",
    "circuits.commands.lofit",
    "circuits.commands.stages",
]
"""Subcommand modules, in the order ``--help`` lists them."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="headgraph", description="Find, score and draw attention-head circuits.")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).register(sub)
    return p


INTERRUPT_GRACE_S = 5.0
"""Seconds a run may take to unwind after Ctrl-C before it is ended outright (exit 130)."""


def _leave() -> None:
    print("headgraph: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual and also starts a watchdog: Python drops a
    KeyboardInterrupt raised while the main thread is inside a finalizer or callback ("Exception
    ignored in ..."), so if the run has not ended :data:`INTERRUPT_GRACE_S` seconds later (or at a
    second Ctrl-C) the process leaves with status 130. Outputs are written atomically at the end of a
    run, so leaving early never leaves a half-written file under its real name."""

    def handler(_signum: int, _frame: object) -> None:
        if getattr(handler, "fired", False):
            _leave()
        handler.fired = True  # type: ignore[attr-defined]
        watchdog = threading.Timer(INTERRUPT_GRACE_S, _leave)
        watchdog.daemon = True
        watchdog.start()
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``headgraph`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings(), _interruptible():
            warnings.showwarning = _one_line(warnings.showwarning)
            status: int = args.func(args)
    except USER_ERRORS as err:
        print(f"headgraph: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("headgraph: interrupted", file=sys.stderr)
        return 130  # the shell's status for SIGINT
    return status


def _one_line(default: Any) -> Any:
    """A ``warnings.showwarning`` that prints a :class:`HeadgraphWarning` as ``headgraph: warning: ...``."""

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, HeadgraphWarning):
            print(f"headgraph: warning: {message}", file=sys.stderr, flush=True)
        else:
            default(message, category, *args, **kwargs)

    return show


if __name__ == "__main__":
    sys.exit(main())
