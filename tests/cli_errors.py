"""The one check of the standards' bad-input rule: exit 2, no traceback, and exactly one
stderr line ``tfbench: error: ...`` naming what the test expects."""

from __future__ import annotations


def assert_one_line_error(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfbench: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
