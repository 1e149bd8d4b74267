"""Progress for ``tfbench run``: a bar with ETA on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Cells done of total, the current cell and an ETA from the mean cell time."""

    def __init__(self, total: int, stream: TextIO | None = None, tty: bool | None = None,
                 clock: object = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._clock = clock
        self._start = self._now()
        self._width = 0

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def eta_s(self) -> float | None:
        if self.done == 0:
            return None
        per_cell = (self._now() - self._start) / self.done
        return per_cell * (self.total - self.done)

    def _eta_text(self) -> str:
        eta = self.eta_s()
        if eta is None:
            return "ETA --:--"
        minutes, seconds = divmod(round(eta), 60)
        return f"ETA {minutes:02d}:{seconds:02d}"

    def started(self, label: str) -> None:
        if self.tty:
            width = 24
            filled = int(width * self.done / max(self.total, 1))
            line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                    f"{self._eta_text()}  {label}")
            pad = max(self._width - len(line), 0)
            self._width = len(line)
            self.stream.write("\r" + line + " " * pad)
        else:
            self.stream.write(f"[{self.done + 1}/{self.total}] {label} ...\n")
        self.stream.flush()

    def finished(self, label: str, status: str, detail: str = "") -> None:
        self.done += 1
        text = f"{label}: {status}" + (f" ({detail})" if detail else "")
        if self.tty:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
            self.stream.write(f"{text}\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {text}; {self._eta_text()}\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
