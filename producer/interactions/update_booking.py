"""UpdateBooking: move a booking or a timed invitation to another slot, atomically.

The old slot is released and the new one taken in one savepoint: if the new one is gone, the
savepoint rolls back and the booking is exactly as it was. A timed invitation becomes a booking.
"""

from __future__ import annotations

import psycopg

from producer.calendar.bookings import (
    BookingView,
    active_by_booking_id,
    booked_post,
    record,
    release_slot,
    take_slot,
    view_by_pk,
)
from producer.interactions import resident_texts as texts
from producer.interactions.booking_common import (
    Refused,
    booking_id_for,
    find_slot,
    require_future,
    resident_of,
    run_refusable,
)
from producer.interactions.call import Call
from producer.interactions.catalogue import units_for_time_type
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
        raise Refused(texts.MISSING_BOOKING_ID)
    resident = resident_of(call, timeslot)
    view = active_by_booking_id(conn, reference, lock=True) or _moved_from(call, conn, reference, resident)
    if view is None or resident != view.subject_of_care:
        raise Refused(texts.BOOKING_NOT_FOUND)
    target = normalise_hsa_id(timeslot["healthcare_facility"])
    allowed = {h for h, _ in units_for_time_type(conn, view.unit_hsa_id, view.time_type_code)} | {view.unit_hsa_id}
    # addressed at the booking's own unit, or at the unit it is being moved to
    if call.unit.hsa_id != view.unit_hsa_id and not (call.unit.hsa_id == target and target in allowed):
        raise Refused(texts.BOOKING_NOT_FOUND)
    if view.kind == "open_invitation":
        raise Refused(texts.OPEN_INVITATION_REBOOK)
    if target not in allowed:
        raise Refused(texts.WRONG_UNIT)
    slot = find_slot(conn, target, timeslot, view.time_type_code)
    if slot.id == view.slot_id:
        return  # already there: a resend changes nothing
    if view.starts_at is not None and view.starts_at <= call.now:
        raise Refused(texts.ALREADY_PASSED)
    if not view.changeable(call.now):
        raise Refused(texts.TOO_LATE_TO_REBOOK)
    require_future(slot, call.now)
    if slot.booking_pk is not None:
        raise Refused(texts.SLOT_TAKEN)

    before = view.ei_post
    release_slot(conn, view.pk)
    if not take_slot(conn, slot.id, view.pk):
        raise Refused(texts.SLOT_TAKEN)
    booking_id = booking_id_for(call.settings.booking_id_policy, view.pk, slot.id, view.booking_id)
    info: Decoded = request.get("subject_of_care_info") or {}
    conn.execute(
        "UPDATE booking SET booking_id = %(booking_id)s, unit_hsa_id = %(unit)s, kind = 'booking',"
        " care_type_code = %(care_type)s, reason = coalesce(%(reason)s, reason),"
        " notification = coalesce(%(notification)s, notification), phone = coalesce(%(phone)s, phone),"
        " email = coalesce(%(email)s, email), address = coalesce(%(address)s, address),"
        " coaddress = coalesce(%(coaddress)s, coaddress), updated_at = now() WHERE pk = %(pk)s",
        {
            "booking_id": booking_id,
            "unit": target,
            "care_type": slot.care_type_code,
            "reason": timeslot.get("reason"),
            "notification": request.get("notification"),
            "phone": info.get("phone"),
            "email": info.get("email"),
            "address": info.get("address"),
            "coaddress": info.get("coaddress"),
            "pk": view.pk,
        },
    )
    record(
        conn,
        view.pk,
        "rebook",
        ("soap", call.actor_type, call.actor_id),
        {
            "from_slot": view.slot_id,
            "to_slot": slot.id,
            "from_unit": view.unit_hsa_id,
            "to_unit": target,
            "from_booking_id": view.booking_id,
            "booking_id": booking_id,
            "was_invitation": view.is_invitation,
            "caller": call.caller,
            "consumer": call.consumer_hsa_id,
            "correlation_id": call.correlation_id,
        },
        before,
        booked_post(view.subject_of_care, target, booking_id, slot.starts_at, call.now),
    )


def _moved_from(call: Call, conn: psycopg.Connection, reference: str, resident: str) -> BookingView | None:
    """Under the per-slot policy a rebooking changes the id, so a consumer's resend of the same
    UpdateBooking names the old one: find the resident's booking that was rebooked away from it."""
    if call.settings.booking_id_policy != "per-slot":
        return None
    row = conn.execute(
        "SELECT b.pk FROM booking_event e JOIN booking b ON b.pk = e.booking_pk"
        " WHERE e.action = 'rebook' AND e.details->>'from_booking_id' = %s AND b.subject_of_care = %s"
        " AND b.status = 'active' ORDER BY e.id DESC LIMIT 1 FOR UPDATE OF b",
        (reference, resident),
    ).fetchone()
    return view_by_pk(conn, row[0]) if row else None
