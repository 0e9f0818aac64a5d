"""Every change of a booking: book, book an invitation, rebook, cancel, and expire. Each checks the
rules the change must meet, writes the booking and its slot, and its history and EI outbox rows,
all in the caller's change (a savepoint: see `change`), or refuses with a Refusal and writes nothing.

The channel (producer.calendar.policy) decides the few documented differences: residents are
bound by the change deadline and the time type's booking rules (producer.calendar.rules) and staff
are not, except a resident's limit of bookings; a timed invitation moved by staff stays an
invitation; a resident's resend is answered with the booking it made.

What a channel finds before it calls (which booking a request names, which slot, whether the
caller may see it) stays with the channel: a SOAP request and a staff command name them
differently. The order of the checks here is the order either channel has always checked in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from producer.calendar import history, refusals, rules, slots
from producer.calendar import resident_texts as texts
from producer.calendar.ids import BOOKING_PREFIX, booking_id_for, slot_ref
from producer.calendar.outbox import booked_post, ei_post
from producer.calendar.policy import SWEEPER_ACTOR, Actor
from producer.calendar.refusals import Refusal
from producer.calendar.slots import SlotRow
from producer.calendar.units import units_for_time_type
from producer.calendar.views import BookingView, view_by_pk

# A lost race that reaches a constraint instead of the conditional update is still a lost race.
RACE_ERRORS = (
    pg_errors.ExclusionViolation,
    pg_errors.UniqueViolation,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.LockNotAvailable,
)
# What a booking knows of how to reach the resident (MakeBooking's subject_of_care_info, a staff
# member's Contact), and the visit's reason and notification; all optional.
CONTACT_COLUMNS = (
    "first_name", "middle_name", "last_name", "phone", "email", "address", "coaddress", "reason", "notification",
)  # fmt: skip
ContactColumns = Mapping[str, str | None]  # column name -> value; a column left out is None


@dataclass(frozen=True)
class Outcome:
    """The booking a change left; `changed` is False when there was nothing to do (cancelled already,
    moved to the slot it holds, a resident's booking sent again)."""

    pk: int
    booking_id: str
    changed: bool


@contextmanager
def change(conn: psycopg.Connection) -> Iterator[None]:
    """Run a change in a savepoint (its own transaction on an autocommit connection): a Refusal or a
    lost race undoes all of it, and a lost race is refused as a taken slot."""
    try:
        with conn.transaction():
            yield
    except RACE_ERRORS:
        raise refusals.race() from None


# A new booking and its slot in one round trip: the key drawn, the booking written, the slot taken
# if it is still free (else no row in taken, and the change is refused and rolled back).
_BOOK = """
WITH n AS (SELECT nextval(pg_get_serial_sequence('booking', 'pk')) AS pk),
b AS (
    INSERT INTO booking (pk, booking_id, unit_hsa_id, kind, subject_of_care, first_name, middle_name, last_name,
                         phone, email, address, coaddress, reason, notification, time_type_code, care_type_code,
                         healthcare_facility_med, consumer)
    SELECT n.pk, coalesce(%(booking_id)s, %(prefix)s || n.pk), %(unit)s, 'booking', %(resident)s, %(first_name)s,
           %(middle_name)s, %(last_name)s, %(phone)s, %(email)s, %(address)s, %(coaddress)s, %(reason)s,
           %(notification)s, %(time_type)s, %(care_type)s, %(med)s, %(consumer)s
    FROM n
    RETURNING pk, booking_id
), taken AS (
    UPDATE slot SET booking_pk = (SELECT pk FROM b) WHERE id = %(slot)s AND booking_pk IS NULL RETURNING id
)
SELECT b.pk, b.booking_id, EXISTS (SELECT 1 FROM taken) FROM b
"""
_BOOK_INVITATION = (
    "UPDATE booking SET kind = 'booking', booking_id = %(booking_id)s, unit_hsa_id = %(unit)s,"
    " care_type_code = %(care_type)s, first_name = %(first_name)s, middle_name = %(middle_name)s,"
    " last_name = %(last_name)s, phone = %(phone)s, email = %(email)s, address = %(address)s,"
    " coaddress = %(coaddress)s, reason = %(reason)s, notification = %(notification)s,"
    " healthcare_facility_med = coalesce(%(med)s, healthcare_facility_med), consumer = %(consumer)s,"
    " updated_at = now() WHERE pk = %(pk)s"
)
# A move: new id, unit, kind and care type; the names and contact details a resident sends along
# replace those kept, what they leave out stays.
_MOVE = (
    "UPDATE booking SET booking_id = %(booking_id)s, unit_hsa_id = %(unit)s, kind = %(kind)s,"
    " care_type_code = %(care_type)s, reason = coalesce(%(reason)s, reason),"
    " first_name = coalesce(%(first_name)s, first_name), middle_name = coalesce(%(middle_name)s, middle_name),"
    " last_name = coalesce(%(last_name)s, last_name),"
    " notification = coalesce(%(notification)s, notification), phone = coalesce(%(phone)s, phone),"
    " email = coalesce(%(email)s, email), address = coalesce(%(address)s, address),"
    " coaddress = coalesce(%(coaddress)s, coaddress), updated_at = now() WHERE pk = %(pk)s"
)


def _contact(contact: ContactColumns | None) -> dict[str, str | None]:
    """The contact columns, every one present; what a resident wrote is checked for length here, so
    every channel keeps it whole or refuses it."""
    given = contact or {}
    values = {column: given.get(column) for column in CONTACT_COLUMNS}
    rules.check_texts(**values)
    return values


def _changeable(conn: psycopg.Connection, actor: Actor, view: BookingView, now: datetime) -> bool:
    """Before the change deadline: the calling consumer's own at the unit, else the time type's or unit's."""
    return view.changeable(now, rules.consumer_deadline(conn, view.unit_hsa_id, actor.consumer))


def _with_overrides(details: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """The rules staff passed by, named in the history row (producer.calendar.rules)."""
    return {**details, "overrides": overrides} if overrides else details


def check_free(
    conn: psycopg.Connection, actor: Actor, slot: SlotRow, now: datetime, resident: str | None
) -> Outcome | None:
    """A future slot nobody holds (checked before writing; the conditional take has the last word).
    A resident's own active booking of it is that booking sent again: its Outcome (unchanged)."""
    if slot.starts_at <= now:
        raise refusals.slot_started(slot.id)
    if slot.booking_pk is not None:
        if actor.channel.answers_resends and resident is not None:
            holder = view_by_pk(conn, slot.booking_pk)
            if holder.status == "active" and holder.subject_of_care == resident:
                return Outcome(holder.pk, holder.booking_id, False)
        raise refusals.slot_taken(slot.id)
    return None


def _bookable_at(conn: psycopg.Connection, slot: SlotRow, home: str | None) -> None:
    """A booking of `home`'s may be made at the slot's unit: home itself, or a unit that may be booked
    instead of it for the slot's time type. None: the channel chose the slot at its own unit."""
    if home is None or slot.unit_hsa_id == home:
        return
    if slot.unit_hsa_id not in {h for h, _ in units_for_time_type(conn, home, slot.time_type_code)}:
        staff = f"a {slot.time_type_code} time at {home} may not be booked at {slot.unit_hsa_id}"
        raise Refusal("slot", texts.WRONG_UNIT, staff, "invalid")


def book(
    conn: psycopg.Connection,
    actor: Actor,
    slot: SlotRow,
    *,
    resident: str,
    now: datetime,
    contact: ContactColumns | None = None,
    home: str | None = None,
    med: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Outcome:
    """A new booking of a free slot for the resident; its id follows the actor's booking-id policy.

    `home`: the unit the booking is made through (SOAP's addressed unit), when the slot may be at a
    unit that is booked instead of it; `med`: the care unit with medical responsibility it was made
    for (MakeBooking's healthcare_facility_med); `extra`: what the channel adds to the history row."""
    resent = check_free(conn, actor, slot, now, resident)
    if resent is not None:
        return resent
    _bookable_at(conn, slot, home)
    values = _contact(contact)
    type_rules = rules.type_rules(conn, slot.unit_hsa_id, slot.time_type_code)
    overrides = rules.check_new_booking(conn, actor, type_rules, resident, slot.starts_at, now)
    per_slot = actor.booking_id_policy == "per-slot"  # stable: "B" + the key the database draws
    pk, booking_id, taken = conn.execute(
        _BOOK,
        {
            **values,
            "med": med,
            "consumer": actor.consumer,
            "booking_id": booking_id_for(actor.booking_id_policy, 0, slot.id, None) if per_slot else None,
            "prefix": BOOKING_PREFIX,
            "unit": slot.unit_hsa_id,
            "resident": resident,
            "time_type": slot.time_type_code,
            "care_type": slot.care_type_code,
            "slot": slot.id,
        },
    ).fetchone()
    if not taken:
        raise refusals.slot_taken(slot.id)
    details = actor.details({"slot": slot.id, "unit": slot.unit_hsa_id, "booking_id": booking_id}, extra)
    after = booked_post(resident, slot.unit_hsa_id, booking_id, slot.starts_at, now)
    history.write(conn, actor, pk, "book", _with_overrides(details, overrides), None, after)
    return Outcome(pk, booking_id, True)


def book_invitation(
    conn: psycopg.Connection,
    actor: Actor,
    invitation: BookingView,
    slot: SlotRow,
    *,
    now: datetime,
    contact: ContactColumns | None = None,
    med: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Outcome:
    """An open invitation booked at a free slot: it becomes a booking (the resident's contact details
    as given), at its unit or one its time type may be booked at instead. An invitation that has
    expired is refused whether or not the sweeper has been by."""
    if invitation.valid_until is not None and invitation.valid_until <= now:
        raise Refusal("bookingId", texts.INVITATION_EXPIRED, f"invitation {invitation.booking_id} is no longer valid")
    check_free(conn, actor, slot, now, None)
    _bookable_at(conn, slot, invitation.unit_hsa_id)
    given = _contact(contact)
    overrides = rules.check_slot(conn, actor, slot.unit_hsa_id, slot.time_type_code, slot.starts_at, now)
    pk = invitation.pk
    booking_id = booking_id_for(actor.booking_id_policy, pk, slot.id, invitation.booking_id)
    values = {"booking_id": booking_id, "unit": slot.unit_hsa_id, "care_type": slot.care_type_code, "pk": pk}
    conn.execute(_BOOK_INVITATION, {**given, **values, "med": med, "consumer": actor.consumer})
    if not slots.take(conn, slot.id, pk):
        raise refusals.slot_taken(slot.id)
    details = actor.details({"slot": slot.id, "unit": slot.unit_hsa_id, "booking_id": booking_id}, extra)
    after = booked_post(invitation.subject_of_care, slot.unit_hsa_id, booking_id, slot.starts_at, now)
    history.write(conn, actor, pk, "book_invitation", _with_overrides(details, overrides), invitation.ei_post, after)
    return Outcome(pk, booking_id, True)


def rebook(
    conn: psycopg.Connection,
    actor: Actor,
    view: BookingView,
    slot: SlotRow,
    *,
    now: datetime,
    contact: ContactColumns | None = None,
    allowed: set[str] | None = None,
) -> Outcome:
    """Move a booking or a timed invitation to another free slot of its time type, atomically (the old
    slot is released and the new one taken in the change's savepoint), or give an open invitation
    its time (staff). Moving to the slot it holds changes nothing.

    A resident's move makes an invitation a booking; staff's keeps a timed invitation one, with its
    id. A booking's id follows the policy (per-slot: the new slot's id). `allowed`: the units the
    booking may move to, when the channel has read them already; `contact`: details that replace
    those kept (what is None stays)."""
    if slot.id == view.slot_id:
        return Outcome(view.pk, view.booking_id, False)
    if view.starts_at is not None and view.starts_at <= now:
        raise Refusal("booking_id", texts.ALREADY_PASSED, f"{view.booking_id} has already started and cannot be moved")
    if view.kind == "open_invitation" and not actor.channel.moves_open_invitations:
        staff = f"{view.booking_id} is an open invitation: book it"
        raise Refusal("booking_id", texts.OPEN_INVITATION_REBOOK, staff)
    if view.is_invitation and view.valid_until is not None and view.valid_until <= now:
        raise Refusal("booking_id", texts.INVITATION_EXPIRED, f"invitation {view.booking_id} is no longer valid")
    if actor.channel.deadline_binds and not _changeable(conn, actor, view, now):
        raise Refusal("booking_id", texts.TOO_LATE_TO_REBOOK, f"{view.booking_id} is past the change deadline")
    if slot.time_type_code != view.time_type_code:
        raise Refusal(
            "slot", texts.SLOT_NOT_FOUND,
            f"{slot_ref(slot.id)} is a {slot.time_type_code} time; {view.booking_id} is {view.time_type_code}",
            "invalid",
        )  # fmt: skip
    if allowed is None:
        allowed = {view.unit_hsa_id} | {h for h, _ in units_for_time_type(conn, view.unit_hsa_id, view.time_type_code)}
    if slot.unit_hsa_id not in allowed:
        raise Refusal(
            "slot", texts.WRONG_UNIT,
            f"a {view.time_type_code} time at {view.unit_hsa_id} may not be moved to {slot.unit_hsa_id}", "invalid",
        )  # fmt: skip
    check_free(conn, actor, slot, now, None)
    given = _contact(contact)
    overrides = rules.check_slot(conn, actor, slot.unit_hsa_id, slot.time_type_code, slot.starts_at, now)

    slots.release(conn, view.pk)
    if not slots.take(conn, slot.id, view.pk):
        raise refusals.slot_taken(slot.id)
    if view.kind == "timed_invitation" and actor.channel.moved_invitation_stays:
        kind, booking_id, action = "timed_invitation", view.booking_id, "rebook"
    else:
        kind = "booking"
        booking_id = booking_id_for(actor.booking_id_policy, view.pk, slot.id, view.booking_id)
        action = "book_invitation" if view.kind == "open_invitation" else "rebook"
    values = {"booking_id": booking_id, "unit": slot.unit_hsa_id, "kind": kind, "care_type": slot.care_type_code}
    conn.execute(_MOVE, {**given, **values, "pk": view.pk})
    details = actor.details(
        {
            "from_slot": view.slot_id,
            "to_slot": slot.id,
            "from_unit": view.unit_hsa_id,
            "to_unit": slot.unit_hsa_id,
            "from_booking_id": view.booking_id,
            "booking_id": booking_id,
            "was_invitation": view.is_invitation,
        }
    )
    after = ei_post(
        status="active",
        kind=kind,
        subject_of_care=view.subject_of_care,
        unit_hsa_id=slot.unit_hsa_id,
        booking_id=booking_id,
        starts_at=slot.starts_at,
        invitation_date=view.invitation_date,
        valid_until=view.valid_until,
        now=now,
    )
    history.write(conn, actor, view.pk, action, _with_overrides(details, overrides), view.ei_post, after)
    return Outcome(view.pk, booking_id, True)


def cancel(
    conn: psycopg.Connection,
    actor: Actor,
    view: BookingView,
    *,
    now: datetime,
    message: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Outcome:
    """Cancel a booking or an invitation (timed or open): its slot is free at once and its EI post is
    deleted. Cancelling again changes nothing. `message`: the resident's, kept with the booking."""
    if view.status == "cancelled":
        return Outcome(view.pk, view.booking_id, False)
    if view.status != "active":
        raise Refusal("booking_id", texts.ALREADY_PASSED, f"invitation {view.booking_id} has expired")
    if view.starts_at is not None and view.starts_at <= now:
        raise Refusal(
            "booking_id", texts.ALREADY_PASSED, f"{view.booking_id} has already started and cannot be cancelled"
        )
    if view.kind == "open_invitation" and not actor.channel.moves_open_invitations:
        # seed 001 §5.14.2: a resident can only book an open invitation (GetBookingDetails says so)
        raise Refusal("booking_id", texts.OPEN_INVITATION_CANCEL, f"{view.booking_id} is an open invitation")
    if actor.channel.deadline_binds and not _changeable(conn, actor, view, now):
        raise Refusal("booking_id", texts.TOO_LATE_TO_CANCEL, f"{view.booking_id} is past the change deadline")
    rules.check_texts(message=message)
    slots.release(conn, view.pk)
    conn.execute(
        "UPDATE booking SET status = 'cancelled', cancel_message = %s, updated_at = now() WHERE pk = %s",
        (message, view.pk),
    )
    base = {"slot": view.slot_id, "booking_id": view.booking_id, "was_invitation": view.is_invitation}
    if message is not None:
        base["message"] = message  # the resident's message to the clinic, in the history staff read
    details = actor.details(base, extra)
    history.write(conn, actor, view.pk, "cancel", details, view.ei_post, None)
    return Outcome(view.pk, view.booking_id, True)


def expire_due(conn: psycopg.Connection, now: datetime, limit: int) -> int:
    """Remove from EI what stopped being current without anyone touching it (TKB §3.4): a booking
    whose start has passed, an invitation whose validity ended; the invitation also expires (no
    longer bookable; a timed one frees its slot). Up to `limit`, oldest first, skipping posts another
    transaction holds; returns how many. Run it in a transaction (the sweeper's, which holds its lock)."""
    swept = 0
    rows = conn.execute(
        "SELECT pk, kind, ei_post, kind <> 'booking' AND valid_until <= %s FROM booking"
        " WHERE ei_post IS NOT NULL AND ei_expires_at <= %s ORDER BY ei_expires_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, now, limit),
    ).fetchall()
    with conn.pipeline():
        for pk, _kind, post, invitation_expired in rows:
            if invitation_expired:  # no longer bookable; a timed invitation frees its slot
                conn.execute("UPDATE booking SET status = 'expired', updated_at = now() WHERE pk = %s", (pk,))
                slots.release(conn, pk)
            reason = "invitation expired" if invitation_expired else "start passed"
            history.write(conn, SWEEPER_ACTOR, pk, reason, {}, post, None)
            swept += 1
    return swept
