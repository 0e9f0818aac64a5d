"""Choosing a slot on staff's behalf, and running a staff change in the calendar core.

A slot is named by its id ("T123", as GetAvailableTimeslots and the day list show it) or by unit
and times (producer.calendar.slots.find_slot, the wire's rules: a time in the repeated autumn hour
matches either occurrence, the earlier wins; the id always names exactly one slot).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg

from producer.calendar.changes import change
from producer.calendar.ids import SLOT_PREFIX
from producer.calendar.refusals import Refusal
from producer.calendar.slots import SlotRow, find_slot, slot_by_reference, wall_readings
from producer.staff.errors import StaffError
from producer.sweden.identifiers import normalise_hsa_id
from producer.sweden.wall_time import format_ts


@dataclass(frozen=True)
class Timeslot:
    """A slot named by its unit and times (aware datetimes), narrowed by time type and performer."""

    unit: str
    start: datetime
    end: datetime
    time_type: str | None = None
    performer: str | None = None


SlotChoice = str | int | Timeslot


@contextmanager
def refusable(conn: psycopg.Connection) -> Iterator[None]:
    """A staff change in the calendar core's savepoint (its own transaction on an autocommit
    connection): a StaffError, a refusal or a lost race undoes all of it; a refusal (a race: the
    slot is taken) is told to staff as a StaffError with the refusal's field, staff text and code."""
    try:
        with change(conn):
            yield
    except Refusal as refusal:
        raise StaffError(refusal.field, refusal.staff, refusal.code) from None


def resolve(conn: psycopg.Connection, choice: SlotChoice | None, unit: str | None = None) -> SlotRow:
    """The slot chosen; with `unit` (the staff member's), only a slot of that unit."""
    row = _resolve(conn, choice)
    if unit is not None and row.unit_hsa_id != normalise_hsa_id(unit):
        raise StaffError("slot", f"{SLOT_PREFIX}{row.id} is not at {normalise_hsa_id(unit)}", "not_found")
    return row


def _resolve(conn: psycopg.Connection, choice: SlotChoice | None) -> SlotRow:
    if choice is None or choice == "":
        raise StaffError("slot", "choose a slot: its id (e.g. T123) or its unit, start and end")
    if isinstance(choice, Timeslot):
        return _by_times(conn, choice)
    reference = str(choice).strip().upper()
    if reference.isdigit():
        reference = f"{SLOT_PREFIX}{reference}"
    row = slot_by_reference(conn, reference)
    if row is None:
        raise StaffError("slot", f"no slot {str(choice)[:40]}", "not_found")
    return row


def _by_times(conn: psycopg.Connection, choice: Timeslot) -> SlotRow:
    for moment in (choice.start, choice.end):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise StaffError("slot", "start and end need a time zone")
    unit = normalise_hsa_id(choice.unit)
    row = find_slot(
        conn,
        unit,
        wall_readings(choice.start),
        wall_readings(choice.end),
        performer=(choice.performer or "").upper() or None,
        time_type=choice.time_type or None,
    )
    if row is None:
        shown = f"{unit} from {format_ts(choice.start)} to {format_ts(choice.end)}"
        raise StaffError("slot", f"no slot at {shown}", "not_found")
    return row
