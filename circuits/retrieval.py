"""Deprecated alias: moved to :mod:`circuits.seed.retrieval` (the architecture pass, issue 17).

Kept importable for one release, with a DeprecationWarning (see :mod:`circuits._shim`).
"""

from typing import TYPE_CHECKING

from circuits._shim import alias

if TYPE_CHECKING:  # the type checker reads the moved module's names here
    from circuits.seed.retrieval import *  # noqa: F403

alias(__name__, "circuits.seed.retrieval")
