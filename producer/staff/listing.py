"""What staff read: a booking, a unit's day, and a booking's history (who did what, when, how)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg

from producer.calendar.ids import slot_ref
from producer.calendar.views import fetch_views
from producer.staff import checks
from producer.staff.errors import StaffError
from producer.staff.results import BookingInfo, DaySlot, Event, History, local
from producer.sweden.identifiers import normalise_hsa_id
from producer.sweden.wall_time import local_day_bounds


def booking(conn: psycopg.Connection, booking_id: str, *, unit: str | None = None) -> BookingInfo:
    """The booking or invitation with this id (the active one, else the latest that had it)."""
    return BookingInfo.of(checks.booking_row(conn, booking_id, unit, active_only=False, lock=False))


def day(conn: psycopg.Connection, unit: str, on: date, *, free: bool = False) -> list[DaySlot]:
    """The unit's booked slots (with `free`, every slot) that start on this Stockholm day, in order.

    The day runs from local midnight to the next, so a DST day is 23 or 25 hours long and both
    occurrences of the repeated autumn hour are in it (told apart by their offset)."""
    unit_hsa_id = checks.unit(conn, unit)
    if not isinstance(on, date):
        raise StaffError("day", "must be a date (YYYY-MM-DD)")
    start, end = local_day_bounds(on)
    rows = conn.execute(
        "SELECT id, starts_at, ends_at, time_type_code, performer_hsa_id, resource_id, booking_pk FROM slot_named"
        " WHERE unit_hsa_id = %s AND starts_at >= %s AND starts_at < %s ORDER BY starts_at, id",
        (unit_hsa_id, start, end),
    ).fetchall()
    held = [row[6] for row in rows if row[6] is not None]
    views = {v.pk: BookingInfo.of(v) for v in fetch_views(conn, "b.pk = ANY(%s)", (held,))} if held else {}
    cancelled: dict[int, list[BookingInfo]] = {}
    for slot_id, view in _cancelled_from(conn, unit_hsa_id, start, end):
        cancelled.setdefault(slot_id, []).append(BookingInfo.of(view))
    return [
        DaySlot(
            slot_ref(slot_id),
            local(starts),
            local(ends),
            time_type,
            performer,
            resource,
            views.get(pk),
            cancelled.get(slot_id, []),
        )  # fmt: skip
        for slot_id, starts, ends, time_type, performer, resource, pk in rows
        if pk is not None or free or slot_id in cancelled
    ]


def _cancelled_from(conn: psycopg.Connection, unit: str, start: datetime, end: datetime) -> list[tuple[int, Any]]:
    """The bookings cancelled from the unit's slots of the day: (slot id, the booking as it is now)."""
    rows = conn.execute(
        "SELECT (e.details->>'slot')::bigint, e.booking_pk FROM booking_event e"
        " JOIN slot_named s ON s.id = (e.details->>'slot')::bigint"
        " WHERE e.action = 'cancel' AND s.unit_hsa_id = %s AND s.starts_at >= %s AND s.starts_at < %s"
        " ORDER BY e.id",
        (unit, start, end),
    ).fetchall()
    if not rows:
        return []
    found = {v.pk: v for v in fetch_views(conn, "b.pk = ANY(%s)", ([pk for _, pk in rows],))}
    return [(slot_id, found[pk]) for slot_id, pk in rows if pk in found]


def history(conn: psycopg.Connection, booking_id: str, *, unit: str | None = None) -> History:
    """Every booking_event of the booking or invitation, oldest first.

    Under the per-slot policy a rebooking changes the id; an id it had before still finds it."""
    try:
        view = checks.booking_row(conn, booking_id, unit, active_only=False, lock=False)
    except StaffError:
        row = conn.execute(
            "SELECT booking_pk FROM booking_event WHERE details->>'from_booking_id' = %s ORDER BY id DESC LIMIT 1",
            ((booking_id or "").strip(),),
        ).fetchone()
        found = fetch_views(conn, "b.pk = %s", (row[0],)) if row else []
        if not found or (unit and found[0].unit_hsa_id != normalise_hsa_id(unit)):
            raise
        view = found[0]
    events = conn.execute(
        "SELECT at, action, channel, actor_type, actor_id, details FROM booking_event"
        " WHERE booking_pk = %s ORDER BY id",
        (view.pk,),
    ).fetchall()
    return History(
        BookingInfo.of(view),
        [
            Event(local(at), action, channel, actor_type, actor_id, details)
            for at, action, channel, actor_type, actor_id, details in events
        ],
    )


def consumer_names(conn: psycopg.Connection, unit: str) -> dict[str, str]:
    """The names the unit's consumer rules give service consumers (HSA-id -> e.g. "Egen provhantering")."""
    rows = conn.execute(
        "SELECT consumer_hsa_id, name FROM consumer_rule WHERE unit_hsa_id = %s AND name IS NOT NULL",
        (normalise_hsa_id(unit),),
    ).fetchall()
    return dict(rows)
