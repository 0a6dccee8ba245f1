"""The floating-point precision a model is loaded in: the one place that maps its name to a torch dtype.

float32 is the default and the precision of every exactness check of the engine (patching equals
the brute-force forward, parity with Hugging Face). bfloat16 halves the memory and, on a CPU with
bf16 kernels, roughly triples the forward speed of the 0.5B–1.5B models (issue 12's measurements),
at the cost of ~3 significant digits: use it for task reports and large sweeps, not for checks.
"""

from __future__ import annotations

from enum import Enum

import torch

from circuits.errors import HeadgraphError

__all__ = ["DEFAULT_PRECISION", "Precision"]


class Precision(Enum):
    """A model's parameter and activation dtype, named as on the command line (``--dtype``).

    Examples:
        >>> Precision.parse("bfloat16").torch_dtype
        torch.bfloat16
        >>> Precision.parse(Precision.FLOAT32) is Precision.FLOAT32
        True
        >>> Precision.parse("fp16")
        Traceback (most recent call last):
        ...
        circuits.errors.HeadgraphError: unknown dtype 'fp16'; valid dtypes: float32, bfloat16
    """

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype of this precision."""
        return _TORCH_DTYPES[self]

    @classmethod
    def names(cls) -> list[str]:
        """The valid names, in declaration order (the CLI's ``--dtype`` choices)."""
        return [p.value for p in cls]

    @classmethod
    def parse(cls, value: Precision | str) -> Precision:
        """``value`` as a :class:`Precision`; a name not in :meth:`names` raises :class:`HeadgraphError`."""
        if isinstance(value, Precision):
            return value
        try:
            return cls(value)
        except ValueError:
            raise HeadgraphError(f"unknown dtype {value!r}; valid dtypes: {', '.join(cls.names())}") from None


_TORCH_DTYPES = {Precision.FLOAT32: torch.float32, Precision.BFLOAT16: torch.bfloat16}

DEFAULT_PRECISION = Precision.FLOAT32
"""Models load in float32 unless a command asks otherwise."""
