"""What the staff page draws: a unit's week (or day), per performer or resource, in one query; the
unit's catalogue for the filters; a resident's bookings; a booking's free alternatives.

Days are Stockholm days, local midnight to local midnight: a DST day is 23 or 25 hours long, and a
slot in the repeated autumn hour carries its offset, so both occurrences are drawn apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg

from producer.calendar.ids import slot_ref
from producer.calendar.units import units_for_time_type
from producer.calendar.views import fetch_views
from producer.staff import checks
from producer.staff.errors import StaffError
from producer.staff.results import BookingInfo
from producer.sweden.identifiers import normalise_hsa_id
from producer.sweden.wall_time import STOCKHOLM, local_day_bounds

SUMMER = timedelta(hours=2)
WEEK_SQL = """
SELECT s.id, s.starts_at, s.ends_at, s.time_type_code, s.performer_hsa_id, s.resource_id,
       b.booking_id, b.kind, b.first_name, b.last_name, cr.name
FROM slot_named s LEFT JOIN booking b ON b.pk = s.booking_pk
LEFT JOIN consumer_rule cr ON cr.unit_hsa_id = b.unit_hsa_id AND cr.consumer_hsa_id = b.consumer
WHERE s.unit_hsa_id = %(unit)s AND s.starts_at >= %(start)s AND s.starts_at < %(end)s
  AND (%(performer)s::text IS NULL OR s.performer_hsa_id = %(performer)s)
  AND (%(resource)s::text IS NULL OR s.resource_id = %(resource)s)
ORDER BY s.starts_at, s.performer_hsa_id NULLS LAST, s.resource_id NULLS LAST, s.id
"""


@dataclass(frozen=True)
class WeekSlot:
    slot: str
    starts_at: datetime  # Stockholm, with its offset
    ends_at: datetime
    time_type: str
    performer: str | None
    resource: str | None
    booking_id: str | None
    kind: str | None  # booking | timed_invitation; None: free
    name: str | None  # the resident's name, when the booking has one
    label: str = ""  # the start as the page shows it (Day: with summer/winter time on a DST day)
    via: str | None = None  # the named service consumer it was booked through (e.g. Egen provhantering)

    @property
    def state(self) -> str:
        return "free" if self.kind is None else ("invited" if self.kind == "timed_invitation" else "booked")


@dataclass(frozen=True)
class Day:
    day: date
    hours: int  # 23 or 25 on the DST change days
    slots: list[WeekSlot]


def _label(local: datetime, dst_day: bool) -> str:
    """A slot's start as the page shows it; on a DST day with summer or winter time (sommartid,
    normaltid), so both occurrences of the repeated autumn hour are told apart."""
    text = f"{local.hour:02d}:{local.minute:02d}"
    if dst_day:
        text += " sommartid" if local.utcoffset() == SUMMER else " normaltid"
    return text


@dataclass(frozen=True)
class Catalogue:
    name: str
    performers: list[tuple[str, str]]  # (HSA-id, "title first last")
    resources: list[tuple[str, str]]
    time_types: list[tuple[str, str]]


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def days(
    conn: psycopg.Connection,
    unit: str,
    first: date,
    count: int = 7,
    performer: str | None = None,
    resource: str | None = None,
) -> list[Day]:
    """`count` Stockholm days from `first`, each with its slots (free, booked, invited) in order."""
    unit_hsa_id = checks.unit(conn, unit)
    start = local_day_bounds(first)[0]
    end = local_day_bounds(first + timedelta(days=count - 1))[1]
    rows = conn.execute(
        WEEK_SQL,
        {"unit": unit_hsa_id, "start": start, "end": end, "performer": performer or None, "resource": resource or None},
    ).fetchall()
    hours: dict[date, int] = {}
    for i in range(count):
        lo, hi = local_day_bounds(first + timedelta(days=i))
        # in UTC: between two times of one zone, Python subtracts wall times (always 24 hours)
        hours[first + timedelta(days=i)] = round((hi.astimezone(UTC) - lo.astimezone(UTC)).total_seconds() / 3600)
    by_day: dict[date, list[WeekSlot]] = {day: [] for day in hours}
    for slot_id, starts, ends, code, who, what, booking_id, kind, first_name, last_name, via in rows:
        local = starts.astimezone(STOCKHOLM)
        day = local.date()
        name = f"{first_name or ''} {last_name or ''}".strip() or None
        by_day[day].append(
            WeekSlot(
                f"T{slot_id}",
                local,
                ends.astimezone(STOCKHOLM),
                code,
                who,
                what,
                booking_id,
                kind,
                name,
                _label(local, hours[day] != 24),
                via,
            )  # fmt: skip
        )
    return [Day(day, hours[day], slots) for day, slots in by_day.items()]


CATALOGUE_SQL = """
SELECT u.name,
       (SELECT coalesce(json_agg(json_build_array(p.hsa_id, concat_ws(' ', p.title, p.first_name, p.last_name))
                                 ORDER BY p.hsa_id), '[]') FROM performer p WHERE p.unit_hsa_id = u.hsa_id),
       (SELECT coalesce(json_agg(json_build_array(r.resource_id, coalesce(r.name, r.resource_id))
                                 ORDER BY r.resource_id), '[]') FROM resource r WHERE r.unit_hsa_id = u.hsa_id),
       (SELECT coalesce(json_agg(json_build_array(t.code, t.name) ORDER BY t.code), '[]')
        FROM time_type t WHERE t.unit_hsa_id = u.hsa_id)
FROM care_unit u WHERE u.hsa_id = %s
"""


def catalogue(conn: psycopg.Connection, unit: str) -> Catalogue:
    """The unit's name, performers, resources and time types (one round trip: the week view's budget)."""
    hsa_id = normalise_hsa_id(unit or "")
    row = conn.execute(CATALOGUE_SQL, (hsa_id,)).fetchone()
    if row is None:
        raise StaffError("unit", f"no care unit {hsa_id or '(empty)'} in this calendar", "not_found")
    name, performers, resources, time_types = row
    pairs = [[tuple(pair) for pair in found] for found in (performers, resources, time_types)]
    return Catalogue(name, *pairs)


def units(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Every care unit: (HSA-id, name)."""
    return list(conn.execute("SELECT hsa_id, name FROM care_unit ORDER BY hsa_id").fetchall())


def resident_bookings(conn: psycopg.Connection, resident: str, units: list[str]) -> list[BookingInfo]:
    """A resident's bookings and invitations (active first, then the latest) at these units."""
    who = checks.resident(resident)
    views = fetch_views(conn, "b.subject_of_care = %s AND b.unit_hsa_id = ANY(%s)", (who, units))
    views.sort(key=lambda v: (v.status != "active", -(v.starts_at.timestamp() if v.starts_at else 0), -v.pk))
    return [BookingInfo.of(v) for v in views]


def alternatives(
    conn: psycopg.Connection, booking: BookingInfo, now: datetime, units: list[str], limit: int = 30
) -> list[WeekSlot]:
    """Free future slots a booking may move to: its time type, at its unit or a unit its time type
    may be booked at instead, among the units staff may see; the earliest `limit`."""
    allowed = [hsa_id for hsa_id, _ in units_for_time_type(conn, booking.unit, booking.time_type) if hsa_id in units]
    if not allowed:
        return []
    rows = conn.execute(
        "SELECT id, starts_at, ends_at, time_type_code, performer_hsa_id, resource_id, unit_hsa_id FROM slot_named"
        " WHERE booking_pk IS NULL AND unit_hsa_id = ANY(%s) AND time_type_code = %s AND starts_at > %s"
        " ORDER BY starts_at, id LIMIT %s",
        (allowed, booking.time_type, now, limit),
    ).fetchall()
    return [
        WeekSlot(slot_ref(i), s.astimezone(STOCKHOLM), e.astimezone(STOCKHOLM), code, who, what, None, None, unit)
        for i, s, e, code, who, what, unit in rows
    ]
