"""Deprecated alias: moved to :mod:`circuits.analysis.head_outputs` (the architecture pass, issue 17).

Kept importable for one release, with a DeprecationWarning (see :mod:`circuits._shim`).
"""

from circuits._shim import alias

alias(__name__, "circuits.analysis.head_outputs")
