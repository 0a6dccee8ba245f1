"""Deprecated: moved to :mod:`circuits.engine.edges` (the edge engine sits one layer under the methods).

This alias keeps ``circuits.discovery.edges`` importable for one release, with a DeprecationWarning.
"""

import sys
import warnings

from circuits.engine import edges as _moved

warnings.warn(
    f"{__name__} moved to {_moved.__name__}; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
