"""A set of sae-lens SAEs that code attention-head outputs, their discrete codes, and their files.

The code of a (prompt, head) is the index of its largest SAE latent (O'Neill & Bui 2024, arXiv
2405.12522, ``src/main.py``: ``argmax`` over the learned activations). A vector whose latents are
all zero (a ReLU SAE may switch every latent off) gets :data:`NO_CODE` instead of latent 0, so
"silent" is its own code rather than being confused with latent 0.

On disk a set of head SAEs is a folder: ``headgraph_saes.json`` (what the SAEs code: sharing,
number of heads, free-form metadata) and one sub-folder per SAE in sae-lens's own format
(``cfg.json`` + ``sae_weights.safetensors``), ``shared/`` or ``head_0000/``, ``head_0001/``, ...
Each sub-folder loads with ``sae_lens.SAE.load_from_disk`` alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor

from saes.config import Sharing
from saes.errors import SAEError

__all__ = ["MANIFEST", "NO_CODE", "HeadSAEs", "argmax_codes"]

NO_CODE = -1
"""The code of a vector whose SAE latents are all zero."""

MANIFEST = "headgraph_saes.json"
"""File that describes a saved set of head SAEs."""

_FORMAT = "headgraph.saes"
_VERSION = 1


def argmax_codes(latents: Float[Tensor, "*batch d_sae"]) -> Int[Tensor, "*batch"]:
    """Index of the largest latent, or :data:`NO_CODE` where no latent is positive.

    Examples:
        >>> argmax_codes(torch.tensor([[0.0, 2.0, 1.0], [0.0, 0.0, 0.0]]))
        tensor([ 1, -1])
    """
    best = latents.max(-1)
    return torch.where(best.values > 0, best.indices, torch.full_like(best.indices, NO_CODE))


@dataclass(frozen=True)
class HeadSAEs:
    """SAEs over per-head output vectors: one shared by all heads, or one per head.

    Attributes:
        saes: the sae-lens inference SAEs; one (shared) or ``n_heads`` (per head, in head order).
        sharing: which of the two.
        n_heads: number of heads the SAEs code.
        metadata: what the vectors are (model, pooling, ...), JSON-ready; saved with the SAEs.
    """

    saes: tuple[SAE[Any], ...]
    sharing: Sharing
    n_heads: int
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = 1 if self.sharing is Sharing.SHARED else self.n_heads
        if len(self.saes) != expected:
            raise SAEError(f"{self.sharing.value} SAEs for {self.n_heads} heads need {expected}, got {len(self.saes)}")
        widths = {int(s.cfg.d_sae) for s in self.saes}
        if len(widths) != 1:
            raise SAEError(f"the SAEs have different numbers of latents: {sorted(widths)}")

    @property
    def d_sae(self) -> int:
        """Number of latents (codes) of each SAE."""
        return int(self.saes[0].cfg.d_sae)

    @torch.no_grad()
    def latents(self, x: Float[Tensor, "batch head d_model"]) -> Float[Tensor, "batch head d_sae"]:
        """SAE latent activations of every (prompt, head) vector."""
        self._check(x)
        if self.sharing is Sharing.SHARED:
            sae = self.saes[0]
            return sae.encode(x.reshape(-1, x.shape[-1]).to(sae.dtype)).reshape(*x.shape[:2], -1)
        return torch.stack([sae.encode(x[:, h].to(sae.dtype)) for h, sae in enumerate(self.saes)], 1)

    def codes(self, x: Float[Tensor, "batch head d_model"]) -> Int[Tensor, "batch head"]:
        """The discrete code of every (prompt, head): its argmax latent, or :data:`NO_CODE`."""
        return argmax_codes(self.latents(x))

    def save(self, path: str | Path) -> Path:
        """Write the SAEs in sae-lens's format plus a manifest into folder ``path``; return it."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, sae in zip(self._folders(), self.saes, strict=True):
            sae.save_model(path / name)
        manifest = {
            "format": _FORMAT,
            "version": _VERSION,
            "sharing": self.sharing.value,
            "n_heads": self.n_heads,
            "folders": self._folders(),
            "metadata": dict(self.metadata),
        }
        (path / MANIFEST).write_text(json.dumps(manifest, indent=1))
        return path

    @staticmethod
    def load(path: str | Path, device: str = "cpu") -> HeadSAEs:
        """Read a folder written by :meth:`save` (each SAE through ``sae_lens.SAE.load_from_disk``).

        Raises:
            SAEError: no manifest, another format or version, or a missing SAE folder.
        """
        path = Path(path)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            raise SAEError(f"{path} holds no {MANIFEST}: not a saved set of head SAEs") from None
        if manifest.get("format") != _FORMAT or manifest.get("version") != _VERSION:
            raise SAEError(
                f"{path / MANIFEST} is format {manifest.get('format')!r} version {manifest.get('version')!r}; "
                f"this version reads {_FORMAT!r} version {_VERSION}"
            )
        missing = [f for f in manifest["folders"] if not (path / f).is_dir()]
        if missing:
            raise SAEError(f"{path} lacks the SAE folder(s) {missing}")
        saes = tuple(SAE.load_from_disk(path / f, device=device) for f in manifest["folders"])
        return HeadSAEs(saes, Sharing(manifest["sharing"]), int(manifest["n_heads"]), manifest["metadata"])

    def _folders(self) -> list[str]:
        if self.sharing is Sharing.SHARED:
            return ["shared"]
        return [f"head_{h:04d}" for h in range(self.n_heads)]

    def _check(self, x: Tensor) -> None:
        d_in = int(self.saes[0].cfg.d_in)
        if x.ndim != 3 or x.shape[1] != self.n_heads or x.shape[2] != d_in:
            raise SAEError(f"expected vectors [batch, {self.n_heads} heads, {d_in}], got {tuple(x.shape)}")
