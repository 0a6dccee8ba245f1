"""Old import paths of moved modules (the architecture pass, issue 17), kept for one release.

A moved module's old file holds two lines: ``from circuits._shim import alias`` and
``alias(__name__, "new.path")``. Importing it warns once (DeprecationWarning naming the new path)
and binds the old name to the *same* module object, so ``isinstance`` checks, monkeypatching and
enum identity keep working across old and new paths. The root ``conftest.py`` leaves these files
out of doctest collection (the module they alias is collected under its own name).
"""

from __future__ import annotations

import importlib
import sys
import warnings

MARKER = "alias(__name__,"
"""Text that marks a file as an alias (the doctest collector skips such files)."""


def alias(old: str, new: str) -> None:
    """Make module ``old`` the module ``new``, with a DeprecationWarning naming ``new``."""
    warnings.warn(f"{old} moved to {new}; the old path goes away in the next release", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
