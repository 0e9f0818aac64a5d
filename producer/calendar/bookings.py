"""Bookings and invitations in the calendar: reading one with everything shown about it, and the
writes every channel shares (take and release a slot, history, EI outbox).

Slots are taken with a conditional UPDATE (`… WHERE booking_pk IS NULL`): under READ COMMITTED a
racing transaction waits for the winner and then finds the row taken, so nobody double-books and
nobody deadlocks (design notes §2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row

from producer.calendar.outbox import Post, change_params, change_sql, ei_post, record_change

BOOKING_VIEW_SQL = """
SELECT b.pk, b.booking_id, b.unit_hsa_id, u.name AS unit_name, u.message_allowed,
       extract(epoch FROM u.change_deadline)::float8 AS change_deadline_seconds,
       b.kind, b.status, b.subject_of_care, b.first_name, b.middle_name, b.last_name,
       b.phone, b.email, b.address, b.coaddress, b.reason, b.purpose,
       b.time_type_code, tt.name AS time_type_name, coalesce(s.care_type_code, b.care_type_code) AS care_type_code,
       ct.name AS care_type_name, b.invitation_date, b.valid_until,
       s.id AS slot_id, s.starts_at, s.ends_at, s.performer_hsa_id, s.resource_id,
       p.first_name AS performer_first_name, p.last_name AS performer_last_name, p.title AS performer_title,
       r.name AS resource_name, b.ei_post
FROM booking b
JOIN care_unit u ON u.hsa_id = b.unit_hsa_id
JOIN time_type tt ON tt.unit_hsa_id = b.unit_hsa_id AND tt.code = b.time_type_code
LEFT JOIN slot s ON s.booking_pk = b.pk
LEFT JOIN care_type ct ON ct.unit_hsa_id = b.unit_hsa_id AND ct.code = coalesce(s.care_type_code, b.care_type_code)
LEFT JOIN performer p ON p.unit_hsa_id = s.unit_hsa_id AND p.hsa_id = s.performer_hsa_id
LEFT JOIN resource r ON r.unit_hsa_id = s.unit_hsa_id AND r.resource_id = s.resource_id
"""


@dataclass
class BookingView:
    """A booking or invitation joined with its slot, unit and catalogue names."""

    pk: int
    booking_id: str
    unit_hsa_id: str
    unit_name: str
    message_allowed: bool
    change_deadline_seconds: float
    kind: str
    status: str
    subject_of_care: str
    first_name: str | None
    middle_name: str | None
    last_name: str | None
    phone: str | None
    email: str | None
    address: str | None
    coaddress: str | None
    reason: str | None
    purpose: str | None
    time_type_code: str
    time_type_name: str
    care_type_code: str | None
    care_type_name: str | None
    invitation_date: date | None
    valid_until: datetime | None
    slot_id: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    performer_hsa_id: str | None
    resource_id: str | None
    performer_first_name: str | None
    performer_last_name: str | None
    performer_title: str | None
    resource_name: str | None
    ei_post: Post | None  # what the EI outbox was last told: the "before" of the next change

    @property
    def is_invitation(self) -> bool:
        return self.kind != "booking"

    def changeable(self, now: datetime) -> bool:
        """May the resident still cancel or rebook? Only up to the unit's deadline before the start."""
        if self.status != "active":
            return False
        if self.starts_at is None:
            return True
        return self.starts_at - timedelta(seconds=self.change_deadline_seconds) > now

    def post(self, now: datetime) -> Post | None:
        return ei_post(
            status=self.status,
            kind=self.kind,
            subject_of_care=self.subject_of_care,
            unit_hsa_id=self.unit_hsa_id,
            booking_id=self.booking_id,
            starts_at=self.starts_at,
            invitation_date=self.invitation_date,
            valid_until=self.valid_until,
            now=now,
        )


def fetch_views(conn: psycopg.Connection, where: str, params: tuple[Any, ...]) -> list[BookingView]:
    with conn.cursor(row_factory=class_row(BookingView)) as cur:
        return cur.execute(f"{BOOKING_VIEW_SQL} WHERE {where}", params).fetchall()


def view_by_pk(conn: psycopg.Connection, pk: int) -> BookingView:
    return fetch_views(conn, "b.pk = %s", (pk,))[0]


def active_by_booking_id(conn: psycopg.Connection, booking_id: str, lock: bool = False) -> BookingView | None:
    """The active booking or invitation with this id; locked FOR UPDATE when about to change it."""
    if lock:
        row = conn.execute(
            "SELECT pk FROM booking WHERE booking_id = %s AND status = 'active' FOR UPDATE", (booking_id,)
        ).fetchone()
        return view_by_pk(conn, row[0]) if row else None
    found = fetch_views(conn, "b.booking_id = %s AND b.status = 'active'", (booking_id,))
    return found[0] if found else None


def new_booking_pk(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT nextval(pg_get_serial_sequence('booking', 'pk'))").fetchone()[0]


def take_slot(conn: psycopg.Connection, slot_id: int, booking_pk: int) -> bool:
    """Take a free slot for a booking; False when someone else holds it (the caller rolls back)."""
    cur = conn.execute("UPDATE slot SET booking_pk = %s WHERE id = %s AND booking_pk IS NULL", (booking_pk, slot_id))
    return cur.rowcount == 1


def release_slot(conn: psycopg.Connection, booking_pk: int) -> None:
    conn.execute("UPDATE slot SET booking_pk = NULL WHERE booking_pk = %s", (booking_pk,))


_EVENT = (
    "INSERT INTO booking_event (booking_pk, action, channel, actor_type, actor_id, details)"
    " VALUES (%(pk)s, %(action)s, %(channel)s, %(actor_type)s, %(actor_id)s, %(details)s::jsonb)"
)
# the history row, the outbox row and the booking's post in one statement
_EVENT_AND_CHANGE = change_sql(f"event AS ({_EVENT})")


def _event_params(
    booking_pk: int, action: str, channel: str, actor_type: str | None, actor_id: str | None, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "pk": booking_pk,
        "action": action,
        "channel": channel,
        "actor_type": actor_type,
        "actor_id": actor_id,
        "details": json.dumps(details, default=str),
    }


def record_event(
    conn: psycopg.Connection,
    booking_pk: int,
    action: str,
    channel: str,
    actor_type: str | None,
    actor_id: str | None,
    details: dict[str, Any],
) -> None:
    conn.execute(_EVENT, _event_params(booking_pk, action, channel, actor_type, actor_id, details))


def booked_post(resident: str, unit_hsa_id: str, booking_id: str, starts_at: datetime, now: datetime) -> Post | None:
    """The EI post of an active booking (not an invitation) with a time: what a booking or rebooking leaves."""
    return ei_post(
        status="active",
        kind="booking",
        subject_of_care=resident,
        unit_hsa_id=unit_hsa_id,
        booking_id=booking_id,
        starts_at=starts_at,
        invitation_date=None,
        valid_until=None,
        now=now,
    )


def record(
    conn: psycopg.Connection,
    pk: int,
    action: str,
    who: tuple[str, str | None, str | None],
    details: dict[str, Any],
    before: Post | None,
    after: Post | None,
) -> None:
    """The booking's history row and its EI outbox row, written by one statement.

    `who` is (channel, actor type, actor id)."""
    if before == after:
        record_event(conn, pk, action, *who, details)
        return
    conn.execute(
        _EVENT_AND_CHANGE, {**_event_params(pk, action, *who, details), **change_params(pk, action, before, after)}
    )


def publish_change(conn: psycopg.Connection, pk: int, reason: str, now: datetime) -> None:
    """Queue the difference between the booking's last published post and what it should be now."""
    view = view_by_pk(conn, pk)
    record_change(conn, pk, reason, view.ei_post, view.post(now))
