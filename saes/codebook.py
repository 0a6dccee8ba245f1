"""A head's code book: an SAE on its per-position outputs, its discrete codes, and each code's vector.

Code patching (:mod:`circuits.discovery.code_patching`) asks whether a head's discrete code carries
what the head does: replace the head's output by the *vector of its code* and see whether the model
behaves the same. That needs, per head, a map ``output → code → vector``:

* **code**: the argmax latent of an SAE trained on the head's outputs (O'Neill & Bui 2024, arXiv
  2405.12522: a code is the argmax latent), or :data:`~saes.head_saes.NO_CODE` when no latent fires;
* **vector**: the SAE's decoder output for that one latent alone (``W_dec[c] · a + b_dec``), where
  the activation ``a`` is either the vector's own (:attr:`CodeVector.DECODER`: the 1-sparse
  reconstruction, one number besides the code) or the code's mean activation over the training
  vectors (:attr:`CodeVector.MEAN`: a pure vocabulary, the vector depends on the code alone).
  ``NO_CODE``'s vector is the decoder with every latent off (``b_dec``).

With a TopK SAE of ``k = 1`` (the default of :class:`CodebookConfig`) the training objective *is* the
1-sparse reconstruction, so the code's vector is the best one-code description the SAE found. Works
on tensors only, like the rest of :mod:`saes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor

from saes.config import Architecture, SAEConfig, Sharing
from saes.errors import SAEError
from saes.head_saes import NO_CODE, argmax_codes
from saes.train import _bars, train_sae

__all__ = ["CodeVector", "Codebook", "CodebookConfig", "code_purity", "train_codebook"]


class CodeVector(Enum):
    """What vector stands for a code (module docstring)."""

    DECODER = "decoder"
    MEAN = "mean"


@dataclass(frozen=True)
class CodebookConfig:
    """How a head's code book is trained.

    Attributes:
        d_sae: codes (latents) per head.
        architecture: TopK (default, ``k = 1``: one code per vector) or ReLU + L1.
        l1_coefficient: L1 weight in the paper's units (ReLU + L1 only).
        epochs: full-batch Adam steps.
        lr: Adam learning rate.
        vector: which vector stands for a code.
        silent_below: a latent fires only when its activation reaches this fraction of its largest
            activation on the training vectors; a vector on which none fires gets NO_CODE (a TopK SAE
            always names a latent, and on a near-zero vector it names one at a tiny activation that
            would otherwise share the code of the latent's real uses).
        seed: seeds the SAE's initial weights.
    """

    d_sae: int = 64
    architecture: Architecture = Architecture.TOPK
    l1_coefficient: float = 0.02
    epochs: int = 300
    lr: float = 1e-2
    vector: CodeVector = CodeVector.DECODER
    silent_below: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        self.sae_config()  # validates sizes, rates and the architecture
        if not 0 <= self.silent_below < 1:
            raise SAEError(f"silent_below must be in [0, 1), got {self.silent_below!r}")
        if not isinstance(self.vector, CodeVector):
            raise SAEError(f"vector must be a CodeVector, got {self.vector!r}")

    def sae_config(self) -> SAEConfig:
        """The :class:`SAEConfig` of one head's SAE."""
        return SAEConfig(
            d_sae=self.d_sae,
            architecture=self.architecture,
            l1_coefficient=self.l1_coefficient,
            k=1,
            epochs=self.epochs,
            lr=self.lr,
            sharing=Sharing.PER_HEAD,
            seed=self.seed,
        )


@dataclass(frozen=True)
class Codebook:
    """One head's SAE and the mean activation of each code on its training vectors.

    Attributes:
        sae: the trained sae-lens inference SAE.
        vector: which vector stands for a code.
        mean_activation: per latent, its mean activation over the training vectors it codes (0 for
            a latent that codes none).
        floor: per latent, the activation below which it does not fire (``silent_below`` times its
            largest activation on the training vectors).
    """

    sae: SAE[Any]
    vector: CodeVector
    mean_activation: Float[Tensor, " d_sae"]
    floor: Float[Tensor, " d_sae"]

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @torch.no_grad()
    def latents(self, x: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_sae"]:
        """SAE latent activations."""
        flat = x.reshape(-1, x.shape[-1]).to(self.sae.dtype)
        lat = self.sae.encode(flat)
        lat = torch.where(lat >= self.floor.to(lat), lat, torch.zeros_like(lat))
        return lat.reshape(*x.shape[:-1], -1)

    def codes(self, x: Float[Tensor, "*batch d_model"]) -> Int[Tensor, "*batch"]:
        """The code (argmax latent, or NO_CODE) of each vector."""
        return argmax_codes(self.latents(x))

    @torch.no_grad()
    def vectors(self, x: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_model"]:
        """Each vector replaced by the vector of its code (module docstring), in ``x``'s dtype."""
        lat = self.latents(x)
        codes = argmax_codes(lat)
        idx = codes.clamp(min=0)[..., None]
        own = self.vector is CodeVector.DECODER
        act = lat.gather(-1, idx) if own else self.mean_activation.to(lat)[idx]
        act = torch.where(codes[..., None] == NO_CODE, torch.zeros_like(act), act)
        one = torch.zeros_like(lat).scatter(-1, idx, act)  # (*batch, d_sae): one latent kept
        out = self.sae.decode(one.reshape(-1, one.shape[-1])).reshape(*x.shape)
        return out.to(x.dtype)


def train_codebook(
    x: Float[Tensor, "n d_model"], cfg: CodebookConfig, *, seed_offset: int = 0, progress: bool = False
) -> Codebook:
    """Train one head's code book full-batch on its output vectors ``x``.

    Raises:
        SAEError: ``x`` is not a non-empty matrix.
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise SAEError(f"expected training vectors [n, d_model] with n > 0, got {tuple(x.shape)}")
    with _bars(progress):
        sae = train_sae(x, cfg.sae_config(), {"vectors": "one head's outputs after W_O, per position"},
                        seed_offset=seed_offset)  # fmt: skip
    with torch.no_grad():
        lat = sae.encode(x.to(sae.dtype))
        floor = (lat.max(0).values * cfg.silent_below).cpu()
        lat = torch.where(lat >= floor.to(lat), lat, torch.zeros_like(lat))
        codes = argmax_codes(lat)
        fired = codes != NO_CODE
        top = lat.max(-1).values
        sums = torch.zeros(int(sae.cfg.d_sae), dtype=top.dtype).index_add_(0, codes[fired].cpu(), top[fired].cpu())
        counts = torch.bincount(codes[fired].cpu(), minlength=int(sae.cfg.d_sae)).to(top.dtype)
        mean = torch.where(counts > 0, sums / counts.clamp(min=1), torch.zeros_like(sums))
    return Codebook(sae, cfg.vector, mean, floor)


def code_purity(codes: Int[Tensor, " n"], labels: Int[Tensor, " n"]) -> float:
    """Purity of the codes with respect to a label: the fraction of items whose label is the most
    common label among the items that share their code (1: the code determines the label).

    Purity alone rewards codes that are unique per item; report it with the number of codes.

    Examples:
        >>> code_purity(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([5, 5, 6, 6, 7]))
        0.8
    """
    if codes.shape != labels.shape or codes.ndim != 1 or not len(codes):
        raise SAEError(f"need as many codes as labels (and some), got {tuple(codes.shape)} and {tuple(labels.shape)}")
    pairs = torch.stack([codes, labels], 1)
    joint, counts = torch.unique(pairs, dim=0, return_counts=True)
    best: dict[int, int] = {}
    for (c, _), k in zip(joint.tolist(), counts.tolist(), strict=True):
        best[c] = max(best.get(c, 0), k)
    return sum(best.values()) / len(codes)
