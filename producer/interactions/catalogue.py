"""GetAllTimeTypes, GetAllCareTypes, GetAllPerformers, GetAllHealthcareFacilities.

Nothing here selects on the resident, so the rule that agents (actorType subject_of_care_agent)
must not get resident-based answers holds for every caller.
"""

from __future__ import annotations

import psycopg

from producer.calendar.units import units_for_time_type
from producer.calendar.views import active_by_booking_id
from producer.interactions.call import Call
from producer.interactions.common import require_addressed_unit, require_valid_resident
from producer.soap.codec import Decoded
from producer.soap.envelope import client_fault


def get_all_time_types(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    require_addressed_unit(call, request)
    require_valid_resident(request)
    care_types = request.get("careTypeIDs") or None
    # a time type booked only through an invitation or by staff is not offered to residents
    rows = conn.execute(
        "SELECT name, code FROM time_type WHERE unit_hsa_id = %s AND self_booking"
        " AND (%s::text[] IS NULL OR care_type_code = ANY(%s::text[])) ORDER BY code",
        (call.unit.hsa_id, care_types, care_types),
    ).fetchall()
    return {"ListOfTimeTypes": [{"timeTypeName": name, "timeTypeId": code} for name, code in rows]}


def get_all_care_types(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    require_addressed_unit(call, request)
    require_valid_resident(request)
    time_types = request.get("timeTypeIDs") or None
    performers = [p.upper() for p in request.get("performer", [])] or None
    rows = conn.execute(
        """
        SELECT ct.name, ct.code FROM care_type ct
        WHERE ct.unit_hsa_id = %(unit)s
          AND (%(tt)s::text[] IS NULL OR EXISTS (
                SELECT 1 FROM time_type t WHERE t.unit_hsa_id = ct.unit_hsa_id
                  AND t.care_type_code = ct.code AND t.code = ANY(%(tt)s::text[])))
          AND (%(perf)s::text[] IS NULL OR EXISTS (
                SELECT 1 FROM slot s JOIN performer p ON p.id = s.performer_id
                WHERE p.unit_hsa_id = ct.unit_hsa_id AND p.hsa_id = ANY(%(perf)s::text[])
                  AND s.care_type_code = ct.code AND s.starts_at > %(now)s))
        ORDER BY ct.code
        """,
        {"unit": call.unit.hsa_id, "tt": time_types, "perf": performers, "now": call.now},
    ).fetchall()
    return {"careTypes": [{"careTypeName": name, "careTypeId": code} for name, code in rows]}


def get_all_performers(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    require_addressed_unit(call, request)
    require_valid_resident(request)
    time_types = request.get("timeTypeIDs") or None
    care_types = request.get("careTypeIDs") or None
    rows = conn.execute(
        """
        SELECT p.hsa_id, p.first_name, p.last_name, p.title FROM performer p
        WHERE p.unit_hsa_id = %(unit)s
          AND (%(tt)s::text[] IS NULL AND %(ct)s::text[] IS NULL OR EXISTS (
                SELECT 1 FROM slot s WHERE s.performer_id = p.id AND s.starts_at > %(now)s
                  AND (%(tt)s::text[] IS NULL OR s.time_type_id IN (
                        SELECT t.id FROM time_type t
                        WHERE t.unit_hsa_id = p.unit_hsa_id AND t.code = ANY(%(tt)s::text[])))
                  AND (%(ct)s::text[] IS NULL OR s.care_type_code = ANY(%(ct)s::text[]))))
        ORDER BY p.hsa_id
        """,
        {"unit": call.unit.hsa_id, "tt": time_types, "ct": care_types, "now": call.now},
    ).fetchall()
    return {
        "performerInfos": [
            {"perfomer": hsa_id, "firstName": first, "lastName": last, "title": title}
            for hsa_id, first, last, title in rows
        ]
    }


def get_all_healthcare_facilities(call: Call, request: Decoded, conn: psycopg.Connection) -> Decoded:
    require_addressed_unit(call, request)
    resident = require_valid_resident(request)
    booking_id = request.get("bookingId")
    if booking_id:
        view = active_by_booking_id(conn, booking_id)
        if view is None or view.unit_hsa_id != call.unit.hsa_id or view.subject_of_care != resident:
            raise client_fault("No booking or invitation with that bookingId for this resident at this care unit")
        rows = units_for_time_type(conn, call.unit.hsa_id, view.time_type_code)
    else:
        rows = conn.execute(
            """
            SELECT u.hsa_id, u.name FROM care_unit u
            WHERE (u.hsa_id = %(unit)s AND EXISTS (SELECT 1 FROM slot s WHERE s.unit_id = u.id))
               OR u.hsa_id IN (SELECT alternative_hsa_id FROM unit_alternative WHERE unit_hsa_id = %(unit)s)
            ORDER BY u.hsa_id = %(unit)s DESC, u.hsa_id
            """,
            {"unit": call.unit.hsa_id},
        ).fetchall()
    return {"healthcareFacilityInfos": [{"healthcare_facility": h, "healthcare_facility_name": n} for h, n in rows]}
