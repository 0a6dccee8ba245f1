"""Every format round-trips a real SmolLM2 EAP circuit (grouped-query attention: 9 query heads over
3 key/value heads, 123,211 edges). Slow: loads the embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformer_lens import HookedTransformer

from circuits.discovery import EAP
from circuits.formats import Format, export_headgraph, import_headgraph, submission_path
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import model_info, text_tokenizer
from circuits.selection import Ranking, top_k
from tasks import IOI

N_PAIRS = 4


@pytest.mark.slow
def test_smollm2_circuit_round_trips_through_every_format(smollm2: HookedTransformer, tmp_path: Path) -> None:
    task = IOI()
    data = task.dataset(text_tokenizer(smollm2), N_PAIRS, seed=0)
    scores = EAP()(smollm2, data, task.metric, progress=False)
    hg = HeadGraph(model_info(smollm2), TaskRun("ioi", 0, N_PAIRS), scores, top_k(scores, 200, Ranking.SIGNED))
    assert hg.model.n_kv_heads == 3 and len(scores.graph.edges) == 123_211
    files = {
        Format.MIB: submission_path(tmp_path, "ioi", "smollm2"),
        Format.EAP_IG: tmp_path / "eap-ig.pt",
        Format.GRAPHML: tmp_path / "c.graphml",
        Format.AUTO_CIRCUIT: tmp_path / "auto-circuit.pt",
    }
    for fmt, path in files.items():
        assert import_headgraph(export_headgraph(hg, fmt, path), fmt).to_dict() == hg.to_dict(), fmt
    d = json.loads(files[Format.MIB].read_text())
    assert d["cfg"]["n_heads"] == 9 and d["cfg"]["n_key_value_heads"] == 3 and len(d["edges"]) == 123_211
    assert "a29.h8->logits" in d["edges"] and "input->a0.h0<k>" in d["edges"]
