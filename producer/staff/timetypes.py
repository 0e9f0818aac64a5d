"""A time type's booking rules, read and set by staff (the staff page); the same rules a set-up
document gives (producer.calendar.rules says what each does), checked as the loader checks them."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from producer.calendar.rules import RuleChange, set_type_rules
from producer.staff import checks
from producer.staff.actor import Staff
from producer.staff.audit import audited
from producer.staff.docbook import check_purpose
from producer.staff.errors import StaffError

MAX_PURPOSE = 20_000


def rules(conn: psycopg.Connection, unit: str) -> dict[str, tuple[str, RuleChange]]:
    """Each time type's (name, rules) as set on it (None: the unit's default, or no limit), by code."""
    rows = conn.execute(
        "SELECT code, name, self_booking, min_lead, horizon, max_active_per_resident, change_deadline,"
        " message_allowed, purpose FROM time_type WHERE unit_hsa_id = %s ORDER BY code",
        (checks.unit(conn, unit),),
    ).fetchall()
    return {code: (name, RuleChange(*values)) for code, name, *values in rows}


@audited("StaffSetRules")
def set_rules(conn: psycopg.Connection, staff: Staff, code: str, *, unit: str, change: RuleChange) -> RuleChange:
    """Set the rules of the unit's time type `code`; a bad value is refused naming its field."""
    unit_hsa_id = checks.unit(conn, unit)
    if change.min_lead < timedelta(0):
        raise StaffError("min_lead", "cannot be negative")
    if change.horizon is not None and change.horizon <= timedelta(0):
        raise StaffError("horizon", "must be longer than 0 (leave it empty for no limit)")
    if change.max_active_per_resident is not None and not 1 <= change.max_active_per_resident <= 1000:
        raise StaffError("max_active_per_resident", "must be 1–1000 (leave it empty for no limit)")
    if change.change_deadline is not None and change.change_deadline < timedelta(0):
        raise StaffError("change_deadline", "cannot be negative")
    if change.purpose is not None:
        if len(change.purpose) > MAX_PURPOSE:
            raise StaffError("purpose", f"is longer than {MAX_PURPOSE} characters")
        check_purpose(change.purpose)
    if not set_type_rules(conn, unit_hsa_id, code, change):
        raise StaffError("time_type", f"{unit_hsa_id} has no time type {code}", "not_found")
    return change
