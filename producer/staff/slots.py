"""Choosing and taking a slot on staff's behalf, with the pieces SOAP bookings use.

A slot is named by its id ("T123", as GetAvailableTimeslots and the day list show it) or by unit
and times (booking_common.find_slot, the wire's rules: a time in the repeated autumn hour matches
either occurrence, the earlier wins; the id always names exactly one slot). It is taken with the
conditional UPDATE, so a slot is never held twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg

from producer.calendar.bookings import take_slot
from producer.interactions.booking_common import (
    RACE_ERRORS,
    SLOT_PREFIX,
    Refused,
    SlotRow,
    find_slot,
    slot_by_reference,
)
from producer.staff.errors import StaffError
from producer.sweden.identifiers import normalise_hsa_id
from producer.sweden.wall_time import format_ts

SLOT_TAKEN = "is already taken: choose a free slot (never double-booked)"


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
    """run_refusable for staff: the change runs in a savepoint (its own transaction on an autocommit
    connection); a StaffError or a lost race undoes all of it, and a race is a conflict on the slot."""
    try:
        with conn.transaction():
            yield
    except RACE_ERRORS:
        raise StaffError("slot", SLOT_TAKEN, "conflict") from None


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
    wire = {
        "startTimeInclusive": format_ts(choice.start),
        "endTimeExclusive": format_ts(choice.end),
        "performer": choice.performer,
        "timeTypeID": choice.time_type,
    }
    try:
        return find_slot(conn, unit, wire, None)
    except Refused:
        shown = f"{unit} from {wire['startTimeInclusive']} to {wire['endTimeExclusive']}"
        raise StaffError("slot", f"no slot at {shown}", "not_found") from None


def require_bookable(slot: SlotRow, now: datetime) -> None:
    """A future slot nobody holds (checked before writing; the conditional take has the last word)."""
    if slot.starts_at <= now:
        raise StaffError("slot", f"{SLOT_PREFIX}{slot.id} has already started", "conflict")
    if slot.booking_pk is not None:
        raise StaffError("slot", f"{SLOT_PREFIX}{slot.id} {SLOT_TAKEN}", "conflict")


def take(conn: psycopg.Connection, slot: SlotRow, booking_pk: int) -> None:
    """The conditional take; losing it undoes the change (the caller runs in `refusable`)."""
    if not take_slot(conn, slot.id, booking_pk):
        raise StaffError("slot", f"{SLOT_PREFIX}{slot.id} {SLOT_TAKEN}", "conflict")
