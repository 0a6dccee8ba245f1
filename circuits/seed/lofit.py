"""LoFiT: localized fine-tuning of attention-head outputs (Yin, Ye, Durrett 2024, arXiv 2406.01563).

Per head ``h`` of every layer, two vectors act on the head's output before ``W_O`` (``hook_z``,
github.com/fc2869/lo-fit ``models/modeling_llama.py``): ``z' = (1 + A_h) ⊙ z + v_h``.

1. **Head selection**: train only the scales ``A`` (``v = 0``; init ``N(0, 1e-3)``) on the task's
   training prompts with the cross-entropy of the answer token plus ``λ Σ|A|``; a head's score is
   ``‖A_h‖₂``; keep the top ``k``.
2. **Bias tuning**: on the untouched model, train only the offsets ``v_h`` of the ``k`` selected
   heads (init ``N(0, 1e-3)``, no L1). The tuned model is the base model plus these offsets
   (``k · d_head`` parameters).

Reported: held-out accuracy of the untouched model, of LoFiT, and of the same bias tuning (same
budget: heads, steps, learning rate) on ``k`` random heads. Training is full-batch Adam over a few
epochs of small batches; the model's weights stay frozen.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import HookFn, hook_z, run_to_logits, with_hooks
from tasks import PromptPairDataset
from tasks.metrics import Accuracy

__all__ = ["LoFiTConfig", "LoFiTResult", "head_offsets", "lofit", "select_heads", "train_offsets"]


@dataclass(frozen=True)
class LoFiTConfig:
    """LoFiT settings (defaults scaled down from the paper's Llama-2-7B TruthfulQA run).

    Attributes:
        k: heads tuned in step 2.
        select_lr: step 1's learning rate (paper: 5e-3); ``l1`` its λ (paper: 5e-4).
        bias_lr: step 2's learning rate (paper: 1e-2).
        epochs: passes over the training prompts in each step (paper: 5).
        batch_size: prompts per optimisation step (paper: 8).
        init_std: standard deviation of the initial ``A`` and ``v`` (paper: 1e-3).
        controls: random-head draws given the same bias tuning.
        seed: seed of the initialisation, the prompt order and the random heads.
    """

    k: int = 8
    select_lr: float = 5e-3
    l1: float = 5e-4
    bias_lr: float = 1e-2
    epochs: int = 5
    batch_size: int = 8
    init_std: float = 1e-3
    controls: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("k", "epochs", "batch_size", "controls"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise HeadgraphError(f"{name} must be a positive integer, got {v!r}")
        for name in ("select_lr", "bias_lr", "init_std"):
            if not getattr(self, name) > 0:
                raise HeadgraphError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.l1 >= 0:
            raise HeadgraphError(f"l1 must be non-negative, got {self.l1!r}")


@contextmanager
def head_offsets(
    model: HookedTransformer,
    scale: Float[Tensor, "layer head d_head"] | None,
    bias: Float[Tensor, "layer head d_head"] | None,
) -> Iterator[HookedTransformer]:
    """Apply ``z' = (1 + scale) ⊙ z + bias`` to every head's output inside the block (gradients flow)."""

    def edit(layer: int) -> HookFn:
        def fn(z: Float[Tensor, "batch pos head d_head"]) -> Tensor:
            if scale is not None:
                z = z * (1 + scale[layer].to(z))
            if bias is not None:
                z = z + bias[layer].to(z)
            return z

        return fn

    with with_hooks(model, [(hook_z(layer), edit(layer)) for layer in range(model.cfg.n_layers)]):
        yield model


def _loss(model: HookedTransformer, batch: PromptPairDataset) -> Tensor:
    logits = run_to_logits(model, batch.clean, batch.answer_pos).float()
    return torch.nn.functional.cross_entropy(logits, batch.targets.answers[:, 0])


def _batches(data: PromptPairDataset, batch_size: int, rng: random.Random) -> Iterator[PromptPairDataset]:
    order = list(range(len(data)))
    rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        yield data.select(torch.tensor(order[i : i + batch_size]))


def select_heads(
    model: HookedTransformer, train: PromptPairDataset, config: LoFiTConfig
) -> Float[Tensor, "layer head"]:
    """Step 1: train the scales ``A`` with an L1 penalty; return ``‖A_h‖₂`` per head."""
    g = torch.Generator().manual_seed(config.seed)
    shape = (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head)
    a = (torch.randn(shape, generator=g) * config.init_std).requires_grad_(True)
    opt = torch.optim.Adam([a], lr=config.select_lr)
    rng = random.Random(config.seed)
    with head_offsets(model, a, None):
        for _ in range(config.epochs):
            for batch in _batches(train, config.batch_size, rng):
                opt.zero_grad()
                loss = _loss(model, batch) + config.l1 * a.abs().sum()
                loss.backward()
                opt.step()
    return a.detach().norm(dim=-1)


def train_offsets(
    model: HookedTransformer, train: PromptPairDataset, heads: list[Node], config: LoFiTConfig, *, seed: int
) -> Float[Tensor, "layer head d_head"]:
    """Step 2: train the offsets ``v`` of ``heads`` only (zero elsewhere); return them."""
    g = torch.Generator().manual_seed(seed)
    shape = (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head)
    mask = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, 1)
    for h in heads:
        mask[h.layer, h.head] = 1.0
    v = (torch.randn(shape, generator=g) * config.init_std).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=config.bias_lr)
    rng = random.Random(seed)
    for _ in range(config.epochs):
        for batch in _batches(train, config.batch_size, rng):
            opt.zero_grad()
            with head_offsets(model, None, v * mask):
                loss = _loss(model, batch)
            loss.backward()
            opt.step()
    return (v * mask).detach()


@torch.no_grad()
def _accuracy(model: HookedTransformer, data: PromptPairDataset, bias: Tensor | None) -> float:
    hits = 0.0
    for b in data.batches(32):
        with head_offsets(model, None, bias):
            hits += float(Accuracy()(run_to_logits(model, b.clean, b.answer_pos), b.targets).sum())
    return hits / len(data)


@dataclass(frozen=True)
class LoFiTResult:
    """A LoFiT run.

    Attributes:
        scores: step 1's ``‖A_h‖₂`` per head.
        heads: the ``k`` selected heads.
        base_accuracy: held-out accuracy of the untouched model.
        accuracy: held-out accuracy with the selected heads' trained offsets.
        train_accuracy: training accuracy with them (``base_train_accuracy`` without).
        random_heads: the heads of each control draw; ``random_accuracy`` their held-out accuracy.
        n_params: trained offset parameters (``k · d_head``).
    """

    scores: Float[Tensor, "layer head"]
    heads: tuple[Node, ...]
    base_accuracy: float
    accuracy: float
    base_train_accuracy: float
    train_accuracy: float
    random_heads: tuple[tuple[Node, ...], ...]
    random_accuracy: tuple[float, ...]
    n_params: int


def lofit(
    model: HookedTransformer, train: PromptPairDataset, test: PromptPairDataset, config: LoFiTConfig
) -> LoFiTResult:
    """Select heads, tune their offsets on ``train``, compare on ``test`` (module docstring)."""
    n_heads = model.cfg.n_heads
    if config.k >= model.cfg.n_layers * n_heads:
        raise HeadgraphError(f"k = {config.k} leaves no other heads of the {model.cfg.n_layers * n_heads}")
    scores = select_heads(model, train, config)
    order = scores.flatten().argsort(descending=True)[: config.k].tolist()
    heads = [Node.of_head(i // n_heads, i % n_heads) for i in order]
    bias = train_offsets(model, train, heads, config, seed=config.seed + 1)
    rng = random.Random(config.seed)
    pool = [
        Node.of_head(layer, h)
        for layer in range(model.cfg.n_layers)
        for h in range(n_heads)
        if Node.of_head(layer, h) not in heads
    ]
    draws = [sorted(rng.sample(pool, config.k), key=str) for _ in range(config.controls)]
    random_acc = tuple(
        _accuracy(model, test, train_offsets(model, train, hs, config, seed=config.seed + 1)) for hs in draws
    )
    return LoFiTResult(
        scores=scores,
        heads=tuple(heads),
        base_accuracy=_accuracy(model, test, None),
        accuracy=_accuracy(model, test, bias),
        base_train_accuracy=_accuracy(model, train, None),
        train_accuracy=_accuracy(model, train, bias),
        random_heads=tuple(tuple(d) for d in draws),
        random_accuracy=random_acc,
        n_params=config.k * model.cfg.d_head,
    )
