"""Head knockouts: mean ablation agrees with activation patching, controls avoid the top heads."""

from __future__ import annotations

import pytest
import torch

from circuits.analysis.knockout import head_means, knock_out, knockout_heads
from circuits.discovery import Ablation, ActivationPatching, baseline
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.model import hook_z, run_with_cache
from tasks.metrics import LogitDiff
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory

ATOL = 1e-5


def test_head_means_average_the_real_positions_of_the_corrupt_prompts(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=3, length=6, lengths=[6, 3, 4], diff_from=1)
    means = head_means(model, data, batch_size=2)
    _, cache = run_with_cache(model, data.corrupt, [hook_z(1)])
    rows = torch.cat([cache[hook_z(1)][b, : int(n)] for b, n in enumerate(data.lengths)])  # (13, head, d_head)
    torch.testing.assert_close(means[1], rows.mean(0), atol=ATOL, rtol=0)


def test_knocking_out_one_head_by_its_mean_equals_mean_activation_patching(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=4, length=6, diff_from=2)
    head = Node.of_head(1, 2)
    ko = knock_out(model, data, LogitDiff(), [head], 1, controls=0)
    patched = ActivationPatching(ablation=Ablation.MEAN, heads=(str(head),))(model, data, LogitDiff(), progress=False)
    value = float(patched.values[patched.graph.node_index(head)])
    assert ko.result.clean - ko.intact.clean == pytest.approx(value, abs=ATOL)
    assert ko.metric_drop == pytest.approx(-value, abs=ATOL)


def test_zero_knockout_and_random_controls(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=3, length=5)
    ranked = [Node.of_head(2, 3), Node.of_head(0, 0), Node.of_head(1, 1)]
    ko = knock_out(model, data, LogitDiff(), ranked, 2, ablation=Ablation.ZERO, controls=3, seed=5)
    assert ko.heads == tuple(ranked[:2]) and len(ko.control) == 3
    assert ko.intact == baseline(model, data, LogitDiff())
    again = knock_out(model, data, LogitDiff(), ranked, 2, ablation=Ablation.ZERO, controls=3, seed=5)
    assert again.control == ko.control and again.control_heads == ko.control_heads  # seeded
    assert all(len(c) == 2 and not set(c) & set(ranked[:2]) for c in ko.control_heads)
    assert ko.control_drop == pytest.approx(ko.intact.clean - sum(c.clean for c in ko.control) / 3)
    assert ko.result != ko.intact


def test_bad_knockouts_are_clear_errors(tiny_model: TinyFactory) -> None:
    model = tiny_model()
    data = random_dataset(n=2, length=4)
    with pytest.raises(HeadgraphError, match="k must be between 1 and 1"):
        knock_out(model, data, LogitDiff(), [Node.of_head(0, 0)], 2)
    with pytest.raises(HeadgraphError, match="resample"):
        knockout_heads([Node.of_head(0, 0)], Ablation.RESAMPLE)
    with pytest.raises(HeadgraphError, match="means"):
        knockout_heads([Node.of_head(0, 0)], Ablation.MEAN)
    with pytest.raises(HeadgraphError, match="not a head"):
        knockout_heads([Node.of_mlp(0)], Ablation.ZERO)
