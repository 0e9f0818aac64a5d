"""Book, rebook and cancel on a resident's behalf (channel "staff", actor = the staff member's HSA-id).

The changes are the calendar core's, with the same rules as the resident's SOAP calls but one:
staff are not bound by the unit's change deadline (a resident may cancel or rebook until
`change_deadline` before the start; staff may until the start, e.g. when the resident phones the
clinic that morning). What nobody may do: hold a slot twice (the conditional take), move a booking
to a slot of another time type, to a unit its time type may not be booked at, or change a booking
whose time has passed. Here: what staff typed, checked, and the answer staff see.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from producer.calendar import changes, offers
from producer.calendar.views import view_by_pk
from producer.staff import checks, slots
from producer.staff.actor import Staff
from producer.staff.audit import audited
from producer.staff.checks import Contact
from producer.staff.results import BookingInfo, Change


@audited("StaffBook")
def book(
    conn: psycopg.Connection,
    staff: Staff,
    *,
    resident: str,
    slot: slots.SlotChoice,
    unit: str | None = None,
    contact: Contact | None = None,
    reason: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Change:
    """A new booking of a free slot for the resident; its id follows the booking-id policy.

    `unit` (the staff member's) refuses a slot of another unit."""
    now = now or datetime.now(UTC)
    resident = checks.resident(resident)
    names = (contact or Contact()).columns()
    reason = checks.text("reason", reason)
    note = checks.text("note", note)
    with slots.refusable(conn):
        row = slots.resolve(conn, slot, unit)
        contact_and_reason = {**names, "reason": reason}
        booked = changes.book(conn, staff.actor(note), row, resident=resident, now=now, contact=contact_and_reason)
        return Change(BookingInfo.of(view_by_pk(conn, booked.pk)), True)


@audited("StaffRebook")
def rebook(
    conn: psycopg.Connection,
    staff: Staff,
    booking_id: str,
    *,
    slot: slots.SlotChoice,
    unit: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Change:
    """Move a booking or timed invitation to another free slot of its time type, atomically (the old
    slot is released and the new one taken in one savepoint); give an open invitation its time.

    A timed invitation moved by staff stays an invitation (the clinic moved its own call) and keeps
    its id; an open invitation given a time becomes a booking, as when the resident books it, and a
    booking's id follows the policy (per-slot: the new slot's id). Moving to the slot it holds changes
    nothing. `unit` (the staff member's) limits which booking the id may name."""
    now = now or datetime.now(UTC)
    note = checks.text("note", note)
    with slots.refusable(conn):
        view = checks.booking_row(conn, booking_id, unit, active_only=True, lock=True)
        row = slots.resolve(conn, slot)
        moved = changes.rebook(conn, staff.actor(note), view, row, now=now)
        if not moved.changed:
            return Change(BookingInfo.of(view), False)
        return Change(BookingInfo.of(view_by_pk(conn, view.pk)), True)


@audited("StaffCancel")
def cancel(
    conn: psycopg.Connection,
    staff: Staff,
    booking_id: str,
    *,
    unit: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Change:
    """Cancel a booking or an invitation (timed or open); its slot is free at once and its EI post
    is deleted. Cancelling again changes nothing (changed=False). `note` is kept in the history.

    A campaign's invitation withdrawn this way withdraws the Egen provhantering offer it came with
    (producer.calendar.offers), in the same transaction."""
    now = now or datetime.now(UTC)
    note = checks.text("note", note)
    with slots.refusable(conn):
        view = checks.booking_row(conn, booking_id, unit, active_only=False, lock=True)
        cancelled = changes.cancel(conn, staff.actor(note), view, now=now)
        if not cancelled.changed:
            return Change(BookingInfo.of(view), False)
        if view.is_invitation:
            found = offers.offer_of_booking(conn, view.pk)
            if found is not None:
                offers.withdraw(conn, *found, staff.hsa_id)
        return Change(BookingInfo.of(view_by_pk(conn, view.pk)), True)
