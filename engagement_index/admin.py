"""What operators do with the outbox: look at it, retry parked rows, re-publish a unit (resync)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Status:
    pending: int
    parked: int
    oldest_pending_seconds: float | None
    published_last_hour: int

    def lines(self) -> list[str]:
        oldest = "-" if self.oldest_pending_seconds is None else f"{self.oldest_pending_seconds:.1f} s"
        return [
            f"pending             {self.pending}",
            f"parked              {self.parked}",
            f"oldest pending age  {oldest}",
            f"published last hour {self.published_last_hour}",
        ]


def status(conn: psycopg.Connection) -> Status:
    row = conn.execute(
        """
        SELECT count(*) FILTER (WHERE published_at IS NULL AND parked_at IS NULL),
               count(*) FILTER (WHERE published_at IS NULL AND parked_at IS NOT NULL),
               extract(epoch FROM now() - min(created_at) FILTER (WHERE published_at IS NULL AND parked_at IS NULL)),
               count(*) FILTER (WHERE published_at > now() - interval '1 hour')
        FROM ei_outbox
        """
    ).fetchone()
    return Status(row[0], row[1], float(row[2]) if row[2] is not None else None, row[3])


def parked(conn: psycopg.Connection, limit: int = 50) -> list[tuple[int, int, str, str]]:
    """The oldest parked rows: (id, booking pk, booking id, reason)."""
    return conn.execute(
        "SELECT o.id, o.booking_pk, b.booking_id, o.parked_reason"
        " FROM ei_outbox o JOIN booking b ON b.pk = o.booking_pk"
        " WHERE o.parked_at IS NOT NULL AND o.published_at IS NULL ORDER BY o.id LIMIT %s",
        (limit,),
    ).fetchall()


def retry_parked(conn: psycopg.Connection, ids: list[int] | None = None) -> int:
    """Put parked rows (all, or these) back in the queue, with a fresh count of attempts."""
    cur = conn.execute(
        "UPDATE ei_outbox SET parked_at = NULL, parked_reason = NULL, attempts = 0"
        " WHERE parked_at IS NOT NULL AND published_at IS NULL AND (%s::bigint[] IS NULL OR id = ANY(%s::bigint[]))",
        (ids, ids),
    )
    return cur.rowcount


def resync(conn: psycopg.Connection, unit_hsa_id: str) -> int:
    """Queue every current post of a unit again (e.g. after EI lost data); the publisher batches them."""
    cur = conn.execute(
        "INSERT INTO ei_outbox (booking_pk, reason, before, after)"
        " SELECT pk, 'resync', NULL, ei_post FROM booking WHERE unit_hsa_id = upper(%s) AND ei_post IS NOT NULL"
        " ORDER BY pk",
        (unit_hsa_id,),
    )
    return cur.rowcount
