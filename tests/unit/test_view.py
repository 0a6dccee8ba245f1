"""The head-graph page without a browser: its data, its HTML, the attention file and the command."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from circuits.analysis.attention import head_patterns
from circuits.cli import main
from circuits.errors import CircuitFileError, HeadgraphError
from circuits.graph import Node
from circuits.measures.regression import diff_circuits
from circuits.scores import Level
from circuits.selection import prune_mask, ranked
from circuits.view import AttentionExamples, attention_examples, page_data, render_html, view
from circuits.view.data import annotations_from_json
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory
from tests.helpers.view import synthetic_headgraph


def _page_json(page: str) -> dict:
    m = re.search(r'<script id="headgraph-data" type="application/json">(.*?)</script>', page, re.S)
    assert m, "the page carries its data inline"
    return json.loads(m[1])


@pytest.mark.parametrize("level", list(Level))
def test_items_are_the_scored_items_in_graph_order_and_order_ranks_them(level: Level) -> None:
    hg = synthetic_headgraph(level=level, unscored=0.2, seed=3)
    data = page_data(hg)
    vals = hg.scores.values.tolist()
    scored = [i for i, v in enumerate(vals) if not math.isnan(v)]
    norm = hg.scores.normalized.tolist()
    assert data["items"]["norm"] == [norm[i] for i in scored]  # exact: the threshold compares these
    assert [scored[p] for p in data["order"]] == ranked(hg.scores)
    if level is Level.EDGE:
        g = hg.scores.graph
        names = data["nodes"]["name"]
        assert [f"{names[s]}->{names[d]}" for s, d in zip(data["items"]["src"], data["items"]["dst"], strict=True)] == [
            f"{g.edges[i].src}->{g.edges[i].dst}" for i in scored
        ]


def test_graph_order_of_the_items_is_what_pruning_needs() -> None:
    """prune_mask's two passes over the scored items alone (as the page runs them) equal the full pass."""
    hg = synthetic_headgraph(5, 3, seed=1, unscored=0.3)
    graph = hg.scores.graph
    data = page_data(hg)
    src, dst, order = data["items"]["src"], data["items"]["dst"], data["order"]
    scored = [i for i, v in enumerate(hg.scores.values.tolist()) if not math.isnan(v)]
    for k in (0, 5, 40, 200, len(order)):
        keep = [False] * len(src)
        for p in order[:k]:
            keep[p] = True
        reached, feeds = {0}, {len(graph.nodes) - 1}
        for i in range(len(src)):
            if keep[i] and src[i] in reached:
                reached.add(dst[i])
        for i in reversed(range(len(src))):
            if keep[i] and dst[i] in feeds:
                feeds.add(src[i])
        page = [scored[i] for i in range(len(src)) if keep[i] and src[i] in reached and dst[i] in feeds]
        full = torch.zeros(len(graph.edges), dtype=torch.bool)
        full[[scored[p] for p in order[:k]]] = True
        assert page == prune_mask(graph, full).nonzero().flatten().tolist()


def test_the_page_is_self_contained() -> None:
    page = view(synthetic_headgraph()).html()
    assert "__HEADGRAPH_" not in page
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", page)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace name, never fetched
    assert "default-src 'none'" in page  # the browser refuses every request


def test_data_that_looks_like_html_cannot_end_the_script() -> None:
    hg = synthetic_headgraph()
    data = page_data(hg, annotations={"L1H1": {"role": "</script><script>alert(1)</script>", "labels": ["<!--"]}})
    page = render_html(data)
    assert _page_json(page)["nodes"]["annotations"]["L1H1"]["role"] == "</script><script>alert(1)</script>"
    assert page.count("</script>") == 2


def test_notebook_object_displays_the_page_in_a_frame(tmp_path: Path) -> None:
    v = view(synthetic_headgraph())
    frame = v._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and "&lt;svg id=&quot;graph&quot;" in frame
    assert v.save(tmp_path / "p.html").read_text(encoding="utf-8") == v.html()


def test_diff_is_the_one_headgraph_compare_prints() -> None:
    a, b = synthetic_headgraph(seed=0), synthetic_headgraph(seed=1)
    data = page_data(a, b, diff_top_k=8)["diff"]
    diff = diff_circuits(b.scores.to_nodes(), a.scores.to_nodes(), 8)
    assert diff.lost and diff.gained, "two random files differ"
    assert data["text"] == diff.format(found="B", golden="A")
    assert [r["node"] for r in data["heads"]["lost"]] == [str(c.node) for c in diff.lost]
    assert [r["node"] for r in data["heads"]["gained"]] == [str(c.node) for c in diff.gained]
    ea, eb = {str(e) for e in a.circuit.edges}, {str(e) for e in b.circuit.edges}
    assert set(data["edges"]["lost"]) == ea - eb and set(data["edges"]["gained"]) == eb - ea
    assert set(data["edges"]["both"]) == ea & eb


def test_diff_of_different_model_shapes_is_refused() -> None:
    with pytest.raises(HeadgraphError, match="cannot diff"):
        page_data(synthetic_headgraph(4, 4), synthetic_headgraph(3, 4))


def test_bad_annotations_and_faithfulness_are_refused() -> None:
    hg = synthetic_headgraph()
    with pytest.raises(HeadgraphError, match="not in the graph: L9H9"):
        page_data(hg, annotations={"L9H9": {"role": "x"}})
    with pytest.raises(HeadgraphError, match="not a faithfulness file"):
        page_data(hg, faithfulness={"cpr": 1.0})
    with pytest.raises(HeadgraphError, match="no side for model"):
        annotations_from_json({"schema": "headgraph.roles", "a": {"model": "other", "heads": []}}, "m")


def test_attention_examples_are_the_models_patterns_and_round_trip(tiny_model: TinyFactory, tmp_path: Path) -> None:
    model = tiny_model()
    data = random_dataset(n=3, length=6, lengths=[6, 4, 5])
    prompts = [data.clean[i, : int(data.lengths[i])] for i in range(3)]
    heads = [Node.of_head(2, 1), Node.of_head(0, 3)]
    att = attention_examples(model, prompts, heads, lambda t: f"t{t}")
    assert att.heads == (Node.of_head(0, 3), Node.of_head(2, 1))  # topological order
    for p, toks, pat in zip(prompts, att.tokens, att.patterns, strict=True):
        assert toks == tuple(f"t{int(t)}" for t in p)
        torch.testing.assert_close(pat, head_patterns(model, p, att.heads))
    back = AttentionExamples.load(att.save(tmp_path / "attention.json"))
    assert back.tokens == att.tokens and back.heads == att.heads
    for x, y in zip(back.patterns, att.patterns, strict=True):
        torch.testing.assert_close(x, y.float(), atol=0.5e-3, rtol=0)
    with pytest.raises(HeadgraphError, match="not in a 2×4 graph"):
        page_data(synthetic_headgraph(2, 4), attention=att)


def test_attention_file_errors(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"schema": "headgraph.attention", "prompts": [["a"]], "heads": {"L0H0": [[]]}}')
    with pytest.raises(CircuitFileError, match="malformed attention file"):
        AttentionExamples.load(tmp_path / "a.json")
    with pytest.raises(CircuitFileError, match="not a headgraph attention file"):
        AttentionExamples.from_dict({"schema": "x"})


def test_view_command_writes_the_page_with_what_lies_beside_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = synthetic_headgraph().save(tmp_path / "a" / "circuit.json")
    b = synthetic_headgraph(seed=5).save(tmp_path / "b" / "circuit.json")
    points = [{"percent": p, "asked": 1, "kept": 1, "metric": 0.0, "faithfulness": p / 100} for p in (1.0, 10.0, 100.0)]
    curve = {"level": "edge", "points": points}
    (tmp_path / "a" / "faithfulness.json").write_text(
        json.dumps({"cpr": 0.5, "cmd": 0.4, "ablation": "resample", "signed": curve, "absolute": curve})
    )
    assert main(["view", str(a), str(b)]) == 0
    out = tmp_path / "a" / "circuit.diff.html"
    assert f"wrote {out}" in capsys.readouterr().out
    data = _page_json(out.read_text(encoding="utf-8"))
    assert data["diff"]["b"].startswith("ioi on synthetic-4x4")
    assert [p["f"] for p in data["faithfulness"]["curves"]["signed"]] == [0.01, 0.1, 1.0]
    assert data["attention"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["view", "missing.json"], "missing.json: no such file"),
        (["view", "{a}", "--prompts", "0"], "--prompts, --max-heads and --top-k must be positive"),
        (["view", "{a}", "--attention", "{a}"], "not a headgraph attention file"),
        (["view", "{a}", "--annotations", "{a}"], "annotations must be a JSON object"),
        (["view", "{a}", "{small}"], "cannot diff circuits of a 4×4 and a 2×4 model"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    a = synthetic_headgraph().save(tmp_path / "circuit.json")
    small = synthetic_headgraph(2, 4).save(tmp_path / "small.json")
    argv = [x.format(a=a, small=small) for x in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("headgraph: error:") and message in err and "\n" not in err
    assert not list(tmp_path.glob("*.html"))
