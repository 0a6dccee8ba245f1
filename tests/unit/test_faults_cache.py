"""Issue 20, items 1–2: fault injection into the converted-model cache.

A fake offline model (a tiny cfg-built model and a word-level tokenizer, "converted" in
milliseconds) goes through the real cache code: write with manifest, verify on load, rebuild a
damaged entry with one warning, fall back to a temporary cache when the folder cannot be written.
Every damaged load ends in a warned rebuild whose weights equal a fresh conversion, never a model
with wrong weights and never a traceback.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphWarning
from circuits.model import cache, loading
from tests.helpers.models import tiny_config

WEIGHTS = "weights.safetensors"


@dataclass(frozen=True)
class _FakeSource:
    install: str = "nothing to install"

    def sha256(self) -> str:
        return "0" * 64

    def path(self) -> Path:
        raise AssertionError("the fake conversion needs no GGUF")


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(49)} | {"<unk>": 49}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<unk>")


class FakeConversions:
    """Counts conversions; each returns the same seeded tiny model."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, name: str, spec: Any, progress: bool) -> tuple[HookedTransformer, Any]:
        self.calls += 1
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = HookedTransformer(tiny_config(model_name=name), tokenizer=_tokenizer(), move_to_device=False)
        return model, model.tokenizer


SPEC = loading.OfflineModel(source=_FakeSource(), build_config=lambda c: {}, convert=lambda hf, cfg: {})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeConversions:
    monkeypatch.setenv("HEADGRAPH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_fallback", None)
    conversions = FakeConversions()
    monkeypatch.setattr(loading, "_convert", conversions)
    return conversions


def _load() -> HookedTransformer:
    return loading._load_offline("fake", SPEC, "cpu", False)


def _reference() -> dict[str, torch.Tensor]:
    model, _ = FakeConversions()("fake", SPEC, False)
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _assert_true_weights(model: HookedTransformer) -> None:
    ref = _reference()
    got = dict(model.named_parameters())
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert torch.equal(got[k], v), k


def _entry() -> Path:
    return SPEC.cache_folder("fake")


def test_a_sound_entry_is_read_without_converting_again(fake: FakeConversions) -> None:
    _load()
    assert fake.calls == 1
    manifest = json.loads((_entry() / cache.MANIFEST).read_text())
    assert {WEIGHTS, "config.json"} <= set(manifest["files"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sound entry warns about nothing
        model = _load()
    assert fake.calls == 1
    _assert_true_weights(model)


def _truncate(entry: Path) -> None:
    w = entry / WEIGHTS
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])


def _zero(entry: Path) -> None:
    """Zero a run of bytes in the middle of the weights (the file keeps its size)."""
    w = entry / WEIGHTS
    data = bytearray(w.read_bytes())
    mid = len(data) // 2
    data[mid : mid + len(data) // 5] = bytes(len(data) // 5)
    w.write_bytes(bytes(data))


def _random_bytes(entry: Path) -> None:
    w = entry / WEIGHTS
    w.write_bytes(os.urandom(w.stat().st_size))


def _no_config(entry: Path) -> None:
    (entry / "config.json").unlink()


def _bad_config(entry: Path) -> None:
    (entry / "config.json").write_text("{ not json")


def _no_manifest(entry: Path) -> None:  # a half-deleted entry, or one from an older headgraph
    (entry / cache.MANIFEST).unlink()


def _no_tokenizer(entry: Path) -> None:
    for p in (entry / "tokenizer").iterdir():
        p.unlink()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "weights.safetensors has"),
        (_zero, "weights.safetensors differs from what was written"),
        (_random_bytes, "weights.safetensors differs from what was written"),
        (_no_config, "config.json is missing"),
        (_bad_config, "config.json"),
        (_no_manifest, "no manifest.json"),
        (_no_tokenizer, "tokenizer/"),
    ],
)
def test_a_damaged_entry_is_rebuilt_with_one_warning(fake: FakeConversions, damage: Any, reason: str) -> None:
    _load()
    damage(_entry())
    with pytest.warns(HeadgraphWarning) as record:
        model = _load()
    assert len(record) == 1
    text = str(record[0].message)
    assert "damaged" in text and "converting it again" in text and reason in text and "\n" not in text
    assert fake.calls == 2
    _assert_true_weights(model)
    cache.verify_entry(_entry())  # the rebuilt entry is sound
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load()
    assert fake.calls == 2


def test_a_folder_without_its_files_is_rebuilt_not_an_error(fake: FakeConversions) -> None:
    """The old failure: a cache folder without config.json failed on every run ("Directory not empty")."""
    _entry().mkdir(parents=True)
    (_entry() / "leftover").write_text("x")
    with pytest.warns(HeadgraphWarning, match="no manifest.json"):
        _assert_true_weights(_load())
    assert not (_entry() / "leftover").exists()


def test_an_unwritable_cache_falls_back_to_a_temporary_one_said_once(
    fake: FakeConversions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HEADGRAPH_CACHE", str(blocker / "cache"))  # cannot be created (root ignores chmod)
    order: list[str] = []
    convert = loading._convert
    monkeypatch.setattr(loading, "_convert", lambda *a: (order.append("convert"), convert(*a))[1])
    with pytest.warns(HeadgraphWarning) as record:
        order.append("load")
        model = _load()
    assert len(record) == 1
    text = str(record[0].message)
    assert "cannot write the model cache" in text and "temporary cache" in text and "HEADGRAPH_CACHE" in text
    assert fake.calls == 1 and order == ["load", "convert"]  # writability was checked before converting
    _assert_true_weights(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once; the temporary entry serves later loads
        _assert_true_weights(_load())
    assert fake.calls == 1


def test_verify_entry_checks_only_the_tokenizer_when_asked(fake: FakeConversions) -> None:
    _load()
    _zero(_entry())
    cache.verify_entry(_entry(), under="tokenizer/")  # the weights are not read
    with pytest.raises(cache.CacheDamage, match="differs"):
        cache.verify_entry(_entry())


def test_a_stamp_spares_the_hash_of_unchanged_files_only(
    fake: FakeConversions, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load()
    entry = _entry()
    monkeypatch.setattr(cache, "STAMP_MARGIN_NS", 0)  # the files are milliseconds old here
    cache.verify_entry(entry)  # a full check leaves the stamp
    assert (entry / cache.STAMP).is_file()
    hashed: list[str] = []
    digest = cache._digest
    monkeypatch.setattr(cache, "_digest", lambda p: (hashed.append(p.name), digest(p))[1])
    cache.verify_entry(entry)
    assert hashed == []  # nothing changed: nothing hashed
    time.sleep(0.05)  # past the kernel's coarse timestamp tick
    _zero(entry)
    with pytest.raises(cache.CacheDamage, match="weights.safetensors differs"):
        cache.verify_entry(entry)
    assert hashed == [WEIGHTS]  # the changed file alone was hashed


def test_a_fresh_stamp_does_not_vouch_for_files_written_just_before_it(fake: FakeConversions) -> None:
    _load()
    cache.verify_entry(_entry())
    _zero(_entry())  # within the same timestamp tick as the write, perhaps: the margin covers it
    with pytest.raises(cache.CacheDamage, match="differs"):
        cache.verify_entry(_entry())
