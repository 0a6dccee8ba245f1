"""Discovery methods: each scores a model's candidate graph for a task (see :mod:`.base`)."""

from circuits.discovery.activation_patching import ActivationPatching, Components, PatchPositions
from circuits.discovery.base import METHODS, Ablation, DiscoveryMethod, baseline, build_method, method_params

__all__ = [
    "METHODS",
    "Ablation",
    "ActivationPatching",
    "Components",
    "DiscoveryMethod",
    "PatchPositions",
    "baseline",
    "build_method",
    "method_params",
]
