"""The booking rules a clinic sets per time type at a unit, and per consumer, applied to every channel.

| rule                     | resident (SOAP)                        | staff                                  |
|--------------------------|----------------------------------------|----------------------------------------|
| self_booking false       | only through an invitation             | may book it (recorded as an override)  |
| min_lead, horizon        | neither offered nor bookable outside   | may book outside (recorded)            |
| max_active_per_resident  | binds (a rebooking of it is allowed)   | binds                                  |
| change_deadline          | the type's, else the unit's; a         | not bound (producer.calendar.policy)   |
|                          | consumer rule replaces both            |                                        |

A rule that binds refuses with a Refusal (nothing written); a rule staff may pass by is named in
the change's history row (`overrides`), so a clinic can see when it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import class_row

from producer.calendar import resident_texts as texts
from producer.calendar.policy import Actor
from producer.calendar.refusals import Refusal

# What 1177 lets a resident write, and what we keep: longer is refused, never cut (the clinic would
# read half a message). 1177 itself shows 90 characters of a reason before "visa mer".
MAX_REASON = 1000
MAX_MESSAGE = 1000
MAX_CONTACT_FIELD = 200


@dataclass(frozen=True)
class TypeRules:
    """One time type's rules at one unit, with the unit's defaults filled in."""

    unit_hsa_id: str
    code: str
    name: str
    self_booking: bool
    min_lead: timedelta
    horizon: timedelta | None
    max_active_per_resident: int | None
    change_deadline: timedelta
    message_allowed: bool
    purpose: str | None

    def offered_from(self, now: datetime) -> datetime:
        """The earliest start a resident is offered or may book."""
        return now + self.min_lead

    def offered_until(self, now: datetime) -> datetime | None:
        """The latest start a resident is offered or may book (None: no limit)."""
        return now + self.horizon if self.horizon is not None else None


RULES_SQL = """
SELECT t.unit_hsa_id, t.code, t.name, t.self_booking, t.min_lead, t.horizon, t.max_active_per_resident,
       coalesce(t.change_deadline, u.change_deadline) AS change_deadline,
       coalesce(t.message_allowed, u.message_allowed) AS message_allowed, t.purpose
FROM time_type t JOIN care_unit u ON u.hsa_id = t.unit_hsa_id
"""


def unit_rules(conn: psycopg.Connection, unit_hsa_id: str) -> dict[str, TypeRules]:
    """Every time type's rules at a unit, by code."""
    with conn.cursor(row_factory=class_row(TypeRules)) as cur:
        return {r.code: r for r in cur.execute(f"{RULES_SQL} WHERE t.unit_hsa_id = %s", (unit_hsa_id,))}


def type_rules(conn: psycopg.Connection, unit_hsa_id: str, code: str) -> TypeRules:
    with conn.cursor(row_factory=class_row(TypeRules)) as cur:
        found = cur.execute(f"{RULES_SQL} WHERE t.unit_hsa_id = %s AND t.code = %s", (unit_hsa_id, code)).fetchone()
    assert found is not None, f"no time type {code} at {unit_hsa_id}"  # a slot's time type always exists
    return found


def consumer_deadlines(conn: psycopg.Connection, unit_hsa_id: str) -> dict[str, timedelta]:
    """Every consumer's own change deadline at the unit, by its (upper-case) HSA-id."""
    rows = conn.execute(
        "SELECT consumer_hsa_id, change_deadline FROM consumer_rule WHERE unit_hsa_id = %s", (unit_hsa_id,)
    ).fetchall()
    return dict(rows)


def consumer_deadline(conn: psycopg.Connection, unit_hsa_id: str, consumer: str | None) -> timedelta | None:
    """A consumer's own change deadline at the unit (e.g. Egen provhantering: until the start), if it has one."""
    if not consumer:
        return None
    row = conn.execute(
        "SELECT change_deadline FROM consumer_rule WHERE unit_hsa_id = %s AND consumer_hsa_id = upper(%s)",
        (unit_hsa_id, consumer),
    ).fetchone()
    return row[0] if row else None


def check_time(actor: Actor, rules: TypeRules, starts_at: datetime, now: datetime, overrides: list[str]) -> None:
    """The lead time and horizon of a slot someone books or moves to: binding for residents, noted for staff."""
    if starts_at < rules.offered_from(now):
        if actor.channel.rules_bind:
            raise Refusal("slot", texts.TOO_SOON)
        overrides.append("min_lead")
    until = rules.offered_until(now)
    if until is not None and starts_at > until:
        if actor.channel.rules_bind:
            raise Refusal("slot", texts.TOO_FAR)
        overrides.append("horizon")


def check_slot(
    conn: psycopg.Connection, actor: Actor, unit_hsa_id: str, code: str, starts_at: datetime, now: datetime
) -> list[str]:
    """The lead time and horizon of a slot an invitation is booked at or a booking moved to; returns
    the rules staff passed by."""
    overrides: list[str] = []
    check_time(actor, type_rules(conn, unit_hsa_id, code), starts_at, now, overrides)
    return overrides


def check_new_booking(
    conn: psycopg.Connection, actor: Actor, rules: TypeRules, resident: str, starts_at: datetime, now: datetime
) -> list[str]:
    """The rules a new booking (not of an invitation) must meet; returns the rules staff passed by."""
    overrides: list[str] = []
    if not rules.self_booking:
        if actor.channel.rules_bind:
            staff = f"{rules.code} at {rules.unit_hsa_id} is booked through an invitation or by staff"
            raise Refusal("slot", texts.NOT_SELF_BOOKABLE, staff, "invalid")
        overrides.append("self_booking")
    check_time(actor, rules, starts_at, now, overrides)
    if rules.max_active_per_resident is not None:
        _check_limit(conn, rules, resident, now)
    return overrides


def _check_limit(conn: psycopg.Connection, rules: TypeRules, resident: str, now: datetime) -> None:
    """At most N upcoming bookings of the type per resident at the unit. Two bookings of one resident
    racing each other are serialised by a transaction-level lock on (resident, unit, type)."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"limit:{resident}:{rules.unit_hsa_id}:{rules.code}",)
    )
    held = conn.execute(
        "SELECT count(*) FROM booking b JOIN slot s ON s.booking_pk = b.pk"
        " WHERE b.subject_of_care = %s AND b.unit_hsa_id = %s AND b.time_type_code = %s"
        " AND b.status = 'active' AND b.kind = 'booking' AND s.starts_at > %s",
        (resident, rules.unit_hsa_id, rules.code, now),
    ).fetchone()[0]
    if held >= rules.max_active_per_resident:
        raise Refusal(
            "resident",
            texts.TOO_MANY.format(time_type=rules.name),
            f"the resident already has {held} upcoming {rules.code} booking(s) at {rules.unit_hsa_id}"
            f" (at most {rules.max_active_per_resident}): rebook one instead",
        )


def check_texts(reason: str | None = None, message: str | None = None, **contact: str | None) -> None:
    """What a resident wrote is kept whole or refused, never cut."""
    if reason is not None and len(reason) > MAX_REASON:
        staff = f"longer than {MAX_REASON} characters"
        raise Refusal("reason", texts.REASON_TOO_LONG.format(limit=MAX_REASON), staff, "invalid")
    if message is not None and len(message) > MAX_MESSAGE:
        staff = f"longer than {MAX_MESSAGE} characters"
        raise Refusal("message", texts.MESSAGE_TOO_LONG.format(limit=MAX_MESSAGE), staff, "invalid")
    for field, value in contact.items():
        if value is not None and len(value) > MAX_CONTACT_FIELD:
            raise Refusal(field, texts.CONTACT_TOO_LONG, f"longer than {MAX_CONTACT_FIELD} characters", "invalid")


@dataclass(frozen=True)
class RuleChange:
    """A time type's rules as staff set them on the page (NULL-able ones: the unit's default / no limit)."""

    self_booking: bool
    min_lead: timedelta
    horizon: timedelta | None
    max_active_per_resident: int | None
    change_deadline: timedelta | None
    message_allowed: bool | None
    purpose: str | None


def set_type_rules(conn: psycopg.Connection, unit_hsa_id: str, code: str, rules: RuleChange) -> bool:
    """Set one time type's rules (the loader sets them from set-up documents); False: no such type.
    Bookings made already stay; the rules bind from the next change on."""
    row = conn.execute(
        "UPDATE time_type SET self_booking = %s, min_lead = %s, horizon = %s, max_active_per_resident = %s,"
        " change_deadline = %s, message_allowed = %s, purpose = %s WHERE unit_hsa_id = %s AND code = %s RETURNING 1",
        (rules.self_booking, rules.min_lead, rules.horizon, rules.max_active_per_resident, rules.change_deadline,
         rules.message_allowed, rules.purpose, unit_hsa_id, code),
    ).fetchone()  # fmt: skip
    return row is not None
