"""Ground truth: planted-circuit models, published circuits, and golden circuits of the embedded model.

Importing this package loads no model (the registries hold builders and file names).
"""

from circuits.groundtruth.golden import GOLDEN_RECIPES, Golden, GoldenRecipe, build_golden, load_golden
from circuits.groundtruth.planted import PLANTED, Planted, PlantedTask
from circuits.groundtruth.planted_induction import InductionConfig, PlantedInductionTask, induction_model
from circuits.groundtruth.planted_ioi import IOIConfig, PlantedIOICorruption, PlantedIOITask, ioi_model
from circuits.groundtruth.planted_threshold import Route, ThresholdConfig, ThresholdTask, threshold_model
from circuits.groundtruth.published import EdgeRule, GroundTruth, ModelShape, load_published, published_names
from circuits.groundtruth.tokens import TokenPair, token_dataset
from circuits.groundtruth.truth import get_ground_truth, golden_truth, truth_names

__all__ = [
    "GOLDEN_RECIPES",
    "PLANTED",
    "EdgeRule",
    "Golden",
    "GoldenRecipe",
    "GroundTruth",
    "IOIConfig",
    "InductionConfig",
    "ModelShape",
    "Planted",
    "PlantedIOICorruption",
    "PlantedIOITask",
    "PlantedInductionTask",
    "PlantedTask",
    "Route",
    "ThresholdConfig",
    "ThresholdTask",
    "TokenPair",
    "build_golden",
    "get_ground_truth",
    "golden_truth",
    "induction_model",
    "ioi_model",
    "load_golden",
    "load_published",
    "published_names",
    "threshold_model",
    "token_dataset",
    "truth_names",
]
