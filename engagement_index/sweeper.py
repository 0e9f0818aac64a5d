"""The sweeper: removes from EI what stopped being current without anyone touching it.

TKB §3.4: a booking whose start time has passed, and an invitation whose validity has ended, must
be deleted from EI by the producer. booking.ei_expires_at says when each published post stops
being current; the sweeper has the calendar core expire them (producer.calendar.changes.expire_due:
the removal queued through the outbox like any other change, invitations past their validity marked
expired, a timed one's slot freed). A booking whose start has passed stays as it is: it happened,
it is only no longer in EI.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg

from engagement_index import metrics
from producer.calendar.changes import expire_due

SWEEP_LOCK = (7202, 0)  # one sweeper at a time, however many publishers run it


def sweep(conn: psycopg.Connection, now: datetime | None = None, limit: int = 1000) -> int:
    """Queue removals for up to `limit` posts that have expired; returns how many."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    with conn.transaction():
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", SWEEP_LOCK).fetchone()[0]:
            return 0  # another sweeper is at it
        swept = expire_due(conn, now, limit)
    metrics.SWEEPS.inc()  # counted once committed
    metrics.SWEPT.inc(swept)
    metrics.SWEEP_SECONDS.observe(time.perf_counter() - started)
    return swept
