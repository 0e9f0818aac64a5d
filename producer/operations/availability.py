"""GetAvailableDates and GetAvailableTimeslots: free slots of the addressed unit in a date window.

With a bookingId the answer is for rebooking that booking (or booking that invitation): its time
type decides, the unit must be one where it may be booked, and every slot carries that bookingId so
it can be passed back as is to UpdateBooking or MakeBooking. Without one, each slot carries its own
id ("T…"), which MakeBooking accepts to select exactly that slot. Past times are never returned.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from producer.bookings import active_by_booking_id
from producer.call import Call
from producer.codec import Decoded
from producer.operations.catalogue import units_for_time_type
from producer.operations.common import require_addressed_unit, require_valid_resident
from producer.soap import client_fault
from producer.wire_time import WireFormatError, day_range_bounds, format_dt, format_ts, parse_dt

SLOT_PREFIX = "T"

FREE_SLOTS_SQL = """
SELECT s.id, s.starts_at, s.ends_at, s.performer_hsa_id, s.resource_id, r.name AS resource_name,
       p.first_name, p.last_name, s.time_type_code, t.name AS time_type_name,
       s.care_type_code, ct.name AS care_type_name,
       (s.starts_at AT TIME ZONE 'Europe/Stockholm')::date AS local_date
FROM slot s
JOIN time_type t ON t.unit_hsa_id = s.unit_hsa_id AND t.code = s.time_type_code
LEFT JOIN care_type ct ON ct.unit_hsa_id = s.unit_hsa_id AND ct.code = s.care_type_code
LEFT JOIN performer p ON p.unit_hsa_id = s.unit_hsa_id AND p.hsa_id = s.performer_hsa_id
LEFT JOIN resource r ON r.unit_hsa_id = s.unit_hsa_id AND r.resource_id = s.resource_id
WHERE s.unit_hsa_id = %(unit)s AND s.booking_pk IS NULL
  AND s.starts_at >= %(start)s AND s.starts_at < %(end)s
  AND (%(performers)s::text[] IS NULL OR s.performer_hsa_id = ANY(%(performers)s::text[]))
  AND (%(time_type)s::text IS NULL OR s.time_type_code = %(time_type)s)
  AND (%(time_type_name)s::text IS NULL OR t.name = %(time_type_name)s)
  AND (%(care_type)s::text IS NULL OR s.care_type_code = %(care_type)s)
  AND (%(care_type_name)s::text IS NULL OR ct.name = %(care_type_name)s)
ORDER BY s.starts_at, s.id
"""


def _window(call: Call, request: Decoded) -> tuple[datetime, datetime]:
    try:
        first, last = parse_dt(request["startDateInclusive"]), parse_dt(request["endDateInclusive"])
    except WireFormatError as exc:
        raise client_fault(f"Invalid date: {exc}") from None
    if last < first:
        raise client_fault("endDateInclusive is before startDateInclusive")
    days = (last - first).days + 1
    if days > call.settings.max_search_days:
        raise client_fault(
            f"The date window is {days} days; at most {call.settings.max_search_days} days may be searched at once"
        )
    start, end = day_range_bounds(first, last)
    return max(start, call.now), end


def _filters(call: Call, request: Decoded, conn: psycopg.Connection) -> tuple[dict[str, Any], str | None]:
    """SQL parameters for the search, and the bookingId every returned slot should carry."""
    require_addressed_unit(call, request)
    resident = require_valid_resident(request)
    start, end = _window(call, request)
    params: dict[str, Any] = {
        "unit": call.unit.hsa_id,
        "start": start,
        "end": end,
        "performers": [p.upper() for p in request.get("performer", [])] or None,
        "time_type": request.get("timeTypeID") or None,
        "time_type_name": request.get("timeTypeName") or None,
        "care_type": request.get("careTypeID") or None,
        "care_type_name": request.get("careTypeName") or None,
    }
    booking_id = request.get("bookingId") or None
    if booking_id is None:
        return params, None
    view = active_by_booking_id(conn, booking_id)
    if view is None or view.subject_of_care != resident:
        raise client_fault("No booking or invitation with that bookingId for this resident")
    if view.unit_hsa_id != call.unit.hsa_id and call.unit.hsa_id not in {
        h for h, _ in units_for_time_type(conn, view.unit_hsa_id, view.time_type_code)
    }:
        raise client_fault("That booking cannot be moved to this care unit")
    # the time type of a booking or invitation cannot change when it is (re)booked
    params["time_type"], params["time_type_name"] = view.time_type_code, None
    return params, booking_id


def get_available_timeslots(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    params, booking_id = _filters(call, request, conn)
    deadline = timedelta(seconds=call.unit.change_deadline_seconds)
    slots = []
    for row in conn.execute(FREE_SLOTS_SQL, params).fetchall():
        (
            slot_id,
            starts,
            ends,
            performer,
            resource_id,
            resource_name,
            first,
            last,
            tt_code,
            tt_name,
            ct_code,
            ct_name,
            _day,
        ) = row
        changeable = starts - deadline > call.now
        slots.append(
            {
                "startTimeInclusive": format_ts(starts),
                "endTimeExclusive": format_ts(ends),
                "healthcare_facility": call.unit.hsa_id,
                "performer": performer,
                "bookingId": booking_id or f"{SLOT_PREFIX}{slot_id}",
                "resourceName": resource_name,
                "healthcare_facility_name": call.unit.name,
                "performerName": " ".join(n for n in (first, last) if n) or None,
                "resourceID": resource_id,
                "timeTypeName": tt_name,
                "timeTypeID": tt_code,
                "careTypeName": ct_name,
                "careTypeID": ct_code,
                "cancel_booking_allowed": changeable,
                "rebooking_allowed": changeable,
                "message_allowed": call.unit.message_allowed,
            }
        )
    return {"timeslotDetail": slots}


def get_available_dates(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    params, _ = _filters(call, request, conn)
    seen: set[tuple[date, str | None, str | None, str, str | None]] = set()
    dates = []
    for row in conn.execute(FREE_SLOTS_SQL, params).fetchall():
        (_id, _s, _e, performer, resource_id, resource_name, _f, _l, tt_code, tt_name, ct_code, ct_name, day) = row
        key = (day, performer, resource_id, tt_code, ct_code)
        if key in seen:
            continue
        seen.add(key)
        dates.append(
            {
                "healthcare_facility": call.unit.hsa_id,
                "performer": performer,
                "date": format_dt(day),
                "resourceName": resource_name,
                "resourceID": resource_id,
                "timeTypeName": tt_name,
                "timeTypeID": tt_code,
                "careTypeName": ct_name,
                "careTypeID": ct_code,
            }
        )
    dates.sort(key=lambda d: (d["date"], d["performer"] or "", d["resourceID"] or "", d["timeTypeID"]))
    return {"performerAvailabilityByDate": dates}
