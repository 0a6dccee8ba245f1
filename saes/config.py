"""Settings of the sparse autoencoders trained on head outputs (a frozen, validated dataclass).

Defaults follow O'Neill & Bui (2024, arXiv 2405.12522; their ``src/sae.py``, ``src/train.py`` and
``experiments/main_results.py``): 200 latents, ReLU with an L1 penalty of 0.02, Adam at lr 1e-3 for
500 full-batch epochs, one SAE shared by all heads.

The L1 coefficient is given in the paper's units. Their loss is ``mean over elements of (x̂ − x)²
+ λ · mean over vectors of ‖f‖₁``; sae-lens's standard SAE minimises ``mean over vectors of
‖x̂ − x‖² + λ' · mean over vectors of Σᵢ fᵢ‖W_dec,i‖``, a reconstruction term ``d_in`` times
larger. The same trade-off therefore needs ``λ' = λ · d_in``, which :meth:`SAEConfig.sae_lens_l1`
returns. (The paper's decoder rows have unit norm; sae-lens weights each latent's L1 by its
decoder row's norm instead, which is the same penalty at unit norm.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from saes.errors import SAEError

__all__ = ["Architecture", "SAEConfig", "Sharing"]


class Architecture(Enum):
    """Which sae-lens SAE is trained.

    * ``RELU_L1``: ReLU latents with an L1 penalty (sae-lens ``standard``; the paper's SAE).
    * ``TOPK``: only the ``k`` largest latents are kept (sae-lens ``topk``); with ``k = 1`` each
      vector is coded by exactly one latent, a pure discrete code.
    """

    RELU_L1 = "relu-l1"
    TOPK = "topk"


class Sharing(Enum):
    """Whether one SAE codes every head (the paper) or each head gets its own."""

    SHARED = "shared"
    PER_HEAD = "per-head"


@dataclass(frozen=True)
class SAEConfig:
    """How the SAEs on head outputs are built and trained.

    Attributes:
        d_sae: number of latents (the size of the code book).
        architecture: ReLU + L1, or TopK.
        l1_coefficient: L1 weight in the paper's units (see the module docstring); ReLU + L1 only.
        k: latents kept per vector; TopK only.
        epochs: full-batch training steps (every step sees all training vectors).
        lr: Adam learning rate (constant).
        normalize: rescale inputs so their mean norm is ``sqrt(d_in)`` during training (sae-lens
            ``expected_average_only_in``; folded into the weights afterwards, so codes are computed
            on raw activations). The paper does not normalize.
        sharing: one SAE for all heads, or one per head.
        seed: seeds the SAE's initial weights.
        sparse_products: ReLU + L1 only: train with products over the firing latents only
            (:mod:`saes.sparse_train`: the same gradients up to float rounding, faster once the L1
            penalty has made the latents sparse, but not the same codes after 100+ steps: rounding
            decides borderline latents; measured in the README). Off by default: sae-lens's class.
    """

    d_sae: int = 200
    architecture: Architecture = Architecture.RELU_L1
    l1_coefficient: float = 0.02
    k: int = 1
    epochs: int = 500
    lr: float = 1e-3
    normalize: bool = False
    sharing: Sharing = Sharing.SHARED
    seed: int = 0
    sparse_products: bool = False

    def __post_init__(self) -> None:
        for name in ("d_sae", "k", "epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise SAEError(f"{name} must be a positive integer, got {v!r}")
        if self.k > self.d_sae:
            raise SAEError(f"k ({self.k}) cannot exceed d_sae ({self.d_sae})")
        if not self.l1_coefficient >= 0:  # also rejects NaN
            raise SAEError(f"l1_coefficient must be non-negative, got {self.l1_coefficient!r}")
        if not self.lr > 0:
            raise SAEError(f"lr must be positive, got {self.lr!r}")
        for name, enum in (("architecture", Architecture), ("sharing", Sharing)):
            if not isinstance(getattr(self, name), enum):
                raise SAEError(f"{name} must be a {enum.__name__}, got {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise SAEError(f"seed must be an integer, got {self.seed!r}")

    def sae_lens_l1(self, d_in: int) -> float:
        """The L1 coefficient in sae-lens's units for inputs of width ``d_in``.

        Examples:
            >>> SAEConfig(l1_coefficient=0.02).sae_lens_l1(576)
            11.52
        """
        return self.l1_coefficient * d_in
