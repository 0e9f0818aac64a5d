"""Staff actions, a channel: invitations, screening, resident bookings. May import: calendar, platform, soap, sweden.

Invitations (one, or a screening call's batch) and bookings made, moved and cancelled on a
resident's behalf, with a unit's day list and a booking's history. Every change is the calendar
core's (producer.calendar); a refusal there reaches staff as a StaffError with its staff text.

The HTTP API and the `tidbok staff` command call these functions. Each takes a psycopg connection
(tuple rows, as the pool hands them out) and plain arguments, returns dataclasses (`jsonable` gives
their JSON form), and raises only :class:`StaffError` for input it cannot act on. A change runs in
one transaction of its own on an autocommit connection, or as a savepoint inside the caller's, and
writes its booking_event row and its EI outbox row in it, so the publisher sends it to EI.
"""

from producer.staff.actions import book, cancel, rebook
from producer.staff.actor import Staff
from producer.staff.checks import Contact
from producer.staff.errors import StaffError
from producer.staff.invitations import invite_open, invite_timed
from producer.staff.listing import booking, day, history
from producer.staff.results import (
    AlreadyInvited,
    BatchReport,
    BookingInfo,
    Change,
    DaySlot,
    Event,
    History,
    InvalidLine,
    Invited,
    jsonable,
)
from producer.staff.screening import invite_batch
from producer.staff.slots import SlotChoice, Timeslot

__all__ = [
    "AlreadyInvited",
    "BatchReport",
    "BookingInfo",
    "Change",
    "Contact",
    "DaySlot",
    "Event",
    "History",
    "InvalidLine",
    "Invited",
    "SlotChoice",
    "Staff",
    "StaffError",
    "Timeslot",
    "book",
    "booking",
    "cancel",
    "day",
    "history",
    "invite_batch",
    "invite_open",
    "invite_timed",
    "jsonable",
    "rebook",
]
