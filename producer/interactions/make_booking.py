"""MakeBooking: book a free slot, or book an open invitation quoting its bookingId (never twice).

The same resident sending the same booking again gets the existing booking back (OK), so a
consumer's retry after a timeout does not book twice or see a spurious error.
"""

from __future__ import annotations

import psycopg

from producer.calendar import changes, views
from producer.calendar import resident_texts as texts
from producer.calendar.refusals import Refusal
from producer.calendar.slots import SlotRow, slot_by_reference
from producer.calendar.units import units_for_time_type
from producer.calendar.views import BookingView
from producer.interactions.booking_common import actor_of, contact_of, requested_slot, resident_of, run_refusable
from producer.interactions.call import Call
from producer.soap.codec import Decoded
from producer.sweden.identifiers import normalise_hsa_id


def make_booking(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    def work() -> Decoded:
        booking_id = _book(call, request, conn)
        return {"bookingId": booking_id, "resultCode": "OK"}

    return run_refusable(work, conn)


def _book(call: Call, request: Decoded, conn: psycopg.Connection) -> str:
    # seed 001 §5.8: the unit itself, or the care unit that holds the medical responsibility for it
    med = normalise_hsa_id(request["healthcare_facility_med"])
    if med not in (call.unit.hsa_id, call.unit.medical_unit_hsa_id):
        raise Refusal("healthcare_facility_med", texts.FACILITY_MISMATCH)
    timeslot: Decoded = request["requestedTimeslot"]
    resident = resident_of(call, timeslot)
    target = normalise_hsa_id(timeslot["healthcare_facility"])
    reference = timeslot.get("bookingId") or None

    invitation: BookingView | None = None
    slot: SlotRow | None = None
    if reference:
        slot = slot_by_reference(conn, reference)
        if slot is None:
            invitation = _quoted_invitation(call, conn, reference, resident)
            if invitation.kind != "open_invitation":
                return _resent(conn, invitation, target, timeslot)
        elif slot.unit_hsa_id != target:
            raise Refusal("bookingId", texts.SLOT_NOT_FOUND)
    if slot is None:
        slot = requested_slot(conn, target, timeslot, invitation.time_type_code if invitation else None)

    contact = contact_of(request)
    actor, extra = actor_of(call), {"addressed_unit": call.unit.hsa_id}
    if invitation is not None:
        # booked where GetAllHealthcareFacilities with its id lists
        outcome = changes.book_invitation(
            conn, actor, invitation, slot, now=call.now, contact=contact, med=med, extra=extra
        )
    else:
        # at the addressed unit, or at a unit that may be booked instead of it for this time type
        outcome = changes.book(
            conn, actor, slot, resident=resident, now=call.now, contact=contact, home=call.unit.hsa_id, med=med,
            extra=extra,
        )  # fmt: skip
    return outcome.booking_id


def _quoted_invitation(call: Call, conn: psycopg.Connection, reference: str, resident: str) -> BookingView:
    """The invitation a MakeBooking quotes, locked. Under the per-slot policy a booked invitation has
    a new id, so its original id ("K" + pk) still finds it, for a resend to be recognised."""
    found = views.active_by_booking_id(conn, reference, lock=True) or views.active_invitation_by_original_id(
        conn, reference
    )
    if found is None or found.subject_of_care != resident:
        raise Refusal("bookingId", texts.INVITATION_NOT_FOUND)
    elsewhere = found.unit_hsa_id != call.unit.hsa_id
    if found.kind == "open_invitation" and elsewhere and call.unit.hsa_id not in _alternatives(conn, found):
        raise Refusal("bookingId", texts.INVITATION_NOT_FOUND)
    return found


def _alternatives(conn: psycopg.Connection, invitation: BookingView) -> set[str]:
    """The other units an open invitation may be booked at (GetAllHealthcareFacilities with its id)."""
    return {h for h, _ in units_for_time_type(conn, invitation.unit_hsa_id, invitation.time_type_code)}


def _resent(conn: psycopg.Connection, booked: BookingView, target: str, timeslot: Decoded) -> str:
    """An invitation booked already: the same request again gets the booking back, another is refused."""
    if booked.slot_id is not None and booked.unit_hsa_id == target:
        slot = requested_slot(conn, target, timeslot, booked.time_type_code)
        if slot.id == booked.slot_id:
            return booked.booking_id
    raise Refusal("bookingId", texts.INVITATION_ALREADY_BOOKED)
