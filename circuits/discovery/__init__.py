"""Discovery methods: each scores a model's candidate graph for a task (see :mod:`.base`).

Node level: ``activation-patching`` (exact), ``attribution-patching`` (its gradient estimate).
Edge level: ``edge-patching`` (exact), ``eap``, ``eap-ig``, ``eap-ig-activations`` (gradient
estimates, full graph), ``relp`` (relevance estimate, full graph),
``path-patching`` (Wang et al., chosen receivers).
Discrete SAE codes: ``sae-codes`` (nodes), ``sae-code-edges`` (edges), ``sae-patching`` (SAE shortlist,
then exact patching).
Query scaling: ``ships`` (Zhou et al. 2025: KL of the next-token distribution, per head) and
:func:`sahara` (their greedy subspace-angle search; a head set, not scores).
"""

from circuits.discovery.activation_patching import ActivationPatching, Components, PatchPositions
from circuits.discovery.attribution_patching import AttributionPatching
from circuits.discovery.base import METHODS, Ablation, DiscoveryMethod, baseline, build_method, method_params
from circuits.discovery.eap import EAP, EAPIG
from circuits.discovery.eap_ig_activations import EAPIGActivations
from circuits.discovery.edge_patching import EdgePatching
from circuits.discovery.path_patching import PathPatching
from circuits.discovery.relp import QKRule, RelP
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
from circuits.discovery.sahara import SaharaResult, sahara
from circuits.discovery.ships import Ships, ships_kl

__all__ = [
    "Ablation",
    "ActivationPatching",
    "AttributionPatching",
    "CodeRun",
    "Components",
    "DiscoveryMethod",
    "EAP",
    "EAPIG",
    "EAPIGActivations",
    "EdgePatching",
    "METHODS",
    "NodeScore",
    "PairOutputs",
    "PatchPositions",
    "PathPatching",
    "QKRule",
    "RelP",
    "Positives",
    "SAECodeEdges",
    "SaharaResult",
    "SAECodeSettings",
    "SAECodes",
    "SAEPatching",
    "Ships",
    "ShortlistBy",
    "baseline",
    "build_method",
    "code_run",
    "method_params",
    "pair_outputs",
    "sahara",
    "ships_kl",
]
