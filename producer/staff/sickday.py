"""A sick day: cancel every booking and timed invitation of a performer over a period in one action.

Each cancellation is the calendar core's (producer.calendar.changes.cancel: history row, EI outbox
row), in its own transaction, so one that cannot be made (it has started) leaves the others done.
The history of each records the sick day (`sick_day`: the performer) and the staff member's note,
so the list of affected residents, with the phone numbers to call, can be had again later.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg

from producer.calendar import changes
from producer.calendar.views import fetch_views
from producer.staff import checks, slots
from producer.staff.actor import Staff
from producer.staff.audit import audited
from producer.staff.errors import StaffError
from producer.sweden.identifiers import normalise_hsa_id
from producer.sweden.wall_time import STOCKHOLM, local_day_bounds

PHONE = re.compile(r"\+?[0-9][0-9 ()-]*")
ACTIVE_SQL = """
SELECT b.booking_id FROM slot_named s JOIN booking b ON b.pk = s.booking_pk
WHERE s.unit_hsa_id = %s AND s.performer_hsa_id = %s AND s.starts_at >= %s AND s.starts_at < %s
ORDER BY s.starts_at
"""
CANCELLED_SQL = """
SELECT e.booking_pk, s.starts_at FROM booking_event e JOIN slot_named s ON s.id = (e.details->>'slot')::bigint
WHERE e.action = 'cancel' AND e.details->>'sick_day' = %s
  AND s.unit_hsa_id = %s AND s.starts_at >= %s AND s.starts_at < %s
ORDER BY s.starts_at, e.id
"""


@dataclass(frozen=True)
class Affected:
    """A resident whose time the sick day cancels (or cancelled): whom to call, and about what."""

    booking_id: str
    kind: str
    starts_at: datetime
    resident: str
    name: str
    phone: str | None
    done: bool  # cancelled (False: could not be, see problem)
    problem: str | None = None


def _period(
    conn: psycopg.Connection, unit: str, performer: str, first: date, last: date
) -> tuple[str, str, datetime, datetime]:
    unit_hsa_id = checks.unit(conn, unit)
    who = normalise_hsa_id(performer or "")
    if not conn.execute(
        "SELECT 1 FROM performer WHERE unit_hsa_id = %s AND hsa_id = %s", (unit_hsa_id, who)
    ).fetchone():
        raise StaffError("performer", f"{unit_hsa_id} has no performer {who or '(empty)'}", "not_found")
    if last < first:
        raise StaffError("last_day", "is before the first day")
    if (last - first).days > 92:
        raise StaffError("last_day", "a sick day covers at most 93 days")
    return unit_hsa_id, who, local_day_bounds(first)[0], local_day_bounds(last)[1]


def _name(first: str | None, last: str | None) -> str:
    return " ".join(part for part in (first, last) if part) or "–"


def preview(conn: psycopg.Connection, *, unit: str, performer: str, first: date, last: date) -> list[Affected]:
    """The active bookings and timed invitations the sick day would cancel; nothing is changed."""
    unit_hsa_id, who, start, end = _period(conn, unit, performer, first, last)
    ids = [booking_id for (booking_id,) in conn.execute(ACTIVE_SQL, (unit_hsa_id, who, start, end)).fetchall()]
    views = fetch_views(conn, "b.booking_id = ANY(%s) AND b.status = 'active'", (ids,)) if ids else []
    views.sort(key=lambda v: v.starts_at)
    return [
        Affected(
            v.booking_id,
            v.kind,
            v.starts_at.astimezone(STOCKHOLM),
            v.subject_of_care,
            _name(v.first_name, v.last_name),
            v.phone,
            False,
        )  # fmt: skip
        for v in views
    ]


@audited("StaffSickDay")
def cancel_period(
    conn: psycopg.Connection,
    staff: Staff,
    *,
    unit: str,
    performer: str,
    first: date,
    last: date,
    note: str | None = None,
    now: datetime | None = None,
) -> list[Affected]:
    """Cancel each booking and timed invitation of the performer from `first` through `last`
    (Stockholm days): one by one through the core, each reaching EI; the residents affected."""
    now = now or datetime.now(UTC)
    note = checks.text("note", note)
    unit_hsa_id, who, start, end = _period(conn, unit, performer, first, last)
    out: list[Affected] = []
    for (booking_id,) in conn.execute(ACTIVE_SQL, (unit_hsa_id, who, start, end)).fetchall():
        try:
            view = checks.booking_row(conn, booking_id, unit_hsa_id, active_only=True, lock=False)
        except StaffError:
            continue  # cancelled or moved meanwhile
        problem = None
        try:
            with slots.refusable(conn):
                view = checks.booking_row(conn, booking_id, unit_hsa_id, active_only=True, lock=True)
                changes.cancel(conn, staff.actor(note, sick_day=who), view, now=now)
        except StaffError as error:
            problem = error.message
        name = _name(view.first_name, view.last_name)
        starts = view.starts_at.astimezone(STOCKHOLM)
        out.append(Affected(view.booking_id, view.kind, starts, view.subject_of_care, name, view.phone,
                            problem is None, problem))  # fmt: skip
    return out


def cancelled(conn: psycopg.Connection, *, unit: str, performer: str, first: date, last: date) -> list[Affected]:
    """The bookings a sick day of the performer cancelled in the period (from their history)."""
    unit_hsa_id, who, start, end = _period(conn, unit, performer, first, last)
    rows = conn.execute(CANCELLED_SQL, (who, unit_hsa_id, start, end)).fetchall()
    views = {v.pk: v for v in fetch_views(conn, "b.pk = ANY(%s)", ([pk for pk, _ in rows],))} if rows else {}
    return [
        Affected(
            views[pk].booking_id,
            views[pk].kind,
            starts.astimezone(STOCKHOLM),
            views[pk].subject_of_care,
            _name(views[pk].first_name, views[pk].last_name),
            views[pk].phone,
            True,
        )  # fmt: skip
        for pk, starts in rows
        if pk in views
    ]


def _cell(value: str) -> str:
    """A cell a spreadsheet shows as text: names come from residents (1177), and one that starts
    like a formula (=, +, -, @) must not run as one; a phone number stays as it is."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not PHONE.fullmatch(value):
        return "'" + value
    return value


def as_csv(affected: list[Affected]) -> str:
    """The residents to call, for a spreadsheet (semicolon-separated, as Swedish Excel reads it)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["tid", "personnummer", "namn", "telefon", "bokning", "avbokad"])
    for a in affected:
        writer.writerow([a.starts_at.strftime("%Y-%m-%d %H:%M"), a.resident, _cell(a.name), _cell(a.phone or ""),
                         a.booking_id, "ja" if a.done else f"nej: {a.problem}"])  # fmt: skip
    return out.getvalue()
