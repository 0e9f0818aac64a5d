"""A worker's ear on the database: a thread that LISTENs on `tidbok_slots` (migration 0008: every
committed change of the slot table names its units there) and writes a new change token for each
unit named, so every worker on the host drops what it remembers of that unit's free slots.

A notice missed is a stale answer, so the listener says whether it may be trusted (`listening`):
not before its LISTEN is in place, and not from the moment its connection fails until it has
listened again; each of those moments also changes the token of everything, since what happened in
between was not heard. Changes made by this host's own workers do not wait for the notice
(producer.http.app writes their tokens itself before it answers); notices carry the changes of
other hosts, the loader, the sweeper and the staff tools.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from producer.platform import metrics
from producer.platform.change_tokens import ChangeTokens

log = logging.getLogger("tidbok.listener")
CHANNEL = "tidbok_slots"
APPLICATION_NAME = "tidbok-slot-listener"  # as pg_stat_activity shows the connection
PROBE_SECONDS = 5.0  # how often a quiet connection is checked with a query
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


class SlotListener:
    def __init__(self, database_url: str, tokens: ChangeTokens) -> None:
        self._url = database_url
        self._tokens = tokens
        self._listening = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        """True while every committed change is being heard."""
        return self._listening

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tidbok-slot-listener", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                with psycopg.connect(
                    self._url, autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._tokens.everything_changed()  # whatever changed while nobody listened
                    self._listening = True
                    if failures:
                        log.info("listening for slot changes again")
                    failures = 0
                    while not self._stopped.is_set():
                        for notice in conn.notifies(timeout=PROBE_SECONDS):
                            self._tokens.changed(notice.payload)
                        conn.execute("SELECT 1")  # a dead connection shows here, not only at the next notice
            except psycopg.Error as exc:
                if self._listening:
                    metrics.SLOT_LISTENER_LOST.inc()
                if self._listening or failures == 0:
                    log.warning("not listening for slot changes (free slots are read from the database): %s", exc)
            finally:
                self._listening = False
                self._tokens.everything_changed()
            failures += 1
            self._stopped.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])
