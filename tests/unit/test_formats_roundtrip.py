"""Export then import gives the same head graph, for every format; the files are what the other tools read."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuits.cli import main
from circuits.errors import CircuitFileError, HeadgraphError
from circuits.formats import Format, export_headgraph, import_headgraph
from circuits.formats.eapig import backward_index, dst_node_names, forward_index, write_eapig
from circuits.formats.names import (
    autocircuit_edge_name,
    eapig_edge_name,
    eapig_node_name,
    parse_autocircuit_edge,
    parse_eapig_edge,
    parse_eapig_node,
)
from circuits.graph import QKV, ComponentGraph, Edge, Node, NodeKind
from circuits.headgraph import HeadGraph, TaskRun
from circuits.model import ModelInfo
from circuits.scores import Baseline, Circuit, Level, Scores
from circuits.selection import Ranking, top_k

FILES = [(Format.EAP_IG, "c.json"), (Format.EAP_IG, "c.pt"), (Format.MIB, "c.json"), (Format.MIB, "c.pt"),
         (Format.GRAPHML, "c.graphml"), (Format.AUTO_CIRCUIT, "c.pt")]  # fmt: skip


def _hg(graph: ComponentGraph, level: Level, values: torch.Tensor, circuit: Circuit, n_kv: int) -> HeadGraph:
    info = ModelInfo("toy-gqa", graph.n_layers, graph.n_heads, n_kv, 8 * graph.n_heads, 8, 97, not graph.has_mlps, "h")
    scores = Scores(graph, level, values, "eap-ig", Baseline("logit_diff", 3.25, -0.5, 0.9, 0.1), {"steps": 5}, 2.0)
    task = TaskRun("ioi", 7, 16, "tok", {"order": "ABBA"}, {"too long": 2})
    return HeadGraph(info, task, scores, circuit)


def _draw(
    data: st.DataObject, *, mlps: bool | None = None, nan: bool = True, level: Level | None = None, split: bool = True
) -> HeadGraph:
    """A random head graph: shapes with grouped-query heads, node or edge scores, NaNs, any circuit.

    Drawn in the test body with ``st.data()``: the type checks the test run installs sample
    containers with the ``random`` module, which hypothesis forbids inside strategies.
    """
    n_layers = data.draw(st.integers(1, 3), label="layers")
    n_kv = data.draw(st.integers(1, 3), label="key/value heads")
    n_heads = n_kv * data.draw(st.integers(1, 3), label="query heads per group")
    has_mlps = data.draw(st.booleans(), label="mlps") if mlps is None else mlps
    split_qkv = data.draw(st.booleans(), label="split q/k/v") if not split else True
    graph = ComponentGraph(n_layers, n_heads, has_mlps=has_mlps, split_qkv=split_qkv)
    level = data.draw(st.sampled_from(list(Level)), label="level") if level is None else level
    n = len(graph.nodes) if level is Level.NODE else len(graph.edges)
    floats = st.floats(-1e3, 1e3, allow_nan=False, width=32)
    values = torch.tensor(data.draw(st.lists(floats, min_size=n, max_size=n), label="values"), dtype=torch.float32)
    if nan:
        values[data.draw(st.lists(st.integers(0, n - 1), max_size=n), label="unscored")] = math.nan
    members = data.draw(st.lists(st.integers(0, n - 1), max_size=12), label="circuit")
    if level is Level.NODE:
        nodes = frozenset(graph.nodes[i] for i in members)
        circuit = Circuit(graph, nodes, frozenset(), {"rule": "top_k", "k": len(nodes)})
    else:
        edges = sorted({graph.edges[i] for i in members}, key=str)
        circuit = Circuit.from_items(graph, edges, {"rule": "threshold", "t": 0.5})
    return _hg(graph, level, values, circuit, n_kv)


def _same(a: HeadGraph, b: HeadGraph) -> None:
    assert a.to_dict() == b.to_dict()
    assert torch.equal(torch.isnan(a.scores.values), torch.isnan(b.scores.values))
    ok = ~torch.isnan(a.scores.values)
    assert torch.equal(a.scores.values[ok], b.scores.values[ok])  # bit for bit


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.parametrize("fmt,name", [f for f in FILES if f[0] is not Format.MIB])
def test_round_trip_is_exact(tmp_path: Path, fmt: Format, name: str, data: st.DataObject) -> None:
    hg = _draw(data, level=Level.EDGE if fmt is Format.AUTO_CIRCUIT else None)
    _same(import_headgraph(export_headgraph(hg, fmt, tmp_path / name), fmt), hg)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_graphml_and_autocircuit_round_trip_unsplit_graphs(tmp_path: Path, data: st.DataObject) -> None:
    hg = _draw(data, level=Level.EDGE, split=False)
    _same(import_headgraph(export_headgraph(hg, Format.AUTO_CIRCUIT, tmp_path / "c.pt"), Format.AUTO_CIRCUIT), hg)
    _same(import_headgraph(export_headgraph(hg, Format.GRAPHML, tmp_path / "c.graphml"), Format.GRAPHML), hg)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.parametrize("name", ["c.json", "c.pt"])
def test_mib_round_trip_is_exact(tmp_path: Path, name: str, data: st.DataObject) -> None:
    hg = _draw(data, mlps=True, nan=False)
    _same(import_headgraph(export_headgraph(hg, Format.MIB, tmp_path / name), Format.MIB), hg)


def _gqa_example() -> HeadGraph:
    """SmolLM2's head layout in miniature: 2 layers × 9 query heads over 3 key/value heads."""
    graph = ComponentGraph(2, 9)
    values = torch.linspace(-1, 1, len(graph.edges))
    scores = Scores(graph, Level.EDGE, values, "eap", Baseline("logit_diff", 2.0, 0.0))
    return _hg(graph, Level.EDGE, values, top_k(scores, 30, Ranking.SIGNED), 3)


def test_mib_json_is_eapig_layout_with_negated_scores(tmp_path: Path) -> None:
    hg = _gqa_example()
    d = json.loads(write_eapig(hg, tmp_path / "c.json").read_text())
    assert set(d) == {"cfg", "nodes", "edges", "headgraph"}
    assert d["cfg"] == {"n_layers": 2, "n_heads": 9, "parallel_attn_mlp": False, "d_model": 72, "n_key_value_heads": 3}
    # EAP-IG's node order and names: input, a0.h0..a0.h8, m0, a1.h0.., m1, logits
    assert list(d["nodes"])[:3] == ["input", "a0.h0", "a0.h1"] and list(d["nodes"])[-3:] == ["a1.h8", "m1", "logits"]
    # EAP-IG's edge order (Graph.from_model): sender-major into each head's q, k, v, then the MLP
    assert list(d["edges"])[:4] == ["input->a0.h0<q>", "input->a0.h0<k>", "input->a0.h0<v>", "input->a0.h1<q>"]
    assert list(d["edges"])[-1] == "m1->logits" and len(d["edges"]) == len(hg.scores.graph.edges)
    g = hg.scores.graph
    for e in (Edge(Node.of_head(0, 4), Node.of_head(1, 7), QKV.K), Edge(Node.of_mlp(0), Node(NodeKind.LOGITS, 2))):
        entry = d["edges"][eapig_edge_name(e)]
        assert entry["score"] == -float(hg.scores.values[g.edge_index(e)])  # EAP-IG's sign: the loss change
        assert entry["in_graph"] == (e in hg.circuit.edges)
    # EAP-IG's edge count for this shape: every head input reads all earlier senders, MLPs their own layer too
    n_fwd = 1 + 2 * (9 + 1)
    assert sum(1 for k in d["edges"] if k.endswith("<q>")) == 9 * 1 + 9 * (1 + 10)
    assert n_fwd == forward_index(g, Node(NodeKind.LOGITS, 2))


def test_pt_layout_matches_eapig_indexing(tmp_path: Path) -> None:
    hg = _gqa_example()
    g = hg.scores.graph
    d = torch.load(write_eapig(hg, tmp_path / "c.pt"), weights_only=True)
    n_fwd, n_bwd = 1 + 2 * 10, 2 * (3 * 9 + 1) + 1
    assert d["edges_scores"].shape == (n_fwd, n_bwd) and d["edges_in_graph"].dtype == torch.bool
    assert d["src_nodes"][:2] == ["input", "a0.h0"] and d["src_nodes"][10] == "m0" and len(d["src_nodes"]) == n_fwd
    assert d["dst_nodes"] == dst_node_names(g) and d["dst_nodes"][9] == "a0.h0<k>" and d["dst_nodes"][27] == "m0"
    e = Edge(Node.of_head(0, 2), Node.of_head(1, 5), QKV.V)
    f, b = forward_index(g, e.src), backward_index(g, e.dst, e.qkv)
    assert (d["src_nodes"][f], d["dst_nodes"][b]) == ("a0.h2", "a1.h5<v>")
    assert float(d["edges_scores"][f, b]) == -float(hg.scores.values[g.edge_index(e)])
    # slots that are not edges (a later sender into an earlier receiver) stay zero and out
    assert float(d["edges_scores"][forward_index(g, Node.of_mlp(1)), backward_index(g, Node.of_mlp(0), None)]) == 0.0


def test_foreign_eapig_file_is_read_like_eapig(tmp_path: Path) -> None:
    """A file as EAP-IG writes it (no headgraph key): 1 layer × 2 heads, every edge, logits always in."""
    graph = ComponentGraph(1, 2)
    edges = {
        eapig_edge_name(e): {"score": 0.25 * i - 1.0, "in_graph": i in (0, 8, 11)} for i, e in enumerate(graph.edges)
    }
    nodes = {eapig_node_name(n): {"in_graph": True} for n in graph.nodes}
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps({"cfg": {"n_layers": 1, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 8},
                                "nodes": nodes, "edges": edges}))  # fmt: skip
    hg = import_headgraph(path, Format.EAP_IG)
    assert hg.scores.level is Level.EDGE and hg.scores.method == "eap-ig-file" and hg.model.name == "unknown"
    assert hg.scores.values.tolist() == [-(0.25 * i - 1.0) for i in range(len(graph.edges))]
    assert hg.circuit.edges == frozenset(graph.edges[i] for i in (0, 8, 11))
    assert hg.circuit.nodes == frozenset(n for i in (0, 8, 11) for n in (graph.edges[i].src, graph.edges[i].dst))
    assert math.isnan(hg.scores.baseline.clean)


def test_autocircuit_layout(tmp_path: Path) -> None:
    """auto-circuit's PruneScores: one tensor per destination module, [head, src_idx] for head inputs."""
    hg = _gqa_example()
    g = hg.scores.graph
    d = torch.load(export_headgraph(hg, Format.AUTO_CIRCUIT, tmp_path / "c.pt"), weights_only=True)
    ps = d["prune_scores"]
    shapes = {k: tuple(v.shape) for k, v in ps.items()}
    assert shapes == {"blocks.0.hook_q_input": (9, 1), "blocks.0.hook_k_input": (9, 1), "blocks.0.hook_v_input": (9, 1),
                      "blocks.0.hook_mlp_in": (10,), "blocks.1.hook_q_input": (9, 11), "blocks.1.hook_k_input": (9, 11),
                      "blocks.1.hook_v_input": (9, 11), "blocks.1.hook_mlp_in": (20,),
                      "blocks.1.hook_resid_post": (21,)}  # fmt: skip
    e = Edge(Node.of_mlp(0), Node.of_head(1, 7), QKV.K)  # src_idx of MLP 0 is 1 + 9
    assert float(ps["blocks.1.hook_k_input"][7, 10]) == -float(hg.scores.values[g.edge_index(e)])
    assert set(d["circuit"]) == {autocircuit_edge_name(x) for x in hg.circuit.edges}
    bare = tmp_path / "bare.pt"
    torch.save(ps, bare)  # a PruneScores dict as auto-circuit users save it
    back = import_headgraph(bare, Format.AUTO_CIRCUIT)
    assert torch.equal(back.scores.values, hg.scores.values) and back.circuit.edges == frozenset()
    with pytest.raises(HeadgraphError, match="edge scores only"):
        export_headgraph(_hg(g, Level.NODE, torch.zeros(len(g.nodes)), Circuit(g, frozenset()), 3), Format.AUTO_CIRCUIT,
                         tmp_path / "n.pt")  # fmt: skip
    del ps["blocks.1.hook_mlp_in"]
    torch.save(ps, bare)
    with pytest.raises(CircuitFileError, match=r"blocks.1.hook_mlp_in needs a tensor of shape \(20,\), got nothing"):
        import_headgraph(bare, Format.AUTO_CIRCUIT)


def test_graphml_is_read_by_networkx(tmp_path: Path) -> None:
    hg = _gqa_example()
    g = nx.read_graphml(export_headgraph(hg, Format.GRAPHML, tmp_path / "c.graphml"), force_multigraph=True)
    assert g.number_of_nodes() == len(hg.scores.graph.nodes) and g.number_of_edges() == len(hg.scores.graph.edges)
    assert g.nodes["L1H7"]["kind"] == "head" and g.nodes["L1H7"]["head"] == 7
    e = Edge(Node.of_head(0, 4), Node.of_head(1, 7), QKV.K)
    data = [d for d in g.get_edge_data("L0H4", "L1H7").values() if d["qkv"] == "k"]
    assert len(data) == 1
    assert data[0]["score"] == float(hg.scores.values[hg.scores.graph.edge_index(e)])
    assert data[0]["in_circuit"] == (e in hg.circuit.edges)


@pytest.mark.parametrize("edge", ComponentGraph(3, 2).edges[::7])
def test_name_maps_invert(edge: Edge) -> None:
    assert parse_eapig_edge(eapig_edge_name(edge), 3) == edge
    assert parse_autocircuit_edge(autocircuit_edge_name(edge), 3) == edge
    assert parse_eapig_node(eapig_node_name(edge.dst), 3) == edge.dst


@pytest.mark.parametrize("fmt,name", FILES[:2] + FILES[4:5])
def test_node_scores_all_unscored(tmp_path: Path, fmt: Format, name: str) -> None:
    graph = ComponentGraph(2, 3)
    hg = _hg(graph, Level.NODE, torch.full((len(graph.nodes),), math.nan), Circuit(graph, frozenset()), 3)
    _same(import_headgraph(export_headgraph(hg, fmt, tmp_path / name), fmt), hg)


def test_mib_refuses_what_mib_would_misread(tmp_path: Path) -> None:
    hg = _gqa_example()
    values = hg.scores.values.clone()
    values[3] = math.nan
    scores = Scores(hg.scores.graph, Level.EDGE, values, "eap", hg.scores.baseline)
    with pytest.raises(HeadgraphError, match="1 of .* edges are unscored"):
        export_headgraph(HeadGraph(hg.model, hg.task, scores, hg.circuit), Format.MIB, tmp_path / "x.json")
    graph = ComponentGraph(2, 2, has_mlps=False)
    attn_only = _hg(graph, Level.NODE, torch.zeros(len(graph.nodes)), Circuit(graph, frozenset()), 2)
    with pytest.raises(HeadgraphError, match="MIB's graphs have MLPs"):
        export_headgraph(attn_only, Format.MIB, tmp_path / "x.json")
    unsplit = ComponentGraph(2, 2, split_qkv=False)
    flat = _hg(unsplit, Level.NODE, torch.zeros(len(unsplit.nodes)), Circuit(unsplit, frozenset()), 2)
    with pytest.raises(HeadgraphError, match="split head inputs"):
        export_headgraph(flat, Format.EAP_IG, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_malformed_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cfg": {"n_layers": 1, "n_heads": 2}, "nodes": {"a0.h7": {"in_graph": True}},
                               "edges": {}}))  # fmt: skip
    with pytest.raises(CircuitFileError, match="node 'a0.h7' is not in a 1×2 graph"):
        import_headgraph(bad, Format.EAP_IG)
    bad.write_text(json.dumps({"cfg": {"n_layers": 1, "n_heads": 2}, "nodes": {}, "edges": {"m0->a0.h0<q>": {}}}))
    with pytest.raises(CircuitFileError, match="not in a 1×2 graph"):
        import_headgraph(bad, Format.EAP_IG)
    bad.write_text(json.dumps({"cfg": {"n_layers": 1, "n_heads": 2, "parallel_attn_mlp": True}, "nodes": {},
                               "edges": {}}))  # fmt: skip
    with pytest.raises(CircuitFileError, match="parallel"):
        import_headgraph(bad, Format.MIB)
    (tmp_path / "x.graphml").write_text("<graphml/>")
    with pytest.raises(CircuitFileError, match="not a GraphML file"):
        import_headgraph(tmp_path / "x.graphml", Format.GRAPHML)
    ET.ElementTree(ET.Element("x")).write(tmp_path / "y.pt")
    with pytest.raises(CircuitFileError, match="not a torch file"):
        import_headgraph(tmp_path / "y.pt", Format.EAP_IG)


def test_cli_export_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hg = _gqa_example()
    src = hg.save(tmp_path / "circuit.json")
    for fmt, name in FILES:
        out = tmp_path / fmt.value / name
        assert main(["export", str(src), "--format", fmt.value, "--out", str(out)]) == 0
        back = tmp_path / fmt.value / f"{name}.circuit.json"
        assert main(["import", str(out), "--format", fmt.value, "--out", str(back)]) == 0
        assert HeadGraph.load(back).to_dict() == hg.to_dict()
    values = hg.scores.values.clone()
    values[0] = math.nan
    partial = HeadGraph(hg.model, hg.task, Scores(hg.scores.graph, Level.EDGE, values, "eap", hg.scores.baseline),
                        hg.circuit).save(tmp_path / "partial.json")  # fmt: skip
    assert main(["export", str(partial), "--format", "mib", "--out", str(tmp_path / "p.json")]) == 2
    assert "1 of 375 edges are unscored; MIB would rank them as score 0" in capsys.readouterr().err
    assert main(["export", str(src), "--format", "dot", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "headgraph: error: --format must be one of mib, eap-ig, graphml, auto-circuit, got 'dot'"
