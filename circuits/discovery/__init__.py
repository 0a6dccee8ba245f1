"""Discovery methods: each scores a model's candidate graph for a task (see :mod:`.base`)."""

from circuits.discovery.activation_patching import ActivationPatching, Components, PatchPositions
from circuits.discovery.base import METHODS, Ablation, DiscoveryMethod, baseline, build_method, method_params
from circuits.discovery.sae_codes import (
    CodeRun,
    NodeScore,
    PairOutputs,
    Positives,
    SAECodeEdges,
    SAECodes,
    SAECodeSettings,
    code_run,
    pair_outputs,
)
from circuits.discovery.sae_patching import SAEPatching, ShortlistBy

__all__ = [
    "METHODS",
    "Ablation",
    "ActivationPatching",
    "CodeRun",
    "Components",
    "DiscoveryMethod",
    "NodeScore",
    "PairOutputs",
    "PatchPositions",
    "Positives",
    "SAECodeEdges",
    "SAECodeSettings",
    "SAECodes",
    "SAEPatching",
    "ShortlistBy",
    "baseline",
    "build_method",
    "code_run",
    "method_params",
    "pair_outputs",
]
