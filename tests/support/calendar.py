"""A producer's calendar in tests: Stockholm days and wire times, slots, and free slots to book.

Times are written as the wire carries them (TS, Stockholm wall time) by the tests' own code, not
the producer's: tests judge the producer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import class_row, tuple_row

from producer.calendar.history import publish_change
from support.server import ProducerServer

STOCKHOLM = ZoneInfo("Europe/Stockholm")
CARE_TYPE = {"LAK": "ALLM", "SSK": "ALLM", "PROV": "LAB"}  # the demo's care type of each time type

# A slot row as the Slot dataclass takes it (also by position, in its field order).
SLOT_COLUMNS = (
    "id, unit_hsa_id AS unit, starts_at, ends_at, time_type_code AS time_type,"
    " performer_hsa_id AS performer, resource_id AS resource"
)


# A slot written by its unit's HSA-id, its time type's code (care type: given, else the time type's)
# and its performer's HSA-id: the slot table holds their integer keys (migration 0009).
_INSERT_SLOT = """
INSERT INTO slot (unit_id, starts_at, ends_at, time_type_id, care_type_code, performer_id, resource_id)
SELECT u.id, %(start)s, %(end)s, t.id, coalesce(%(care_type)s, t.care_type_code), p.id, %(resource)s
FROM care_unit u JOIN time_type t ON t.unit_hsa_id = u.hsa_id AND t.code = %(time_type)s
LEFT JOIN performer p ON p.unit_hsa_id = u.hsa_id AND p.hsa_id = %(performer)s
WHERE u.hsa_id = %(unit)s AND (%(performer)s::text IS NULL OR p.id IS NOT NULL)
RETURNING id
"""


def insert_slot(
    conn: psycopg.Connection[Any],
    unit: str,
    start: datetime,
    end: datetime,
    time_type: str,
    care_type: str | None = None,
    performer: str | None = None,
    resource: str | None = None,
) -> int:
    """A new slot, written as a test needs it (the triggers check it as any other); its id."""
    values = {"unit": unit, "start": start, "end": end, "time_type": time_type, "care_type": care_type,
              "performer": performer, "resource": resource}  # fmt: skip
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_INSERT_SLOT, values).fetchone()
    assert row is not None, f"no time type {time_type} (or performer {performer}) at {unit}"
    return int(row[0])


# -- days and wire times --------------------------------------------------------------------------


def past_start(conn: psycopg.Connection[Any], hour: int) -> datetime:
    """A start in the past where no slot is: days before the calendar's first slot (on some weekdays
    the demo's calendar holds past days of its own), at its `hour`-th hour: one hour of its own per
    move, so moved slots never overlap."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(
            "SELECT date_trunc('hour', least(now(), min(starts_at))) - interval '3 days' + make_interval(hours => %s)"
            " FROM slot",
            (hour,),
        ).fetchone()
    assert row is not None
    return row[0]


def wire(moment: datetime) -> str:
    """Stockholm wall time as the wire carries it (TS)."""
    return moment.astimezone(STOCKHOLM).strftime("%Y%m%d%H%M%S")


def wire_date(moment: datetime) -> str:
    return moment.astimezone(STOCKHOLM).strftime("%Y%m%d")


def today() -> date:
    return datetime.now(STOCKHOLM).date()


def weekday_on_or_after(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def last_sunday(year: int, month: int) -> date:
    """The month's last Sunday (Europe's DST changes: March and October)."""
    day = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() - 6) % 7)


# -- slots ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    id: int
    unit: str
    starts_at: datetime
    ends_at: datetime
    time_type: str
    performer: str | None
    resource: str | None

    @property
    def start(self) -> str:
        return wire(self.starts_at)

    @property
    def day(self) -> date:
        """The Stockholm date of the start: what a search by date names (not the UTC date)."""
        return self.starts_at.astimezone(STOCKHOLM).date()

    @property
    def end(self) -> str:
        return wire(self.ends_at)

    @property
    def ref(self) -> str:
        """The slot's own id as GetAvailableTimeslots hands it out."""
        return f"T{self.id}"

    def timeslot(self, resident: str | None, booking_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        """A requestedTimeslot naming this slot by its times (and a bookingId when given)."""
        fields = {
            "startTimeInclusive": self.start,
            "endTimeExclusive": self.end,
            "healthcare_facility": self.unit,
            "performer": self.performer,
            "bookingId": booking_id,
            "subject_of_care": resident,
            "resourceID": self.resource,
            "timeTypeID": self.time_type,
        }
        fields.update(overrides)
        return fields


class CalendarDb:
    """A producer's database as a test module reads it: an autocommit connection with dict rows, and
    free slots handed out at most once, so the module's tests never meet in a slot."""

    def __init__(self, server: ProducerServer) -> None:
        self.server = server
        self.db = server.connect(dict_rows=True)
        self._used: set[int] = set()

    def close(self) -> None:
        self.db.close()

    def one(self, query: str, *params: Any) -> Any:
        return self.db.execute(query, params).fetchone()

    def rows(self, query: str, *params: Any) -> list[dict[str, Any]]:
        return self.db.execute(query, params).fetchall()

    def slot(self, slot_id: int) -> Slot:
        with self.db.cursor(row_factory=class_row(Slot)) as cur:
            slot = cur.execute(f"SELECT {SLOT_COLUMNS} FROM slot_named WHERE id = %s", (slot_id,)).fetchone()
        assert slot is not None, slot_id
        return slot

    def free_slot(self, unit: str, time_type: str, last: bool = False) -> Slot:
        """A free slot at least two days ahead that this module has not been given: the first one, or
        with ``last`` the last one (far from where other modules on the same producer take theirs)."""
        order = "starts_at DESC, id" if last else "starts_at, id"
        row = self.one(
            "SELECT id FROM slot_named WHERE unit_hsa_id = %s AND time_type_code = %s AND booking_pk IS NULL"
            " AND starts_at > now() + interval '2 days' AND NOT id = ANY(%s::bigint[])"
            f" ORDER BY {order} LIMIT 1",
            unit,
            time_type,
            list(self._used),
        )
        assert row is not None, f"no free {time_type} slot left at {unit}"
        self.claim(row["id"])
        return self.slot(row["id"])

    def claim(self, slot_id: int) -> None:
        """Keep free_slot from handing out a slot the test found or made itself."""
        assert slot_id not in self._used
        self._used.add(slot_id)

    def holder(self, slot_id: int) -> int | None:
        return self.one("SELECT booking_pk FROM slot WHERE id = %s", slot_id)["booking_pk"]

    def slot_of(self, pk: int) -> int | None:
        row = self.one("SELECT id FROM slot WHERE booking_pk = %s", pk)
        return row["id"] if row else None

    def outbox(self, pk: int) -> list[dict[str, Any]]:
        return self.rows("SELECT reason, before, after FROM ei_outbox WHERE booking_pk = %s ORDER BY id", pk)


def staff_invitation(
    db: psycopg.Connection,
    resident: str,
    slot: Slot | None,
    unit: str,
    *,
    purpose: str | None = None,
    names: tuple[str, str] | None = None,
    booking_id: str | None = None,
) -> str:
    """A clinic's invitation as the staff tools write it, queued for EI in the same transaction: timed
    at a free slot when given one, otherwise an open PROV invitation at `unit`, valid 30 days from
    today. Its id is K<pk> unless given; returns the id."""
    time_type = slot.time_type if slot else "PROV"
    first_name, last_name = names or (None, None)
    now = datetime.now(UTC)
    with db.transaction(), db.cursor(row_factory=tuple_row) as cur:
        pk = cur.execute("SELECT nextval(pg_get_serial_sequence('booking', 'pk'))").fetchone()[0]
        booking_id = booking_id or f"K{pk}"
        cur.execute(
            "INSERT INTO booking (pk, booking_id, unit_hsa_id, kind, subject_of_care, first_name, last_name, purpose,"
            " time_type_code, care_type_code, invitation_date, valid_until)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                pk,
                booking_id,
                slot.unit if slot else unit,
                "timed_invitation" if slot else "open_invitation",
                resident,
                first_name,
                last_name,
                purpose,
                time_type,
                CARE_TYPE[time_type],
                None if slot else now.astimezone(STOCKHOLM).date(),
                None if slot else now + timedelta(days=30),
            ),
        )
        if slot is not None:
            taken = cur.execute(
                "UPDATE slot SET booking_pk = %s WHERE id = %s AND booking_pk IS NULL", (pk, slot.id)
            ).rowcount
            assert taken == 1, f"slot {slot.id} is not free"
        publish_change(db, pk, "staff", now)  # as staff tools do: the invitation reaches the EI outbox
    return booking_id


def unused_free_slot(db: psycopg.Connection[Any], unit: str, used: set[int]) -> Slot:
    """A free LAK slot of `unit` more than three days ahead (changeable: the deadline is 24 h) that
    is not in `used`; it is added to `used`."""
    slot = (
        db.cursor(row_factory=class_row(Slot))
        .execute(
            f"SELECT {SLOT_COLUMNS} FROM slot_named WHERE unit_hsa_id = %s AND time_type_code = 'LAK'"
            " AND booking_pk IS NULL AND starts_at > now() + interval '3 days' AND NOT id = ANY(%s)"
            " ORDER BY starts_at, id LIMIT 1",
            (unit, list(used)),
        )
        .fetchone()
    )
    assert slot is not None, "no free slot left"
    used.add(slot.id)
    return slot
