"""Code patching: does a head's discrete SAE code carry what patching the head does?

Exact activation patching (:mod:`.activation_patching`, "noising") replaces a head's output on the
clean prompt by its output on the corrupt prompt and measures the metric change. **Code patching**
replaces it instead by the *vector of the head's code on the corrupt prompt* (:mod:`saes.codebook`:
the argmax latent of an SAE trained on that head's per-position outputs, decoded alone). Per head:

* ``exact``: metric change, clean run, head ← its corrupt output (the exact patching effect);
* ``code``: metric change, clean run, head ← the vector of its corrupt code;
* **code fidelity** ``code / exact``: the share of the exact effect that the code carries;
* the converse ("denoising"): corrupt run, head ← its clean output (``exact_converse``) or the
  vector of its clean code (``code_converse``);
* ``reduced``: clean run, head ← the vector of its *clean* code at every position: what reducing
  the head to its code costs when nothing else changes (0 if the code loses nothing).

Positions: exact and code patches replace the positions from the first token where the clean and
corrupt prompts differ (earlier positions are the same in both prompts, so exact patching leaves
them unchanged, and so does code patching); ``reduced`` replaces every position.

Per circuit (:func:`circuit_reduction`): faithfulness ``(m − m_corrupt) / (m_clean − m_corrupt)`` of
the clean run with *every* circuit head reduced to its code, each head coded from its own output in
that run; and the whole circuit code-patched versus exactly patched.

A code's vector lives in ``d_model``; a head can only write the row space of its ``W_O``, so the
vector is written into the head's ``hook_z`` as ``v · pinv(W_O)`` (the output closest to ``v`` the
head can write; exact when ``v`` is in the row space). This keeps post-norm models and grouped-query
heads right, since every patch goes through the same hook as exact patching.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.discovery.base import check_positive
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import (
    HookFn,
    hook_z,
    logits_at,
    output_weights,
    resumable_run,
    resume_to_logits,
    run_with_cache,
    with_hooks,
)
from circuits.scores import Baseline, UninformativeScoresWarning
from saes import Codebook, CodebookConfig, SAEError, train_codebook
from tasks import PromptPairDataset
from tasks.metrics import Accuracy, Metric

__all__ = [
    "CircuitReduction",
    "CodeFidelity",
    "CodePatchingSettings",
    "HeadFidelity",
    "circuit_reduction",
    "code_fidelity",
    "head_position_outputs",
    "train_codebooks",
]

EFFECT_ATOL = 1e-9
"""A mean metric change at most this large counts as no effect (its fidelity is NaN, not a ratio of noise)."""


@dataclass(frozen=True)
class CodePatchingSettings:
    """How code books are trained and patched.

    Attributes:
        codebook: each head's SAE (:class:`saes.CodebookConfig`).
        train_pairs: pairs whose clean and corrupt per-position outputs train each head's code book.
        batch_size: prompts per forward pass.
        seed: seeds the choice of training pairs (the SAE's own seed is ``codebook.seed``).
    """

    codebook: CodebookConfig = field(default_factory=CodebookConfig)
    train_pairs: int = 32
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive(train_pairs=self.train_pairs, batch_size=self.batch_size)
        if not isinstance(self.codebook, CodebookConfig):
            raise HeadgraphError(f"codebook must be a CodebookConfig, got {self.codebook!r}")


@dataclass(frozen=True)
class HeadFidelity:
    """One head's exact and code-patching effects (mean metric changes over the pairs).

    Attributes:
        head: the head.
        exact: clean run, head ← corrupt output.
        code: clean run, head ← vector of its corrupt code.
        reduced: clean run, head ← vector of its clean code (every position).
        exact_converse: corrupt run, head ← clean output.
        code_converse: corrupt run, head ← vector of its clean code.
        n_codes: distinct codes the head shows on the pairs (clean and corrupt, every position).
    """

    head: Node
    exact: float
    code: float
    reduced: float
    exact_converse: float
    code_converse: float
    n_codes: int

    @property
    def fidelity(self) -> float:
        """Share of the exact effect that code patching carries (NaN when the exact effect is 0)."""
        return self.code / self.exact if abs(self.exact) > EFFECT_ATOL else math.nan

    @property
    def converse_fidelity(self) -> float:
        """The same in the denoising direction."""
        return self.code_converse / self.exact_converse if abs(self.exact_converse) > EFFECT_ATOL else math.nan

    def to_dict(self) -> dict[str, object]:
        return {
            "head": str(self.head),
            "exact": self.exact,
            "code": self.code,
            "fidelity": self.fidelity,
            "reduced": self.reduced,
            "exact_converse": self.exact_converse,
            "code_converse": self.code_converse,
            "converse_fidelity": self.converse_fidelity,
            "n_codes": self.n_codes,
        }


@dataclass(frozen=True)
class CodeFidelity:
    """Code patching of some heads.

    Attributes:
        heads: per head, its effects (in the order asked).
        baseline: clean and corrupt metric over all pairs.
        codebooks: each head's code book.
        seconds: wall time of each phase (``train``, ``patch``).
        warnings: heads whose code book gives one code to every output (dead or saturated: the
            code carries nothing, whatever its noising fidelity says).
    """

    heads: tuple[HeadFidelity, ...]
    baseline: Baseline
    codebooks: Mapping[Node, Codebook]
    seconds: Mapping[str, float]
    warnings: tuple[str, ...] = ()

    def __getitem__(self, head: Node) -> HeadFidelity:
        for h in self.heads:
            if h.head == head:
                return h
        raise KeyError(str(head))


@dataclass(frozen=True)
class CircuitReduction:
    """A circuit with every head reduced to its code, and code-patched as a whole.

    Attributes:
        heads: the circuit's heads.
        baseline: clean and corrupt metric.
        reduced: mean metric, clean run, every circuit head ← vector of its own code in that run.
        exact_patched: mean metric, clean run, every circuit head ← its corrupt output.
        code_patched: mean metric, clean run, every circuit head ← vector of its corrupt code.
    """

    heads: tuple[Node, ...]
    baseline: Baseline
    reduced: float
    exact_patched: float
    code_patched: float

    @property
    def faithfulness(self) -> float:
        """``(reduced − corrupt) / (clean − corrupt)``: 1 when the codes keep the behaviour."""
        gap = self.baseline.clean - self.baseline.corrupt
        return (self.reduced - self.baseline.corrupt) / gap if gap else math.nan

    @property
    def fidelity(self) -> float:
        """Share of the whole circuit's exact patching effect that code patching carries."""
        exact = self.exact_patched - self.baseline.clean
        return (self.code_patched - self.baseline.clean) / exact if exact else math.nan

    def to_dict(self) -> dict[str, object]:
        return {
            "heads": [str(h) for h in self.heads],
            "clean": self.baseline.clean,
            "corrupt": self.baseline.corrupt,
            "reduced": self.reduced,
            "faithfulness": self.faithfulness,
            "exact_patched": self.exact_patched,
            "code_patched": self.code_patched,
            "fidelity": self.fidelity,
        }


# --------------------------------------------------------------------------------------------
# Per-position head outputs and code books.


def _check_heads(model: HookedTransformer, heads: Sequence[Node]) -> None:
    bad = [str(h) for h in heads if h.head is None or not (0 <= h.layer < model.cfg.n_layers
                                                            and 0 <= h.head < model.cfg.n_heads)]  # fmt: skip
    if bad or not heads or len(set(heads)) != len(heads):
        raise HeadgraphError(
            f"code patching needs distinct heads of a {model.cfg.n_layers}×{model.cfg.n_heads} model, "
            f"got {[str(h) for h in heads]}"
        )


def _out(model: HookedTransformer, z: Float[Tensor, "batch pos head d_head"], head: Node) -> Tensor:
    """One head's output after ``W_O`` at every position: ``[batch, pos, d_model]``."""
    return z[:, :, int(head.head or 0)] @ output_weights(model)[head.layer, int(head.head or 0)]


@torch.inference_mode()
def head_position_outputs(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], heads: Sequence[Node], batch_size: int = 32
) -> dict[Node, Float[Tensor, "batch pos d_model"]]:
    """Each head's output after ``W_O`` at every position (padding included)."""
    _check_heads(model, heads)
    layers = sorted({h.layer for h in heads})
    parts: dict[Node, list[Tensor]] = {h: [] for h in heads}
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = run_with_cache(model, tokens[start : start + batch_size].to(output_weights(model).device),
                                  [hook_z(layer) for layer in layers])  # fmt: skip
        for h in heads:
            parts[h].append(_out(model, cache[hook_z(h.layer)], h))
    return {h: torch.cat(p) for h, p in parts.items()}


def _real(lengths: Int[Tensor, " batch"], width: int) -> Bool[Tensor, "batch pos"]:
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def train_codebooks(
    settings: CodePatchingSettings, model: HookedTransformer, data: PromptPairDataset, heads: Sequence[Node]
) -> dict[Node, Codebook]:
    """Train one code book per head on its outputs at the real positions of ``train_pairs`` pairs
    (clean and corrupt prompts), drawn at random with ``settings.seed``."""
    _check_heads(model, heads)
    g = torch.Generator().manual_seed(settings.seed)
    rows = torch.randperm(len(data), generator=g)[: settings.train_pairs]
    sub = data.select(rows)
    real = _real(sub.lengths, sub.clean.shape[1]).to(output_weights(model).device)
    clean = head_position_outputs(model, sub.clean, heads, settings.batch_size)
    corrupt = head_position_outputs(model, sub.corrupt, heads, settings.batch_size)
    books = {}
    for i, h in enumerate(heads):
        x = torch.cat([clean[h][real], corrupt[h][real]])
        try:
            books[h] = train_codebook(x, settings.codebook, seed_offset=i)
        except SAEError as err:
            raise HeadgraphError(str(err)) from None
    return books


# --------------------------------------------------------------------------------------------
# Patching.


def _pinv(model: HookedTransformer, head: Node) -> Float[Tensor, "d_model d_head"]:
    w = output_weights(model)[head.layer, int(head.head or 0)]  # (d_head, d_model)
    return torch.linalg.pinv(w.double()).to(w.dtype)


def _first_diff(batch: PromptPairDataset) -> Int[Tensor, " batch"]:
    differs = batch.clean != batch.corrupt
    return torch.where(differs.any(1), differs.int().argmax(1), batch.answer_pos)


def _z_hook(layer: int, patches: Sequence[tuple[int, int, Tensor, Tensor]], rows: int) -> tuple[str, HookFn]:
    """A hook on ``hook_z(layer)`` that writes, for each ``(copy, head, z_new, mask)``, ``z_new``
    into copy ``copy``'s rows at the masked positions (copy-major rows of ``rows`` prompts)."""

    def fn(z: Tensor) -> Tensor:
        z = z.clone()
        for copy, head, new, mask in patches:
            block = z[copy * rows : (copy + 1) * rows, :, head]  # (b, pos, d_head)
            m = mask[:, -block.shape[1] :, None]
            z[copy * rows : (copy + 1) * rows, :, head] = torch.where(m, new[:, -block.shape[1] :], block)
        return z

    return hook_z(layer), fn


def code_fidelity(
    settings: CodePatchingSettings,
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    heads: Sequence[Node],
    *,
    codebooks: Mapping[Node, Codebook] | None = None,
) -> CodeFidelity:
    """Exact and code patching of each head, both directions (module docstring).

    Args:
        settings: code books and batching.
        model: the model.
        data: the pairs (every pair is patched; ``settings.train_pairs`` of them train the code books).
        metric: the task metric.
        heads: the heads to patch.
        codebooks: already trained code books (trained here when None).
    """
    _check_heads(model, heads)
    start = time.perf_counter()
    books = dict(codebooks) if codebooks is not None else train_codebooks(settings, model, data, heads)
    seconds = {"train": time.perf_counter() - start}
    start = time.perf_counter()
    with torch.inference_mode():
        heads_out, baseline = _fidelity(settings, model, data, metric, heads, books)
    seconds["patch"] = time.perf_counter() - start
    found = tuple(
        f"{h.head}: one code on every output (its code book is dead or saturated): its code carries nothing"
        for h in heads_out
        if h.n_codes <= 1
    )
    for w in found:
        warnings.warn(UninformativeScoresWarning(f"code patching: {w}"), stacklevel=2)
    return CodeFidelity(heads_out, baseline, books, seconds, found)


def _fidelity(
    settings: CodePatchingSettings,
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    heads: Sequence[Node],
    books: Mapping[Node, Codebook],
) -> tuple[tuple[HeadFidelity, ...], Baseline]:
    device = output_weights(model).device
    pinv = {h: _pinv(model, h) for h in heads}
    layers = sorted({h.layer for h in heads})
    names = [hook_z(layer) for layer in layers]
    sums = torch.zeros(len(heads), 5, dtype=torch.float64)
    base = torch.zeros(4, dtype=torch.float64)
    codes: dict[Node, set[int]] = {h: set() for h in heads}
    acc = Accuracy()
    for batch in data.batches(settings.batch_size):
        b, pos = len(batch), batch.answer_pos.to(device)
        targets = batch.targets.to(device)
        runs = [resumable_run(model, t.to(device), 0, names) for t in (batch.clean, batch.corrupt)]
        m = [metric(logits_at(model, r.final_resid, pos), targets) for r in runs]
        for i, r in enumerate(runs):
            base[i] += m[i].double().sum()
            base[2 + i] += acc(logits_at(model, r.final_resid, pos), targets).double().sum()
        width = batch.clean.shape[1]
        changed = torch.arange(width, device=device)[None, :] >= _first_diff(batch).to(device)[:, None]
        everywhere = torch.ones_like(changed)
        real = _real(batch.lengths.to(device), width)
        for j, h in enumerate(heads):
            hh = int(h.head or 0)
            z = [r.cache[hook_z(h.layer)][:, :, hh] for r in runs]  # clean, corrupt: (b, pos, d_head)
            out = [_out(model, r.cache[hook_z(h.layer)], h) for r in runs]
            vec = [books[h].vectors(o) @ pinv[h] for o in out]  # the code's vector, written as z
            for o in out:
                codes[h].update(books[h].codes(o[real]).tolist())
            clean_hook = _z_hook(h.layer, [(0, hh, z[1], changed), (1, hh, vec[1], changed),
                                           (2, hh, vec[0], everywhere)], b)  # fmt: skip
            logits = resume_to_logits(model, runs[0], h.layer, 3, pos.repeat(3), [clean_hook])
            eff = metric(logits, targets.repeat(3)).view(3, b) - m[0]
            corrupt_hook = _z_hook(h.layer, [(0, hh, z[0], changed), (1, hh, vec[0], changed)], b)
            logits = resume_to_logits(model, runs[1], h.layer, 2, pos.repeat(2), [corrupt_hook])
            conv = metric(logits, targets.repeat(2)).view(2, b) - m[1]
            sums[j] += torch.cat([eff, conv]).double().sum(1).cpu()
    n = len(data)
    means = sums / n
    baseline = Baseline(metric.name, *(float(v) for v in base / n))
    out_heads = tuple(
        HeadFidelity(h, float(e[0]), float(e[1]), float(e[2]), float(e[3]), float(e[4]), len(codes[h]))
        for h, e in zip(heads, means, strict=True)
    )
    return out_heads, baseline


def circuit_reduction(
    settings: CodePatchingSettings,
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    heads: Sequence[Node],
    *,
    codebooks: Mapping[Node, Codebook] | None = None,
) -> CircuitReduction:
    """Every circuit head reduced to its code (faithfulness; every position), and the circuit code-patched
    and exactly patched as a whole (positions from the first that differs, as :func:`code_fidelity`)."""
    _check_heads(model, heads)
    books = dict(codebooks) if codebooks is not None else train_codebooks(settings, model, data, heads)
    with torch.inference_mode():
        return _reduction(settings, model, data, metric, heads, books)


def _reduction(
    settings: CodePatchingSettings,
    model: HookedTransformer,
    data: PromptPairDataset,
    metric: Metric,
    heads: Sequence[Node],
    books: Mapping[Node, Codebook],
) -> CircuitReduction:
    device = output_weights(model).device
    pinv = {h: _pinv(model, h) for h in heads}
    layers = sorted({h.layer for h in heads})
    by_layer = {layer: [h for h in heads if h.layer == layer] for layer in layers}
    sums = torch.zeros(5, dtype=torch.float64)  # clean, corrupt, reduced, exact, code
    acc_sums = torch.zeros(2, dtype=torch.float64)
    acc = Accuracy()
    for batch in data.batches(settings.batch_size):
        pos, targets = batch.answer_pos.to(device), batch.targets.to(device)
        clean, corrupt = batch.clean.to(device), batch.corrupt.to(device)
        c_resid, c_cache = run_with_cache(model, corrupt, [hook_z(layer) for layer in layers])
        resid, _ = run_with_cache(model, clean, [])
        width = clean.shape[1]
        changed = (torch.arange(width, device=device)[None, :] >= _first_diff(batch).to(device)[:, None])[:, :, None]

        def reduce(z: Tensor, layer: int) -> Tensor:
            z = z.clone()
            for h in by_layer[layer]:
                out = _out(model, z, h)
                z[:, :, int(h.head or 0)] = books[h].vectors(out) @ pinv[h]
            return z

        def patch(
            z: Tensor, layer: int, *, code: bool, c_cache: dict[str, Tensor] = c_cache, changed: Tensor = changed
        ) -> Tensor:
            z = z.clone()
            cz = c_cache[hook_z(layer)]
            for h in by_layer[layer]:
                hh = int(h.head or 0)
                new = books[h].vectors(_out(model, cz, h)) @ pinv[h] if code else cz[:, :, hh]
                z[:, :, hh] = torch.where(changed, new, z[:, :, hh])
            return z

        logits = [logits_at(model, resid, pos), logits_at(model, c_resid, pos)]
        for variant in ("reduce", "exact", "code"):
            hooks: list[tuple[str, HookFn]] = [
                (hook_z(layer), (lambda z, layer=layer: reduce(z, layer)) if variant == "reduce"
                 else (lambda z, layer=layer, code=variant == "code": patch(z, layer, code=code)))
                for layer in layers
            ]  # fmt: skip
            with with_hooks(model, hooks):
                r = model(clean, stop_at_layer=model.cfg.n_layers)
            logits.append(logits_at(model, r, pos))
        for i, lg in enumerate(logits):
            sums[i] += metric(lg, targets).double().sum()
        for i in range(2):
            acc_sums[i] += acc(logits[i], targets).double().sum()
    n = len(data)
    m = sums / n
    baseline = Baseline(metric.name, float(m[0]), float(m[1]), float(acc_sums[0] / n), float(acc_sums[1] / n))
    return CircuitReduction(tuple(heads), baseline, float(m[2]), float(m[3]), float(m[4]))
