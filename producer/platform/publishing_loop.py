"""The loop an outbox publisher thread runs, whatever its peer. May import: psycopg, producer.platform.

A publisher's round (claim rows FOR UPDATE SKIP LOCKED, send, mark or park, commit) is its own: what
is claimed, how it is sent and what a failure means differ by peer. What every publisher does
around its rounds is the same and lives here: keep a connection announced as a live publisher's,
go again at once after a round that did work, poll when idle, back off as a whole when the peer
fails technically, and reconnect when the database goes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import psycopg

from producer.platform import outbox_watch


class LoopSettings(Protocol):
    """The settings the loop reads (EiSettings, egen_provhantering's PublishingSettings)."""

    @property
    def retry_initial_ms(self) -> int: ...
    @property
    def retry_max_ms(self) -> int: ...
    @property
    def poll_seconds(self) -> float: ...


@dataclass(frozen=True)
class Round:
    """What one round did, as the loop needs it: whether to go again at once, or to back off."""

    worked: bool = False  # rows were sent, parked or dropped: more may be waiting, no poll
    # the peer failed technically: the warning (its format and arguments) the loop logs with the
    # delay it then waits as the format's last field
    failure: tuple[str, tuple[object, ...]] | None = None


class Backoff:
    """Exponential backoff of the whole loop from the initial to the maximum interval (BP 2.1 rule 22)."""

    def __init__(self, settings: LoopSettings) -> None:
        self.initial = settings.retry_initial_ms / 1000
        self.maximum = settings.retry_max_ms / 1000
        self.current = 0.0

    def failed(self) -> float:
        self.current = self.initial if self.current == 0 else min(self.current * 2, self.maximum)
        return self.current

    def succeeded(self) -> None:
        self.current = 0.0


def run(
    connect: Callable[[], psycopg.Connection],
    publish_round: Callable[[psycopg.Connection], Round],
    settings: LoopSettings,
    stop: threading.Event,
    *,
    presence: tuple[int, int],
    log: logging.Logger,
    bug_warning: str | None = None,
) -> None:
    """Run rounds until `stop` is set (finishing the round in hand).

    `presence` is the advisory lock each connection holds while open (producer.platform.outbox_watch:
    /ready and /metrics count live publishers by it). With `bug_warning`, any other exception of a
    round is logged with it and backed off from (the rows stay pending); without, it ends the loop."""
    backoff = Backoff(settings)
    conn: psycopg.Connection | None = None
    while not stop.is_set():
        try:
            if conn is None or conn.closed:
                conn = connect()
                outbox_watch.announce(conn, presence)
            done = publish_round(conn)
            if done.failure is not None:
                delay = backoff.failed()
                message, args = done.failure
                log.warning(message, *args, delay)
                stop.wait(delay)
                continue
            backoff.succeeded()
            if done.worked:
                continue
            stop.wait(settings.poll_seconds)
        except psycopg.OperationalError as exc:
            log.warning("database unavailable (%s); reconnecting", exc)
            if conn is not None:
                conn.close()
            conn = None
            stop.wait(min(5.0, settings.retry_initial_ms / 1000))
        except Exception:
            if bug_warning is None:
                raise
            log.exception(bug_warning)  # a bug must not end the loop: the rows stay pending
            stop.wait(backoff.failed())
    if conn is not None:
        conn.close()
