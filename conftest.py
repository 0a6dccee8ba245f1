"""Repository-wide collection rule: the alias files of moved modules (see :mod:`circuits._shim`) are not
collected for doctests: importing them by their file path would clash with the module they alias,
whose doctests run under its new name."""

from pathlib import Path

from circuits._shim import MARKER


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    if collection_path.suffix == ".py" and collection_path.name != "_shim.py" and "tests" not in collection_path.parts:
        try:
            if MARKER in collection_path.read_text(encoding="utf-8"):
                return True
        except OSError:
            return None
    return None
