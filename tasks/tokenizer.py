"""The one view of a tokenizer that tasks use.

Tasks produce text; turning text into token ids depends on the model's tokenizer and on whether the
model expects a beginning-of-sequence token (GPT-2 in TransformerLens does, SmolLM2 does not). This
wrapper holds both facts so every task tokenizes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TextTokenizer"]


@dataclass(frozen=True)
class TextTokenizer:
    """A Hugging Face tokenizer plus the model's BOS convention.

    Attributes:
        hf: a ``transformers`` tokenizer (fast, so character offsets are available).
        prepend_bos: whether prompts start with the tokenizer's BOS token.
        name: a human-readable name recorded in datasets (e.g. the model name).
    """

    hf: Any
    prepend_bos: bool
    name: str

    def __post_init__(self) -> None:
        if self.prepend_bos and self.hf.bos_token_id is None:
            raise ValueError(f"tokenizer {self.name!r} has no BOS token but prepend_bos=True")

    @property
    def pad_id(self) -> int:
        """Token id used to right-pad batches (never attended to by the answer position)."""
        for tid in (self.hf.pad_token_id, self.hf.eos_token_id, self.hf.bos_token_id):
            if tid is not None:
                return int(tid)
        return 0

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, with BOS first when the model expects it."""
        ids = self.hf(text, add_special_tokens=False)["input_ids"]
        return [int(self.hf.bos_token_id), *ids] if self.prepend_bos else list(ids)

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of ``text`` and each token's character span (BOS gets ``(0, 0)``)."""
        enc = self.hf(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        if self.prepend_bos:
            return [int(self.hf.bos_token_id), *ids], [(0, 0), *offsets]
        return ids, offsets

    def single_token(self, word: str) -> int | None:
        """The id of ``word`` if it is exactly one token (leading space included), else None."""
        ids = self.hf(word, add_special_tokens=False)["input_ids"]
        return int(ids[0]) if len(ids) == 1 else None

    def decode(self, token_id: int) -> str:
        """The text of one token."""
        return str(self.hf.decode([token_id]))
