"""The head-graph page in a real browser: Debian's headless Chromium driven by Playwright.

Each test opens the HTML file ``headgraph view`` writes, as a person would, with every network
request blocked, and checks what is drawn against the Python selection (:mod:`circuits.selection`).
``make test`` installs Chromium (``make browser``); Playwright's own browser download is not used.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from circuits.cli import main
from circuits.graph import Node
from circuits.headgraph import HeadGraph
from circuits.measures.regression import diff_circuits
from circuits.scores import Circuit, Level
from circuits.selection import threshold, top_k
from circuits.view import AttentionExamples, attention_examples, page_data, write_html
from tests.helpers import REPO
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory
from tests.helpers.view import synthetic_headgraph

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS = REPO / "docs"
READY_MS = 120_000
"""How long a page may take to say it is ready (loose, for a busy machine; load time is reported, not asserted)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make browser installs it; make test runs that)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Page:
    """One opened page, with every request but the file itself blocked and recorded."""

    def __init__(self, browser: Any, path: Path, *, width: int = 1400, height: int = 1000) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height}, offline=True)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.url = path.resolve().as_uri()

        def route(r: Any) -> None:
            if r.request.url == self.url:
                r.continue_()
            else:
                r.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        start = time.perf_counter()
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready='1']", timeout=READY_MS)
        self.load_seconds = time.perf_counter() - start

    def graph(self, selector: str = "#graph") -> dict[str, str]:
        out: dict[str, str] = self.page.eval_on_selector(selector, "e => ({...e.dataset})")
        return out

    def count(self, selector: str) -> int:
        return int(self.page.locator(selector).count())

    def close(self) -> None:
        assert self.errors == [], "the page logged errors"
        self.context.close()


@pytest.fixture
def opened(browser: Any) -> Iterator[Any]:
    pages: list[Page] = []

    def open_(path: Path, **kw: Any) -> Page:
        pages.append(Page(browser, path, **kw))
        return pages[-1]

    yield open_
    for p in pages:
        p.close()


def _view(tmp_path: Path, hg: HeadGraph, *extra: str, name: str = "circuit") -> Path:
    src = hg.save(tmp_path / f"{name}.json")
    assert main(["view", str(src), *extra]) == 0
    return src.with_suffix(".diff.html" if extra and not extra[0].startswith("--") else ".html")


def _check(page: Page, circuit: Circuit) -> None:
    """The page's counts and drawn elements are the Python circuit's."""
    g = page.graph()
    assert (int(g["nodes"]), int(g["edges"])) == (len(circuit.nodes), len(circuit.edges)), g
    assert page.count("#graph .node.kept") == len(circuit.nodes)
    assert page.count("#graph path.edge") == int(g["drawnEdges"]) == min(len(circuit.edges), 3000)
    kept = set(page.page.eval_on_selector_all("#graph .node.kept", "es => es.map(e => e.dataset.name)"))
    assert kept == {str(n) for n in circuit.nodes}


def test_edge_graph_counts_and_slider_prune_as_python(opened: Any, tmp_path: Path) -> None:
    hg = synthetic_headgraph(4, 4, seed=2, k=60, unscored=0.1)
    page = opened(_view(tmp_path, hg))
    assert page.requests == [page.url]
    _check(page, top_k(hg.scores, 60))  # the file's own rule
    slider = page.page.locator("#slider")
    n = int(slider.get_attribute("max"))
    assert n == int((~hg.scores.values.isnan()).sum())
    seen = set()
    for pos in (0, 1, 7, 25, 90, 200, n // 2, n):
        slider.fill(str(pos))
        k = int(page.graph()["k"])
        assert k == pos
        circuit = top_k(hg.scores, k)
        _check(page, circuit)
        seen.add(len(circuit.edges))
    assert len(seen) >= 5, "the slider changes the circuit"
    page.page.select_option("#mode", "threshold")
    for pos in (0, 100, 300, 600, 1000):
        slider.fill(str(pos))
        t = float(page.graph()["t"])
        _check(page, threshold(hg.scores, t))
    page.page.fill("#value", "0.05")
    page.page.dispatch_event("#value", "change")
    assert float(page.graph()["t"]) == 0.05
    _check(page, threshold(hg.scores, 0.05))


@pytest.mark.parametrize(
    ("shape", "has_mlps", "split_qkv", "unscored"),
    [((2, 3), True, True, 0.0), ((6, 2), False, True, 0.3), ((3, 5), True, False, 0.5), ((8, 1), False, False, 0.1)],
)
def test_random_graphs_and_slider_positions_prune_as_python(
    opened: Any, tmp_path: Path, shape: tuple[int, int], has_mlps: bool, split_qkv: bool, unscored: float
) -> None:
    seed = shape[0] * 10 + shape[1]
    hg = synthetic_headgraph(*shape, seed=seed, k=30, unscored=unscored, has_mlps=has_mlps, split_qkv=split_qkv)
    page = opened(_view(tmp_path, hg))
    _check(page, top_k(hg.scores, 30))
    slider = page.page.locator("#slider")
    n = int(slider.get_attribute("max"))
    rng = random.Random(seed)
    for pos in rng.sample(range(n + 1), min(12, n + 1)):
        slider.fill(str(pos))
        _check(page, top_k(hg.scores, pos))
    page.page.select_option("#mode", "threshold")
    for pos in rng.sample(range(1001), 12):
        slider.fill(str(pos))
        _check(page, threshold(hg.scores, float(page.graph()["t"])))


def test_node_graph_counts_and_hover(opened: Any, tmp_path: Path) -> None:
    hg = synthetic_headgraph(5, 6, Level.NODE, seed=4, k=12)
    notes = tmp_path / "roles.json"
    notes.write_text(json.dumps({"L3H2": {"role": "name mover", "labels": ["IO name", "copy"]}}))
    page = opened(_view(tmp_path, hg, "--annotations", str(notes)))
    _check(page, top_k(hg.scores, 12))
    for k in (0, 3, 30):
        page.page.locator("#slider").fill(str(k))
        _check(page, top_k(hg.scores, k))
    page.page.hover("#graph .node[data-name='L3H2']")
    info = page.page.inner_text("#info")
    assert "name mover" in info and "IO name, copy" in info
    ranked_names = [str(n) for n, _ in hg.scores.ranked()]
    assert f"rank by |effect|\t#{ranked_names.index('L3H2') + 1}\n" in info, info


def test_clicking_a_head_shows_its_attention_with_tokens(opened: Any, tmp_path: Path, tiny_model: TinyFactory) -> None:
    model = tiny_model(n_layers=4, n_heads=4)
    data = random_dataset(n=3, length=7, lengths=[7, 5, 6])
    prompts = [data.clean[i, : int(data.lengths[i])] for i in range(3)]
    heads = [Node.of_head(3, 1), Node.of_head(1, 2)]
    att = attention_examples(model, prompts, heads, lambda t: f" w{t}")
    att.save(tmp_path / "attention.json")  # read from beside the circuit file
    page = opened(_view(tmp_path, synthetic_headgraph(4, 4)))
    assert "2 heads stored" in page.page.inner_text("#attention")
    page.page.click("#graph .node[data-name='L3H1']")
    assert page.page.inner_text("#attention-title") == "Attention of L3H1"
    assert page.count("#attention .attn-prompt") == 3
    for p, toks in enumerate(att.tokens):
        block = page.page.locator(f"#attention .attn-prompt[data-prompt='{p}']")
        assert block.locator("text.tok.key").all_text_contents() == list(toks)
        assert block.locator("rect").count() == len(toks) * (len(toks) + 1) // 2  # causal: q ≥ k
    assert page.count("#graph .node.selected") == 1
    page.page.click("#graph .node[data-name='L0H0']")
    assert "No stored pattern for L0H0" in page.page.inner_text("#attention")


def test_diff_and_faithfulness_curve(opened: Any, tmp_path: Path) -> None:
    a, b = synthetic_headgraph(seed=0, k=40), synthetic_headgraph(seed=1, k=40)
    b.save(tmp_path / "b.json")
    points = [
        {"percent": p, "asked": 1, "kept": 1, "metric": 0.0, "faithfulness": f}
        for p, f in ((0.1, 0.05), (1, 0.3), (10, 0.8), (100, 1.0))
    ]
    curve = {"level": "edge", "points": points}
    doc = {
        "cpr": 0.71,
        "cmd": 0.2,
        "ablation": "resample",
        "signed": curve,
        "absolute": curve,
        "own_circuit_faithfulness": 0.64,
    }
    (tmp_path / "faithfulness.json").write_text(json.dumps(doc))
    page = opened(_view(tmp_path, a, str(tmp_path / "b.json"), "--top-k", "8"))
    d = page.graph("#diff")
    ea, eb = {str(e) for e in a.circuit.edges}, {str(e) for e in b.circuit.edges}
    assert (int(d["lostEdges"]), int(d["gainedEdges"]), int(d["bothEdges"])) == (
        len(ea - eb), len(eb - ea), len(ea & eb),
    )  # fmt: skip
    diff = diff_circuits(b.scores.to_nodes(), a.scores.to_nodes(), 8)
    assert page.page.inner_text("#diff-text").rstrip() == diff.format(found="B", golden="A")
    assert page.count("#diff .head-lost") == len(diff.lost) and page.count("#diff .head-gained") == len(diff.gained)
    assert page.count("#faith polyline") == 2 and page.count("#faith circle") == 8
    assert "CPR 0.710" in page.page.inner_text("#faith-panel") and "0.640" in page.page.inner_text("#faith-note")


def test_page_renders_with_every_request_blocked(opened: Any, tmp_path: Path) -> None:
    page = opened(_view(tmp_path, synthetic_headgraph(seed=7)))
    assert page.requests == [page.url], "opening the page asks for nothing but the file itself"
    assert page.count("#graph .node.kept") > 0 and page.count("#graph path.edge") > 0
    page.page.locator("#slider").fill("3")
    assert page.requests == [page.url]


def test_the_request_check_sees_a_request(opened: Any, tmp_path: Path) -> None:
    """Control: a copy of the page without its policy and with one remote image is caught asking."""
    path = _view(tmp_path, synthetic_headgraph(seed=7))
    html = path.read_text(encoding="utf-8")
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    html = html.replace("<body>", '<body><img src="http://example.invalid/x.png" alt="">', 1)
    leaky = path.with_name("leaky.html")
    leaky.write_text(html, encoding="utf-8")
    page = opened(leaky)
    assert page.requests == [page.url, "http://example.invalid/x.png"]
    assert page.count("#graph .node.kept") > 0  # the blocked image does not stop the page
    assert page.errors == ["Failed to load resource: net::ERR_FAILED"]  # and the error check sees it fail
    page.errors.clear()


def test_full_edge_graph_load_time(opened: Any, tmp_path: Path, record_property: Any) -> None:
    """SmolLM2-135M's candidate graph (30 layers × 9 heads, MLPs, q/k/v: 123k edges), every edge scored."""
    hg = synthetic_headgraph(30, 9, seed=0, k=5000)
    n_edges = len(hg.scores.graph.edges)
    assert n_edges > 120_000
    start = time.perf_counter()
    path = write_html(page_data(hg), tmp_path / "full.html")
    write_s = time.perf_counter() - start
    page = opened(path)
    start_circuit = top_k(hg.scores, 5000)
    assert len(start_circuit.edges) > 500
    _check(page, start_circuit)
    init_ms = page.page.evaluate("window.headgraphInitMs")
    start = time.perf_counter()
    page.page.locator("#slider").fill("700")
    k = int(page.graph()["k"])
    slider_s = time.perf_counter() - start
    circuit = top_k(hg.scores, k)
    _check(page, circuit)
    numbers = {
        "edges": n_edges,
        "file_mb": round(path.stat().st_size / 1e6, 2),
        "write_s": round(write_s, 2),
        "open_to_ready_s": round(page.load_seconds, 2),
        "script_ms": round(init_ms),
        "start_kept_edges": len(start_circuit.edges),
        "slider_k": k,
        "slider_kept_edges": len(circuit.edges),
        "slider_s": round(slider_s, 2),
    }
    start = time.perf_counter()
    page.page.locator("#slider").fill("1000")  # every edge: the counts cover them all, the drawing the strongest
    numbers["all_s"] = round(time.perf_counter() - start, 2)
    assert int(page.graph()["k"]) == n_edges
    _check(page, top_k(hg.scores, n_edges))
    for key, value in numbers.items():
        record_property(key, value)
    print(f"\nfull edge graph: {numbers}")
    assert math.isfinite(page.load_seconds)


@pytest.mark.slow
def test_smollm2_ioi_page_and_readme_screenshot(opened: Any, tmp_path: Path) -> None:
    """The README's picture: SmolLM2's IOI edge graph (EAP-IG, 16 pairs), its faithfulness curve,
    Wang et al.'s roles from docs/ioi-roles-smollm2-gemma3.json, and the attention of a clicked head."""
    out = tmp_path / "ioi"
    discover = ["discover", "--task", "ioi", "--model", "smollm2-135m", "--method", "eap-ig", "--n", "16"]
    assert main([*discover, "--seed", "0", "--top-k", "200", "--out", str(out), "--quiet"]) == 0
    circuit = out / "circuit.json"
    assert main(["evaluate", str(circuit), "--quiet"]) == 0
    roles = DOCS / "ioi-roles-smollm2-gemma3.json"
    assert main(["view", str(circuit), "--model", "auto", "--annotations", str(roles), "--quiet"]) == 0
    hg = HeadGraph.load(circuit)
    page = opened(circuit.with_suffix(".html"), height=1100)
    _check(page, top_k(hg.scores, 200))
    att = AttentionExamples.load(out / "attention.json")
    assert set(att.heads) == set(hg.circuit.heads())  # every head of the file's circuit (fewer than 48)
    role = {h["head"]: h["role"] for h in json.loads(roles.read_text())["a"]["heads"] if h["role"]}
    head = next(str(h) for h in att.heads[::-1] if str(h) in role)  # the last head with a role
    page.page.hover(f"#graph .node[data-name='{head}']")
    assert role[head] in page.page.inner_text("#info")
    page.page.click(f"#graph .node[data-name='{head}']")
    assert page.count("#attention .attn-prompt") == 3
    first = page.page.locator("#attention .attn-prompt[data-prompt='0'] text.tok.key").all_text_contents()
    assert first == [json.dumps(t, ensure_ascii=False)[1:-1][:10] for t in att.tokens[0]]
    assert page.count("#faith polyline") == 2
    page.page.mouse.move(2, 2)  # the tooltip hides; the info panel keeps the hovered head
    DOCS.mkdir(exist_ok=True)
    page.page.screenshot(path=str(DOCS / "view-ioi-smollm2.png"), full_page=True)
