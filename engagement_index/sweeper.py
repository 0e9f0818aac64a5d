"""The sweeper: removes from EI what stopped being current without anyone touching it.

TKB §3.4: a booking whose start time has passed, and an invitation whose validity has ended, must
be deleted from EI by the producer. booking.ei_expires_at says when each published post stops
being current; the sweeper queues its removal through the outbox like any other change, and marks
open invitations past their validity as expired (they can no longer be booked).
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from engagement_index.outbox import record_change

SWEEP_LOCK = (7202, 0)  # one sweeper at a time, however many publishers run it


def sweep(conn: psycopg.Connection, now: datetime | None = None, limit: int = 1000) -> int:
    """Queue removals for up to `limit` posts that have expired; returns how many."""
    now = now or datetime.now(UTC)
    swept = 0
    with conn.transaction():
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", SWEEP_LOCK).fetchone()[0]:
            return 0
        rows = conn.execute(
            "SELECT pk, kind, ei_post FROM booking WHERE ei_post IS NOT NULL AND ei_expires_at <= %s"
            " ORDER BY ei_expires_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (now, limit),
        ).fetchall()
        with conn.pipeline():
            for pk, kind, post in rows:
                if kind == "open_invitation":
                    conn.execute("UPDATE booking SET status = 'expired', updated_at = now() WHERE pk = %s", (pk,))
                reason = "invitation expired" if kind == "open_invitation" else "start passed"
                record_change(conn, pk, reason, post, None)
                swept += 1
    return swept
