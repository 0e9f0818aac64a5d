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
from producer.wire_time import WireFormatError, day_range_bounds, parse_dt

SLOT_PREFIX = "T"

# Times are formatted as Stockholm wall time by PostgreSQL itself: 100 slots are 200 conversions.
_FILTERS = """
WHERE s.unit_hsa_id = %(unit)s AND s.booking_pk IS NULL
  AND s.starts_at >= {start} AND s.starts_at < {end}
  AND (%(performers)s::text[] IS NULL OR s.performer_hsa_id = ANY(%(performers)s::text[]))
  AND (%(time_type)s::text IS NULL OR s.time_type_code = %(time_type)s)
  AND (%(time_type_name)s::text IS NULL OR s.time_type_code IN (
        SELECT code FROM time_type WHERE unit_hsa_id = %(unit)s AND name = %(time_type_name)s))
  AND (%(care_type)s::text IS NULL OR s.care_type_code = %(care_type)s)
  AND (%(care_type_name)s::text IS NULL OR s.care_type_code IN (
        SELECT code FROM care_type WHERE unit_hsa_id = %(unit)s AND name = %(care_type_name)s))
"""
_NAMES = """
JOIN time_type t ON t.unit_hsa_id = %(unit)s AND t.code = f.time_type_code
LEFT JOIN care_type ct ON ct.unit_hsa_id = %(unit)s AND ct.code = f.care_type_code
LEFT JOIN performer p ON p.unit_hsa_id = %(unit)s AND p.hsa_id = f.performer_hsa_id
LEFT JOIN resource r ON r.unit_hsa_id = %(unit)s AND r.resource_id = f.resource_id
"""
_WINDOW = _FILTERS.format(start="%(start)s", end="%(end)s")
FREE_SLOTS_SQL = f"""
SELECT f.id, to_char(f.starts_at AT TIME ZONE 'Europe/Stockholm', 'YYYYMMDDHH24MISS'),
       to_char(f.ends_at AT TIME ZONE 'Europe/Stockholm', 'YYYYMMDDHH24MISS'), f.starts_at,
       f.performer_hsa_id, f.resource_id, r.name, concat_ws(' ', p.first_name, p.last_name),
       f.time_type_code, t.name, f.care_type_code, ct.name
FROM (SELECT s.* FROM slot s {_WINDOW}) f
{_NAMES}
ORDER BY f.starts_at, f.id
"""
# One row per date and performer/resource/time type/care type. A small DISTINCT per Stockholm day
# (bounds converted once per day, DST-correct) costs far less than converting every slot's time.
_ONE_DAY = _FILTERS.format(
    start="greatest(%(start)s, day.d::timestamp AT TIME ZONE 'Europe/Stockholm')",
    end="least(%(end)s, (day.d + 1)::timestamp AT TIME ZONE 'Europe/Stockholm')",
)
FREE_DATES_SQL = f"""
SELECT to_char(day.d, 'YYYYMMDD'), f.performer_hsa_id, f.resource_id, r.name,
       f.time_type_code, t.name, f.care_type_code, ct.name
FROM (SELECT d::date FROM generate_series(%(first_day)s::date, %(last_day)s::date, interval '1 day') d) day
CROSS JOIN LATERAL (
    SELECT DISTINCT s.performer_hsa_id, s.resource_id, s.time_type_code, s.care_type_code FROM slot s {_ONE_DAY}
) f
{_NAMES}
ORDER BY day.d, f.performer_hsa_id NULLS FIRST, f.resource_id NULLS FIRST, f.time_type_code
"""


def _window(call: Call, request: Decoded) -> tuple[date, date, datetime, datetime]:
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
    return first, last, max(start, call.now), end


def _filters(call: Call, request: Decoded, conn: psycopg.Connection) -> tuple[dict[str, Any], str | None]:
    """SQL parameters for the search, and the bookingId every returned slot should carry."""
    require_addressed_unit(call, request)
    resident = require_valid_resident(request)
    first, last, start, end = _window(call, request)
    params: dict[str, Any] = {
        "unit": call.unit.hsa_id,
        "first_day": first,
        "last_day": last,
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
    deadline = call.now + timedelta(seconds=call.unit.change_deadline_seconds)
    unit, unit_name, message_allowed = call.unit.hsa_id, call.unit.name, call.unit.message_allowed
    slots = []
    for row in conn.execute(FREE_SLOTS_SQL, params).fetchall():
        (slot_id, start, end, starts_at, performer, resource_id, resource_name, performer_name,
         tt_code, tt_name, ct_code, ct_name) = row  # fmt: skip
        changeable = starts_at > deadline
        slots.append(
            {
                "startTimeInclusive": start,
                "endTimeExclusive": end,
                "healthcare_facility": unit,
                "performer": performer,
                "bookingId": booking_id or f"{SLOT_PREFIX}{slot_id}",
                "resourceName": resource_name,
                "healthcare_facility_name": unit_name,
                "performerName": performer_name,
                "resourceID": resource_id,
                "timeTypeName": tt_name,
                "timeTypeID": tt_code,
                "careTypeName": ct_name,
                "careTypeID": ct_code,
                "cancel_booking_allowed": changeable,
                "rebooking_allowed": changeable,
                "message_allowed": message_allowed,
            }
        )
    return {"timeslotDetail": slots}


def get_available_dates(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    params, _ = _filters(call, request, conn)
    unit = call.unit.hsa_id
    return {
        "performerAvailabilityByDate": [
            {
                "healthcare_facility": unit,
                "performer": performer,
                "date": day,
                "resourceName": resource_name,
                "resourceID": resource_id,
                "timeTypeName": tt_name,
                "timeTypeID": tt_code,
                "careTypeName": ct_name,
                "careTypeID": ct_code,
            }
            for day, performer, resource_id, resource_name, tt_code, tt_name, ct_code, ct_name in conn.execute(
                FREE_DATES_SQL, params
            ).fetchall()
        ]
    }
