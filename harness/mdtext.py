"""Markdown text that cannot carry HTML: values from results files (factor values, ids,
hosts, reasons) go into ``.md`` output with ``<``, ``>`` and ``&`` escaped as entities.

Inside a code span (between backticks) text is shown literally by every Markdown
renderer, so it is left alone there (an entity would show as ``&lt;``)."""

from __future__ import annotations

import html
import re

_CODE = re.compile(r"(`[^`]*`)")


def md_escape(text: object) -> str:
    """``text`` with HTML escaped outside code spans, newlines flattened to spaces."""
    parts = _CODE.split(str(text))
    return "".join(p if i % 2 else html.escape(p, quote=False)
                   for i, p in enumerate(parts)).replace("\n", " ")


def md_cell(text: object) -> str:
    """A table cell: escaped (`md_escape`) and with ``|`` escaped."""
    return md_escape(text).replace("|", "\\|")
