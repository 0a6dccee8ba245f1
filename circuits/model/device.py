"""Where a model runs: the one place that turns ``--device cpu|cuda|auto`` into a torch device name.

Every tensor of a run follows the model's device (the engine allocates with ``device=`` of its
inputs, datasets move with :meth:`~tasks.PromptPairDataset.to`); ``cpu`` is the default and the
device of the exactness checks.
"""

from __future__ import annotations

from enum import Enum

import torch

from circuits.errors import HeadgraphError

__all__ = ["DEFAULT_DEVICE", "Device", "resolve_device"]


class Device(Enum):
    """A device as named on the command line (``--device``)."""

    CPU = "cpu"
    CUDA = "cuda"
    AUTO = "auto"  # CUDA when a device is present, else the CPU

    @classmethod
    def names(cls) -> list[str]:
        """The valid names (the CLI's ``--device`` choices)."""
        return [d.value for d in cls]


DEFAULT_DEVICE = Device.CPU


def resolve_device(value: Device | str) -> str:
    """The torch device name ``value`` means here.

    Raises:
        HeadgraphError: an unknown name, or ``cuda`` where no CUDA device is present.

    Examples:
        >>> resolve_device("cpu")
        'cpu'
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        circuits.errors.HeadgraphError: unknown device 'tpu'; valid devices: cpu, cuda, auto
    """
    if not isinstance(value, Device):
        try:
            value = Device(value)
        except ValueError:
            raise HeadgraphError(f"unknown device {value!r}; valid devices: {', '.join(Device.names())}") from None
    if value is Device.AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value is Device.CUDA and not torch.cuda.is_available():
        raise HeadgraphError("device cuda: no CUDA device is present here (use --device cpu or auto)")
    return value.value
