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
Heads whose SAE count is zero are never shortlisted (the codes saw no difference in them).

Edges are not refined here: exact edge scores need path patching, which this package does not have
yet; ``sae-code-edges`` gives the SAE's edge ranking on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from transformer_lens import HookedTransformer

from circuits.discovery.activation_patching import ActivationPatching
from circuits.discovery.base import METHODS, check_positive, method_params
from circuits.discovery.sae_codes import SAECodeSettings, code_run
from circuits.graph import Node
from circuits.model import graph_of
from circuits.scores import Level, Scores
from saes import unique_code_counts
from tasks import PromptPairDataset
from tasks.metrics import Metric

__all__ = ["SAEPatching", "shortlist_heads"]


def shortlist_heads(counts: list[int], n_heads: int, size: int) -> list[Node]:
    """The ``size`` heads with the largest positive counts (ties: earlier head first).

    ``counts`` are per head, layer-major with ``n_heads`` heads per layer.

    Examples:
        >>> [str(n) for n in shortlist_heads([0, 3, 1, 3], n_heads=2, size=2)]
        ['L0H1', 'L1H1']
        >>> [str(n) for n in shortlist_heads([0, 0, 1, 0], n_heads=2, size=3)]
        ['L1H0']
    """
    order = sorted((i for i, c in enumerate(counts) if c > 0), key=lambda i: -counts[i])[:size]
    return [Node.of_head(i // n_heads, i % n_heads) for i in sorted(order)]


@METHODS.register("sae-patching")
@dataclass(frozen=True)
class SAEPatching(SAECodeSettings):
    """SAE codes shortlist heads, exact activation patching scores the shortlist.

    SAE settings are those of ``sae-codes`` (see :class:`SAECodeSettings`).

    Attributes:
        shortlist: most heads handed to patching.
        patch_batch_size: prompts per patched forward.
        max_rows: most rows (variants × prompts) in one patched forward.
    """

    name: ClassVar[str] = "sae-patching"
    level: ClassVar[Level] = Level.NODE
    shortlist: int = 40
    patch_batch_size: int = 32
    max_rows: int = 288

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(shortlist=self.shortlist, patch_batch_size=self.patch_batch_size, max_rows=self.max_rows)

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        start = time.perf_counter()
        run = code_run(self, model, data, metric, progress=progress)
        counts = unique_code_counts(run.positives, run.negatives).tolist()
        chosen = shortlist_heads(counts, model.cfg.n_heads, self.shortlist)
        patching = ActivationPatching(
            batch_size=self.patch_batch_size, max_rows=self.max_rows, heads=tuple(str(n) for n in chosen)
        )
        patched = patching(model, data, metric, progress=progress)
        return Scores(
            graph=graph_of(model),
            level=Level.NODE,
            values=patched.values,
            method=self.name,
            baseline=patched.baseline,
            params={
                **method_params(self),
                "n_positives": int(run.positives.shape[0]),
                "shortlisted": [str(n) for n in chosen],
                "seconds_by_phase": {
                    **{k: round(v, 3) for k, v in run.seconds.items()},
                    "patch": round(patched.seconds, 3),
                },
            },  # fmt: skip
            seconds=time.perf_counter() - start,
        )
