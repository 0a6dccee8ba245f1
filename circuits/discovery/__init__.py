"""Discovery methods: each scores a model's candidate graph for a task (see :mod:`.base`).

Node level: ``activation-patching`` (exact), ``attribution-patching`` (its gradient estimate).
Edge level: ``edge-patching`` (exact), ``eap``, ``eap-ig`` (gradient estimates, full graph),
``path-patching`` (Wang et al., chosen receivers).
"""

from circuits.discovery.activation_patching import ActivationPatching, Components, PatchPositions
from circuits.discovery.attribution_patching import AttributionPatching
from circuits.discovery.base import METHODS, Ablation, DiscoveryMethod, baseline, build_method, method_params
from circuits.discovery.eap import EAP, EAPIG
from circuits.discovery.edge_patching import EdgePatching
from circuits.discovery.path_patching import PathPatching

__all__ = [
    "EAP",
    "EAPIG",
    "METHODS",
    "Ablation",
    "ActivationPatching",
    "AttributionPatching",
    "Components",
    "DiscoveryMethod",
    "EdgePatching",
    "PatchPositions",
    "PathPatching",
    "baseline",
    "build_method",
    "method_params",
]
