"""What MakeBooking, UpdateBooking and CancelBooking share: the change run as one answer, who acts,
the resident a request is for, and the slot its timeslot names.

The changes themselves are the calendar core's (producer.calendar.changes); what is SOAP's here is
reading the request: the wire's times, the Actor header, the resident's Swedish texts as resultText.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import psycopg

from producer.calendar import resident_texts as texts
from producer.calendar.changes import change
from producer.calendar.policy import RESIDENT, Actor
from producer.calendar.refusals import Refusal
from producer.calendar.slots import SlotRow, find_slot, wall_readings
from producer.interactions.call import Call
from producer.soap.codec import Decoded
from producer.sweden.identifiers import check_subject_of_care_id
from producer.sweden.wall_time import WireFormatError, parse_ts


def run_refusable(work: Callable[[], Decoded], conn: psycopg.Connection) -> Decoded:
    """Run a change in a savepoint: a refusal or a lost race undoes all of it and becomes ERROR."""
    try:
        with change(conn):
            return work()
    except Refusal as refusal:
        return {"resultCode": "ERROR", "resultText": refusal.resident}


def actor_of(call: Call) -> Actor:
    """The caller as the calendar records it: channel soap, the Actor header's type and id, and the
    consumers and correlation id the call came with."""
    return Actor(
        RESIDENT,
        call.actor_type,
        call.actor_id,
        call.settings.booking_id_policy,
        {
            "caller": call.caller,
            "consumer": call.consumer_hsa_id,
            "service_consumer": call.rules_consumer,  # whose change it is: its rules applied, staff see it
            "correlation_id": call.correlation_id,
        },
        call.rules_consumer,
    )


def contact_of(request: Decoded) -> dict[str, str | None]:
    """The names, contact fields, reason and notification a MakeBooking or UpdateBooking sends along
    (what it leaves out is None: a rebooking keeps what the booking had)."""
    info: Decoded = request.get("subject_of_care_info") or {}
    return {
        "first_name": info.get("firstName"),
        "middle_name": info.get("middleName"),
        "last_name": info.get("lastName"),
        "phone": info.get("phone"),
        "email": info.get("email"),
        "address": info.get("address"),
        "coaddress": info.get("coaddress"),
        "reason": request["requestedTimeslot"].get("reason"),
        "notification": request.get("notification"),
    }


def resident_of(call: Call, timeslot: Decoded) -> str:
    """The resident the booking is for: the timeslot's subject_of_care, else a resident Actor. A
    resident acting for themselves (Actor subject_of_care) acts only for themselves; an agent
    (subject_of_care_agent) for the resident the request names."""
    resident = timeslot.get("subject_of_care") or call.resident_actor
    if not resident:
        raise Refusal("subject_of_care", texts.MISSING_RESIDENT)
    if check_subject_of_care_id(resident):
        raise Refusal("subject_of_care", texts.INVALID_RESIDENT)
    if call.resident_actor is not None and resident != call.resident_actor:
        raise Refusal("subject_of_care", texts.OTHER_RESIDENT)
    return resident


def _instants(text: str) -> list[datetime]:
    """Both readings of a wire time in the repeated autumn hour; one reading otherwise."""
    try:
        return wall_readings(parse_ts(text))
    except WireFormatError:
        raise Refusal("requestedTimeslot", texts.INVALID_TIME) from None


def requested_slot(conn: psycopg.Connection, unit_hsa_id: str, timeslot: Decoded, time_type: str | None) -> SlotRow:
    """The slot the consumer passed back: unit and start/end, narrowed by performer, resource and time type.

    A wall time in the repeated autumn hour matches a slot in either occurrence; the earlier wins.
    """
    if not timeslot.get("startTimeInclusive") or not timeslot.get("endTimeExclusive"):
        raise Refusal("requestedTimeslot", texts.INVALID_TIME)
    slot = find_slot(
        conn,
        unit_hsa_id,
        _instants(timeslot["startTimeInclusive"]),
        _instants(timeslot["endTimeExclusive"]),
        performer=(timeslot.get("performer") or "").upper() or None,
        resource=timeslot.get("resourceID") or None,
        time_type=time_type or timeslot.get("timeTypeID") or None,
    )
    if slot is None:
        raise Refusal("requestedTimeslot", texts.SLOT_NOT_FOUND)
    return slot
