"""Checks of what staff type, each failing with a StaffError that names the field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg

from producer.calendar.views import BookingView, find_booking
from producer.staff.errors import StaffError
from producer.sweden.identifiers import check_subject_of_care_id, normalise_hsa_id
from producer.sweden.wall_time import STOCKHOLM, WireFormatError, local_day_bounds, parse_ts

MAX_TEXT = 2000  # reason, note, names: free text staff type; a purpose may be longer
MAX_CAMPAIGN = 100


@dataclass(frozen=True)
class Contact:
    """How to reach the resident, as MakeBooking's subject_of_care_info carries it; all optional."""

    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None

    def columns(self) -> dict[str, str | None]:
        return {name: text(name, getattr(self, name)) for name in self.__dataclass_fields__}


def resident(value: str | None, field: str = "resident") -> str:
    """A personnummer or samordningsnummer with a real date and check digit, or a reserve number."""
    problem = check_subject_of_care_id((value or "").strip())
    if problem:
        raise StaffError(field, problem.replace("subject of care id", "personnummer"))
    return (value or "").strip()


def text(field: str, value: str | None, limit: int = MAX_TEXT) -> str | None:
    """Optional free text: blank is None; too long is refused rather than cut."""
    if value is None or not value.strip():
        return None
    if len(value) > limit:
        raise StaffError(field, f"is longer than {limit} characters")
    return value


def campaign(value: str | None) -> str | None:
    name = text("campaign", value, MAX_CAMPAIGN)
    return name.strip() if name else None


def unit(conn: psycopg.Connection, value: str | None) -> str:
    hsa_id = normalise_hsa_id(value or "")
    if not conn.execute("SELECT 1 FROM care_unit WHERE hsa_id = %s", (hsa_id,)).fetchone():
        raise StaffError("unit", f"no care unit {hsa_id or '(empty)'} in this calendar", "not_found")
    return hsa_id


def time_type(conn: psycopg.Connection, unit_hsa_id: str, code: str | None) -> tuple[str, str | None]:
    """The time type's code and its care type; it must be one of the unit's."""
    row = conn.execute(
        "SELECT code, care_type_code FROM time_type WHERE unit_hsa_id = %s AND code = %s", (unit_hsa_id, code or "")
    ).fetchone()
    if row is None:
        raise StaffError("time_type", f"{unit_hsa_id} has no time type {code or '(empty)'}", "not_found")
    return row[0], row[1]


def valid_until(value: date | datetime | None, now: datetime) -> datetime | None:
    """An invitation's validity end: a date means through that Stockholm day; it must lie ahead."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise StaffError("valid_until", "needs a time zone (or give a date: valid through that day)")
        end = value
    else:
        end = local_day_bounds(value)[1]
    if end <= now:
        raise StaffError("valid_until", "has already passed")
    return end


def booking_row(
    conn: psycopg.Connection, booking_id: str | None, unit_hsa_id: str | None, active_only: bool, lock: bool
) -> BookingView:
    """The booking or invitation with this id: the active one, else (unless active_only) the latest
    (producer.calendar.views.find_booking). `unit_hsa_id` limits the search to one unit (the staff member's)."""
    wanted = (booking_id or "").strip()
    unit_filter = normalise_hsa_id(unit_hsa_id) if unit_hsa_id else None
    view = find_booking(conn, wanted, unit_filter, active_only=active_only, lock=lock)
    if view is None:
        where = f" at {unit_filter}" if unit_filter else ""
        state = "active " if active_only else ""
        raise StaffError("booking_id", f"no {state}booking or invitation {wanted or '(empty)'}{where}", "not_found")
    return view


def moment(field: str, text: str) -> datetime:
    """A time as people and programs write it: Stockholm wall time unless an offset is given;
    the wire's 14 digits are read as the wire does."""
    try:
        if text.isdigit() and len(text) == 14:
            return parse_ts(text)
        moment = datetime.fromisoformat(text)
    except (ValueError, WireFormatError):
        raise StaffError(field, "must be a time like 2026-12-01T09:00 (Stockholm) or 20261201090000") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=STOCKHOLM)


def calendar_date(field: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise StaffError(field, "must be a date like 2026-12-01") from None


def moment_or_date(field: str, text: str | None) -> date | datetime | None:
    if text is None:
        return None
    return calendar_date(field, text) if len(text) == 10 else moment(field, text)
