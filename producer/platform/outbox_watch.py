"""What operations watch of EI publishing, read from the database: whether publishers are up and
how long the oldest pending outbox row has waited. /ready and /metrics both read it.

A publisher is "up" while it holds a connection with the shared session-level advisory lock
PUBLISHER_PRESENCE (producer.platform.publishing_loop takes it on each connection EI's publisher
opens). Chosen over a heartbeat row that the publisher writes: it needs no schema and no writes,
PostgreSQL releases it the moment the publisher's connection ends (a kill -9 closes the socket, the
backend exits), it counts publishers on any host (of this database: advisory locks are per
database), and it goes when the publisher has lost the database, which is when it cannot publish. A
publisher that is alive but stuck is seen by the other signal: the oldest pending row grows old.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

PUBLISHER_PRESENCE = (7203, 0)  # (classid, objid) of the shared advisory lock each publisher connection holds
EP_PUBLISHER_PRESENCE = (7203, 1)  # the same for Egen provhantering's publisher (egen_provhantering.publisher)

# connections holding a presence lock (classid, objid), in this database
PRESENT = """(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s
          AND objsubid = 2 AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"""
_QUERY = f"""
SELECT {PRESENT},
       (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM ei_outbox
          WHERE published_at IS NULL AND parked_at IS NULL)
"""


@dataclass(frozen=True)
class Publishing:
    publishers: int  # connections holding PUBLISHER_PRESENCE
    oldest_pending_seconds: float  # 0 when nothing is pending

    def problem(self, publishers_needed: int, max_age_seconds: int) -> str | None:
        """Why publishing is not healthy by these limits (0: not checked), or None."""
        if publishers_needed and self.publishers < publishers_needed:
            return f"EI publisher down: {self.publishers} publisher connection(s), {publishers_needed} needed"
        if max_age_seconds and self.oldest_pending_seconds > max_age_seconds:
            return (
                f"EI outbox: the oldest pending row has waited {self.oldest_pending_seconds:.0f} s"
                f" (more than {max_age_seconds} s)"
            )
        return None


def read(conn: psycopg.Connection) -> Publishing:
    row = conn.execute(_QUERY, PUBLISHER_PRESENCE).fetchone()
    assert row is not None
    return Publishing(int(row[0]), float(row[1]))


def ep_problem(conn: psycopg.Connection, publishers_needed: int) -> str | None:
    """Why Egen provhantering's offers are not being published by this limit (0: not checked), or None.
    Its outbox's age is not judged here: offers wait on EP's own retry times (see /metrics)."""
    if not publishers_needed:
        return None
    row = conn.execute(f"SELECT {PRESENT}", EP_PUBLISHER_PRESENCE).fetchone()
    up = int(row[0]) if row else 0
    if up < publishers_needed:
        return f"EP publisher down: {up} publisher connection(s), {publishers_needed} needed"
    return None


def announce(conn: psycopg.Connection, presence: tuple[int, int]) -> None:
    """Mark this connection as a live publisher's (for as long as it is open): EI's (PUBLISHER_PRESENCE)
    or Egen provhantering's (EP_PUBLISHER_PRESENCE)."""
    conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", presence)
