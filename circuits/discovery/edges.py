"""Deprecated alias: moved to :mod:`circuits.engine.edges` (the edge engine sits one layer under the methods).

Kept importable for one release, with a DeprecationWarning (see :mod:`circuits._shim`).
"""

from circuits._shim import alias

alias(__name__, "circuits.engine.edges")
