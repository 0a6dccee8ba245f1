"""The error the saes package raises for bad settings or files."""

from __future__ import annotations

__all__ = ["SAEError"]


class SAEError(ValueError):
    """A bad SAE setting, a bad input shape, or a folder that is not a saved set of head SAEs."""
