"""Heads labelled by their discrete codes: what each circuit head says, and what makes it say it.

For each head, its code book (:mod:`saes.codebook`, trained by
:func:`~circuits.discovery.code_patching.train_codebooks`) codes its output at every position of the
clean prompts. A head's label is its few most frequent codes at the **answer position** (where the
metric reads the logits), each with

* ``share``: the fraction of prompts whose answer-position output has this code;
* ``positions``: where else the code fires, as the share of its occurrences (every real position of
  every clean prompt) at each named position of the task (IOI: ``IO``, ``S1``, ``S2``) or elsewhere;
* ``attends``: where the head attends when the code fires at the answer position (the key position
  of its largest attention weight), as shares of named positions, ``BOS`` (position 0) and
  ``other``, and the most common attended tokens;
* ``examples``: a few clean prompts on which it fires there.

With the head's code fidelity (:mod:`~circuits.discovery.code_patching`), this says whether a small
vocabulary explains the head and what the words mean. Labels are JSON-ready and stored in the
head-graph file (``code_labels``), printed by ``headgraph show``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformer_lens import HookedTransformer

from circuits.discovery.code_patching import HeadFidelity
from circuits.graph import Node
from circuits.model import hook_pattern, hook_z, output_weights, run_with_cache
from saes import NO_CODE, Codebook
from tasks import PromptPairDataset

__all__ = ["CodeLabel", "HeadLabel", "format_labels", "label_heads"]


@dataclass(frozen=True)
class CodeLabel:
    """One code of one head (module docstring)."""

    code: int
    share: float
    positions: Mapping[str, float]
    attends: Mapping[str, float]
    tokens: tuple[str, ...]
    examples: tuple[str, ...]

    def text(self) -> str:
        """One line: ``code 12 (41% of answers): fires at END 60%, S2 30%; attends S1 88% ("John")``."""
        name = "silent" if self.code == NO_CODE else f"code {self.code}"
        where = ", ".join(f"{k} {v:.0%}" for k, v in _top(self.positions))
        att = ", ".join(f"{k} {v:.0%}" for k, v in _top(self.attends))
        toks = " ".join(repr(t) for t in self.tokens)
        return f"{name} ({self.share:.0%} of answers): fires at {where}; attends {att} ({toks})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "share": self.share,
            "positions": dict(self.positions),
            "attends": dict(self.attends),
            "tokens": list(self.tokens),
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class HeadLabel:
    """A head's label: its main codes at the answer position and, if measured, its code fidelity."""

    head: Node
    n_codes: int
    codes: tuple[CodeLabel, ...]
    fidelity: float | None = None
    converse_fidelity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_codes": self.n_codes,
            "fidelity": _finite(self.fidelity),
            "converse_fidelity": _finite(self.converse_fidelity),
            "codes": [c.to_dict() for c in self.codes],
        }


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _top(shares: Mapping[str, float], k: int = 3) -> list[tuple[str, float]]:
    return sorted(shares.items(), key=lambda kv: -kv[1])[:k]


def _shares(counter: Counter[str]) -> dict[str, float]:
    total = sum(counter.values())
    return {k: v / total for k, v in counter.most_common()} if total else {}


@torch.inference_mode()
def label_heads(
    model: HookedTransformer,
    data: PromptPairDataset,
    heads: Sequence[Node],
    books: Mapping[Node, Codebook],
    *,
    per_head: int = 3,
    examples: int = 2,
    decode: Callable[[int], str] = str,
    fidelity: Mapping[Node, HeadFidelity] | None = None,
) -> dict[Node, HeadLabel]:
    """Label each head by its ``per_head`` most frequent answer-position codes (module docstring).

    Args:
        model: the model.
        data: the prompt pairs (their clean prompts are labelled).
        heads: the heads; each needs a code book in ``books``.
        books: the heads' code books.
        per_head: codes per head.
        examples: example prompts per code.
        decode: token id → text (the task's tokenizer; ``str`` for token-level tasks).
        fidelity: the heads' code fidelity, copied into the labels when given.
    """
    layers = sorted({h.layer for h in heads})
    names = [n for layer in layers for n in (hook_z(layer), hook_pattern(layer))]
    _, cache = run_with_cache(model, data.clean.to(output_weights(model).device), names)
    n, width = data.clean.shape
    rows = torch.arange(n)
    answer = data.answer_pos.cpu()
    real = (torch.arange(width)[None, :] < data.lengths.cpu()[:, None]).cpu()
    named = torch.full((n, width), -1, dtype=torch.long)  # index into pos_names, -1: unnamed
    pos_names = list(data.positions)
    for i, name in enumerate(pos_names):
        named[rows, data.positions[name].cpu()] = i
    pos_names.append("answer")
    named[rows, answer] = torch.where(named[rows, answer] < 0, len(pos_names) - 1, named[rows, answer])

    def where(r: int, p: int) -> str:
        i = int(named[r, p])
        return pos_names[i] if i >= 0 else ("BOS" if p == 0 else "other")

    out: dict[Node, HeadLabel] = {}
    for head in heads:
        hh = int(head.head or 0)
        z = cache[hook_z(head.layer)][:, :, hh]
        codes = books[head].codes(z @ output_weights(model)[head.layer, hh]).cpu()  # (n, pos)
        pattern = cache[hook_pattern(head.layer)][:, hh]  # (n, q, k)
        key = pattern[rows, answer].argmax(-1).cpu()  # (n,) the key the answer position attends most
        at_answer = codes[rows, answer]
        labels = []
        for code, count in Counter(at_answer.tolist()).most_common(per_head):
            fires = (codes == code) & real
            positions = Counter(where(r, p) for r, p in fires.nonzero().tolist())
            mine = (at_answer == code).nonzero()[:, 0].tolist()
            attends = Counter(where(r, int(key[r])) for r in mine)
            tokens = Counter(decode(int(data.clean[r, key[r]])) for r in mine)
            labels.append(
                CodeLabel(
                    code=int(code),
                    share=count / n,
                    positions=_shares(positions),
                    attends=_shares(attends),
                    tokens=tuple(t for t, _ in tokens.most_common(3)),
                    examples=tuple(data.pairs[r].clean for r in mine[:examples]),
                )
            )
        f = fidelity.get(head) if fidelity else None
        out[head] = HeadLabel(
            head,
            len(set(codes[real].tolist())),
            tuple(labels),
            f.fidelity if f else None,
            f.converse_fidelity if f else None,
        )
    return out


def format_labels(labels: Mapping[str, Mapping[str, Any]]) -> str:
    """Text lines for stored labels (``HeadGraph.code_labels``: head name → :meth:`HeadLabel.to_dict`)."""
    lines = []
    for head, lab in labels.items():
        fid = lab.get("fidelity")
        conv = lab.get("converse_fidelity")
        extra = "".join(
            f", {name} {v:.2f}" for name, v in (("code fidelity", fid), ("converse", conv)) if v is not None
        )
        lines.append(f"{head}: {lab.get('n_codes')} codes{extra}")
        for c in lab.get("codes", []):
            label = CodeLabel(
                int(c["code"]),
                float(c["share"]),
                c["positions"],
                c["attends"],
                tuple(c["tokens"]),
                tuple(c["examples"]),
            )
            lines.append(f"    {label.text()}")
            if label.examples:
                lines.append(f"      e.g. {label.examples[0]!r}")
    return "\n".join(lines)
