"""InterpBench case folders written here the way InterpBench writes them, loaded and scored against."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuits.cli import main
from circuits.discovery import EAP
from circuits.errors import CircuitFileError
from circuits.formats import load_interpbench, read_interpbench_truth
from circuits.graph import QKV, Edge, Node, NodeKind
from circuits.headgraph import HeadGraph, TaskRun
from circuits.measures.roc import evaluate
from circuits.model import model_info
from tasks import LogitDiff
from tests.helpers.data import random_dataset

# InterpBench's own expected ground truth of case 3 (frac_prevs), acdc_hooks granularity:
# FlyingPumba/circuits-benchmark tests/circuit_test.py, test_build_circuit_for_case_3_with_acdc_hooks_granularity
CASE3_EDGES = [
    ("hook_embed", "blocks.0.hook_mlp_in"),
    ("hook_pos_embed", "blocks.1.hook_q_input[0]"),
    ("hook_pos_embed", "blocks.1.hook_k_input[0]"),
    ("blocks.0.hook_mlp_in", "blocks.0.hook_mlp_out"),
    ("blocks.0.hook_mlp_out", "blocks.1.hook_v_input[0]"),
    ("blocks.1.hook_q_input[0]", "blocks.1.attn.hook_q[0]"),
    ("blocks.1.hook_k_input[0]", "blocks.1.attn.hook_k[0]"),
    ("blocks.1.hook_v_input[0]", "blocks.1.attn.hook_v[0]"),
    ("blocks.1.attn.hook_q[0]", "blocks.1.attn.hook_result[0]"),
    ("blocks.1.attn.hook_k[0]", "blocks.1.attn.hook_result[0]"),
    ("blocks.1.attn.hook_v[0]", "blocks.1.attn.hook_result[0]"),
    ("blocks.1.attn.hook_result[0]", "blocks.1.hook_resid_post"),
]
INPUT, LOGITS = Node(NodeKind.INPUT, -1), Node(NodeKind.LOGITS, 2)
L1H0, MLP0 = Node.of_head(1, 0), Node.of_mlp(0)
CASE3_TRUTH = {
    Edge(INPUT, MLP0),
    Edge(INPUT, L1H0, QKV.Q),
    Edge(INPUT, L1H0, QKV.K),
    Edge(MLP0, L1H0, QKV.V),
    Edge(L1H0, LOGITS),
}


def _model(**overrides: object) -> HookedTransformer:
    cfg: dict[str, object] = {"n_layers": 2, "d_model": 24, "d_head": 6, "n_heads": 4, "d_mlp": 32, "d_vocab": 50,
                              "n_ctx": 10, "act_fn": "relu", "normalization_type": "LN", "seed": 3,
                              "model_name": "case-3-siit"}  # fmt: skip
    cfg.update(overrides)
    return HookedTransformer(HookedTransformerConfig(**cfg))  # type: ignore[arg-type]


def write_case(folder: Path, model: HookedTransformer, edges: object, *, cfg_as_object: bool = False) -> Path:
    """A case folder as iit_train.py saves one (renamed as on the hub: no weight suffix)."""
    folder.mkdir(parents=True)
    torch.save(model.state_dict(), folder / "ll_model.pth")
    cfg = model.cfg if cfg_as_object else model.cfg.to_dict()
    (folder / "ll_model_cfg.pkl").write_bytes(pickle.dumps(cfg))
    (folder / "meta.json").write_text(json.dumps({"case": "3", "seed": 67, "same_size": False, "iit_weight": 1.0}))
    (folder / "edges.pkl").write_bytes(pickle.dumps(edges))
    return folder


@pytest.fixture
def case3(tmp_path: Path) -> tuple[Path, HookedTransformer]:
    model = _model()
    return write_case(tmp_path / "3", model, CASE3_EDGES), model


def test_load_case_folder(case3: tuple[Path, HookedTransformer]) -> None:
    folder, original = case3
    case = load_interpbench(folder)
    assert case.name == "3" and case.meta["case"] == "3"
    tokens = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(case.model(tokens), original(tokens), rtol=0, atol=0)
    assert not any(p.requires_grad for p in case.model.parameters())
    assert case.circuit.edges == frozenset(CASE3_TRUTH)
    assert case.circuit.nodes == frozenset({INPUT, LOGITS, L1H0, MLP0})
    assert case.truth.groups == {"circuit": ("MLP0", "L1H0")}
    assert case.truth.model.n_layers == 2 and case.truth.model.n_heads == 4 and "InterpBench" in case.truth.citation


def test_config_from_another_transformer_lens_version(tmp_path: Path) -> None:
    """Keys this TransformerLens does not know are dropped; a dtype spelled as text is read."""
    model = _model()
    folder = write_case(tmp_path / "old", model, CASE3_EDGES)
    cfg = model.cfg.to_dict() | {"dtype": "torch.float32", "a_field_from_2024": 1}
    (folder / "ll_model_cfg.pkl").write_bytes(pickle.dumps(cfg))
    case = load_interpbench(folder)
    assert case.model.cfg.dtype is torch.float32 and case.circuit.edges == frozenset(CASE3_TRUTH)
    (folder / "ll_model_cfg.pkl").write_bytes(pickle.dumps(cfg | {"dtype": "torch.float99"}))
    with pytest.raises(CircuitFileError, match="unknown dtype 'torch.float99'"):
        load_interpbench(folder)


def test_config_pickled_as_object_and_ioi_style_edges(tmp_path: Path) -> None:
    model = _model(n_layers=3, model_name="ioi-siit")
    ioi = [("hook_embed", "blocks.0.attn.hook_result[1]"),
           ("blocks.0.attn.hook_result[1]", "blocks.1.attn.hook_result[2]"),
           ("blocks.0.mlp.hook_post", "blocks.2.hook_mlp_out"),
           ("blocks.1.attn.hook_result[2]", "blocks.2.hook_resid_post")]  # fmt: skip
    truth = read_interpbench_truth(write_case(tmp_path / "ioi", model, ioi, cfg_as_object=True))
    h01, h12 = Node.of_head(0, 1), Node.of_head(1, 2)
    assert set(truth.edges) == {str(e) for e in (
        *(Edge(INPUT, h01, q) for q in QKV), *(Edge(h01, h12, q) for q in QKV),
        Edge(Node.of_mlp(0), Node.of_mlp(2)), Edge(h12, Node(NodeKind.LOGITS, 3)))}  # fmt: skip
    assert truth.groups["circuit"] == ("L0H1", "MLP0", "L1H2", "MLP2")


@pytest.mark.parametrize(
    "edges,message",
    [
        ([("blocks.0.attn.hook_result[0]", "blocks.0.hook_resid_post")], "only the last block's resid_post"),
        ([("hook_embed", "blocks.1.attn.hook_wat[0]")], "not an InterpBench node name"),
        ([("blocks.1.hook_q_input[0]", "blocks.1.hook_mlp_in")], "not a component's output"),
        ([("blocks.1.attn.hook_result[0]", "blocks.0.hook_mlp_in")], "which a 2-layer graph does not have"),
        ([("blocks.1.attn.hook_result[0]", "blocks.1.hook_k_input[1]")], "which a 2-layer graph does not have"),
        ([("blocks.1.attn.hook_result[0]", "blocks.1.hook_k_input[0]")], "back into itself"),
        ("not a list", "expected a list of (from, to) pairs"),
        ([("hook_embed",)], "a (from, to) pair of names"),
        ([("hook_embed", "blocks.1.hook_q_input")], "needs a head index"),
    ],
)
def test_edges_that_do_not_map(tmp_path: Path, edges: object, message: str) -> None:
    folder = write_case(tmp_path / "bad", _model(), edges)
    with pytest.raises(CircuitFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_interpbench_truth(folder)


def test_bad_folders(tmp_path: Path, case3: tuple[Path, HookedTransformer]) -> None:
    with pytest.raises(CircuitFileError, match="no such InterpBench case folder"):
        load_interpbench(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CircuitFileError, match=r"missing ll_model_cfg.pkl, edges.pkl"):
        load_interpbench(tmp_path / "empty")
    folder, _ = case3
    (folder / "edges.pkl").write_bytes(pickle.dumps(os.system))
    with pytest.raises(CircuitFileError, match="refusing to load"):
        read_interpbench_truth(folder)
    wrong = write_case(tmp_path / "wrong", _model(), CASE3_EDGES)
    torch.save(_model(d_mlp=48).state_dict(), wrong / "ll_model.pth")
    with pytest.raises(CircuitFileError, match="weights do not fit ll_model_cfg.pkl"):
        load_interpbench(wrong)


def test_score_a_method_on_a_case_folder(case3: tuple[Path, HookedTransformer], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    folder, _ = case3
    case = load_interpbench(folder)
    data = random_dataset(n=4, length=6, diff_from=2)
    scores = EAP()(case.model, data, LogitDiff(), progress=False)
    r = evaluate(scores, case.circuit)
    assert 0.0 <= r.edge_auc <= 1.0 and r.n_truth_nodes == 2
    path = HeadGraph(model_info(case.model), TaskRun("random", 0, 4), scores, scores.top_k(10)).save(
        tmp_path / "c.json"
    )
    assert main(["score", str(path), "--truth", f"interpbench:{folder}"]) == 0
    out = capsys.readouterr().out
    assert f"ground truth: interpbench:3 (InterpBench ll ground truth, {len(CASE3_EDGES)} hook pairs" in out
    assert f"edge ROC AUC: {r.edge_auc:.3f}" in out and "circuit: MLP0 #" in out
    assert main(["score", str(path), "--truth", f"interpbench:{tmp_path / 'nowhere'}"]) == 2
    assert "no such InterpBench case folder" in capsys.readouterr().err
