"""Relevance patching (RelP): EAP with the gradient replaced by layer-wise relevance propagation.

RelP (Jafari et al. 2025, "RelP: Faithful and Efficient Circuit Discovery via Relevance Patching",
arXiv 2508.21258) keeps attribution patching's estimate, ``(a_u^ablated − a_u^clean) · c_v``, and its
cost (two forwards, one backward per batch), but the coefficient ``c_v`` at each receiver input is
the *relevance* LRP propagates back from the metric instead of the plain gradient. LRP's rules for
transformers (Ali et al. 2022, arXiv 2202.07304; Achtibat et al. 2024, "AttnLRP", arXiv 2402.05602)
are written here as changes of the backward pass made by forward hooks, so the relevance of
"gradient × input" form comes out of one ordinary autograd call (:func:`~.eap.gradient_run` with
``hooks``). Each rule and what it is exact for:

* **LN-rule** (Ali et al. §3.3): every norm's scale (``hook_scale``: LayerNorm's standard deviation,
  RMSNorm's root mean square, the final norm and the post-norms of post-norm models) is treated as a
  constant. Exact where the scale does not change between clean and ablated runs; otherwise an
  approximation (the norm is then linear in its input).
* **AH-rule** (Ali et al. §3.2): the attention pattern is treated as a constant on the way back, so
  relevance reaches earlier components only through the values. Exact where patterns do not move.
  An edge into a head's *query or key* has no relevance under the pure rule; with
  ``qk=local`` (the default) such an edge is scored with the plain local gradient at the head's
  q/k input (through the softmax of that head alone), while nothing is propagated further upstream
  through any q/k: a hybrid, and an approximation. ``qk=none`` is the pure rule (q/k edges score 0).
* **Identity rule** (Achtibat et al. §3.3.1) for element-wise activations ``y = f(x)``: relevance
  passes unchanged, i.e. the backward multiplies by ``f(x)/x`` instead of ``f'(x)`` (0 where
  ``|x| < 1e-6``). For ReLU it is the gradient; for GELU/SiLU an approximation.
* **Half rule** (Achtibat et al. §3.3.2, "uniform rule") for the product of a gated MLP (SmolLM2,
  Llama, Gemma: ``f(gate) · up``): each factor receives half the product's relevance, i.e. the
  backward of ``½ (a · stop(b) + stop(a) · b)``. An approximation unless one factor is unchanged.

Everything else (embeddings, projections, residual sums, rotary) is linear and propagated exactly.
Models whose MLP normalises its activation (SoLU) are refused. Ablation: resample, mean or zero,
as for EAP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from circuits.discovery.base import METHODS, Ablation, check_ablation, check_positive, method_params
from circuits.discovery.eap import edge_attribution
from circuits.discovery.position_setting import EdgePositions, check_positions, named_position_scores
from circuits.errors import HeadgraphError
from circuits.model import HookFn, check_edge_support, has_mlps, hook_k, hook_pattern, hook_q
from circuits.scores import Level, Scores
from tasks import PromptPairDataset
from tasks.metrics import Metric

__all__ = ["QKRule", "RelP", "relevance_hooks"]

ZERO_INPUT = 1e-6
"""Below this ``|x|`` the identity rule passes no relevance (``f(x)/x`` is undefined at 0)."""


class QKRule(Enum):
    """How edges into a head's query and key are scored under the AH-rule (see the module docstring)."""

    LOCAL = "local"
    NONE = "none"


@METHODS.register("relp")
@dataclass(frozen=True)
class RelP:
    """Relevance patching: EAP's two forwards and one backward, with LRP rules in the backward pass.

    Attributes:
        ablation: what replaces a sender's clean output (corrupt-run output, mean, or zero).
        qk: how edges into queries and keys are scored (``local`` gradient, or ``none``: pure AH-rule).
        batch_size: prompts per forward/backward pass.
    """

    name: ClassVar[str] = "relp"
    level: ClassVar[Level] = Level.EDGE
    ablation: Ablation = Ablation.RESAMPLE
    qk: QKRule = QKRule.LOCAL
    batch_size: int = 32
    positions: EdgePositions = EdgePositions.BLIND

    def __post_init__(self) -> None:
        check_positive(batch_size=self.batch_size)
        check_ablation(self.ablation)
        if not isinstance(self.qk, QKRule):
            raise HeadgraphError(f"qk must be a QKRule, got {self.qk!r}")
        check_positions(self.positions, self.ablation)

    def __call__(
        self, model: HookedTransformer, data: PromptPairDataset, metric: Metric, *, progress: bool = True
    ) -> Scores:
        check_edge_support(model)
        params = method_params(self)
        if self.positions is EdgePositions.NAMED:
            return named_position_scores(
                model, data, metric, self.name, params, batch_size=self.batch_size, relp_qk=self.qk
            )
        hooks = relevance_hooks(model, self.qk)
        return edge_attribution(
            model, data, metric, self.name, params, self.ablation, 1, self.batch_size, progress, hooks
        )


def relevance_hooks(model: HookedTransformer, qk: QKRule = QKRule.LOCAL) -> list[tuple[str, HookFn]]:
    """Forward hooks that leave every value unchanged and turn the backward pass into LRP's rules.

    Raises:
        HeadgraphError: the model's MLP has an activation with no rule here (SoLU's normalised one).
    """
    cfg = model.cfg
    if has_mlps(model) and cfg.is_layer_norm_activation():
        raise HeadgraphError(f"relp has no relevance rule for the {cfg.act_fn} activation")
    hooks: list[tuple[str, HookFn]] = [(name, _detach) for name in model.hook_dict if name.endswith("hook_scale")]
    for layer in range(cfg.n_layers):
        hooks += [(hook_q(layer), _new_leaf), (hook_k(layer), _new_leaf)]
        if qk is QKRule.NONE:
            hooks.append((hook_pattern(layer), _detach))
        if has_mlps(model):
            hooks += _mlp_hooks(model, layer)
    return hooks


def _detach(x: Tensor) -> Tensor:
    return x.detach()


def _new_leaf(x: Tensor) -> Tensor:
    """The same values, cut from everything upstream (relevance stops here), still differentiable."""
    return x.detach().requires_grad_(torch.is_grad_enabled())


def _mlp_hooks(model: HookedTransformer, layer: int) -> list[tuple[str, HookFn]]:
    """Hooks that keep the MLP's pre-activations and give its post-activation the identity (and half) rule."""
    mlp = model.blocks[layer].mlp
    gated = bool(model.cfg.gated_mlp)
    store: dict[str, Tensor] = {}
    base = f"blocks.{layer}.mlp"

    def keep(name: str) -> HookFn:
        def fn(x: Tensor) -> None:
            store[name] = x

        return fn

    def post(y: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return y
        x = store["pre"]
        act = mlp.act_fn(x) if gated else y
        ratio = torch.where(x.abs() > ZERO_INPUT, act / torch.where(x.abs() > ZERO_INPUT, x, 1.0), 0.0)
        relevant = x * ratio.detach()  # identity rule: backward multiplies by f(x)/x
        if gated:
            up = store["lin"]
            relevant = 0.5 * (relevant * up.detach() + relevant.detach() * up)  # half rule
        return y.detach() + (relevant - relevant.detach())

    hooks: list[tuple[str, HookFn]] = [(f"{base}.hook_pre", keep("pre"))]
    if gated:
        hooks.append((f"{base}.hook_pre_linear", keep("lin")))
    return [*hooks, (f"{base}.hook_post", post)]
