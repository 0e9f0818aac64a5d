"""MakeBooking: book a free slot, or book an open invitation quoting its bookingId (never twice).

The same resident sending the same booking again gets the existing booking back (OK), so a
consumer's retry after a timeout does not book twice or see a spurious error.
"""

from __future__ import annotations

import psycopg

from producer.calendar.bookings import (
    BookingView,
    active_by_booking_id,
    booked_post,
    record,
    take_slot,
    view_by_pk,
)
from producer.interactions import resident_texts as texts
from producer.interactions.booking_common import (
    BOOKING_PREFIX,
    INVITATION_PREFIX,
    Refused,
    SlotRow,
    booking_id_for,
    find_slot,
    require_future,
    resident_of,
    run_refusable,
    slot_by_reference,
)
from producer.interactions.call import Call
from producer.interactions.catalogue import units_for_time_type
from producer.soap.codec import Decoded
from producer.sweden.identifiers import normalise_hsa_id

# A new booking and its slot in one round trip: the key drawn, the booking written, the slot taken
# if it is still free (else no row in taken, and the caller rolls the booking back).
_BOOK = """
WITH n AS (SELECT nextval(pg_get_serial_sequence('booking', 'pk')) AS pk),
b AS (
    INSERT INTO booking (pk, booking_id, unit_hsa_id, kind, subject_of_care, first_name, middle_name, last_name,
                         phone, email, address, coaddress, reason, notification, time_type_code, care_type_code)
    SELECT n.pk, coalesce(%(booking_id)s, %(prefix)s || n.pk), %(unit)s, 'booking', %(resident)s, %(first_name)s,
           %(middle_name)s, %(last_name)s, %(phone)s, %(email)s, %(address)s, %(coaddress)s, %(reason)s,
           %(notification)s, %(time_type)s, %(care_type)s
    FROM n
    RETURNING pk, booking_id
), taken AS (
    UPDATE slot SET booking_pk = (SELECT pk FROM b) WHERE id = %(slot)s AND booking_pk IS NULL RETURNING id
)
SELECT b.pk, b.booking_id, EXISTS (SELECT 1 FROM taken) FROM b
"""


def make_booking(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    def work() -> Decoded:
        booking_id = _book(call, request, conn)
        return {"bookingId": booking_id, "resultCode": "OK"}

    return run_refusable(work, conn)


def _book(call: Call, request: Decoded, conn: psycopg.Connection) -> str:
    if normalise_hsa_id(request["healthcare_facility_med"]) != call.unit.hsa_id:
        raise Refused(texts.FACILITY_MISMATCH)
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
            raise Refused(texts.SLOT_NOT_FOUND)
    if slot is None:
        slot = find_slot(conn, target, timeslot, invitation.time_type_code if invitation else None)
    require_future(slot, call.now)

    if slot.booking_pk is not None:
        holder = view_by_pk(conn, slot.booking_pk)
        if invitation is None and holder.status == "active" and holder.subject_of_care == resident:
            return holder.booking_id  # the same booking sent again
        raise Refused(texts.SLOT_TAKEN)
    # an invitation may be booked where GetAllHealthcareFacilities with its id lists; a new booking
    # at the addressed unit or at a unit that may be booked instead of it for this time type
    home = invitation.unit_hsa_id if invitation is not None else call.unit.hsa_id
    if target != home and target not in {h for h, _ in units_for_time_type(conn, home, slot.time_type_code)}:
        raise Refused(texts.WRONG_UNIT)

    info: Decoded = request["subject_of_care_info"]
    contact = {
        "first_name": info.get("firstName"),
        "middle_name": info.get("middleName"),
        "last_name": info.get("lastName"),
        "phone": info.get("phone"),
        "email": info.get("email"),
        "address": info.get("address"),
        "coaddress": info.get("coaddress"),
        "reason": timeslot.get("reason"),
        "notification": request.get("notification"),
    }
    if invitation is not None:
        pk, before, action = invitation.pk, invitation.ei_post, "book_invitation"
        booking_id = booking_id_for(call.settings.booking_id_policy, pk, slot.id, invitation.booking_id)
        conn.execute(
            "UPDATE booking SET kind = 'booking', booking_id = %(booking_id)s, unit_hsa_id = %(unit)s,"
            " care_type_code = %(care_type)s, first_name = %(first_name)s, middle_name = %(middle_name)s,"
            " last_name = %(last_name)s, phone = %(phone)s, email = %(email)s, address = %(address)s,"
            " coaddress = %(coaddress)s, reason = %(reason)s, notification = %(notification)s, updated_at = now()"
            " WHERE pk = %(pk)s",
            {**contact, "booking_id": booking_id, "unit": target, "care_type": slot.care_type_code, "pk": pk},
        )
        if not take_slot(conn, slot.id, pk):
            raise Refused(texts.SLOT_TAKEN)
    else:
        before, action = None, "book"
        policy = call.settings.booking_id_policy  # stable: "B" + the key the database draws
        pk, booking_id, taken = conn.execute(
            _BOOK,
            {
                **contact,
                "booking_id": booking_id_for(policy, 0, slot.id, None) if policy == "per-slot" else None,
                "prefix": BOOKING_PREFIX,
                "unit": target,
                "resident": resident,
                "time_type": slot.time_type_code,
                "care_type": slot.care_type_code,
                "slot": slot.id,
            },
        ).fetchone()
        if not taken:
            raise Refused(texts.SLOT_TAKEN)
    record(
        conn,
        pk,
        action,
        ("soap", call.actor_type, call.actor_id),
        {
            "slot": slot.id,
            "unit": target,
            "addressed_unit": call.unit.hsa_id,
            "booking_id": booking_id,
            "caller": call.caller,
            "consumer": call.consumer_hsa_id,
            "correlation_id": call.correlation_id,
        },
        before,
        booked_post(resident, target, booking_id, slot.starts_at, call.now),
    )
    return booking_id


def _quoted_invitation(call: Call, conn: psycopg.Connection, reference: str, resident: str) -> BookingView:
    """The invitation a MakeBooking quotes, locked. Under the per-slot policy a booked invitation has
    a new id, so its original id ("K" + pk) still finds it, for a resend to be recognised."""
    found = active_by_booking_id(conn, reference, lock=True)
    if found is None and reference.startswith(INVITATION_PREFIX) and reference[1:].isdigit():
        row = conn.execute(
            "SELECT booking_id FROM booking WHERE pk = %s AND status = 'active' FOR UPDATE", (int(reference[1:]),)
        ).fetchone()
        found = active_by_booking_id(conn, row[0]) if row else None
    if found is None or found.subject_of_care != resident:
        raise Refused(texts.INVITATION_NOT_FOUND)
    if found.kind == "open_invitation":
        if found.unit_hsa_id != call.unit.hsa_id and call.unit.hsa_id not in {
            h for h, _ in units_for_time_type(conn, found.unit_hsa_id, found.time_type_code)
        }:
            raise Refused(texts.INVITATION_NOT_FOUND)
        if found.valid_until is not None and found.valid_until <= call.now:
            raise Refused(texts.INVITATION_EXPIRED)
    return found


def _resent(conn: psycopg.Connection, booked: BookingView, target: str, timeslot: Decoded) -> str:
    """An invitation booked already: the same request again gets the booking back, another is refused."""
    if booked.slot_id is not None and booked.unit_hsa_id == target:
        slot = find_slot(conn, target, timeslot, booked.time_type_code)
        if slot.id == booked.slot_id:
            return booked.booking_id
    raise Refused(texts.INVITATION_ALREADY_BOOKED)
