"""The edge engine on the embedded model: EAP's signs against exact edge patching, and the CLI's
discover → evaluate round trip. Slow: loads SmolLM2 (grouped-query attention, 123,211 edges)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer

from circuits.cli import main
from circuits.discovery import EAP, Ablation
from circuits.engine.edge_ablation import ablated_logits, prepare_batch
from circuits.engine.edges import EdgeLayout
from circuits.model import run_to_logits, text_tokenizer
from tasks import IOI

N_PAIRS = 8
TOP = 16
"""Edges checked against exact patching: EAP's most important ones."""
MIN_SIGN_AGREEMENT = 0.9
"""Fraction of EAP's top edges whose exact effect has EAP's sign (measured 1.00 on 8 pairs, seed 0)."""


@pytest.mark.slow
def test_eap_top_edges_have_the_sign_of_exact_edge_patching(smollm2: HookedTransformer) -> None:
    task = IOI()
    data = task.dataset(text_tokenizer(smollm2), N_PAIRS, seed=0)
    eap = EAP()(smollm2, data, task.metric, progress=False)
    assert len(eap.graph.edges) == 123_211
    assert not torch.isnan(eap.values).any()
    top = eap.order()[:TOP]
    ablate = torch.zeros(TOP, len(eap.graph.edges), dtype=torch.bool)
    ablate[torch.arange(TOP), torch.tensor(top)] = True
    prepared = prepare_batch(smollm2, data, Ablation.RESAMPLE)
    logits = ablated_logits(smollm2, EdgeLayout(eap.graph), prepared, ablate)
    with torch.inference_mode():
        clean = task.metric(run_to_logits(smollm2, data.clean, data.answer_pos), data.targets)
    exact = (task.metric(logits.flatten(0, 1), data.targets.repeat(TOP)).view(TOP, -1) - clean).mean(1)
    agree = float((torch.sign(exact) == torch.sign(eap.values[top])).float().mean())
    assert agree >= MIN_SIGN_AGREEMENT, f"signs agree on {agree:.0%} of the top {TOP} edges"
    # ablating EAP's most important edge alone moves the metric the way EAP says, by a visible amount
    assert float(exact[0]) * float(eap.values[top[0]]) > 0


@pytest.mark.slow
def test_discover_then_evaluate_an_eap_ig_circuit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ioi"
    argv = ["discover", "--task", "ioi", "--method", "eap-ig", "--set", "ig_steps=2", "--n", str(N_PAIRS)]
    assert main([*argv, "--top-k", "300", "--out", str(out), "--quiet"]) == 0
    assert main(["evaluate", str(out / "circuit.json"), "--percentages", "1,5,100", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "CPR" in text and "CMD" in text
    doc = json.loads((out / "faithfulness.json").read_text())
    assert [p["percent"] for p in doc["absolute"]["points"]] == [1.0, 5.0, 100.0]
    assert doc["absolute"]["points"][-1]["faithfulness"] == 1.0
    assert doc["absolute"]["points"][1]["kept"] <= int(0.05 * 123_211)
    assert (out / "faithfulness.png").stat().st_size > 0
