"""Progress output: plain lines off a terminal, a bar with an ETA on one."""

from __future__ import annotations

import functools
import io

from harness.progress import Progress


def test_plain_lines_with_eta_from_mean_cell_time() -> None:
    stream = io.StringIO()
    clock = functools.partial(next, iter([0.0, 30.0, 90.0]))
    progress = Progress(3, stream=stream, tty=False, clock=clock)
    progress.started("infer-a")
    progress.finished("infer-a", "ok", "median 1.00 ms")  # 30 s for 1 cell, 2 left
    progress.started("train-b")
    progress.finished("train-b", "skipped", "no GPU")  # 90 s for 2 cells, 1 left
    assert stream.getvalue().splitlines() == [
        "[1/3] infer-a ...",
        "[1/3] infer-a: ok (median 1.00 ms); ETA 01:00",
        "[2/3] train-b ...",
        "[2/3] train-b: skipped (no GPU); ETA 00:45",
    ]


def test_terminal_bar_is_redrawn_in_place() -> None:
    stream = io.StringIO()
    clock = functools.partial(next, iter([0.0, 10.0, 10.0]))
    progress = Progress(2, stream=stream, tty=True, clock=clock)
    progress.started("cell-one")
    progress.finished("cell-one", "ok")
    progress.started("cell-two")
    text = stream.getvalue()
    assert text.startswith("\r[" + "." * 24 + "] 0/2 ETA --:--  cell-one")
    assert "cell-one: ok\n" in text
    assert text.endswith("] 1/2 ETA 00:10  cell-two")
    assert "#" * 12 in text
