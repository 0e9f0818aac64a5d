"""Slots: finding one (by its id, or by unit and times) and taking or releasing it for a booking.

A slot is taken with a conditional UPDATE (`… WHERE booking_pk IS NULL`): under READ COMMITTED a
racing transaction waits for the winner and then finds the row taken, so nobody double-books and
nobody deadlocks (design notes §2).

Times name a slot by Stockholm wall time, as the wire does: a wall time in the repeated autumn
hour matches a slot in either occurrence, the earlier wins; a slot's id ("T123") always names
exactly one slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from producer.calendar.ids import SLOT_PREFIX
from producer.sweden.wall_time import STOCKHOLM


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


# slot_named: the slot with its unit's HSA-id, time type's code and performer's HSA-id (migration 0009)
_SLOT_COLUMNS = (
    "id, unit_hsa_id, starts_at, ends_at, time_type_code, care_type_code, performer_hsa_id, resource_id, booking_pk"
)
# By id, as every booking change starts: the unit's HSA-id is its time type's (the same unit, the
# triggers see to it), one lookup fewer than slot_named's.
_BY_ID = """
SELECT s.id, t.unit_hsa_id, s.starts_at, s.ends_at, t.code, s.care_type_code, p.hsa_id, s.resource_id, s.booking_pk
FROM slot s JOIN time_type t ON t.id = s.time_type_id LEFT JOIN performer p ON p.id = s.performer_id
WHERE s.id = %s
"""


def wall_readings(moment: datetime) -> list[datetime]:
    """The instants that share `moment`'s Stockholm wall time, to the second: both occurrences of a
    time in the repeated autumn hour (the first first), one otherwise."""
    wall = moment.astimezone(STOCKHOLM).replace(microsecond=0)
    first, second = wall.replace(fold=0), wall.replace(fold=1)
    return [first] if first.utcoffset() == second.utcoffset() else [first, second]


def slot_by_reference(conn: psycopg.Connection, reference: str) -> SlotRow | None:
    """The slot named by an id as GetAvailableTimeslots returned it ("T123")."""
    if not reference.startswith(SLOT_PREFIX) or not reference[1:].isdigit():
        return None
    row = conn.execute(_BY_ID, (int(reference[1:]),)).fetchone()
    return SlotRow(*row) if row else None


def find_slot(
    conn: psycopg.Connection,
    unit_hsa_id: str,
    starts: list[datetime],
    ends: list[datetime],
    performer: str | None = None,
    resource: str | None = None,
    time_type: str | None = None,
) -> SlotRow | None:
    """The slot of the unit that starts at one of `starts` and ends at one of `ends` (wall_readings),
    narrowed by performer, resource and time type; the earliest, a free one before a taken one."""
    rows = conn.execute(
        f"SELECT {_SLOT_COLUMNS} FROM slot_named WHERE unit_hsa_id = %(unit)s"
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
            "resource": resource,
            "time_type": time_type,
        },
    ).fetchall()
    return SlotRow(*rows[0]) if rows else None


def take(conn: psycopg.Connection, slot_id: int, booking_pk: int) -> bool:
    """Take a free slot for a booking; False when someone else holds it (the change is then refused)."""
    cur = conn.execute("UPDATE slot SET booking_pk = %s WHERE id = %s AND booking_pk IS NULL", (booking_pk, slot_id))
    return cur.rowcount == 1


def release(conn: psycopg.Connection, booking_pk: int) -> None:
    conn.execute("UPDATE slot SET booking_pk = NULL WHERE booking_pk = %s", (booking_pk,))
