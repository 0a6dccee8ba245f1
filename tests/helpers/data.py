"""Random prompt-pair datasets and a deterministic stand-in for a Hugging Face tokenizer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from tasks import PromptPair, PromptPairDataset, Targets, TextTokenizer


def random_dataset(
    n: int = 6,
    length: int = 7,
    d_vocab: int = 50,
    *,
    lengths: list[int] | None = None,
    seed: int = 0,
    diff_from: int = 0,
) -> PromptPairDataset:
    """Random token pairs; corrupt equals clean before ``diff_from``; optional per-row lengths."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, d_vocab, (n, length), generator=g)
    corrupt = clean.clone()
    corrupt[:, diff_from:] = torch.randint(0, d_vocab, (n, length - diff_from), generator=g)
    lens = torch.tensor(lengths if lengths is not None else [length] * n)
    targets = Targets(
        torch.randint(0, d_vocab, (n, 1), generator=g),
        torch.randint(0, d_vocab, (n, 1), generator=g),
        torch.randint(0, d_vocab, (n, 2), generator=g),
    )
    pairs = tuple(PromptPair(f"clean {i}", f"corrupt {i}", ("a",), ("b",), ("a", "b")) for i in range(n))
    return PromptPairDataset("random", seed, "none", pairs, clean, corrupt, lens, targets, {})


@dataclass
class RegexHF:
    """A deterministic stand-in for a Hugging Face tokenizer.

    Text is split by ``pattern``; each piece is one token unless listed in ``split``, in which case
    it becomes two (its first character, then the rest). Ids are assigned on first sight.
    """

    split: frozenset[str] = frozenset()
    pattern: str = r" ?[A-Za-z]+| ?\d{1,2}| ?[^\sA-Za-z\d]|\s"
    bos_token_id: int | None = None
    pad_token_id: int | None = 0
    eos_token_id: int | None = None
    vocab: dict[str, int] = field(default_factory=dict)

    def _id(self, piece: str) -> int:
        return self.vocab.setdefault(piece, len(self.vocab) + 1)

    def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False) -> Any:
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        for m in re.finditer(self.pattern, text):
            s, e = m.span()
            pieces = [(s, s + 1), (s + 1, e)] if m.group() in self.split and e - s > 1 else [(s, e)]
            for a, b in pieces:
                ids.append(self._id(text[a:b]))
                offsets.append((a, b))
        out: dict[str, Any] = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        return out

    def decode(self, ids: list[int]) -> str:
        inverse = {v: k for k, v in self.vocab.items()}
        return "".join(inverse[i] for i in ids)


def regex_tokenizer(split: frozenset[str] = frozenset(), **kw: Any) -> TextTokenizer:
    return TextTokenizer(RegexHF(split=split, **kw), False, "regex")
