"""Circuit discovery on TransformerLens models: graphs, methods, scores, head-graph files, plots.

Importing this package loads no model and changes no global setting. ``circuits.Graph`` (now
:class:`ComponentGraph`) still imports for one release, with a DeprecationWarning.
"""

import warnings
from typing import Any

from circuits.analysis.attention import AttentionToPositions, attention_to_positions, head_patterns
from circuits.analysis.head_outputs import HeadOutputs, Pooling, head_outputs
from circuits.analysis.head_roles import Role, RoleAssignment, RoleComparison, assign_roles, compare_roles, head_signals
from circuits.analysis.knockout import Knockout, head_means, knock_out
from circuits.analysis.logit_attribution import HeadAttribution, direct_logit_attribution
from circuits.discovery import METHODS, Ablation, ActivationPatching, SAECodeEdges, SAECodes, SAEPatching, build_method
from circuits.errors import CircuitFileError, HeadgraphError, ModelLoadError
from circuits.graph import QKV, ComponentGraph, Edge, Node, NodeKind
from circuits.headgraph import HeadGraph, TaskRun
from circuits.measures.regression import CircuitDiff, CircuitRegressionError, assert_circuit_matches, diff_circuits
from circuits.measures.roc import AucVariant, Evaluation, evaluate, jaccard, overlap_curve, roc_auc, task_overlap
from circuits.model import DEFAULT_MODEL, ModelInfo, load_model, model_info, prepare_model_, text_tokenizer
from circuits.pipeline import discover
from circuits.scores import Baseline, Circuit, Level, Scores

__all__ = [
    "DEFAULT_MODEL",
    "METHODS",
    "QKV",
    "Ablation",
    "ActivationPatching",
    "AttentionToPositions",
    "AucVariant",
    "Baseline",
    "Circuit",
    "CircuitDiff",
    "CircuitFileError",
    "CircuitRegressionError",
    "ComponentGraph",
    "Edge",
    "Evaluation",
    "HeadAttribution",
    "HeadGraph",
    "HeadOutputs",
    "HeadgraphError",
    "Knockout",
    "Level",
    "ModelInfo",
    "ModelLoadError",
    "Node",
    "NodeKind",
    "Pooling",
    "Role",
    "RoleAssignment",
    "RoleComparison",
    "SAECodeEdges",
    "SAECodes",
    "SAEPatching",
    "Scores",
    "TaskRun",
    "assert_circuit_matches",
    "assign_roles",
    "attention_to_positions",
    "build_method",
    "compare_roles",
    "diff_circuits",
    "direct_logit_attribution",
    "discover",
    "evaluate",
    "head_means",
    "head_outputs",
    "head_signals",
    "head_patterns",
    "jaccard",
    "knock_out",
    "load_model",
    "model_info",
    "overlap_curve",
    "prepare_model_",
    "roc_auc",
    "task_overlap",
    "text_tokenizer",
]


def __getattr__(name: str) -> Any:
    if name == "Graph":
        warnings.warn(
            "circuits.Graph is now circuits.ComponentGraph; the old name goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return ComponentGraph
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
