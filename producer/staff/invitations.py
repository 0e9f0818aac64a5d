"""Invitations (kallelser) a clinic sends: timed (holding a slot) or open (booked later by the resident).

An invitation carries a purpose (plain text or DocBook in the allowed subset) and may end: an open
invitation must have a validity end (then it leaves EI and can no longer be booked); for a timed
one it is optional and its post leaves EI at the start or at the validity end, whichever is first.
Invitations get the id "K" + pk under both id policies, as the demo's do. A campaign makes the
invitation idempotent per unit, campaign and resident (migration 0003). The calendar core writes
them (producer.calendar.invitations); here: what staff typed, checked, and the answer staff see.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg

from producer.calendar import invitations
from producer.calendar.invitations import OpenTerms
from producer.calendar.units import units_for_time_type
from producer.calendar.views import view_by_pk
from producer.staff import checks, slots
from producer.staff.actor import Staff
from producer.staff.audit import audited
from producer.staff.checks import Contact
from producer.staff.docbook import check_purpose
from producer.staff.errors import StaffError
from producer.staff.results import BookingInfo, Change
from producer.sweden.wall_time import local_date


def open_terms(
    conn: psycopg.Connection,
    unit: str,
    time_type: str,
    purpose: str,
    valid_until: date | datetime | None,
    invitation_date: date | None,
    now: datetime,
) -> OpenTerms:
    """What every open invitation of one call (a single one, or a screening batch) shares, checked."""
    purpose_format = check_purpose(purpose)
    end = checks.valid_until(valid_until, now)
    if end is None:
        raise StaffError("valid_until", "an open invitation needs a validity end")
    unit_hsa_id = checks.unit(conn, unit)
    code, care_type = checks.time_type(conn, unit_hsa_id, time_type)
    if not units_for_time_type(conn, unit_hsa_id, code):
        raise StaffError("time_type", f"{code} has no slots at {unit_hsa_id} nor at a unit that may be booked instead")
    day = invitation_date or local_date(now)
    if day > local_date(end):
        raise StaffError("invitation_date", "is after the validity end")
    return OpenTerms(unit_hsa_id, code, care_type, purpose, purpose_format, day, end)


@audited("StaffInviteTimed")
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
        invited = invitations.invite_timed(
            conn,
            staff.actor(),
            row,
            resident=resident,
            purpose=purpose,
            purpose_format=purpose_format,
            valid_until=end,
            campaign=campaign,
            now=now,
            contact=names,
        )
        return Change(BookingInfo.of(view_by_pk(conn, invited.pk)), True)


@audited("StaffInviteOpen")
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
    terms = open_terms(conn, unit, time_type, purpose, valid_until, invitation_date, now)
    with slots.refusable(conn):
        invited = invitations.invite_open(
            conn, staff.actor(), terms, resident=resident, campaign=campaign, now=now, contact=names
        )
        return Change(BookingInfo.of(view_by_pk(conn, invited.pk)), True)
