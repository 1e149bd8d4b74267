"""A small document model for ``tfbench report``, rendered to Markdown or self-contained HTML."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.chartkit import DPI, Chart
from harness.mdtext import md_cell, md_escape


@dataclass
class Doc:
    """A small document model rendered both to Markdown and to HTML."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", (list(header), [list(r) for r in rows])))

    def image(self, chart: Chart) -> None:
        self.blocks.append(("img", chart))


def _md_cell(text: str) -> str:
    return md_cell(text)


def render_markdown(doc: Doc, image_paths: Mapping[str, str]) -> str:
    """Markdown with images referenced by relative path."""
    out: list[str] = []
    for kind, value in doc.blocks:
        if kind == "h":
            level, text = value
            out.append(f"{'#' * level} {md_escape(text)}\n")
        elif kind == "p":
            out.append(f"{md_escape(value)}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {md_escape(item)}" for item in value) + "\n")
        elif kind == "table":
            header, rows = value
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
            out.append("")
        elif kind == "img":
            chart: Chart = value
            out.append(f"![{md_escape(chart.title)}]({image_paths[chart.name]})\n")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}code{background:#f5f5f5}"""


def render_html(doc: Doc, title: str) -> str:
    """One self-contained page: images embedded as base64 PNG."""
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for kind, value in doc.blocks:
        if kind == "h":
            level, text = value
            out.append(f"<h{level}>{_inline_html(text)}</h{level}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(value)}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in value) + "</ul>")
        elif kind == "table":
            header, rows = value
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline_html(h)}</th>"
                                                      for h in header) + "</tr></thead><tbody>")
            out.extend("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                       for row in rows)
            out.append("</tbody></table>")
        elif kind == "img":
            chart: Chart = value
            assert chart.figure is not None
            buf = io.BytesIO()
            chart.figure.savefig(buf, format="png", dpi=DPI)
            data = base64.b64encode(buf.getvalue()).decode("ascii")
            out.append(f"<figure><img alt=\"{html.escape(chart.title)}\" "
                       f"src=\"data:image/png;base64,{data}\"></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


