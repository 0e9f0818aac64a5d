"""Book, rebook and cancel on a resident's behalf (channel "staff", actor = the staff member's HSA-id).

The same rules as the resident's SOAP calls, with one exception: staff are not bound by the unit's
change deadline (a resident may cancel or rebook until `change_deadline` before the start; staff may
until the start, e.g. when the resident phones the clinic that morning). What nobody may do: hold a
slot twice (the conditional take), move a booking to a slot of another time type, to a unit its time
type may not be booked at, or change a booking whose time has passed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from producer.calendar.bookings import booked_post, new_booking_pk, record, release_slot, view_by_pk
from producer.interactions.booking_common import booking_id_for
from producer.interactions.catalogue import units_for_time_type
from producer.staff import checks, slots
from producer.staff.actor import Staff
from producer.staff.checks import Contact
from producer.staff.errors import StaffError
from producer.staff.results import BookingInfo, Change, slot_ref


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
        slots.require_bookable(row, now)
        pk = new_booking_pk(conn)
        booking_id = booking_id_for(staff.settings.booking_id_policy, pk, row.id, None)
        conn.execute(
            "INSERT INTO booking (pk, booking_id, unit_hsa_id, kind, subject_of_care, first_name, middle_name,"
            " last_name, phone, email, reason, time_type_code, care_type_code)"
            " VALUES (%(pk)s, %(booking_id)s, %(unit)s, 'booking', %(resident)s, %(first_name)s, %(middle_name)s,"
            " %(last_name)s, %(phone)s, %(email)s, %(reason)s, %(time_type)s, %(care_type)s)",
            {
                **names,
                "pk": pk,
                "booking_id": booking_id,
                "unit": row.unit_hsa_id,
                "resident": resident,
                "reason": reason,
                "time_type": row.time_type_code,
                "care_type": row.care_type_code,
            },
        )
        slots.take(conn, row, pk)
        record(
            conn,
            pk,
            "book",
            staff.who,
            _details(slot=row.id, unit=row.unit_hsa_id, booking_id=booking_id, note=note),
            None,
            booked_post(resident, row.unit_hsa_id, booking_id, row.starts_at, now),
        )
        return Change(BookingInfo.of(view_by_pk(conn, pk)), True)


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
        if row.id == view.slot_id:
            return Change(BookingInfo.of(view), False)
        if view.starts_at is not None and view.starts_at <= now:
            raise StaffError("booking_id", f"{view.booking_id} has already started and cannot be moved", "conflict")
        if view.kind == "open_invitation" and view.valid_until is not None and view.valid_until <= now:
            raise StaffError("booking_id", f"invitation {view.booking_id} is no longer valid", "conflict")
        if row.time_type_code != view.time_type_code:
            raise StaffError(
                "slot", f"{slot_ref(row.id)} is a {row.time_type_code} time; {view.booking_id} is {view.time_type_code}"
            )
        allowed = {view.unit_hsa_id} | {h for h, _ in units_for_time_type(conn, view.unit_hsa_id, view.time_type_code)}
        if row.unit_hsa_id not in allowed:
            raise StaffError(
                "slot", f"a {view.time_type_code} time at {view.unit_hsa_id} may not be moved to {row.unit_hsa_id}"
            )
        slots.require_bookable(row, now)

        release_slot(conn, view.pk)
        slots.take(conn, row, view.pk)
        if view.kind == "timed_invitation":
            kind, new_id, action = "timed_invitation", view.booking_id, "rebook"
        else:
            kind = "booking"
            new_id = booking_id_for(staff.settings.booking_id_policy, view.pk, row.id, view.booking_id)
            action = "book_invitation" if view.kind == "open_invitation" else "rebook"
        conn.execute(
            "UPDATE booking SET booking_id = %s, unit_hsa_id = %s, kind = %s, care_type_code = %s, updated_at = now()"
            " WHERE pk = %s",
            (new_id, row.unit_hsa_id, kind, row.care_type_code, view.pk),
        )
        after = view_by_pk(conn, view.pk)
        details = _details(
            from_slot=view.slot_id,
            to_slot=row.id,
            from_unit=view.unit_hsa_id,
            to_unit=row.unit_hsa_id,
            from_booking_id=view.booking_id,
            booking_id=new_id,
            was_invitation=view.is_invitation,
            note=note,
        )
        record(conn, view.pk, action, staff.who, details, view.ei_post, after.post(now))
        return Change(BookingInfo.of(after), True)


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
    is deleted. Cancelling again changes nothing (changed=False). `note` is kept in the history."""
    now = now or datetime.now(UTC)
    note = checks.text("note", note)
    with slots.refusable(conn):
        view = checks.booking_row(conn, booking_id, unit, active_only=False, lock=True)
        if view.status == "cancelled":
            return Change(BookingInfo.of(view), False)
        if view.status != "active":
            raise StaffError("booking_id", f"invitation {view.booking_id} has expired", "conflict")
        if view.starts_at is not None and view.starts_at <= now:
            raise StaffError("booking_id", f"{view.booking_id} has already started and cannot be cancelled", "conflict")
        release_slot(conn, view.pk)
        conn.execute("UPDATE booking SET status = 'cancelled', updated_at = now() WHERE pk = %s", (view.pk,))
        details = _details(slot=view.slot_id, booking_id=view.booking_id, was_invitation=view.is_invitation, note=note)
        record(conn, view.pk, "cancel", staff.who, details, view.ei_post, None)
        return Change(BookingInfo.of(view_by_pk(conn, view.pk)), True)


def _details(**values: Any) -> dict[str, Any]:
    """booking_event details without the empty ones (a note is optional)."""
    return {key: value for key, value in values.items() if value is not None}
