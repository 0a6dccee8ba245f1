"""Code labels in the head-graph picture: a circuit head with a label in the file carries its caption."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits.graph import NodeKind
from circuits.plot import code_caption, draw_circuit, plot_headgraph
from tests.helpers.view import synthetic_headgraph

LABEL = {
    "n_codes": 5,
    "fidelity": 0.93,
    "converse_fidelity": None,
    "codes": [
        {"code": 7, "share": 0.5, "positions": {"END": 0.8}, "attends": {"IO": 1.0, "S1": 0.0}, "tokens": [" Mary"],
         "examples": ["When Mary and John went to the store, John gave a drink to"]},
        {"code": 2, "share": 0.25, "positions": {"END": 1.0}, "attends": {"S2": 0.7}, "tokens": [], "examples": []},
        {"code": 9, "share": 0.1, "positions": {"END": 1.0}, "attends": {}, "tokens": [], "examples": []},
    ],
}  # fmt: skip


def _texts(hg: object) -> list[str]:
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    draw_circuit(ax, hg)  # type: ignore[arg-type]
    return [t.get_text() for t in ax.texts]


def test_caption_says_codes_fidelity_and_what_the_main_codes_attend() -> None:
    lines = code_caption(LABEL).splitlines()
    assert lines == ["5 codes · fid 0.93/–", "c7 50% → IO ' Mary'", "c2 25% → S2"]
    assert code_caption({"n_codes": 1, "codes": []}) == "1 codes"


def test_labelled_circuit_heads_carry_their_caption(tmp_path: Path) -> None:
    hg = synthetic_headgraph()
    heads = [n for n in hg.circuit.nodes if n.kind is NodeKind.HEAD]
    assert heads
    plain = _texts(hg)
    assert not any("codes" in t for t in plain)
    labelled = dataclasses.replace(hg, code_labels={str(heads[0]): LABEL, "L99H0": LABEL})  # off-circuit: not drawn
    texts = _texts(labelled)
    assert texts.count(code_caption(LABEL)) == 1
    assert len(texts) == len(plain) + 1
    out = plot_headgraph(labelled, tmp_path / "c.png")
    assert out.stat().st_size > 0
