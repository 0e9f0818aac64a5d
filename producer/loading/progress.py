"""Progress of a long load: a redrawn bar on a terminal, plain lines otherwise (logs, CI, pipes).

Hand-written on purpose: a few lines, and no dependency for something this small.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR = 30


class Progress:
    """``step(name)`` starts a phase, ``advance(done, total)`` moves within it; ``done()`` ends."""

    def __init__(self, stream: TextIO | None = None, terminal: bool | None = None, every: float = 2.0) -> None:
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.every = every  # seconds between plain lines within one phase
        self.phase = ""
        self.started = time.monotonic()
        self._last_line = 0.0
        self._last_percent = -1

    def step(self, phase: str) -> None:
        self._finish_bar()
        self.phase = phase
        self._last_percent = -1
        if not self.terminal:
            self._write(f"load: {phase}\n")
            self._last_line = time.monotonic()
        else:
            self._bar(0, 0)

    def advance(self, done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 100
        if percent == self._last_percent:
            return
        self._last_percent = percent
        if self.terminal:
            self._bar(done, total)
        elif time.monotonic() - self._last_line >= self.every or percent == 100:
            self._write(f"load: {self.phase}: {percent}%\n")
            self._last_line = time.monotonic()

    def done(self) -> None:
        self._finish_bar()
        if not self.terminal:
            self._write(f"load: finished in {time.monotonic() - self.started:.1f} s\n")

    def _bar(self, done: int, total: int) -> None:
        filled = BAR * done // total if total else 0
        percent = f"{100 * done // total:3d}%" if total else "    "
        self._write(f"\r[{'#' * filled}{'.' * (BAR - filled)}] {percent} {self.phase[:60]:<60}")

    def _finish_bar(self) -> None:
        if self.terminal and self.phase:
            self._write("\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


class Silent(Progress):
    """For the API: the same calls, no output."""

    def __init__(self) -> None:
        super().__init__(stream=sys.stderr, terminal=False)

    def _write(self, text: str) -> None:
        return None
