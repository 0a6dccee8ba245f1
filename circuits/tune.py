"""Deprecated alias: moved to :mod:`circuits.seed.tune` (the architecture pass, issue 17).

Kept importable for one release, with a DeprecationWarning (see :mod:`circuits._shim`).
"""

from typing import TYPE_CHECKING

from circuits._shim import alias

if TYPE_CHECKING:  # the type checker reads the moved module's names here
    from circuits.seed.tune import *  # noqa: F403

alias(__name__, "circuits.seed.tune")
