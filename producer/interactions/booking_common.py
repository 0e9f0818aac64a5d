"""What MakeBooking and UpdateBooking share: refusals, finding the requested slot, booking ids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import errors as pg_errors

from producer.interactions import resident_texts as texts
from producer.interactions.call import Call
from producer.soap.codec import Decoded
from producer.sweden.identifiers import check_subject_of_care_id
from producer.sweden.wall_time import WireFormatError, parse_ts

SLOT_PREFIX = "T"  # a slot as availability names it, and a booking's id under the per-slot policy
BOOKING_PREFIX = "B"
INVITATION_PREFIX = "K"  # an invitation's id (kallelse), kept through rebookings under `stable`
# A lost race that reaches a constraint instead of the conditional update is still a lost race.
RACE_ERRORS = (
    pg_errors.ExclusionViolation,
    pg_errors.UniqueViolation,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.LockNotAvailable,
)


class Refused(Exception):
    """A logical error: nothing was changed, and the resident is told why (resultCode ERROR)."""

    def __init__(self, text: str, code: str = "ERROR") -> None:
        super().__init__(text)
        self.text = text
        self.code = code


def run_refusable(work: Callable[[], Decoded], conn: psycopg.Connection) -> Decoded:
    """Run a change in a savepoint: a refusal or a lost race undoes all of it and becomes ERROR."""
    try:
        with conn.transaction():
            return work()
    except Refused as refusal:
        return {"resultCode": refusal.code, "resultText": refusal.text}
    except RACE_ERRORS:
        return {"resultCode": "ERROR", "resultText": texts.SLOT_TAKEN}


def resident_of(call: Call, timeslot: Decoded) -> str:
    """The resident the booking is for: the timeslot's subject_of_care, else a resident Actor."""
    resident = timeslot.get("subject_of_care") or (call.actor_id if call.actor_type == "subject_of_care" else None)
    if not resident:
        raise Refused(texts.MISSING_RESIDENT)
    if check_subject_of_care_id(resident):
        raise Refused(texts.INVALID_RESIDENT)
    return resident


@dataclass(frozen=True)
class SlotRow:
    id: int
    unit_hsa_id: str
    starts_at: datetime
    ends_at: datetime
    time_type_code: str
    care_type_code: str | None
    performer_hsa_id: str | None
    resource_id: str | None
    booking_pk: int | None


_SLOT_COLUMNS = (
    "id, unit_hsa_id, starts_at, ends_at, time_type_code, care_type_code, performer_hsa_id, resource_id, booking_pk"
)


def _instants(text: str) -> list[datetime]:
    """Both readings of a wall time in the repeated autumn hour; one reading otherwise."""
    try:
        first = parse_ts(text)
    except WireFormatError:
        raise Refused(texts.INVALID_TIME) from None
    second = first.replace(fold=1)
    return [first] if first.utcoffset() == second.utcoffset() else [first, second]


def slot_by_reference(conn: psycopg.Connection, reference: str) -> SlotRow | None:
    """The slot named by an id as GetAvailableTimeslots returned it ("T123")."""
    if not reference.startswith(SLOT_PREFIX) or not reference[1:].isdigit():
        return None
    row = conn.execute(f"SELECT {_SLOT_COLUMNS} FROM slot WHERE id = %s", (int(reference[1:]),)).fetchone()
    return SlotRow(*row) if row else None


def find_slot(conn: psycopg.Connection, unit_hsa_id: str, timeslot: Decoded, time_type: str | None) -> SlotRow:
    """The slot the consumer passed back: unit and start/end, narrowed by performer, resource and time type.

    A wall time in the repeated autumn hour matches a slot in either occurrence; the earlier wins.
    """
    if not timeslot.get("startTimeInclusive") or not timeslot.get("endTimeExclusive"):
        raise Refused(texts.INVALID_TIME)
    starts = _instants(timeslot["startTimeInclusive"])
    ends = _instants(timeslot["endTimeExclusive"])
    performer = (timeslot.get("performer") or "").upper() or None
    rows = conn.execute(
        f"SELECT {_SLOT_COLUMNS} FROM slot WHERE unit_hsa_id = %(unit)s"
        " AND starts_at = ANY(%(starts)s) AND ends_at = ANY(%(ends)s)"
        " AND (%(performer)s::text IS NULL OR performer_hsa_id = %(performer)s)"
        " AND (%(resource)s::text IS NULL OR resource_id = %(resource)s)"
        " AND (%(time_type)s::text IS NULL OR time_type_code = %(time_type)s)"
        " ORDER BY starts_at, booking_pk IS NOT NULL, id",
        {
            "unit": unit_hsa_id,
            "starts": starts,
            "ends": ends,
            "performer": performer,
            "resource": timeslot.get("resourceID") or None,
            "time_type": time_type or timeslot.get("timeTypeID") or None,
        },
    ).fetchall()
    if not rows:
        raise Refused(texts.SLOT_NOT_FOUND)
    return SlotRow(*rows[0])


def require_future(slot: SlotRow, now: datetime) -> None:
    if slot.starts_at <= now:
        raise Refused(texts.SLOT_PASSED)


def booking_id_for(policy: str, pk: int, slot_id: int, current: str | None) -> str:
    """A-4: `stable` keeps the id through rebookings; `per-slot` makes it the booked slot's id."""
    if policy == "per-slot":
        return f"{SLOT_PREFIX}{slot_id}"
    return current or f"{BOOKING_PREFIX}{pk}"


def change_deadline(call: Call) -> timedelta:
    return timedelta(seconds=call.unit.change_deadline_seconds)
