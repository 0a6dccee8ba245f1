"""Circuit discovery on TransformerLens models: graphs, methods, scores, head-graph files, plots.

Importing this package loads no model and changes no global setting.
"""

from circuits.discovery import METHODS, Ablation, ActivationPatching, SAECodeEdges, SAECodes, SAEPatching, build_method
from circuits.errors import CircuitFileError, HeadgraphError, ModelLoadError
from circuits.graph import QKV, Edge, Graph, Node, NodeKind
from circuits.head_outputs import HeadOutputs, Pooling, head_outputs
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import DEFAULT_MODEL, ModelInfo, load_model, model_info, prepare_model_, text_tokenizer
from circuits.pipeline import discover
from circuits.scores import Baseline, Circuit, Level, Scores

__all__ = [
    "DEFAULT_MODEL",
    "METHODS",
    "QKV",
    "Ablation",
    "ActivationPatching",
    "Baseline",
    "Circuit",
    "CircuitFileError",
    "Edge",
    "Graph",
    "HeadGraph",
    "HeadOutputs",
    "HeadgraphError",
    "Level",
    "ModelInfo",
    "ModelLoadError",
    "Node",
    "NodeKind",
    "Pooling",
    "SAECodeEdges",
    "SAECodes",
    "SAEPatching",
    "Scores",
    "TaskRun",
    "build_method",
    "discover",
    "head_outputs",
    "load_model",
    "model_info",
    "prepare_model_",
    "text_tokenizer",
]
