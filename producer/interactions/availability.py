"""GetAvailableDates and GetAvailableTimeslots: free slots of the addressed unit in a date window.

With a bookingId the answer is for rebooking that booking (or booking that invitation): its time
type decides, the unit must be one where it may be booked, and every slot carries that bookingId so
it can be passed back as is to UpdateBooking or MakeBooking. Without one, each slot carries its own
id ("T…"), which MakeBooking accepts to select exactly that slot. Past times are never returned.

The time types' booking rules (producer.calendar.rules) decide what a resident is offered: a type
booked only through an invitation or by staff only with that invitation's bookingId, and each type
only from its lead time and up to its horizon. Types that share those bounds are searched together,
so a unit without such rules is one query, as before.

Without a bookingId, both answer from the worker's memory of free slots (free_slots) while it may
be trusted, applying the same rules to it here; the queries below fill it, and answer otherwise.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from producer.calendar.ids import SLOT_PREFIX
from producer.calendar.units import Names, units_for_time_type
from producer.calendar.views import active_by_booking_id
from producer.interactions.call import Call
from producer.interactions.common import require_addressed_unit, require_valid_resident
from producer.interactions.free_slots import Day, FreeSlots
from producer.soap.codec import Decoded, Written
from producer.soap.envelope import client_fault
from producer.sweden.wall_time import WireFormatError, day_range_bounds, parse_dt

_NAME_FILTERS = (("time_type", "timeType"), ("care_type", "careType"))

# Times are formatted as Stockholm wall time by PostgreSQL itself: 100 slots are 200 conversions.
# Codes and names come from the worker's UnitCache (the slot table holds the unit's, time types'
# and performers' integer keys, migration 0009), so the query is an index-only scan with no joins.
_FILTERS = """
WHERE s.unit_id = %(unit_id)s AND s.booking_pk IS NULL
  AND s.starts_at >= {start} AND s.starts_at < {end}
  AND (%(performer_ids)s::int[] IS NULL OR s.performer_id = ANY(%(performer_ids)s::int[]))
  AND (%(time_type_ids)s::int[] IS NULL OR s.time_type_id = ANY(%(time_type_ids)s::int[]))
  AND (%(other_time_type_ids)s::int[] IS NULL OR NOT s.time_type_id = ANY(%(other_time_type_ids)s::int[]))
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
# Ordered by day only: the codes are known once the keys are mapped (_search sorts by _date_order).
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
            searches.append(
                {**params, "time_types": group, "start": start, "end": end, "by_rules": params["time_types"] is None}
            )
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
    """The search's parameters with the performers and time types as the slot table's keys. The
    types a search takes by their rules (the request named none) are asked for as the types it does
    not take: a type added since the names were read is found, and reloads them (_search)."""
    time_types, others = params["time_types"], None
    if params.get("by_rules") and time_types is not None:
        others = [code for code in names.by_kind.get("time_type", {}) if code not in time_types]
        time_types = None
    return {
        **params,
        "performer_ids": names.ids("performer", params["performers"]),
        "time_type_ids": names.ids("time_type", time_types),
        "other_time_type_ids": names.ids("time_type", others) if others else None,
    }


def with_codes(names: Names, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
    """Rows whose last four columns are (performer key, resource, time type key, care type) with the
    performer's and time type's codes instead; None if the catalogue lacks a key or a code."""
    performers, time_types = names.codes_by_id.get("performer", {}), names.codes_by_id.get("time_type", {})
    resources, care_types = names.by_kind.get("resource", {}), names.by_kind.get("care_type", {})
    coded = []
    for *head, p, r, t, c in rows:
        performer, code = performers.get(p), time_types.get(t)
        if (
            (p is not None and performer is None)
            or code is None
            or not ((r is None or r in resources) and (c is None or c in care_types))
        ):
            return None
        coded.append((*head, performer, r, code, c))
    return coded


def _rows_with_names(
    call: Call, conn: psycopg.Connection, names: Names, sql: str, params: dict[str, Any]
) -> tuple[list[tuple[Any, ...]], Names]:
    """Run the search; reload the names once if a row has a key or code the remembered catalogue
    lacks, or the search names a performer it does not know (both added since)."""
    if params["performers"] and not all(names.knows("performer", p) for p in params["performers"]):
        names = call.units.names(conn, call.unit.hsa_id, reload=True)
    rows = conn.execute(sql, query_params(names, params)).fetchall()
    coded = with_codes(names, rows)
    if coded is None:
        names = call.units.names(conn, call.unit.hsa_id, reload=True)
        coded = with_codes(names, rows)
    if coded is None:  # the triggers refuse a slot naming another unit's rows: never seen
        raise RuntimeError(f"a free slot of {call.unit.hsa_id} names a key its catalogue lacks")
    return coded, names


def _search(
    call: Call,
    conn: psycopg.Connection,
    names: Names,
    sql: str,
    params: dict[str, Any],
    invited: bool,
    order: Callable[[tuple[Any, ...]], Any],
) -> tuple[list[tuple[Any, ...]], Names]:
    """Every search of the request (_searches), rows in one list in the query's `order` (each search's
    rows come in it; several are merged); the names, reloaded if a row needed it."""
    rows: list[tuple[Any, ...]] = []
    searches = _searches(call, params, names, invited)
    for _ in range(3):
        rows, read_with = [], names
        for search in searches:
            found, names = _rows_with_names(call, conn, names, sql, search)
            rows.extend(found)
        if names is read_with:  # no row named what the names lacked: the searches were the right ones
            break
        # the names were reloaded: a type added since has rules of its own (it may not be offered at
        # all, or in another window), so the searches are made again from them, and run again
        searches = _searches(call, params, names, invited)
    if len(searches) > 1 or order is _date_order:  # FREE_DATES_SQL orders by day only (it has keys, not codes)
        rows.sort(key=order)
    return rows, names


def get_available_timeslots(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    params, booking_id, names = _filters(call, request, conn)
    memory = call.free_slots
    if booking_id is None and memory is not None and memory.usable():
        remembered = _remembered_slots(call, memory, conn, params, names)
        if remembered is not None:
            return {"timeslotDetail": remembered}
    rows, names = _search(call, conn, names, FREE_SLOTS_SQL, params, booking_id is not None, _slot_order)
    deadline = _deadlines(call, names)
    return {
        "timeslotDetail": [_slot(call, names, row, booking_id, row[3] > call.now + deadline(row[6])) for row in rows]
    }


def _deadlines(call: Call, names: Names) -> Callable[[str], timedelta]:
    """The change deadline of a slot by its time type, for this call's consumer."""
    consumer = names.consumer_deadlines.get((call.rules_consumer or "").upper())
    default = timedelta(seconds=call.unit.change_deadline_seconds)
    if consumer is not None:
        return lambda code: consumer
    return lambda code: names.rules[code].change_deadline if code in names.rules else default


def _slot(call: Call, names: Names, row: tuple[Any, ...], booking_id: str | None, changeable: bool) -> Decoded:
    slot_id, start, end, _, performer, resource_id, tt_code, ct_code = row
    rules = names.rules.get(tt_code)
    return {
        "startTimeInclusive": start,
        "endTimeExclusive": end,
        "healthcare_facility": call.unit.hsa_id,
        "performer": performer,
        "bookingId": booking_id or f"{SLOT_PREFIX}{slot_id}",
        "purpose": rules.purpose if rules else None,
        "resourceName": names.get("resource", resource_id),
        "healthcare_facility_name": call.unit.name,
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


def _remembered_slots(
    call: Call, memory: FreeSlots, conn: psycopg.Connection, params: dict[str, Any], names: Names
) -> list[Written] | None:
    """The answer from the worker's memory: FREE_SLOTS_SQL's rows, rules and order, applied in
    Python to the remembered days; None when the memory cannot say (a code the names lack).

    A day's slots are in order of start, so a window is two bisections and, when every type has
    the same change deadline, so is the line between slots that can no longer be changed and those
    that can: an unfiltered day is then two slices of XML written before."""
    days = memory.slot_days(conn, call.unit, names, params["first_day"], params["last_day"])
    if days is None:
        return None
    deadline = _deadlines(call, names)
    uniform = _uniform_deadline(call, names)
    searches = _searches(call, params, names, invited=False)
    found: list[tuple[datetime, int, Written]] = []
    answer: list[Written] = []
    for search in searches:
        start, end = search["start"], search["end"]
        wanted = _wanted(search)
        for day in days:
            if day.end <= start or day.start >= end or not day.rows:
                continue

            def item(index: int, changeable: bool, day: Day = day) -> Decoded:
                return _slot(call, names, day.rows[index], None, changeable)

            lo, hi = bisect_left(day.starts, start), bisect_left(day.starts, end)
            if wanted is None and uniform is not None and len(searches) == 1:
                split = min(max(bisect_right(day.starts, call.now + uniform), lo), hi)
                if lo < split:
                    answer += memory.written(day, False, item)[lo:split]
                if split < hi:
                    answer += memory.written(day, True, item)[split:hi]
                continue
            for index in range(lo, hi):
                row = day.rows[index]
                if wanted is not None and not wanted(row[4], row[6], row[7]):
                    continue
                changeable = row[3] > call.now + deadline(row[6])
                found.append((row[3], row[0], memory.written(day, changeable, item)[index]))
    if len(searches) > 1:
        found.sort(key=lambda f: (f[0], f[1]))
    return answer + [text for _, _, text in found]


def _uniform_deadline(call: Call, names: Names) -> timedelta | None:
    """The change deadline when it is the same for every slot of the unit, for this consumer."""
    consumer = names.consumer_deadlines.get((call.rules_consumer or "").upper())
    if consumer is not None:
        return consumer
    deadlines = {rules.change_deadline for rules in names.rules.values()}
    if not deadlines:
        return timedelta(seconds=call.unit.change_deadline_seconds)
    return deadlines.pop() if len(deadlines) == 1 else None


def _wanted(search: dict[str, Any]) -> Callable[[str | None, str, str], bool] | None:
    """The search's performer, time type and care type filters, as one test of a row (None: none)."""
    performers, types, cares = (
        None if search[k] is None else frozenset(search[k]) for k in ("performers", "time_types", "care_types")
    )
    if performers is None and types is None and cares is None:
        return None
    return lambda performer, tt, ct: (
        (performers is None or performer in performers) and (types is None or tt in types)
        and (cares is None or ct in cares)
    )  # fmt: skip


def _slot_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """FREE_SLOTS_SQL's order: start, then id."""
    return (row[3], row[0])


def _date_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """FREE_DATES_SQL's order: day, then performer and resource (absent first), then time type."""
    day, performer, resource_id, tt_code, _ = row
    return (day, performer is not None, performer or "", resource_id is not None, resource_id or "", tt_code)


def get_available_dates(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    params, booking_id, names = _filters(call, request, conn)
    memory = call.free_slots
    rows = None
    if booking_id is None and memory is not None and memory.usable():
        rows = _remembered_dates(call, memory, conn, params, names)
    if rows is None:
        rows, names = _search(call, conn, names, FREE_DATES_SQL, params, booking_id is not None, _date_order)
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


def _remembered_dates(
    call: Call, memory: FreeSlots, conn: psycopg.Connection, params: dict[str, Any], names: Names
) -> list[tuple[Any, ...]] | None:
    """FREE_DATES_SQL's rows from the worker's memory of each day's kinds of free slot; None when it
    cannot say: a code the names lack, or a window that starts and ends inside one day (lead time
    and horizon on the same day), where the first and last start of a kind do not tell."""
    days = memory.kind_days(conn, call.unit, names, params["first_day"], params["last_day"])
    if days is None:
        return None
    searches = _searches(call, params, names, invited=False)
    rows: list[tuple[Any, ...]] = []
    for search in searches:
        start, end = search["start"], search["end"]
        wanted = _wanted(search)
        for day in days:
            if day.end <= start or day.start >= end:
                continue
            cut_start, cut_end = start > day.start, end < day.end
            if cut_start and cut_end:
                return None
            for performer, resource_id, tt, ct, first_start, last_start in day.rows:
                if (cut_start and last_start < start) or (cut_end and first_start >= end):
                    continue
                if wanted is not None and not wanted(performer, tt, ct):
                    continue
                rows.append((day.name, performer, resource_id, tt, ct))
    if len(searches) > 1:
        rows.sort(key=_date_order)
    return rows
