"""Checks and shapes the operations share."""

from __future__ import annotations

from datetime import datetime, timedelta

from producer.calendar.views import BookingView
from producer.interactions.call import Call
from producer.soap.codec import Decoded
from producer.soap.envelope import client_fault
from producer.sweden.identifiers import check_subject_of_care_id, is_valid_hsa_id, normalise_hsa_id
from producer.sweden.wall_time import format_ts


def require_addressed_unit(call: Call, request: Decoded, field: str = "healthcare_facility") -> None:
    """The body's unit must be the one addressed in LogicalAddress (HSA-ids compare case-insensitively)."""
    value = normalise_hsa_id(request.get(field, ""))
    if value != call.unit.hsa_id:
        shown = f" ({value})" if is_valid_hsa_id(value) else ""  # anything else might be patient data
        raise client_fault(
            f"{field} in the request{shown} is not the care unit addressed by LogicalAddress ({call.unit.hsa_id})"
        )


def require_valid_resident(request: Decoded, field: str = "subject_of_care") -> str:
    """Query contracts fault on a personnummer that fails its date or check digit (A.7)."""
    value = request.get(field, "")
    problem = check_subject_of_care_id(value)
    if problem:
        raise client_fault(f"{field} is not a valid personnummer: {problem}")
    return value


def performer_name(view: BookingView) -> str | None:
    """Seed 001: "title, first name, middle name, last name, blank-separated" (a performer has no middle name)."""
    names = [n for n in (view.performer_title, view.performer_first_name, view.performer_last_name) if n]
    return " ".join(names) or None


def booking_timeslot(
    view: BookingView, now: datetime, include_resident: bool = True, deadline: timedelta | None = None
) -> Decoded:
    """A booking or invitation as a TimeslotType (GetBookingDetails, GetSubjectOfCareSchedule).

    An open invitation can only be booked (seed 001 §5.14.2): neither cancelled nor rebooked by the
    resident. `deadline`: the calling consumer's own change deadline, if it has one."""
    changeable = view.changeable(now, deadline) and view.kind != "open_invitation"
    return {
        "startTimeInclusive": format_ts(view.starts_at) if view.starts_at else None,
        "endTimeExclusive": format_ts(view.ends_at) if view.ends_at else None,
        "healthcare_facility": view.unit_hsa_id,
        "performer": view.performer_hsa_id,
        "bookingId": view.booking_id,
        "subject_of_care": view.subject_of_care if include_resident else None,
        "purpose": view.purpose,
        "reason": view.reason,
        "resourceName": view.resource_name,
        "healthcare_facility_name": view.unit_name,
        "performerName": performer_name(view),
        "resourceID": view.resource_id,
        "timeTypeName": view.time_type_name,
        "timeTypeID": view.time_type_code,
        "careTypeName": view.care_type_name,
        "careTypeID": view.care_type_code,
        "cancel_booking_allowed": changeable,
        "rebooking_allowed": changeable and view.starts_at is not None,
        "message_allowed": view.message_allowed and changeable,
        "isInvitation": view.is_invitation,
    }
