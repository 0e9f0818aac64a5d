"""CancelBooking: free the slot at once, within the unit's rules; a second cancel changes nothing."""

from __future__ import annotations

import psycopg

from producer.calendar import changes, views
from producer.calendar import resident_texts as texts
from producer.calendar.refusals import Refusal
from producer.interactions.booking_common import actor_of, run_refusable
from producer.interactions.call import Call
from producer.soap.codec import Decoded
from producer.sweden.identifiers import normalise_hsa_id


def cancel_booking(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    def work() -> Decoded:
        changed = _cancel(call, request, conn)
        return {"resultCode": "OK"} if changed else {"resultCode": "INFO", "resultText": texts.ALREADY_CANCELLED}

    return run_refusable(work, conn)


def _cancel(call: Call, request: Decoded, conn: psycopg.Connection) -> bool:
    if normalise_hsa_id(request["healthcare_facility"]) != call.unit.hsa_id:
        raise Refusal("healthcare_facility", texts.FACILITY_MISMATCH)
    view = views.find_booking(conn, request["bookingId"], call.unit.hsa_id, call.resident_actor, lock=True)
    if view is None:
        raise Refusal("bookingId", texts.BOOKING_NOT_FOUND)
    message = request.get("message") or None
    stored_message = message if view.message_allowed else None  # the time type's rule, else the unit's
    extra = {"message_dropped": message is not None and stored_message is None}
    outcome = changes.cancel(conn, actor_of(call), view, now=call.now, message=stored_message, extra=extra)
    return outcome.changed
