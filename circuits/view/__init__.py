"""An interactive, self-contained HTML page of a head graph (``headgraph view``).

from circuits.view import view
view(HeadGraph.load("out/ioi/circuit.json"))            # in a notebook: displays inline
view(hg_a, hg_b).save("diff.html")                        # two files: with their diff
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from circuits.headgraph import HeadGraph
from circuits.view.attention import AttentionExamples, attention_examples, task_examples
from circuits.view.data import Annotation, page_data
from circuits.view.page import View, render_html, write_html

__all__ = [
    "Annotation",
    "AttentionExamples",
    "View",
    "attention_examples",
    "page_data",
    "render_html",
    "task_examples",
    "view",
    "write_html",
]


def view(
    hg: HeadGraph,
    other: HeadGraph | None = None,
    *,
    attention: AttentionExamples | None = None,
    faithfulness: Mapping[str, Any] | None = None,
    annotations: Mapping[str, Annotation] | None = None,
    diff_top_k: int = 20,
) -> View:
    """The page of ``hg`` (and its diff with ``other``), as a notebook object; see :func:`page_data`."""
    data = page_data(
        hg, other, attention=attention, faithfulness=faithfulness, annotations=annotations, diff_top_k=diff_top_k
    )
    return View(data)
