"""Discovery methods: each scores a model's candidate graph for a task (see :mod:`.base`)."""

from circuits.discovery.activation_patching import ActivationPatching, Components, PatchPositions
from circuits.discovery.base import METHODS, Ablation, DiscoveryMethod, baseline, build_method, method_params
from circuits.discovery.sae_codes import (
    CodeRun,
    NodeScore,
    Positives,
    SAECodeEdges,
    SAECodes,
    SAECodeSettings,
    code_run,
)
from circuits.discovery.sae_patching import SAEPatching

__all__ = [
    "METHODS",
    "Ablation",
    "ActivationPatching",
    "CodeRun",
    "Components",
    "DiscoveryMethod",
    "NodeScore",
    "PatchPositions",
    "Positives",
    "SAECodeEdges",
    "SAECodeSettings",
    "SAECodes",
    "SAEPatching",
    "baseline",
    "build_method",
    "code_run",
    "method_params",
]
