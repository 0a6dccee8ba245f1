"""LoFiT: head selection by learned scales and bias tuning, checked on the planted induction model."""

from __future__ import annotations

import pytest
import torch

from circuits.errors import HeadgraphError
from circuits.groundtruth import induction_model
from circuits.model import run_to_logits
from circuits.seed.lofit import LoFiTConfig, head_offsets, lofit, select_heads, train_offsets


def test_distractor_scales_get_no_gradient_and_the_copy_head_is_selected() -> None:
    planted = induction_model()
    train = planted.task.dataset(16, seed=0)
    config = LoFiTConfig(l1=0.0, epochs=3, batch_size=8)
    scores = select_heads(planted.model, train, config)
    init = torch.randn(scores.shape + (planted.model.cfg.d_head,), generator=torch.Generator().manual_seed(0)) * 1e-3
    for node in planted.distractors:  # JUNK reaches no logit: zero gradient, Adam leaves the init
        assert float(scores[node.layer, node.head]) == pytest.approx(
            float(init[node.layer, node.head].norm()), abs=1e-12
        )
    ind = planted.roles["induction"]
    assert int(scores.flatten().argmax()) == ind.layer * planted.model.cfg.n_heads + ind.head


def test_offsets_of_distractors_change_nothing_and_lofit_reports_controls() -> None:
    planted = induction_model()
    train, test = planted.task.dataset(16, seed=0), planted.task.dataset(16, seed=1)
    config = LoFiTConfig(k=1, epochs=2, controls=2)
    bias = train_offsets(planted.model, train, [planted.distractors[0]], config, seed=0)
    assert float(bias.abs().sum()) > 0
    with torch.no_grad():
        plain = run_to_logits(planted.model, test.clean, test.answer_pos)
        with head_offsets(planted.model, None, bias):
            edited = run_to_logits(planted.model, test.clean, test.answer_pos)
    assert torch.equal(plain, edited)
    result = lofit(planted.model, train, test, config)
    assert result.heads == (planted.roles["induction"],) and result.n_params == planted.model.cfg.d_head
    assert len(result.random_accuracy) == 2 and all(planted.roles["induction"] not in hs for hs in result.random_heads)
    assert 0 <= result.accuracy <= 1 and result.base_accuracy == 1.0


@pytest.mark.parametrize("bad", [{"k": 0}, {"epochs": 0}, {"bias_lr": 0.0}, {"l1": -1.0}, {"controls": 0}])
def test_bad_config_raises(bad: dict[str, object]) -> None:
    with pytest.raises(HeadgraphError):
        LoFiTConfig(**bad)  # type: ignore[arg-type]
