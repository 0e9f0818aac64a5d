"""Fail fast while the database is down: after a call found it unavailable, the calls of the next
moment answer "temporarily unavailable" at once instead of each waiting out its own timeout (on
the event loop, queries run one at a time: a queue of them would otherwise wait timeout after
timeout). One call per pause tries the database again, so the worker recovers by itself."""

from __future__ import annotations

from time import monotonic


class Breaker:
    def __init__(self, pause_seconds: float) -> None:
        self.pause = pause_seconds
        self._open_until = 0.0

    def allows(self) -> bool:
        """Whether a call may try the database now; the first call after a pause does (and
        re-opens the pause for the others until it has an answer)."""
        now = monotonic()
        if now >= self._open_until:
            if self._open_until:
                self._open_until = now + self.pause  # this call probes; the others keep failing fast
            return True
        return False

    def failed(self) -> None:
        self._open_until = monotonic() + self.pause

    def succeeded(self) -> None:
        self._open_until = 0.0
