"""CancelBooking: free the slot at once, within the unit's rules; a second cancel changes nothing."""

from __future__ import annotations

import psycopg

from producer.calendar.bookings import fetch_views, record, release_slot
from producer.interactions import resident_texts as texts
from producer.interactions.booking_common import Refused, run_refusable
from producer.interactions.call import Call
from producer.soap.codec import Decoded
from producer.sweden.identifiers import normalise_hsa_id


def cancel_booking(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    def work() -> Decoded:
        _cancel(call, request, conn)
        return {"resultCode": "OK"}

    return run_refusable(work, conn)


def _cancel(call: Call, request: Decoded, conn: psycopg.Connection) -> None:
    if normalise_hsa_id(request["healthcare_facility"]) != call.unit.hsa_id:
        raise Refused(texts.FACILITY_MISMATCH)
    row = conn.execute(
        "SELECT pk FROM booking WHERE booking_id = %s AND unit_hsa_id = %s"
        " AND (%s::text IS NULL OR subject_of_care = %s)"
        " ORDER BY status = 'active' DESC, pk DESC LIMIT 1 FOR UPDATE",
        (request["bookingId"], call.unit.hsa_id, call.resident_actor, call.resident_actor),
    ).fetchone()
    if row is None:
        raise Refused(texts.BOOKING_NOT_FOUND)
    view = fetch_views(conn, "b.pk = %s", (row[0],))[0]
    if view.status == "cancelled":
        raise Refused(texts.ALREADY_CANCELLED, code="INFO")
    if view.status != "active" or (view.starts_at is not None and view.starts_at <= call.now):
        raise Refused(texts.ALREADY_PASSED)
    if not view.changeable(call.now):
        raise Refused(texts.TOO_LATE_TO_CANCEL)
    message = request.get("message") or None
    stored_message = message if call.unit.message_allowed else None
    before = view.ei_post
    release_slot(conn, view.pk)
    conn.execute(
        "UPDATE booking SET status = 'cancelled', cancel_message = %s, updated_at = now() WHERE pk = %s",
        (stored_message, view.pk),
    )
    record(
        conn,
        view.pk,
        "cancel",
        ("soap", call.actor_type, call.actor_id),
        {
            "slot": view.slot_id,
            "booking_id": view.booking_id,
            "was_invitation": view.is_invitation,
            "message_dropped": message is not None and stored_message is None,
            "caller": call.caller,
            "consumer": call.consumer_hsa_id,
            "correlation_id": call.correlation_id,
        },
        before,
        None,
    )
