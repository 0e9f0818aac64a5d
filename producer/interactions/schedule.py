"""GetBookingDetails and GetSubjectOfCareSchedule: what a resident has at the addressed unit."""

from __future__ import annotations

import psycopg

from producer.calendar.rules import consumer_deadline
from producer.calendar.views import fetch_views
from producer.interactions.call import Call
from producer.interactions.common import booking_timeslot, require_addressed_unit, require_valid_resident
from producer.soap.codec import Decoded
from producer.soap.envelope import client_fault

DEFAULT_INVITATION_PURPOSE = "Kallelse"


def get_booking_details(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    """A booking of another unit is as unknown as a missing one: there is no resultCode, so a fault.

    A resident (Actor subject_of_care) sees only their own: a per-slot id can name a later booking
    of the same slot by someone else."""
    require_addressed_unit(call, request)
    found = fetch_views(
        conn,
        "b.booking_id = %s AND b.unit_hsa_id = %s AND b.status = 'active'"
        " AND (%s::text IS NULL OR b.subject_of_care = %s)",
        (request["bookingId"], call.unit.hsa_id, call.resident_actor, call.resident_actor),
    )
    if not found:
        raise client_fault("No booking or invitation with that bookingId at this care unit")
    deadline = consumer_deadline(conn, call.unit.hsa_id, call.rules_consumer)
    detail = booking_timeslot(found[0], call.now, deadline=deadline)
    if found[0].is_invitation and not detail["purpose"]:
        detail["purpose"] = DEFAULT_INVITATION_PURPOSE  # mandatory for invitations (TKB GetBookingDetails)
    return {"timeslotDetail": detail}


def get_subject_of_care_schedule(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    """Future bookings and timed invitations; open invitations have no times and are left out (TKB §3.6)."""
    require_addressed_unit(call, request)
    resident = require_valid_resident(request)
    if call.resident_actor is not None and resident != call.resident_actor:
        raise client_fault("A resident (Actor subject_of_care) can see only their own schedule")
    found = fetch_views(
        conn,
        "b.subject_of_care = %s AND b.unit_hsa_id = %s AND b.status = 'active' AND s.starts_at > %s"
        " ORDER BY s.starts_at, b.pk",
        (resident, call.unit.hsa_id, call.now),
    )
    deadline = consumer_deadline(conn, call.unit.hsa_id, call.rules_consumer)
    return {"timeslotDetail": [booking_timeslot(view, call.now, deadline=deadline) for view in found]}
