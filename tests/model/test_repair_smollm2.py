"""The repair workflow end to end on the embedded model, with tiny settings: structural facts only.

What the repair achieves on SmolLM2 is measured by ``headgraph repair`` and recorded in
docs/repair/; this test checks that a run is complete and leaves the model as it found it. Slow:
loads SmolLM2 and patches every head twice (source and selection prompts).
"""

from __future__ import annotations

import json

import pytest
import torch
from transformer_lens import HookedTransformer

from circuits.model import run_to_logits, text_tokenizer
from circuits.repair import RepairConfig, RepairResult, plot_repair, repair, repair_markdown, repair_to_dict
from tasks import get_task

N_PAIRS = 8
CONFIG = RepairConfig(max_heads=2, controls=3, batch_size=N_PAIRS)
COLLATERAL = ("ioi", "arithmetic", "mcqa")


def _hook_counts(model: HookedTransformer) -> dict[str, int]:
    return {name: len(hp._forward_hooks) for name, hp in model.hook_dict.items()}  # type: ignore[union-attr]


def _accuracies(result: RepairResult) -> list[float]:
    outcomes = [result.before, result.after, *result.control.outcomes, *(t.outcome for t in result.trials)]
    outcomes += [o for c in result.collateral for o in (c.before, c.after)]
    return [x for o in outcomes for x in (o.accuracy, o.candidate_accuracy)]


@pytest.mark.slow
def test_repair_ioi_to_colored_objects_end_to_end(smollm2: HookedTransformer) -> None:
    tok = text_tokenizer(smollm2)
    source = get_task("ioi").dataset(tok, N_PAIRS, seed=0)
    target = get_task("colored-objects").dataset(tok, N_PAIRS, seed=0)
    select = get_task("colored-objects").dataset(tok, N_PAIRS, seed=1)
    side = {name: get_task(name).dataset(tok, N_PAIRS, seed=0) for name in COLLATERAL}
    with torch.inference_mode():
        probe = run_to_logits(smollm2, target.clean, target.answer_pos)
    hooks = _hook_counts(smollm2)

    result = repair(smollm2, source, target, select=select, collateral=side, config=CONFIG, progress=False)

    # the edit is gone: no hook left behind, the same outputs as before the run
    assert _hook_counts(smollm2) == hooks
    with torch.inference_mode():
        torch.testing.assert_close(run_to_logits(smollm2, target.clean, target.answer_pos), probe, rtol=0, atol=0)

    # the control: as many draws as asked, each the chosen heads' layers, none of the chosen heads
    chosen = result.chosen.heads
    assert 1 <= len(chosen) <= CONFIG.max_heads and result.chosen in [t.edit for t in result.trials]
    assert len(result.control.outcomes) == len(result.control.heads) == CONFIG.controls
    for draw in result.control.heads:
        assert [h.layer for h in draw] == [h.layer for h in chosen] and not set(draw) & set(chosen)
    # the chosen heads are ranked, eligible source-circuit heads
    assert set(chosen) == {h.head for h in result.ranked[: len(chosen)]}
    assert set(chosen) <= result.overlap.a

    # every number is a number, every accuracy a share
    assert all(0.0 <= a <= 1.0 for a in _accuracies(result))
    assert all(o.n == N_PAIRS for o in (result.before, result.after, *result.control.outcomes))

    # the table has every row: target before/after/control, and each collateral task in the forms it has
    md = repair_markdown(result)
    for row in ("colored-objects: before", "colored-objects: after", "control, same edit on random heads"):
        assert row in md
    forms = {(c.task, c.form.kind.value) for c in result.collateral}
    assert forms == {
        ("ioi", "force"),
        ("ioi", "ablate"),
        ("mcqa", "force"),
        ("mcqa", "ablate"),
        ("arithmetic", "ablate"),
    }
    for task in COLLATERAL:
        assert f"| {task} |" in md
    data = json.loads(json.dumps(repair_to_dict(result)))
    assert len(data["collateral"]) == len(forms) and data["chosen"]["heads"] == [str(h) for h in chosen]
    assert len(plot_repair(result).axes) == 3
