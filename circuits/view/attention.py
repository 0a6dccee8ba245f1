"""Attention patterns stored in the head-graph page: chosen heads on a few example prompts.

Clicking a head on the page shows its post-softmax pattern (TransformerLens ``hook_pattern``, read by
:func:`circuits.analysis.attention.head_patterns`) on each stored prompt, rows and columns labelled with the
prompt's tokens. Patterns are computed once, at ``headgraph view --model`` time, for the drawn heads
only, and can be saved beside the circuit file (``attention.json``) so the next ``view`` is offline
and instant.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.analysis.attention import head_patterns
from circuits.errors import CircuitFileError, HeadgraphError
from circuits.graph import Node, NodeKind

__all__ = ["ATTENTION_SCHEMA", "DIGITS", "AttentionExamples", "attention_examples", "task_examples"]

ATTENTION_SCHEMA = "headgraph.attention"
DIGITS = 3
"""Decimals kept per attention weight in the page (the colour scale resolves far less)."""


@dataclass(frozen=True)
class AttentionExamples:
    """Attention of some heads on some prompts.

    Attributes:
        heads: the heads, in the order of each pattern's first axis.
        tokens: per prompt, its tokens as text (no padding).
        patterns: per prompt, ``[head, q, k]`` attention weights (``q = k = len(tokens[p])``).
    """

    heads: tuple[Node, ...]
    tokens: tuple[tuple[str, ...], ...]
    patterns: tuple[Float[Tensor, "head _q _k"], ...]

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.patterns):
            raise HeadgraphError(f"{len(self.tokens)} prompts but {len(self.patterns)} patterns")
        if any(n.kind is not NodeKind.HEAD for n in self.heads):
            raise HeadgraphError("attention examples are for heads only")
        for toks, p in zip(self.tokens, self.patterns, strict=True):
            if tuple(p.shape) != (len(self.heads), len(toks), len(toks)):
                raise HeadgraphError(
                    f"a pattern of shape {tuple(p.shape)} does not match {len(self.heads)} heads × {len(toks)} tokens"
                )

    def check(self, n_layers: int, n_heads: int) -> None:
        """Raise unless every head exists in a ``n_layers × n_heads`` model."""
        bad = [str(h) for h in self.heads if not (0 <= h.layer < n_layers and 0 <= (h.head or 0) < n_heads)]
        if bad:
            raise HeadgraphError(f"attention examples of heads not in a {n_layers}×{n_heads} graph: {', '.join(bad)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: per head name, per prompt, the rounded ``q × k`` matrix."""
        return {
            "schema": ATTENTION_SCHEMA,
            "prompts": [list(t) for t in self.tokens],
            "heads": {
                str(h): [torch.round(p[i].float(), decimals=DIGITS).tolist() for p in self.patterns]
                for i, h in enumerate(self.heads)
            },
        }

    @staticmethod
    def from_dict(data: Any, *, source: str = "<dict>") -> AttentionExamples:
        """Inverse of :meth:`to_dict`.

        Raises:
            CircuitFileError: not an attention file, or malformed.
        """
        if not isinstance(data, dict) or data.get("schema") != ATTENTION_SCHEMA:
            raise CircuitFileError(f'{source}: not a headgraph attention file (no "schema": "{ATTENTION_SCHEMA}")')
        try:
            tokens = tuple(tuple(str(t) for t in p) for p in data["prompts"])
            names = list(data["heads"])
            heads = tuple(Node.parse(n) for n in names)
            patterns = tuple(
                torch.tensor([data["heads"][n][p] for n in names], dtype=torch.float32).reshape(
                    len(names), len(toks), len(toks)
                )
                for p, toks in enumerate(tokens)
            )
            return AttentionExamples(heads, tokens, patterns)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, HeadgraphError) as err:
            raise CircuitFileError(f"{source}: malformed attention file ({type(err).__name__}: {err})") from None

    def save(self, path: str | Path) -> Path:
        """Write the JSON file (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()) + "\n", encoding="utf-8")
        return path

    @staticmethod
    def load(path: str | Path) -> AttentionExamples:
        """Read a file written by :meth:`save` (errors as :meth:`from_dict`)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CircuitFileError(f"{path}: no such file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CircuitFileError(f"{path}: not a headgraph attention file (not JSON: {err})") from None
        return AttentionExamples.from_dict(data, source=str(path))


def attention_examples(
    model: HookedTransformer,
    prompts: Sequence[Int[Tensor, " _pos"]],
    heads: Sequence[Node],
    label: Callable[[int], str],
) -> AttentionExamples:
    """The patterns of ``heads`` on each prompt (unpadded token ids), tokens labelled by ``label``."""
    if not prompts:
        raise HeadgraphError("attention examples need at least one prompt")
    heads = tuple(sorted(set(heads), key=Node.sort_key))
    tokens = tuple(tuple(label(int(t)) for t in p) for p in prompts)
    patterns = tuple(head_patterns(model, p, heads).detach().cpu() for p in prompts)
    return AttentionExamples(heads, tokens, patterns)


def task_examples(
    model: HookedTransformer, task: str, settings: Mapping[str, Any], n: int, seed: int, heads: Sequence[Node]
) -> AttentionExamples:
    """Attention of ``heads`` on the first ``n`` clean prompts of a registered task (its pairs regenerated)."""
    from circuits.commands.evaluate import task_from_run
    from circuits.model import text_tokenizer

    if n <= 0:
        raise HeadgraphError(f"the number of example prompts must be positive, got {n}")
    tok = text_tokenizer(model)
    data = task_from_run(task, {k: v for k, v in settings.items() if k != "pooled_seeds"}).dataset(tok, n, seed=seed)
    prompts = [data.clean[i, : int(data.lengths[i])].to(model.cfg.device) for i in range(len(data))]
    return attention_examples(model, prompts, heads, tok.decode)
