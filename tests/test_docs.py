"""The documentation points only to files in this repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "results" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `harness/x.py`-style paths in backticks, and relative Markdown links
CODE_PATH = re.compile(r"`((?:\.\./)*(?:harness|tests|benchmarks|docs|examples|shared)/"
                       r"[A-Za-z0-9_./\-]+)`")
LINK = re.compile(r"\]\(((?!https?://|#|mailto:)[^)#\s]+)")


def test_docs_reference_only_files_in_the_repository() -> None:
    missing = []
    for doc in DOCS:
        body = doc.read_text()
        for m in CODE_PATH.finditer(body):
            path = m.group(1).rstrip(".")
            target = (doc.parent / path) if path.startswith("..") else ROOT / path
            if not target.resolve().is_relative_to(ROOT) or not target.exists():
                missing.append(f"{doc.relative_to(ROOT)}: `{path}`")
        for m in LINK.finditer(body):
            target = (doc.parent / m.group(1)).resolve()
            if not target.is_relative_to(ROOT) or not target.exists():
                missing.append(f"{doc.relative_to(ROOT)}: ({m.group(1)})")
    assert not missing, "\n".join(missing)
