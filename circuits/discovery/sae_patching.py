"""``sae-patching``: discrete SAE codes shortlist heads cheaply, exact activation patching scores them.

The combined engine of the design: :mod:`~circuits.discovery.sae_codes` (O'Neill & Bui 2024)
ranks every head from a few forward passes and a small SAE; exact activation patching
(:class:`~circuits.discovery.ActivationPatching`, restricted to a list of heads) then measures the
metric change of only the ``shortlist`` best-ranked heads. Patching a head at layer ``l`` costs a
forward pass from layer ``l`` up, so a shortlist of ``s`` of ``H`` heads costs about ``s / H`` of
patching every head, plus the SAE step.

The result is one :class:`~circuits.scores.Scores` in the ordinary sign convention: shortlisted
heads hold their exact patching effect (metric change when patched, negative = important); heads
off the shortlist hold NaN ("not scored"), so ``top_k`` and ``ranked`` only return measured heads.
An SAE found dead or saturated (:func:`~circuits.discovery.sae_codes.sae_health`) never ranks the
shortlist: a warning is raised and recorded, and the heads are ranked by output difference (below)
from the same forward passes. The shortlist is the ``min(shortlist, heads)`` best-ranked heads:
heads whose SAE count is zero rank last but still fill the shortlist when fewer heads have a
positive count (on a small model the SAE may see no difference in the very heads that matter:
see the README's planted-model table), so the shortlist is never empty and on a model with at most
``shortlist`` heads every head is patched. The default SAE trains for 100 epochs at lr 5e-3, not
the paper's 500 at 1e-3 (see the class).

Edges are not refined here: exact edge scores need path patching, which this package does not have
yet; ``sae-code-edges`` gives the SAE's edge ranking on its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from transformer_lens import HookedTransformer

from circuits.discovery.activation_patching import ActivationPatching
from circuits.discovery.base import METHODS, check_positive, method_params
from circuits.discovery.sae_codes import SAECodeSettings, code_run, pair_outputs
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import graph_of
from circuits.scores import Level, Scores, flag_uninformative
from saes import unique_code_counts
from tasks import PromptPairDataset
from tasks.metrics import Metric

__all__ = ["SAEPatching", "ShortlistBy", "shortlist_heads"]


def shortlist_heads(ranking: Sequence[float] | Sequence[int], n_heads: int, size: int) -> list[Node]:
    """The ``min(size, heads)`` heads with the largest ranking values (ties: earlier head first),
    in graph order.

    ``ranking`` holds one value per head, layer-major with ``n_heads`` heads per layer. Heads ranked
    0 come last but are kept when fewer heads rank above 0, so the list is empty only if ``size``
    is 0.

    Examples:
        >>> [str(n) for n in shortlist_heads([0, 3, 1, 3], n_heads=2, size=2)]
        ['L0H1', 'L1H1']
        >>> [str(n) for n in shortlist_heads([0, 0, 1, 0], n_heads=2, size=3)]
        ['L0H0', 'L0H1', 'L1H0']
        >>> len(shortlist_heads([0, 0, 0, 0], n_heads=2, size=60))
        4
    """
    if size < 0 or len(ranking) % n_heads:
        raise HeadgraphError(f"need size ≥ 0 and whole layers of {n_heads} heads, got {size} and {len(ranking)}")
    order = sorted(range(len(ranking)), key=lambda i: -ranking[i])[:size]  # stable: ties keep graph order
    return [Node.of_head(i // n_heads, i % n_heads) for i in sorted(order)]


class ShortlistBy(Enum):
    """What ranks the heads that patching then scores.

    * ``SAE_CODES``: the ``sae-codes`` count (codes seen only on positives); the design's engine.
    * ``OUTPUT_DIFFERENCE``: the mean distance between a head's pooled outputs on a solved prompt
      and on its corrupt twin, from the same forward passes, with no SAE (a baseline that tells
      what the discretisation adds; measured in the README section "SAE codes").
    """

    SAE_CODES = "sae-codes"
    OUTPUT_DIFFERENCE = "output-difference"


@METHODS.register("sae-patching")
@dataclass(frozen=True)
class SAEPatching(SAECodeSettings):
    """SAE codes shortlist heads, exact activation patching scores the shortlist.

    SAE settings are those of ``sae-codes`` (:class:`SAECodeSettings`) except that the SAE trains
    for 100 epochs at lr 5e-3 instead of the paper's 500 at 1e-3: on SmolLM2's IOI this ranks heads
    as well (README, "SAE codes") in a fifth of the training time.

    Attributes:
        shortlist: heads handed to patching (all of them on a model with fewer heads).
        shortlist_by: what ranks the heads for the shortlist.
        patch_batch_size: prompts per patched forward.
        max_rows: most rows (variants × prompts) in one patched forward.
    """

    name: ClassVar[str] = "sae-patching"
    level: ClassVar[Level] = Level.NODE
    epochs: int = 100
    lr: float = 5e-3
    shortlist: int = 60
    shortlist_by: ShortlistBy = ShortlistBy.SAE_CODES
    patch_batch_size: int = 32
    max_rows: int = 288

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(shortlist=self.shortlist, patch_batch_size=self.patch_batch_size, max_rows=self.max_rows)
        if not isinstance(self.shortlist_by, ShortlistBy):
            raise HeadgraphError(f"shortlist_by must be a ShortlistBy, got {self.shortlist_by!r}")

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        if self.shortlist_by is ShortlistBy.SAE_CODES:
            run = code_run(self, model, data, metric, progress=progress)
            ranking = unique_code_counts(run.positives, run.negatives).tolist()
            phases, n_pos, health = dict(run.seconds), int(run.positives.shape[0]), run.health
            if health:  # never rank by a broken SAE: the same forward passes give the output difference
                ranking = run.outputs.distance().tolist()
                health += "; the shortlist was ranked by output difference (no SAE) instead"
        else:
            outputs = pair_outputs(self, model, data, metric, progress=progress)
            ranking = outputs.distance().tolist()
            phases, n_pos, health = {"collect": outputs.seconds}, int(outputs.positives.shape[0]), ""
        chosen = shortlist_heads(ranking, model.cfg.n_heads, self.shortlist)
        patching = ActivationPatching(
            batch_size=self.patch_batch_size, max_rows=self.max_rows, heads=tuple(str(n) for n in chosen)
        )
        patched = patching(model, data, metric, progress=progress)
        phases["patch"] = patched.seconds
        scores = Scores(
            graph=graph_of(model),
            level=Level.NODE,
            values=patched.values,
            method=self.name,
            baseline=patched.baseline,
            params={
                **method_params(self),
                "n_positives": n_pos,
                "shortlisted": [str(n) for n in chosen],
                "seconds_by_phase": {k: round(v, 3) for k, v in phases.items()},
            },
            seconds=time.perf_counter() - start,
            warnings=patched.warnings,
        )
        return flag_uninformative(scores, health)
