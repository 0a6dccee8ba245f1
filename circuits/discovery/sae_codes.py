"""Discrete SAE codes on head outputs: ``sae-codes`` (heads) and ``sae-code-edges`` (head → head edges).

O'Neill & Bui (2024, "Sparse autoencoders enable scalable and reliable circuit identification in
language models", arXiv 2405.12522; read from their code, ``src/{sae,train,node,edge}.py``):

1. **Positives and negatives.** Positives are the clean prompts the model solves; negatives are
   their corrupted twins (IOI: the ABC corruption, three distinct names, so nothing tells the
   model which name is the indirect object). "Solves" is a setting (:class:`Positives`).
2. **Vectors.** Every query head's output after ``W_O`` on every prompt, mean-pooled over the
   prompt's positions (:mod:`circuits.analysis.head_outputs`).
3. **SAE.** One sae-lens SAE shared by all heads (default ReLU + L1, 200 latents, λ = 0.02 in the
   paper's units, Adam 1e-3, 500 full-batch epochs) trained on the vectors of a few prompts (10)
   drawn at random from positives and negatives together (:mod:`saes`).
4. **Codes.** The code of a (prompt, head) is its argmax latent.
5. **Scores.** A head scores the number of distinct codes it shows on positives and never on
   negatives; a head pair scores the number of distinct code pairs that co-occur on positives and
   never on negatives (:mod:`saes.counting`).

Sign convention. These counts are importances, not metric changes: they have no units and no
direction. They are mapped onto :mod:`circuits.scores`' convention as ``value = −count`` (more
negative = more important, as for a head whose ablation hurts), so ``order``, ``top_k`` and
``ranked`` (which use ``|value|``) work unchanged and a head with count 0 ranks last. ``normalized``
(value / metric gap) is not a fraction of the behaviour for these methods, and ``threshold`` on it
is not comparable with patching's; ``params["values"]`` says so in every saved file.

Edges. ``sae-code-edges`` puts a pair's count on the graph edges between the two heads (earlier
layer → later layer). The codes cannot tell whether the later head reads the earlier one through
its query, key or value input, so the q, k and v edges of a pair carry the same value. Edges from
the input, to or from MLPs, and to the logits are not scored (NaN). Pairs of heads in the same
layer have no edge and are dropped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

import torch
from jaxtyping import Float, Int, Real
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.analysis.head_outputs import Pooling, head_outputs
from circuits.discovery.base import METHODS, check_positive, method_params
from circuits.errors import HeadgraphError
from circuits.graph import ComponentGraph, NodeKind
from circuits.model import graph_of, output_weights
from circuits.scores import Baseline, Level, Scores, flag_uninformative
from saes import (
    Architecture,
    HeadSAEs,
    SAEConfig,
    SAEError,
    Sharing,
    argmax_codes,
    pair_endpoint_counts,
    train_head_saes,
    unique_code_counts,
    unique_pair_counts,
)
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = [
    "CodeRun",
    "NodeScore",
    "Positives",
    "SAECodeEdges",
    "SAECodeSettings",
    "PairOutputs",
    "SAECodes",
    "code_run",
    "head_values",
    "sae_health",
    "pair_outputs",
]

VALUES_NOTE = "minus a count of SAE codes seen only on positive prompts: an importance, not a metric change"
"""What the values of these methods mean (stored in ``Scores.params["values"]``)."""


class Positives(Enum):
    """Which clean prompts count as solved (positives); negatives are their corrupt twins.

    * ``SOLVED``: the model's top token over the whole vocabulary is the answer (the paper's
      "the model can predict the next token").
    * ``METRIC``: the task metric is positive (IOI: logit(IO) > logit(S)).
    * ``ALL``: every clean prompt.
    """

    SOLVED = "solved"
    METRIC = "metric"
    ALL = "all"


class NodeScore(Enum):
    """How ``sae-codes`` scores a head.

    * ``UNIQUE_CODES``: distinct codes seen only on positives (the paper's node method).
    * ``PAIR_ENDPOINTS``: how often the head is an endpoint of the top quarter of head pairs ranked
      by code pairs seen only on positives (the paper's edge method, read out per head).
    """

    UNIQUE_CODES = "unique-codes"
    PAIR_ENDPOINTS = "pair-endpoints"


@dataclass(frozen=True)
class SAECodeSettings:
    """Settings shared by every method built on discrete SAE codes (defaults: the paper's).

    Attributes:
        d_sae: SAE latents (codes).
        architecture: ReLU + L1 (the paper) or TopK.
        l1_coefficient: L1 weight in the paper's units (``saes.config``).
        k: latents kept by a TopK SAE (1: a pure discrete code).
        epochs: full-batch Adam steps.
        lr: Adam learning rate.
        normalize: rescale the SAE's inputs to mean norm ``sqrt(d_model)`` while training.
        sharing: one SAE for all heads (the paper) or one per head.
        train_prompts: prompts whose head vectors train the SAE, drawn from positives and negatives.
        pooling: mean over positions (the paper) or the last position.
        positives: which clean prompts count as solved.
        seed: seeds the choice of training prompts and the SAE's initial weights.
        batch_size: prompts per forward pass when collecting head outputs.
        sparse_products: train a ReLU + L1 SAE with products over its firing latents only
            (:mod:`saes.sparse_train`; faster, equal up to rounding per step but not the same codes
            after training: README "SAE codes", speed). False (default): sae-lens's dense training.
    """

    d_sae: int = 200
    architecture: Architecture = Architecture.RELU_L1
    l1_coefficient: float = 0.02
    k: int = 1
    epochs: int = 500
    lr: float = 1e-3
    normalize: bool = False
    sharing: Sharing = Sharing.SHARED
    train_prompts: int = 10
    pooling: Pooling = Pooling.MEAN
    positives: Positives = Positives.SOLVED
    seed: int = 0
    batch_size: int = 32
    sparse_products: bool = False

    def __post_init__(self) -> None:
        check_positive(train_prompts=self.train_prompts, batch_size=self.batch_size)
        for name, enum in (("pooling", Pooling), ("positives", Positives)):
            if not isinstance(getattr(self, name), enum):
                raise HeadgraphError(f"{name} must be a {enum.__name__}, got {getattr(self, name)!r}")
        try:
            self.sae_config()
        except SAEError as err:
            raise HeadgraphError(str(err)) from None

    def sae_config(self) -> SAEConfig:
        """The :class:`saes.SAEConfig` these settings describe."""
        return SAEConfig(
            d_sae=self.d_sae,
            architecture=self.architecture,
            l1_coefficient=self.l1_coefficient,
            k=self.k,
            epochs=self.epochs,
            lr=self.lr,
            normalize=self.normalize,
            sharing=self.sharing,
            seed=self.seed,
            sparse_products=self.sparse_products,
        )


@dataclass(frozen=True)
class PairOutputs:
    """Pooled head outputs of the positive prompts and of their corrupt twins (rows aligned).

    Attributes:
        positives: per solved clean prompt, every head's pooled output after ``W_O`` (heads
            layer-major, as ``ComponentGraph.heads``).
        negatives: the same for each one's corrupt twin (row ``i`` is the twin of positive ``i``).
        baseline: clean and corrupt metric and accuracy over all pairs.
        seconds: wall time of the collection.
    """

    positives: Float[Tensor, "n_pos head d_model"]
    negatives: Float[Tensor, "n_pos head d_model"]
    baseline: Baseline
    seconds: float

    def distance(self) -> Float[Tensor, " head"]:
        """Per head, the mean distance ``‖x_clean − x_corrupt‖`` between twins (no SAE involved)."""
        return (self.positives - self.negatives).norm(dim=-1).mean(0)


@dataclass(frozen=True)
class CodeRun:
    """Codes of every head on positive and negative prompts, and how they were obtained.

    Attributes:
        positives: code per solved clean prompt and head (heads layer-major, as ``ComponentGraph.heads``).
        negatives: code per corrupt twin of those prompts and head.
        saes: the trained SAEs (``saes.save(path)`` writes them in sae-lens's format).
        outputs: the head outputs that were coded.
        train_rows: which prompts trained the SAE, as rows of ``cat([positives, negatives])``.
        seconds: wall time of each phase (``collect``, ``train``, ``encode``).
        health: what is wrong with the trained SAE(s) (:func:`sae_health`), or ``""``.
    """

    positives: Int[Tensor, "n_pos head"]
    negatives: Int[Tensor, "n_neg head"]
    saes: HeadSAEs
    outputs: PairOutputs
    train_rows: Int[Tensor, " n_train"]
    seconds: dict[str, float] = field(default_factory=dict)
    health: str = ""

    @property
    def baseline(self) -> Baseline:
        """Clean and corrupt metric and accuracy over all pairs."""
        return self.outputs.baseline


def pair_outputs(
    settings: SAECodeSettings,
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    *,
    progress: bool = True,
) -> PairOutputs:
    """Pooled head outputs of the clean prompts the model solves and of their corrupt twins.

    Raises:
        HeadgraphError: the model solves none of the clean prompts.
    """
    start = time.perf_counter()
    device = output_weights(model).device
    lengths = data.lengths.to(device)
    clean, corrupt = (
        head_outputs(model, toks.to(device), lengths, pooling=settings.pooling, batch_size=settings.batch_size,
                     progress=progress)
        for toks in (data.clean, data.corrupt)
    )  # fmt: skip
    targets = data.targets.to(device)
    m_clean, m_corrupt = metric(clean.logits, targets), metric(corrupt.logits, targets)
    acc_clean, acc_corrupt = Accuracy()(clean.logits, targets), Accuracy()(corrupt.logits, targets)
    baseline = Baseline(
        metric.name,
        float(m_clean.double().mean()),
        float(m_corrupt.double().mean()),
        float(acc_clean.double().mean()),
        float(acc_corrupt.double().mean()),
    )
    if settings.positives is Positives.SOLVED:
        solved = acc_clean > 0.5
    elif settings.positives is Positives.METRIC:
        solved = m_clean > 0
    else:
        solved = torch.ones_like(m_clean, dtype=torch.bool)
    if not bool(solved.any()):
        raise HeadgraphError(
            f"the model solves none of the {len(data)} clean prompts ({settings.positives.value}); "
            "sae codes need positive prompts"
        )
    return PairOutputs(clean.outputs[solved], corrupt.outputs[solved], baseline, time.perf_counter() - start)


def code_run(
    settings: SAECodeSettings,
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    *,
    progress: bool = True,
) -> CodeRun:
    """Collect head outputs, pick positives, train the SAE(s) and code every (prompt, head).

    Raises:
        HeadgraphError: the model solves none of the clean prompts.
    """
    outputs = pair_outputs(settings, model, data, metric, progress=progress)
    seconds = {"collect": outputs.seconds}
    start = time.perf_counter()
    pool = torch.cat([outputs.positives, outputs.negatives])  # (2 · n_pos, head, d_model)
    g = torch.Generator().manual_seed(settings.seed)
    train_rows = torch.randperm(pool.shape[0], generator=g)[: settings.train_prompts]
    meta = {
        "model_name": str(model.cfg.model_name),
        "vectors": f"attention head outputs after W_O, {settings.pooling.value} over positions, heads layer-major",
        "n_layers": model.cfg.n_layers,
        "n_heads": model.cfg.n_heads,
        "task": data.task,
    }
    saes = train_head_saes(pool[train_rows.to(pool.device)], settings.sae_config(), meta, progress=progress)
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    latents = saes.latents(pool)
    codes = argmax_codes(latents)
    n_pos = outputs.positives.shape[0]
    seconds["encode"] = time.perf_counter() - start
    return CodeRun(codes[:n_pos], codes[n_pos:], saes, outputs, train_rows, seconds, sae_health(latents))


SATURATED_SHARE = 0.95
"""An SAE is saturated when one code is the code of at least this share of all (prompt, head) vectors."""


def sae_health(latents: Float[Tensor, "batch head d_sae"]) -> str:
    """What makes the SAE(s)' codes useless for ranking heads, or ``""``.

    * dead: no latent fires on any (prompt, head) vector, so every code is equal;
    * saturated: one code (a latent, or "no latent fires") is the code of at least
      :data:`SATURATED_SHARE` of the vectors, so the counts rest on the few others.

    Heads silent on their own (a zero output) are not a fault of the SAE and are not reported as
    dead; they do count towards saturation (an SAE that codes every head by one latent has learnt
    nothing that tells heads apart).

    Examples:
        >>> lat = torch.zeros(3, 4, 5)
        >>> sae_health(lat)
        'the sparse autoencoder is dead: no latent fires on any of the 3 × 4 head outputs (every code is equal)'
        >>> lat[:, :, 2] = 1.0  # one latent is the code of everything
        >>> sae_health(lat)
        'the sparse autoencoder is saturated: one code (latent 2) is the code of 100% of the 3 × 4 head outputs'
        >>> lat[0, :, 3] = 2.0
        >>> lat[1, :2, 4] = 2.0
        >>> sae_health(lat)
        ''
    """
    size = f"{latents.shape[0]} × {latents.shape[1]} head outputs"
    if not bool((latents > 0).any()):
        return f"the sparse autoencoder is dead: no latent fires on any of the {size} (every code is equal)"
    codes = argmax_codes(latents).flatten()
    values, counts = torch.unique(codes, return_counts=True)
    top = int(counts.argmax())
    share = float(counts[top]) / codes.numel()
    if share >= SATURATED_SHARE:
        code = int(values[top])
        name = "no latent fires" if code < 0 else f"latent {code}"
        return f"the sparse autoencoder is saturated: one code ({name}) is the code of {share:.0%} of the {size}"
    return ""


def _params(method: object, run: CodeRun) -> dict[str, object]:
    return {
        **method_params(method),
        "values": VALUES_NOTE,
        "n_positives": int(run.positives.shape[0]),
        "n_train_prompts": int(run.train_rows.shape[0]),
        "seconds_by_phase": {k: round(v, 3) for k, v in run.seconds.items()},
    }


def head_values(graph: ComponentGraph, importance: Real[Tensor, " head"]) -> Float[Tensor, " node"]:
    """Node values ``−importance`` on the heads (layer-major), NaN on every other node."""
    values = torch.full((len(graph.nodes),), math.nan)
    idx = torch.tensor([graph.node_index(n) for n in graph.heads])
    values[idx] = -importance.float().cpu()
    return values


@METHODS.register("sae-codes")
@dataclass(frozen=True)
class SAECodes(SAECodeSettings):
    """Node-level discrete SAE codes (O'Neill & Bui 2024): ``value = −count``; see the module docstring.

    Attributes:
        node_score: the paper's node count, or its pair-endpoint ("edge") count per head.
    """

    name: ClassVar[str] = "sae-codes"
    level: ClassVar[Level] = Level.NODE
    node_score: NodeScore = NodeScore.UNIQUE_CODES

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.node_score, NodeScore):
            raise HeadgraphError(f"node_score must be a NodeScore, got {self.node_score!r}")

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        run = code_run(self, model, data, metric, progress=progress)
        if self.node_score is NodeScore.UNIQUE_CODES:
            counts = unique_code_counts(run.positives, run.negatives)
        else:
            counts = pair_endpoint_counts(unique_pair_counts(run.positives, run.negatives))
        graph = graph_of(model)
        scores = Scores(
            graph=graph,
            level=Level.NODE,
            values=head_values(graph, counts),
            method=self.name,
            baseline=run.baseline,
            params=_params(self, run),
            seconds=time.perf_counter() - start,
        )
        return flag_uninformative(scores, run.health)


@METHODS.register("sae-code-edges")
@dataclass(frozen=True)
class SAECodeEdges(SAECodeSettings):
    """Edge-level discrete SAE codes: a head pair's count of code pairs seen only on positives,
    as ``−count`` on its q, k and v edges (module docstring)."""

    name: ClassVar[str] = "sae-code-edges"
    level: ClassVar[Level] = Level.EDGE

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        run = code_run(self, model, data, metric, progress=progress)
        pairs = unique_pair_counts(run.positives, run.negatives).float().cpu()  # (head, head)
        graph = graph_of(model)
        values = torch.full((len(graph.edges),), math.nan)
        rows, src, dst = [], [], []
        for i, e in enumerate(graph.edges):
            if e.src.kind is NodeKind.HEAD and e.dst.kind is NodeKind.HEAD:
                rows.append(i)
                src.append(e.src.layer * graph.n_heads + int(e.src.head or 0))
                dst.append(e.dst.layer * graph.n_heads + int(e.dst.head or 0))
        if rows:
            values[torch.tensor(rows)] = -pairs[torch.tensor(src), torch.tensor(dst)]
        scores = Scores(
            graph=graph,
            level=Level.EDGE,
            values=values,
            method=self.name,
            baseline=run.baseline,
            params=_params(self, run),
            seconds=time.perf_counter() - start,
        )
        return flag_uninformative(scores, run.health)
