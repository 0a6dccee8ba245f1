"""Property-based oracle for the discovery engine: random models of every family it claims, random
prompt pairs that share a prefix of random length, and the slow definitions the fast paths replace.

Families (drawn by hypothesis): attention-only or with MLPs (plain or gated); no norm, LayerNorm,
RMSNorm (pre-normalized variants too), Gemma-style post-norms with per-head key norms; standard,
rotary and shortformer positions; sliding-window local layers; grouped-query attention; non-zero
q/k/v/o biases; weight scales up to 8; a first-token attention sink (a large first-token embedding
that every query's bias seeks); a tokenizer that pads on the left and whose pad id is the first
token (TransformerLens infers a pad mask from token ids for such tokenizers); and one-hot planted
models in float32 whose distractors' values read every dimension, so a never-read "junk" subspace
grows large.

Properties:
  * a shared prefix (and a resumed run after one) gives the plain forward's logits;
  * edge ablation with nothing ablated gives the clean logits, with everything ablated the corrupt ones;
  * one random edge's score equals brute force with TransformerLens hooks;
  * activation patching of every head equals TransformerLens's ``get_act_patch_attn_head_out_all_pos``.

Tolerances are relative to the logits' scale (:func:`circuits.model.forward.prefix_tolerance`).
Examples are derandomized so CI is reproducible; ``HYPOTHESIS_PROFILE=deep`` draws many more.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from transformer_lens import HookedTransformer
from transformer_lens.patching import get_act_patch_attn_head_out_all_pos

from circuits.discovery import Ablation, ActivationPatching, EdgePatching
from circuits.engine.edge_ablation import ablated_logits, prepare_batch
from circuits.engine.edges import EdgeLayout
from circuits.errors import HeadgraphError
from circuits.graph import Edge
from circuits.groundtruth.planted import Layout
from circuits.groundtruth.planted_induction import InductionConfig, induction_model
from circuits.groundtruth.planted_ioi import IOIConfig, ioi_model
from circuits.model import (
    PrefixFallbackWarning,
    PrefixGuard,
    attention_weights,
    embeddings,
    forward,
    graph_of,
    logits_at,
    prepare_model_,
    resumable_run,
    resume_to_logits,
    run_after_prefix,
    run_to_logits,
    shared_prefix,
)
from circuits.model.forward import prefix_tolerance
from tasks import LogitDiff, PromptPairDataset
from tests.helpers.data import random_dataset
from tests.helpers.models import tiny_config
from tests.helpers.oracles import BruteForceEdges

pytestmark = pytest.mark.filterwarnings(
    "ignore::hypothesis.errors.HypothesisDeprecationWarning"
)  # planted tasks seed random.Random

METRIC = LogitDiff()
D_VOCAB = 20
SINK_TOKEN = 0
"""Token that starts every prompt of a model with a first-token sink (and is the left-padding tokenizer's pad id)."""

settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("deep", max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@dataclass(frozen=True)
class Case:
    """One drawn model with prompt pairs for it."""

    model: HookedTransformer
    data: PromptPairDataset
    family: str

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return f"Case({self.family}, prompts {tuple(self.data.clean.shape)}, lengths {self.data.lengths.tolist()})"


def _left_padding_tokenizer() -> SimpleNamespace:
    """Just what TransformerLens reads of a tokenizer when it infers a pad mask from token ids."""
    return SimpleNamespace(padding_side="left", pad_token_id=SINK_TOKEN, bos_token_id=None)


@st.composite
def random_models(draw: st.DrawFn) -> tuple[HookedTransformer, str, bool]:
    """A randomly initialised model of one of the families the engine claims; whether it has a sink."""
    n_heads = draw(st.sampled_from([2, 4]))
    n_layers = draw(st.integers(1, 3))
    post_norm = draw(st.booleans())
    cfg: dict[str, object] = {
        "n_layers": n_layers,
        "n_heads": n_heads,
        "d_model": 16,
        "d_head": 4,
        "d_mlp": 24,
        "d_vocab": D_VOCAB,
        "n_ctx": 16,
        "attn_only": draw(st.booleans()),
        "positional_embedding_type": draw(st.sampled_from(["standard", "rotary", "shortformer"])),
        "n_key_value_heads": draw(st.sampled_from([None, 1, n_heads // 2])),
    }
    if post_norm:  # Gemma 2/3: RMS norms before and after each sublayer, per-head key/query norms
        cfg |= {"normalization_type": "RMS", "use_normalization_before_and_after": True, "use_qk_norm": True}
    else:
        cfg["normalization_type"] = draw(st.sampled_from([None, "LN", "LNPre", "RMS", "RMSPre"]))
    if cfg["positional_embedding_type"] == "rotary":
        cfg["rotary_dim"] = 4
        if draw(st.booleans()):  # sliding-window local layers alternating with global ones
            cfg |= {"use_local_attn": True, "window_size": 3, "attn_types": (["local", "global"] * n_layers)[:n_layers]}
    if not cfg["attn_only"]:
        cfg["gated_mlp"] = draw(st.booleans())
    scale = draw(st.sampled_from([0.5, 1.0, 3.0, 8.0]))
    bias = draw(st.sampled_from([0.0, 0.5, 2.0]))
    sink = draw(st.booleans())
    left_pad = sink and draw(st.booleans())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(tiny_config(**cfg))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".w",)):  # norm weights: spread around 1 so each norm matters
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g))
            elif name.split(".")[-1] in ("b_Q", "b_K", "b_V", "b_O", "b_in", "b_out"):
                p.copy_(bias * torch.randn(p.shape, generator=g))
            elif p.dim() > 1:
                p.mul_(scale)
        if sink:  # token SINK_TOKEN's embedding is large along u; every query's bias seeks its key
            u = torch.randn(16, generator=g)
            model.W_E[SINK_TOKEN] += 6 * u / u.norm()
            for block in model.blocks:
                attn = block.attn
                w_k = (
                    attn.W_K
                    if attn.W_K.shape[0] == n_heads
                    else attn.W_K.repeat_interleave(n_heads // attn.W_K.shape[0], 0)
                )
                key = torch.einsum("d,hde->he", 6 * u / u.norm(), w_k)
                attn.b_Q += 40 * key / key.pow(2).sum(-1, keepdim=True).clamp_min(1e-6)
    if left_pad:
        model.tokenizer = _left_padding_tokenizer()  # type: ignore[assignment]
    family = ", ".join(f"{k}={v}" for k, v in cfg.items()) + f", scale={scale}, bias={bias}, seed={seed}"
    family += ", first-token sink" + (" + left-padding tokenizer" if left_pad else "") if sink else ""
    return prepare_model_(model), family, sink


@st.composite
def planted_models(draw: st.DrawFn) -> tuple[HookedTransformer, str, PromptPairDataset]:
    """A one-hot planted model in float32 whose distractors' values read every dimension (junk grows)."""
    seed = draw(st.integers(0, 2**16))
    planted = draw(
        st.sampled_from(
            [
                lambda s: ioi_model(
                    IOIConfig(
                        n_layers=4, n_heads=3, duplicate_token=(0, 0), s_inhibition=(1, 2), name_mover=(3, 1), seed=s
                    )
                ),
                lambda s: ioi_model(IOIConfig(seed=s)),
                lambda s: induction_model(InductionConfig(seed=s)),
            ]
        )
    )(seed)
    model = planted.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = model.to(torch.float32)
    model.cfg.dtype = torch.float32
    circuit = {(n.layer, n.head) for n in planted.circuit_heads}
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in range(model.cfg.n_layers):
            w = attention_weights(model, layer)
            for head in range(model.cfg.n_heads):
                if (layer, head) not in circuit:
                    w.W_V[head] = 2 * torch.randn(w.W_V[head].shape, generator=g)
    data = planted.task.dataset(draw(st.integers(2, 6)), seed=seed)
    return prepare_model_(model), f"{planted.name} float32, values read junk ({Layout.JUNK})", data


@st.composite
def cases(draw: st.DrawFn, *, planted: bool = True) -> Case:
    """A model and prompt pairs that agree before a random position (at least one pair differs there)."""
    if planted and draw(st.integers(0, 4)) == 0:
        model, family, data = draw(planted_models())
        return Case(model, data, family)
    model, family, sink = draw(random_models())
    n = draw(st.integers(1, 4))
    length = draw(st.integers(3, 9))
    lengths = [length] + draw(st.lists(st.integers(2, length), min_size=n - 1, max_size=n - 1))
    diff_from = draw(st.integers(1 if sink else 0, length - 1))
    data = random_dataset(n, length, D_VOCAB, lengths=lengths, seed=draw(st.integers(0, 2**16)), diff_from=diff_from)
    case = Case(model, _sinked(data) if sink else data, family)
    with torch.no_grad():  # weights large enough to overflow float32 make no model to test
        for tokens in (case.data.clean, case.data.corrupt):
            assume(bool(torch.isfinite(run_to_logits(model, tokens, case.data.answer_pos)).all()))
    return case


def _assert_logits_close(model: HookedTransformer, expected: torch.Tensor, actual: torch.Tensor) -> None:
    tol = prefix_tolerance(model, expected)
    error = float((expected - actual).abs().max())
    assert error <= tol, f"logits differ by {error:.3g} (tolerance {tol:.3g})"


@given(case=cases(), data=st.data())
def test_a_shared_prefix_gives_the_plain_forwards_logits(case: Case, data: st.DataObject) -> None:
    model, prompts = case.model, case.data
    length = data.draw(st.integers(0, int(prompts.answer_pos.min())), label="prefix")
    with torch.no_grad():
        plain = run_to_logits(model, prompts.clean, prompts.answer_pos)
        prefix = shared_prefix(model, prompts.clean, length)
        after = run_after_prefix(model, embeddings(model, prompts.clean)[:, length:], prefix)
        _assert_logits_close(model, plain, logits_at(model, after, prompts.answer_pos - length))
        run = resumable_run(model, prompts.clean, length, [])  # no check_pos: the raw shortcut
        layer = data.draw(st.integers(0, model.cfg.n_layers - 1), label="resume at")
        _assert_logits_close(model, plain, resume_to_logits(model, run, layer, 1, prompts.answer_pos, []))


@given(case=cases())
def test_nothing_ablated_is_clean_and_everything_ablated_is_corrupt(case: Case) -> None:
    model, prompts = case.model, case.data
    layout = EdgeLayout(graph_of(model))
    n = len(layout.graph.edges)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrefixFallbackWarning)  # the guard must not be needed
        prepared = prepare_batch(model, prompts, Ablation.RESAMPLE)
    masks = torch.stack([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
    none, every = ablated_logits(model, layout, prepared, masks)
    with torch.no_grad():
        _assert_logits_close(model, run_to_logits(model, prompts.clean, prompts.answer_pos), none)
        _assert_logits_close(model, run_to_logits(model, prompts.corrupt, prompts.answer_pos), every)


@given(case=cases(), data=st.data())
def test_one_random_edge_equals_brute_force(case: Case, data: st.DataObject) -> None:
    model, prompts = case.model, case.data
    graph = graph_of(model)
    edge: Edge = data.draw(st.sampled_from(graph.edges), label="edge")
    layout = EdgeLayout(graph)
    prepared = prepare_batch(model, prompts, Ablation.RESAMPLE)
    mask = torch.zeros(1, len(graph.edges), dtype=torch.bool)
    mask[0, graph.edge_index(edge)] = True
    logits = ablated_logits(model, layout, prepared, mask)[0]
    with torch.no_grad():
        clean = run_to_logits(model, prompts.clean, prompts.answer_pos)
    engine = float((METRIC(logits, prompts.targets) - METRIC(clean, prompts.targets)).mean())
    brute = BruteForceEdges(model, prompts, METRIC)(edge)
    tol = prefix_tolerance(model, clean) * 2
    assert abs(engine - brute) <= tol, f"{edge}: engine {engine:.6g}, brute force {brute:.6g}"


@given(case=cases(planted=False))
def test_edge_patching_scores_equal_brute_force_on_three_edges(case: Case) -> None:
    """The method itself (batches, the guard, the accumulation), not just the runner."""
    model, prompts = case.model, case.data
    scores = EdgePatching(batch_size=2)(model, prompts, METRIC, progress=False)
    brute = BruteForceEdges(model, prompts, METRIC)
    graph = scores.graph
    with torch.no_grad():
        clean = run_to_logits(model, prompts.clean, prompts.answer_pos)
    tol = prefix_tolerance(model, clean) * 2
    for i in torch.linspace(0, len(graph.edges) - 1, 3).long().tolist():
        edge = graph.edges[i]
        assert abs(float(scores.values[i]) - brute(edge)) <= tol, str(edge)


@given(case=cases())
def test_activation_patching_equals_transformer_lens(case: Case) -> None:
    model, prompts = case.model, case.data
    scores = ActivationPatching(batch_size=3)(model, prompts, METRIC, progress=False)
    rows = torch.arange(len(prompts))

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return METRIC(logits[rows, prompts.answer_pos], prompts.targets).mean()

    with torch.no_grad():
        _, corrupt_cache = model.run_with_cache(prompts.corrupt)
        reference = get_act_patch_attn_head_out_all_pos(model, prompts.clean, corrupt_cache, metric)
        clean = metric(model(prompts.clean))
    tol = prefix_tolerance(model, model(prompts.clean)[rows, prompts.answer_pos]) * 2
    diff = (scores.head_matrix(normalized=False) - (reference - clean).float()).abs().max()
    assert float(diff) <= tol


def _sinked(prompts: PromptPairDataset) -> PromptPairDataset:
    prompts.clean[:, 0] = SINK_TOKEN
    prompts.corrupt[:, 0] = SINK_TOKEN
    return prompts


def test_the_guard_falls_back_to_no_prefix_when_the_shortcut_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: cached prefix keys that are not the keys attention uses. The guard warns once,
    every later prefix of the run is empty, and the run is exact without it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = prepare_model_(HookedTransformer(tiny_config(attn_only=True, normalization_type=None)))
    monkeypatch.setattr(forward, "_cached_keys", lambda _model, _layer, k: 3 * k)
    prompts = random_dataset(4, 8, D_VOCAB, diff_from=4)
    guard = PrefixGuard()
    with pytest.warns(PrefixFallbackWarning, match="shared prefix of 4 positions"):
        prefix = guard.prefix(model, prompts.clean, 4, prompts.answer_pos)
    assert (prefix.length, guard.trusted) == (0, False) and guard.error > 0
    assert guard.prefix(model, prompts.clean, 4, prompts.answer_pos).length == 0  # no second check or warning
    with pytest.warns(PrefixFallbackWarning):
        run = resumable_run(model, prompts.clean, 4, [], check_pos=prompts.answer_pos)
    assert run.prefix == 0
    layout = EdgeLayout(graph_of(model))
    with pytest.warns(PrefixFallbackWarning):
        prepared = prepare_batch(model, prompts, Ablation.RESAMPLE)
    masks = torch.stack(
        [torch.zeros(len(layout.graph.edges), dtype=torch.bool), torch.ones(len(layout.graph.edges), dtype=torch.bool)]
    )
    none, every = ablated_logits(model, layout, prepared, masks)
    _assert_logits_close(model, run_to_logits(model, prompts.clean, prompts.answer_pos), none)
    _assert_logits_close(model, run_to_logits(model, prompts.corrupt, prompts.answer_pos), every)


def test_an_unprepared_left_padding_tokenizer_is_an_error_not_wrong_numbers() -> None:
    """TransformerLens hides a leading token equal to the pad id when the tokenizer pads on the left;
    prepare_model_ sets right padding. Set after it, the guard finds that no path is exact and says so."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = prepare_model_(HookedTransformer(tiny_config(attn_only=True, normalization_type=None)))
    model.tokenizer = _left_padding_tokenizer()  # type: ignore[assignment]
    prompts = _sinked(random_dataset(4, 8, D_VOCAB, diff_from=4))
    with pytest.raises(HeadgraphError, match="pads on the left"):
        PrefixGuard().prefix(model, prompts.clean, 4, prompts.answer_pos)
    prepare_model_(model)
    assert model.tokenizer.padding_side == "right"
    assert PrefixGuard().prefix(model, prompts.clean, 4, prompts.answer_pos).length == 4


def test_a_trusted_prefix_is_checked_once() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = prepare_model_(HookedTransformer(tiny_config()))
    prompts = random_dataset(3, 8, D_VOCAB, diff_from=5)
    guard = PrefixGuard()
    assert guard.prefix(model, prompts.clean, 5, prompts.answer_pos).length == 5
    assert guard.checked and guard.trusted and 0 <= guard.error <= prefix_tolerance(model, torch.ones(1))
    first = guard.error
    assert guard.prefix(model, prompts.clean, 5, prompts.answer_pos).length == 5
    assert guard.error == first
