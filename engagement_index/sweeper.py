"""The sweeper: removes from EI what stopped being current without anyone touching it.

TKB §3.4: a booking whose start time has passed, and an invitation whose validity has ended, must
be deleted from EI by the producer. booking.ei_expires_at says when each published post stops
being current; the sweeper queues its removal through the outbox like any other change, and marks
invitations past their validity as expired (they can no longer be booked; a timed one frees its
slot). A booking whose start has passed stays as it is: it happened, it is only no longer in EI.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg

from engagement_index import metrics
from producer.calendar.outbox import record_change

SWEEP_LOCK = (7202, 0)  # one sweeper at a time, however many publishers run it


def sweep(conn: psycopg.Connection, now: datetime | None = None, limit: int = 1000) -> int:
    """Queue removals for up to `limit` posts that have expired; returns how many."""
    now = now or datetime.now(UTC)
    swept = 0
    started = time.perf_counter()
    with conn.transaction():
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", SWEEP_LOCK).fetchone()[0]:
            return 0  # another sweeper is at it
        rows = conn.execute(
            "SELECT pk, kind, ei_post, kind <> 'booking' AND valid_until <= %s FROM booking"
            " WHERE ei_post IS NOT NULL AND ei_expires_at <= %s ORDER BY ei_expires_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (now, now, limit),
        ).fetchall()
        with conn.pipeline():
            for pk, _kind, post, invitation_expired in rows:
                if invitation_expired:  # no longer bookable; a timed invitation frees its slot
                    conn.execute("UPDATE booking SET status = 'expired', updated_at = now() WHERE pk = %s", (pk,))
                    conn.execute("UPDATE slot SET booking_pk = NULL WHERE booking_pk = %s", (pk,))
                record_change(conn, pk, "invitation expired" if invitation_expired else "start passed", post, None)
                swept += 1
    metrics.SWEEPS.inc()  # counted once committed
    metrics.SWEPT.inc(swept)
    metrics.SWEEP_SECONDS.observe(time.perf_counter() - started)
    return swept
