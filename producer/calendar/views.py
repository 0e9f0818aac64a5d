"""Bookings and invitations as every channel reads them: one joined with everything shown about
it (its slot, unit and catalogue names), and the lookups a change starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row

from producer.calendar.ids import INVITATION_PREFIX
from producer.calendar.outbox import Post, ei_post

BOOKING_VIEW_SQL = """
SELECT b.pk, b.booking_id, b.unit_hsa_id, u.name AS unit_name,
       coalesce(tt.message_allowed, u.message_allowed) AS message_allowed,
       extract(epoch FROM coalesce(tt.change_deadline, u.change_deadline))::float8 AS change_deadline_seconds,
       b.kind, b.status, b.subject_of_care, b.first_name, b.middle_name, b.last_name,
       b.phone, b.email, b.address, b.coaddress, b.reason, coalesce(b.purpose, tt.purpose) AS purpose,
       b.time_type_code, tt.name AS time_type_name, coalesce(s.care_type_code, b.care_type_code) AS care_type_code,
       ct.name AS care_type_name, b.invitation_date, b.valid_until,
       s.id AS slot_id, s.starts_at, s.ends_at, p.hsa_id AS performer_hsa_id, s.resource_id,
       p.first_name AS performer_first_name, p.last_name AS performer_last_name, p.title AS performer_title,
       r.name AS resource_name, b.ei_post, b.cancel_message, b.healthcare_facility_med,
       b.consumer, cr.name AS consumer_name
FROM booking b
JOIN care_unit u ON u.hsa_id = b.unit_hsa_id
JOIN time_type tt ON tt.unit_hsa_id = b.unit_hsa_id AND tt.code = b.time_type_code
LEFT JOIN slot s ON s.booking_pk = b.pk
LEFT JOIN care_type ct ON ct.unit_hsa_id = b.unit_hsa_id AND ct.code = coalesce(s.care_type_code, b.care_type_code)
LEFT JOIN performer p ON p.id = s.performer_id
-- a booking is at the unit of the slot it holds (producer.calendar.changes writes them so)
LEFT JOIN resource r ON r.unit_hsa_id = b.unit_hsa_id AND r.resource_id = s.resource_id
LEFT JOIN consumer_rule cr ON cr.unit_hsa_id = b.unit_hsa_id AND cr.consumer_hsa_id = b.consumer
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
    cancel_message: str | None  # the resident's message to the clinic when cancelling
    healthcare_facility_med: str | None  # the care unit with medical responsibility the booking was made for
    consumer: str | None  # the service consumer it was booked through (None: by staff, or nobody identified)
    consumer_name: str | None  # that consumer's name in the unit's consumer rules (e.g. "Egen provhantering")

    @property
    def is_invitation(self) -> bool:
        return self.kind != "booking"

    def changeable(self, now: datetime, deadline: timedelta | None = None) -> bool:
        """May the resident still cancel or rebook? Only up to the time type's deadline (else the
        unit's) before the start; `deadline`: a consumer's own (producer.calendar.rules)."""
        if self.status != "active":
            return False
        if self.starts_at is None:
            return True
        if deadline is None:
            deadline = timedelta(seconds=self.change_deadline_seconds)
        return self.starts_at - deadline > now

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


def find_booking(
    conn: psycopg.Connection,
    booking_id: str,
    unit_hsa_id: str | None = None,
    resident: str | None = None,
    active_only: bool = False,
    lock: bool = False,
) -> BookingView | None:
    """The booking or invitation with this id: the active one, else (unless active_only) the latest.

    Ids can recur (a per-slot id comes back with its slot), so the active one wins. `unit_hsa_id`
    and `resident` narrow the search (a unit's staff, a resident's own); `lock`: FOR UPDATE, to change it."""
    query = (
        "SELECT pk FROM booking WHERE booking_id = %(id)s AND (%(unit)s::text IS NULL OR unit_hsa_id = %(unit)s)"
        " AND (%(resident)s::text IS NULL OR subject_of_care = %(resident)s)"
    )
    if active_only:
        query += " AND status = 'active'"
    query += " ORDER BY status = 'active' DESC, pk DESC LIMIT 1" + (" FOR UPDATE" if lock else "")
    row = conn.execute(query, {"id": booking_id, "unit": unit_hsa_id, "resident": resident}).fetchone()
    return view_by_pk(conn, row[0]) if row else None


def active_invitation_by_original_id(conn: psycopg.Connection, invitation_id: str) -> BookingView | None:
    """The active booking that was invitation "K<pk>", locked: under the per-slot policy a booked
    invitation has its slot's id, and its first id still finds it (for a resend to be recognised)."""
    if not invitation_id.startswith(INVITATION_PREFIX) or not invitation_id[1:].isdigit():
        return None
    row = conn.execute(
        "SELECT booking_id FROM booking WHERE pk = %s AND status = 'active' FOR UPDATE", (int(invitation_id[1:]),)
    ).fetchone()
    return active_by_booking_id(conn, row[0]) if row else None


def rebooked_from(conn: psycopg.Connection, booking_id: str, resident: str) -> BookingView | None:
    """The resident's active booking that a rebooking moved away from `booking_id`, locked: under the
    per-slot policy a rebooking changes the id, so a resend of the same UpdateBooking names the old one."""
    row = conn.execute(
        "SELECT b.pk FROM booking_event e JOIN booking b ON b.pk = e.booking_pk"
        " WHERE e.action = 'rebook' AND e.details->>'from_booking_id' = %s AND b.subject_of_care = %s"
        " AND b.status = 'active' ORDER BY e.id DESC LIMIT 1 FOR UPDATE OF b",
        (booking_id, resident),
    ).fetchone()
    return view_by_pk(conn, row[0]) if row else None
