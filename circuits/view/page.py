"""The head-graph page: one self-contained HTML file (inline script, style and data; no network).

The page is a template (``template.html``) with the stylesheet (``page.css``), the script
(``page.js``: vanilla JavaScript drawing inline SVG) and the data of :func:`circuits.view.data.page_data`
pasted in, read as package data. Its Content-Security-Policy forbids every request, so opening it
fetches nothing. In a notebook, :class:`View` displays the same page in an ``<iframe srcdoc>``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

__all__ = ["View", "render_html", "write_html"]


def _asset(name: str) -> str:
    return files("circuits.view").joinpath(name).read_text(encoding="utf-8")


def _inline_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no HTML comment).

    Examples:
        >>> _inline_json({"a": "</script><!--"})
        '{"a":"<\\\\/script>\\\\u003c!--"}'
    """
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "\\u003c!--")


def render_html(data: dict[str, Any]) -> str:
    """The page for ``data`` (from :func:`circuits.view.data.page_data`) as one HTML string."""
    page = _asset("template.html")
    for key, value in (
        ("__HEADGRAPH_CSS__", _asset("page.css")),
        ("__HEADGRAPH_JS__", _asset("page.js")),
        ("__HEADGRAPH_TITLE__", html.escape(str(data.get("title", "headgraph")))),
    ):
        page = page.replace(key, value)
    return page.replace("__HEADGRAPH_DATA__", _inline_json(data))  # last: the data may contain any text


def write_html(data: dict[str, Any], path: str | Path) -> Path:
    """Write the page (parent folders are created; the file appears whole or not at all)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class View:
    """The page as a notebook object: displays inline, and ``save`` writes the HTML file.

    Attributes:
        data: the page data (:func:`circuits.view.data.page_data`).
        height: height of the inline frame in pixels.
    """

    data: dict[str, Any]
    height: int = 900

    def html(self) -> str:
        """The whole page."""
        return render_html(self.data)

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path``."""
        return write_html(self.data, path)

    def _repr_html_(self) -> str:
        doc = html.escape(self.html(), quote=True)
        style = f"width:100%;height:{self.height}px;border:0"
        return f'<iframe srcdoc="{doc}" style="{style}" sandbox="allow-scripts"></iframe>'
