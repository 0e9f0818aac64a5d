"""Invitations (kallelser) a clinic sends: timed (holding a slot) or open (booked later by the resident).

An invitation carries a purpose (plain text or DocBook in the allowed subset) and may end: an open
invitation must have a validity end (then it leaves EI and can no longer be booked); for a timed
one it is optional and its post leaves EI at the start or at the validity end, whichever is first.
Invitations get the id "K" + pk under both id policies, as the demo's do. A campaign makes the
invitation idempotent per unit, campaign and resident (migration 0003).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from producer.calendar.bookings import new_booking_pk, record, view_by_pk
from producer.interactions.booking_common import INVITATION_PREFIX
from producer.interactions.catalogue import units_for_time_type
from producer.staff import checks, slots
from producer.staff.actor import Staff
from producer.staff.checks import Contact
from producer.staff.docbook import check_purpose
from producer.staff.errors import StaffError
from producer.staff.results import BookingInfo, Change
from producer.sweden.wall_time import local_date


@dataclass(frozen=True)
class OpenTerms:
    """What every open invitation of one call (a single one, or a screening batch) shares, checked."""

    unit: str
    time_type: str
    care_type: str | None
    purpose: str
    purpose_format: str
    invitation_date: date
    valid_until: datetime

    @classmethod
    def check(
        cls,
        conn: psycopg.Connection,
        unit: str,
        time_type: str,
        purpose: str,
        valid_until: date | datetime | None,
        invitation_date: date | None,
        now: datetime,
    ) -> OpenTerms:
        purpose_format = check_purpose(purpose)
        end = checks.valid_until(valid_until, now)
        if end is None:
            raise StaffError("valid_until", "an open invitation needs a validity end")
        unit_hsa_id = checks.unit(conn, unit)
        code, care_type = checks.time_type(conn, unit_hsa_id, time_type)
        if not units_for_time_type(conn, unit_hsa_id, code):
            raise StaffError(
                "time_type", f"{code} has no slots at {unit_hsa_id} nor at a unit that may be booked instead"
            )
        day = invitation_date or local_date(now)
        if day > local_date(end):
            raise StaffError("invitation_date", "is after the validity end")
        return cls(unit_hsa_id, code, care_type, purpose, purpose_format, day, end)


def invite_timed(
    conn: psycopg.Connection,
    staff: Staff,
    *,
    resident: str,
    slot: slots.SlotChoice,
    unit: str | None = None,
    purpose: str,
    valid_until: date | datetime | None = None,
    contact: Contact | None = None,
    campaign: str | None = None,
    now: datetime | None = None,
) -> Change:
    """A timed invitation holding a free slot (taken as bookings take theirs: never twice).

    `unit` (the staff member's) refuses a slot of another unit."""
    now = now or datetime.now(UTC)
    resident = checks.resident(resident)
    purpose_format = check_purpose(purpose)
    end = checks.valid_until(valid_until, now)
    campaign = checks.campaign(campaign)
    names = (contact or Contact()).columns()
    with slots.refusable(conn):
        row = slots.resolve(conn, slot, unit)
        slots.require_bookable(row, now)
        values = {
            **names,
            "unit": row.unit_hsa_id,
            "kind": "timed_invitation",
            "resident": resident,
            "purpose": purpose,
            "time_type": row.time_type_code,
            "care_type": row.care_type_code,
            "invitation_date": None,
            "valid_until": end,
            "campaign": campaign,
        }
        pk = insert_invitation(conn, values)
        slots.take(conn, row, pk)
        details = {"slot": row.id, "purpose_format": purpose_format, "valid_until": end, "campaign": campaign}
        return Change(_recorded(conn, staff, pk, details, now), True)


def invite_open(
    conn: psycopg.Connection,
    staff: Staff,
    *,
    resident: str,
    unit: str,
    time_type: str,
    purpose: str,
    valid_until: date | datetime,
    invitation_date: date | None = None,
    contact: Contact | None = None,
    campaign: str | None = None,
    now: datetime | None = None,
) -> Change:
    """An open invitation: a time type at a unit, valid until `valid_until`, with no slot; the resident
    books it with MakeBooking quoting its id, or staff give it a time with `rebook`.

    `invitation_date` (default today) is its business date, published to EI until it is booked."""
    now = now or datetime.now(UTC)
    resident = checks.resident(resident)
    campaign = checks.campaign(campaign)
    names = (contact or Contact()).columns()
    terms = OpenTerms.check(conn, unit, time_type, purpose, valid_until, invitation_date, now)
    with slots.refusable(conn):
        pk = insert_invitation(conn, {**names, **open_values(terms, resident, campaign)})
        return Change(_recorded(conn, staff, pk, open_details(terms, campaign), now), True)


def open_values(terms: OpenTerms, resident: str, campaign: str | None) -> dict[str, Any]:
    return {
        "unit": terms.unit,
        "kind": "open_invitation",
        "resident": resident,
        "purpose": terms.purpose,
        "time_type": terms.time_type,
        "care_type": terms.care_type,
        "invitation_date": terms.invitation_date,
        "valid_until": terms.valid_until,
        "campaign": campaign,
    }


def open_details(terms: OpenTerms, campaign: str | None) -> dict[str, Any]:
    """What booking_event records of an open invitation's creation."""
    return {"purpose_format": terms.purpose_format, "valid_until": terms.valid_until, "campaign": campaign}


def insert_invitation(conn: psycopg.Connection, values: dict[str, Any]) -> int:
    """Insert the invitation, once per unit, campaign and resident (the 0003 index decides, so two
    concurrent calls cannot both invite); returns its pk."""
    pk = new_booking_pk(conn)
    columns = {"first_name": None, "middle_name": None, "last_name": None, "phone": None, "email": None, **values}
    row = conn.execute(
        "INSERT INTO booking (pk, booking_id, unit_hsa_id, kind, subject_of_care, first_name, middle_name, last_name,"
        " phone, email, purpose, time_type_code, care_type_code, invitation_date, valid_until, campaign)"
        " VALUES (%(pk)s, %(booking_id)s, %(unit)s, %(kind)s, %(resident)s, %(first_name)s, %(middle_name)s,"
        " %(last_name)s, %(phone)s, %(email)s, %(purpose)s, %(time_type)s, %(care_type)s, %(invitation_date)s,"
        " %(valid_until)s, %(campaign)s)"
        " ON CONFLICT (unit_hsa_id, campaign, subject_of_care) WHERE campaign IS NOT NULL DO NOTHING RETURNING pk",
        {**columns, "pk": pk, "booking_id": f"{INVITATION_PREFIX}{pk}"},
    ).fetchone()
    if row is None:
        existing = conn.execute(
            "SELECT booking_id FROM booking WHERE unit_hsa_id = %s AND campaign = %s AND subject_of_care = %s",
            (values["unit"], values["campaign"], values["resident"]),
        ).fetchone()
        shown = existing[0] if existing else "an earlier invitation"
        raise StaffError("resident", f"already invited in campaign {values['campaign']} ({shown})", "conflict")
    return pk


def _recorded(conn: psycopg.Connection, staff: Staff, pk: int, details: dict[str, Any], now: datetime) -> BookingInfo:
    """The invitation's history row and its EI post (created), in the invitation's transaction."""
    view = view_by_pk(conn, pk)
    record(conn, pk, "invite", staff.who, {"booking_id": view.booking_id, **details}, None, view.post(now))
    return BookingInfo.of(view)
