"""The edge engine, one layer under the discovery methods: the ablation vocabulary
(:mod:`.ablation`), the sender/receiver layout of a model's graph and the runs that feed it
(:mod:`.edges`), and running a model with chosen edges ablated (:mod:`.edge_ablation`).

Everything here asks the model adapter (:mod:`circuits.model`) about architectures; methods,
faithfulness, knock-outs, interventions and repair edits build on it, and it imports none of them.
"""

from circuits.engine.ablation import Ablation, BaselineSums, baseline, check_ablation, check_positive, corrupt_means
from circuits.engine.edge_ablation import AblationBatch, ablated_logits, prepare_batch
from circuits.engine.edges import ActivePositions, EdgeLayout, SenderActs, mean_sender_acts, sender_acts

__all__ = [
    "BaselineSums",
    "Ablation",
    "AblationBatch",
    "ActivePositions",
    "EdgeLayout",
    "SenderActs",
    "ablated_logits",
    "baseline",
    "check_ablation",
    "check_positive",
    "corrupt_means",
    "mean_sender_acts",
    "prepare_batch",
    "sender_acts",
]
