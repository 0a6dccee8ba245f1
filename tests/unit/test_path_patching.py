"""Path patching: equals exact edge patching when MLPs are frozen, and Wang et al.'s two steps otherwise."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformer_lens import HookedTransformer

from circuits.discovery import EdgePatching, PathPatching
from circuits.errors import HeadgraphError
from circuits.graph import QKV, Edge, Node, NodeKind
from circuits.model import (
    HookFn,
    hook_q_input,
    hook_resid_pre,
    hook_z,
    logits_at,
    prepare_model_,
    receiver_inputs,
    run_with_cache,
    with_hooks,
)
from tasks import LogitDiff, PromptPairDataset
from tests.helpers.checks import unchecked
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory, tiny_config

METRIC = LogitDiff()
ATOL = 1e-5
MODELS = {
    "mha-ln": {},
    "gqa-rms-rotary": {"n_key_value_heads": 2, "positional_embedding_type": "rotary", "normalization_type": "RMS"},
    "attn-only-shortformer": {"attn_only": True, "positional_embedding_type": "shortformer"},
}


@pytest.mark.parametrize("name", list(MODELS))
def test_with_frozen_mlps_it_is_exact_edge_patching(tiny_model: TinyFactory, name: str) -> None:
    model = tiny_model(**MODELS[name])
    data = random_dataset(n=5, length=7, lengths=[7, 6, 7, 5, 7], diff_from=3)
    receivers = "logits,L2H1,L1H3" + ("" if model.cfg.attn_only else ",MLP1")
    path = PathPatching(receivers=receivers, freeze_mlps=True, max_rows=12)(model, data, METRIC, progress=False)
    exact = EdgePatching()(model, data, METRIC, progress=False)
    scored = ~torch.isnan(path.values)
    heads_into_receivers = [
        i for i, e in enumerate(path.graph.edges) if e.src.kind is NodeKind.HEAD and str(e.dst) in receivers.split(",")
    ]
    assert scored.nonzero().flatten().tolist() == heads_into_receivers
    torch.testing.assert_close(path.values[scored], exact.values[scored], atol=ATOL, rtol=0)


def test_with_recomputed_mlps_it_follows_wang_et_al(tiny_model: TinyFactory) -> None:
    """Step 1 (sender patched, other heads frozen, MLPs recomputed), step 2 (receiver's q input
    patched), written with plain hooks, one sender at a time."""
    model = tiny_model()
    data = random_dataset(n=4, length=6, diff_from=2)
    path = PathPatching(receivers="L2H0,logits", inputs="q")(model, data, METRIC, progress=False)
    for sender in (Node.of_head(0, 1), Node.of_head(1, 2)):
        for receiver in (Node.of_head(2, 0), Node(NodeKind.LOGITS, 3)):
            qkv = QKV.Q if receiver.kind is NodeKind.HEAD else None
            got = float(path.values[path.graph.edge_index(Edge(sender, receiver, qkv))])
            assert got == pytest.approx(_two_steps(model, data, sender, receiver), abs=ATOL)


def _two_steps(model: HookedTransformer, data: PromptPairDataset, sender: Node, receiver: Node) -> float:
    n = model.cfg.n_layers
    names = [hook_z(layer) for layer in range(n)] + [hook_resid_pre(layer) for layer in range(n)]
    with torch.no_grad():
        clean_resid, clean = run_with_cache(model, data.clean, names)
        _, corrupt = run_with_cache(model, data.corrupt, names)
        m_clean = METRIC(logits_at(model, clean_resid, data.answer_pos), data.targets)

        def freeze(layer: int) -> HookFn:
            def hook(z: torch.Tensor) -> torch.Tensor:
                z = clean[hook_z(layer)].clone()
                if layer == sender.layer:
                    z[:, :, sender.head] = corrupt[hook_z(layer)][:, :, sender.head]
                return z

            return hook

        seen: dict[str, torch.Tensor] = {}
        hooks = [(hook_z(layer), freeze(layer)) for layer in range(n)]
        if receiver.kind is NodeKind.HEAD:
            hooks.append((hook_resid_pre(receiver.layer), lambda x: seen.__setitem__("x", x.clone())))
        with with_hooks(model, hooks):
            step_one = model(data.clean, stop_at_layer=n)
        if receiver.kind is NodeKind.LOGITS:
            patched = METRIC(logits_at(model, step_one, data.answer_pos), data.targets)
        else:

            def patch_q(x: torch.Tensor) -> torch.Tensor:
                x = x.clone()
                x[:, :, receiver.head] = seen["x"]
                return x

            with receiver_inputs(model, split_qkv=True), with_hooks(model, [(hook_q_input(receiver.layer), patch_q)]):
                resid = model(data.clean, stop_at_layer=n)
            patched = METRIC(logits_at(model, resid, data.answer_pos), data.targets)
    return float((patched - m_clean).mean())


def test_unknown_receiver_raises_at_call(tiny_model: TinyFactory) -> None:
    with pytest.raises(HeadgraphError, match="not in"):
        PathPatching(receivers="L7H0")(tiny_model(), random_dataset(n=2), METRIC, progress=False)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"inputs": "qx"}, "inputs must be distinct letters among q, k, v, got 'qx'"),
        ({"inputs": ""}, "inputs must be distinct letters among q, k, v, got ''"),
        ({"inputs": "qq"}, "inputs must be distinct letters among q, k, v, got 'qq'"),
        ({"receivers": ""}, "path patching needs at least one receiver"),
        ({"receivers": "input"}, "the input cannot be a receiver"),
        ({"receivers": "L1X2"}, "not a node name: 'L1X2'"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"ablation": "resample"}, "ablation must be an Ablation, got 'resample'"),
    ],
)
def test_bad_settings_raise(bad: dict[str, object], message: str) -> None:
    with pytest.raises(HeadgraphError, match=re.escape(message)), unchecked():  # the hand-written check
        PathPatching(**bad)  # type: ignore[arg-type]


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    family=st.sampled_from(list(MODELS)),
    seed=st.integers(0, 10_000),
    picks=st.sets(st.tuples(st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=5),
    inputs=st.sampled_from(["q", "kv", "qkv"]),
    freeze_mlps=st.booleans(),
)
def test_restricted_senders_score_as_in_the_full_run(
    family: str, seed: int, picks: set[tuple[int, int]], inputs: str, freeze_mlps: bool
) -> None:
    """Restricting the senders only skips work: each chosen sender's edge scores equal those of the
    run that scores every head, and nothing else is scored."""
    torch.manual_seed(seed)
    model = prepare_model_(HookedTransformer(tiny_config(seed=seed, **MODELS[family])))
    data = random_dataset(n=3, length=6, diff_from=2, seed=seed)
    receivers = "logits,L2H0,L1H2"
    senders = ",".join(f"L{layer}H{head}" for layer, head in sorted(picks))
    common = {"receivers": receivers, "inputs": inputs, "freeze_mlps": freeze_mlps, "max_rows": 7}
    full = PathPatching(**common)(model, data, METRIC, progress=False)  # type: ignore[arg-type]
    part = PathPatching(senders=senders, **common)(model, data, METRIC, progress=False)  # type: ignore[arg-type]
    chosen = {Node.of_head(layer, head) for layer, head in picks}
    expect = torch.tensor([e.src in chosen and not torch.isnan(full.values[i]) for i, e in enumerate(full.graph.edges)])
    assert torch.equal(~torch.isnan(part.values), expect)
    torch.testing.assert_close(part.values[expect], full.values[expect], atol=ATOL, rtol=0)


@pytest.mark.parametrize("senders", ["MLP1", "logits", "L1H0,input", "L1X"])
def test_senders_must_be_heads(senders: str) -> None:
    with pytest.raises(HeadgraphError, match="sender|not a node"):
        PathPatching(senders=senders)


def test_unknown_sender_raises_at_call(tiny_model: TinyFactory) -> None:
    with pytest.raises(HeadgraphError, match="not in"):
        PathPatching(senders="L9H0")(tiny_model(), random_dataset(n=2), METRIC, progress=False)
