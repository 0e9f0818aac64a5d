"""UpdateBooking: move a booking or a timed invitation to another slot, atomically.

The old slot is released and the new one taken in one savepoint: if the new one is gone, the
savepoint rolls back and the booking is exactly as it was. A timed invitation becomes a booking.
"""

from __future__ import annotations

import psycopg

from producer.calendar import changes, views
from producer.calendar import resident_texts as texts
from producer.calendar.refusals import Refusal
from producer.calendar.units import units_for_time_type
from producer.calendar.views import BookingView
from producer.interactions.booking_common import actor_of, contact_of, requested_slot, resident_of, run_refusable
from producer.interactions.call import Call
from producer.soap.codec import Decoded
from producer.sweden.identifiers import normalise_hsa_id


def update_booking(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    def work() -> Decoded:
        _rebook(call, request, conn)
        return {"resultCode": "OK"}

    return run_refusable(work, conn)


def _rebook(call: Call, request: Decoded, conn: psycopg.Connection) -> None:
    timeslot: Decoded = request["requestedTimeslot"]
    reference = timeslot.get("bookingId")
    if not reference:
        raise Refusal("bookingId", texts.MISSING_BOOKING_ID)
    resident = resident_of(call, timeslot)
    view = views.active_by_booking_id(conn, reference, lock=True) or _moved_from(call, conn, reference, resident)
    if view is None or resident != view.subject_of_care:
        raise Refusal("bookingId", texts.BOOKING_NOT_FOUND)
    target = normalise_hsa_id(timeslot["healthcare_facility"])
    allowed = {h for h, _ in units_for_time_type(conn, view.unit_hsa_id, view.time_type_code)} | {view.unit_hsa_id}
    # addressed at the booking's own unit, or at the unit it is being moved to
    if call.unit.hsa_id != view.unit_hsa_id and not (call.unit.hsa_id == target and target in allowed):
        raise Refusal("bookingId", texts.BOOKING_NOT_FOUND)
    if view.kind == "open_invitation":
        raise Refusal("bookingId", texts.OPEN_INVITATION_REBOOK)
    if target not in allowed:
        raise Refusal("healthcare_facility", texts.WRONG_UNIT)
    slot = requested_slot(conn, target, timeslot, view.time_type_code)
    changes.rebook(conn, actor_of(call), view, slot, now=call.now, contact=contact_of(request), allowed=allowed)


def _moved_from(call: Call, conn: psycopg.Connection, reference: str, resident: str) -> BookingView | None:
    """Under the per-slot policy a rebooking changes the id, so a consumer's resend of the same
    UpdateBooking names the old one: find the resident's booking that was rebooked away from it."""
    if call.settings.booking_id_policy != "per-slot":
        return None
    return views.rebooked_from(conn, reference, resident)
