"""The one refusal the calendar raises: a change it will not make, with a text for each audience.

A refusal is raised inside the change's savepoint (producer.calendar.changes.change), so nothing of
the change is left behind. Each channel shows it its own way: SOAP answers resultCode ERROR with the
`resident` text (Swedish, shown by 1177 as it is, saying what to do rather than why); the staff API
and `tidbok staff` answer a StaffError with `field`, the `staff` text (it may name ids, never a
personnummer) and `code`, the kind of refusal (invalid: HTTP 400, not_found: 404, conflict: 409).
"""

from __future__ import annotations

from typing import Literal

from producer.calendar import resident_texts as texts
from producer.calendar.ids import slot_ref

ErrorCode = Literal["invalid", "not_found", "conflict"]

STAFF_SLOT_TAKEN = "is already taken: choose a free slot (never double-booked)"


class Refusal(Exception):
    """Nothing was changed because of `field`: `resident` says so to the resident, `staff` to staff
    (the resident's text when a refusal can only come from the resident's own request)."""

    def __init__(self, field: str, resident: str, staff: str | None = None, code: ErrorCode = "conflict") -> None:
        super().__init__(f"{field}: {staff or resident}")
        self.field = field
        self.resident = resident
        self.staff = staff or resident
        self.code = code


def race() -> Refusal:
    """A lost race that reached a constraint, a deadlock or a lock timeout instead of the conditional take."""
    return Refusal("slot", texts.SLOT_TAKEN, STAFF_SLOT_TAKEN)


def slot_taken(slot_id: int) -> Refusal:
    return Refusal("slot", texts.SLOT_TAKEN, f"{slot_ref(slot_id)} {STAFF_SLOT_TAKEN}")


def slot_started(slot_id: int) -> Refusal:
    return Refusal("slot", texts.SLOT_PASSED, f"{slot_ref(slot_id)} has already started")
