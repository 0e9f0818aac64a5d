"""GetAvailableDates and GetAvailableTimeslots: free slots of the addressed unit in a date window.

With a bookingId the answer is for rebooking that booking (or booking that invitation): its time
type decides, the unit must be one where it may be booked, and every slot carries that bookingId so
it can be passed back as is to UpdateBooking or MakeBooking. Without one, each slot carries its own
id ("T…"), which MakeBooking accepts to select exactly that slot. Past times are never returned.

The time types' booking rules (producer.calendar.rules) decide what a resident is offered: a type
booked only through an invitation or by staff only with that invitation's bookingId, and each type
only from its lead time and up to its horizon. Types that share those bounds are searched together,
so a unit without such rules is one query, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from producer.calendar.ids import SLOT_PREFIX
from producer.calendar.units import Names, units_for_time_type
from producer.calendar.views import active_by_booking_id
from producer.interactions.call import Call
from producer.interactions.common import require_addressed_unit, require_valid_resident
from producer.soap.codec import Decoded
from producer.soap.envelope import client_fault
from producer.sweden.wall_time import WireFormatError, day_range_bounds, parse_dt

_NAME_FILTERS = (("time_type", "timeType"), ("care_type", "careType"))

# Times are formatted as Stockholm wall time by PostgreSQL itself: 100 slots are 200 conversions.
# Codes and names come from the worker's UnitCache (the slot table holds the unit's, time types'
# and performers' integer keys, migration 0008), so the query is an index-only scan with no joins.
_FILTERS = """
WHERE s.unit_id = %(unit_id)s AND s.booking_pk IS NULL
  AND s.starts_at >= {start} AND s.starts_at < {end}
  AND (%(performer_ids)s::int[] IS NULL OR s.performer_id = ANY(%(performer_ids)s::int[]))
  AND (%(time_type_ids)s::int[] IS NULL OR s.time_type_id = ANY(%(time_type_ids)s::int[]))
  AND (%(care_types)s::text[] IS NULL OR s.care_type_code = ANY(%(care_types)s::text[]))
"""
FREE_SLOTS_SQL = f"""
SELECT s.id, to_char(s.starts_at AT TIME ZONE 'Europe/Stockholm', 'YYYYMMDDHH24MISS'),
       to_char(s.ends_at AT TIME ZONE 'Europe/Stockholm', 'YYYYMMDDHH24MISS'), s.starts_at,
       s.performer_id, s.resource_id, s.time_type_id, s.care_type_code
FROM slot s {_FILTERS.format(start="%(start)s", end="%(end)s")}
ORDER BY s.starts_at, s.id
"""
# One row per date and performer/resource/time type/care type. A small DISTINCT per Stockholm day
# (bounds converted once per day, DST-correct) costs far less than converting every slot's time.
_ONE_DAY = _FILTERS.format(
    start="greatest(%(start)s, day.d::timestamp AT TIME ZONE 'Europe/Stockholm')",
    end="least(%(end)s, (day.d + 1)::timestamp AT TIME ZONE 'Europe/Stockholm')",
)
# Ordered by day only: the codes are known once the keys are mapped (_date_order sorts the rest).
FREE_DATES_SQL = f"""
SELECT to_char(day.d, 'YYYYMMDD'), f.performer_id, f.resource_id, f.time_type_id, f.care_type_code
FROM (SELECT d::date FROM generate_series(%(first_day)s::date, %(last_day)s::date, interval '1 day') d) day
CROSS JOIN LATERAL (
    SELECT DISTINCT s.performer_id, s.resource_id, s.time_type_id, s.care_type_code FROM slot s {_ONE_DAY}
) f
ORDER BY day.d
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


def _codes(names: Names, kind: str, code: str | None, name: str | None) -> list[str] | None:
    """The codes a code and/or name filter selects: None for no filter, [] when nothing matches."""
    if not code and not name:
        return None
    candidates = {code} if code else set(names.by_kind.get(kind, {}))
    if name:
        candidates = {c for c in candidates if names.get(kind, c) == name}
    return sorted(candidates)


def _searches(call: Call, params: dict[str, Any], names: Names, invited: bool) -> list[dict[str, Any]]:
    """The search split by the time types' lead time and horizon: one set of parameters per pair of
    bounds, each with its types and its window; the types a resident may not book themselves only
    for an invitation (`invited`)."""
    codes = params["time_types"] if params["time_types"] is not None else sorted(names.rules)
    offered = [c for c in codes if c in names.rules and (invited or names.rules[c].self_booking)]
    groups: dict[tuple[Any, Any], list[str]] = {}
    for code in offered:
        rules = names.rules[code]
        groups.setdefault((rules.min_lead, rules.horizon), []).append(code)
    if params["time_types"] is None and len(groups) == 1 and len(offered) == len(names.rules):
        groups = {next(iter(groups)): None}  # every type, same bounds: no type filter needed
    searches = []
    for (lead, horizon), group in groups.items():
        start = max(params["start"], call.now + lead)
        end = params["end"] if horizon is None else min(params["end"], call.now + horizon)
        if start < end:
            searches.append({**params, "time_types": group, "start": start, "end": end})
    return searches


def _filters(call: Call, request: Decoded, conn: psycopg.Connection) -> tuple[dict[str, Any], str | None, Names]:
    """SQL parameters for the search, the bookingId every returned slot should carry, and the names."""
    require_addressed_unit(call, request)
    resident = require_valid_resident(request)
    first, last, start, end = _window(call, request)
    names = call.units.names(conn, call.unit.hsa_id)
    wanted = [(kind, request.get(f"{key}ID"), request.get(f"{key}Name")) for kind, key in _NAME_FILTERS]
    if any(name and not _codes(names, kind, None, name) for kind, _, name in wanted):
        names = call.units.names(conn, call.unit.hsa_id, reload=True)  # a name added since we looked
    time_types, care_types = (_codes(names, kind, code, name) for kind, code, name in wanted)
    booking_id = request.get("bookingId") or None
    if booking_id is not None:
        view = active_by_booking_id(conn, booking_id)
        if view is None or view.subject_of_care != resident:
            raise client_fault("No booking or invitation with that bookingId for this resident")
        if view.unit_hsa_id != call.unit.hsa_id and call.unit.hsa_id not in {
            h for h, _ in units_for_time_type(conn, view.unit_hsa_id, view.time_type_code)
        }:
            raise client_fault("That booking cannot be moved to this care unit")
        time_types = [view.time_type_code]  # a booking's or invitation's time type cannot change
    params = {
        "unit": call.unit.hsa_id,
        "unit_id": call.unit.id,
        "first_day": first,
        "last_day": last,
        "start": start,
        "end": end,
        "performers": [p.upper() for p in request.get("performer", [])] or None,
        "time_types": time_types,
        "care_types": care_types,
    }
    return params, booking_id, names


def query_params(names: Names, params: dict[str, Any]) -> dict[str, Any]:
    """The search's parameters with the performers and time types as the slot table's keys."""
    return {
        **params,
        "performer_ids": names.ids("performer", params["performers"]),
        "time_type_ids": names.ids("time_type", params["time_types"]),
    }


def _known(names: Names, rows: list[tuple[Any, ...]]) -> bool:
    """Does the catalogue know every row's performer key, resource, time type key and care type (its
    last four columns)?"""
    performers, time_types = names.codes_by_id.get("performer", {}), names.codes_by_id.get("time_type", {})
    resources, care_types = names.by_kind.get("resource", {}), names.by_kind.get("care_type", {})
    return all(
        (p is None or p in performers) and (r is None or r in resources) and t in time_types
        and (c is None or c in care_types)
        for *_, p, r, t, c in rows
    )  # fmt: skip


def _rows_with_names(
    call: Call, conn: psycopg.Connection, names: Names, sql: str, params: dict[str, Any]
) -> tuple[list[tuple[Any, ...]], Names]:
    """Run the search; reload the names once if a row has a key or code the remembered catalogue
    lacks, or the search names a performer it does not know (both added since). The rows keep the
    performer's and time type's keys: the caller maps them (Names.codes_by_id)."""
    if params["performers"] and not all(names.knows("performer", p) for p in params["performers"]):
        names = call.units.names(conn, call.unit.hsa_id, reload=True)
    rows = conn.execute(sql, query_params(names, params)).fetchall()
    if not _known(names, rows):
        names = call.units.names(conn, call.unit.hsa_id, reload=True)
    return rows, names


def _search(
    call: Call,
    conn: psycopg.Connection,
    names: Names,
    sql: str,
    params: dict[str, Any],
    invited: bool,
    order: Callable[[tuple[Any, ...]], Any] | None,
) -> tuple[list[tuple[Any, ...]], Names]:
    """Every search of the request (_searches), rows in one list in the query's `order` (each search's
    rows come in it; several are merged; None: the caller sorts); the names, reloaded if a row needed it."""
    rows: list[tuple[Any, ...]] = []
    searches = _searches(call, params, names, invited)
    for search in searches:
        found, names = _rows_with_names(call, conn, names, sql, search)
        rows.extend(found)
    if len(searches) > 1 and order is not None:
        rows.sort(key=order)
    return rows, names


def get_available_timeslots(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    params, booking_id, names = _filters(call, request, conn)
    rows, names = _search(call, conn, names, FREE_SLOTS_SQL, params, booking_id is not None, _slot_order)
    consumer = names.consumer_deadlines.get((call.rules_consumer or "").upper())
    unit, unit_name = call.unit.hsa_id, call.unit.name
    default_deadline = timedelta(seconds=call.unit.change_deadline_seconds)
    performers, time_types = names.codes_by_id.get("performer", {}), names.codes_by_id.get("time_type", {})
    slots = []
    for slot_id, start, end, starts_at, performer_id, resource_id, tt_id, ct_code in rows:
        performer, tt_code = performers.get(performer_id), time_types.get(tt_id)
        rules = names.rules.get(tt_code)
        deadline = consumer if consumer is not None else rules.change_deadline if rules else default_deadline
        changeable = starts_at > call.now + deadline
        slots.append(
            {
                "startTimeInclusive": start,
                "endTimeExclusive": end,
                "healthcare_facility": unit,
                "performer": performer,
                "bookingId": booking_id or f"{SLOT_PREFIX}{slot_id}",
                "purpose": rules.purpose if rules else None,
                "resourceName": names.get("resource", resource_id),
                "healthcare_facility_name": unit_name,
                "performerName": names.get("performer", performer),
                "resourceID": resource_id,
                "timeTypeName": names.get("time_type", tt_code),
                "timeTypeID": tt_code,
                "careTypeName": names.get("care_type", ct_code),
                "careTypeID": ct_code,
                "cancel_booking_allowed": changeable,
                "rebooking_allowed": changeable,
                "message_allowed": rules.message_allowed if rules else call.unit.message_allowed,
            }
        )
    return {"timeslotDetail": slots}


def _slot_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """FREE_SLOTS_SQL's order: start, then id."""
    return (row[3], row[0])


def _date_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """FREE_DATES_SQL's order: day, then performer and resource (absent first), then time type."""
    day, performer, resource_id, tt_code, _ = row
    return (day, performer is not None, performer or "", resource_id is not None, resource_id or "", tt_code)


def get_available_dates(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    params, booking_id, names = _filters(call, request, conn)
    found, names = _search(call, conn, names, FREE_DATES_SQL, params, booking_id is not None, None)
    performers, time_types = names.codes_by_id.get("performer", {}), names.codes_by_id.get("time_type", {})
    rows = sorted(
        ((day, performers.get(p), r, time_types.get(t), c) for day, p, r, t, c in found), key=_date_order
    )  # fmt: skip
    unit = call.unit.hsa_id
    return {
        "performerAvailabilityByDate": [
            {
                "healthcare_facility": unit,
                "performer": performer,
                "date": day,
                "resourceName": names.get("resource", resource_id),
                "resourceID": resource_id,
                "timeTypeName": names.get("time_type", tt_code),
                "timeTypeID": tt_code,
                "careTypeName": names.get("care_type", ct_code),
                "careTypeID": ct_code,
            }
            for day, performer, resource_id, tt_code, ct_code in rows
        ]
    }
