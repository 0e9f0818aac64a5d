"""Who acts: the staff member recorded in booking_event, and the settings their new ids follow."""

from __future__ import annotations

from dataclasses import dataclass, field

from producer.calendar.policy import STAFF, Actor
from producer.platform.settings import Settings
from producer.staff.errors import StaffError
from producer.sweden.identifiers import is_valid_hsa_id, normalise_hsa_id

ACTOR_TYPE = "staff"


@dataclass(frozen=True)
class Staff:
    """A staff member, by HSA-id (validated and upper-cased on creation).

    `settings` carries the booking-id policy, so staff bookings get ids as SOAP bookings do."""

    hsa_id: str
    settings: Settings = field(default_factory=Settings)
    via: str = "cli"  # the channel they act through (cli, api, web), for the audit line

    def __post_init__(self) -> None:
        hsa_id = normalise_hsa_id(self.hsa_id or "")
        if not is_valid_hsa_id(hsa_id):
            raise StaffError("staff", "must be the staff member's HSA-id, e.g. SE2321000016-ABCD")
        object.__setattr__(self, "hsa_id", hsa_id)

    def actor(self, note: str | None = None, **context: str | None) -> Actor:
        """The staff member as the calendar records a change: channel staff, their HSA-id, and the
        note they gave (kept in the booking's history), with what else the action records (a sick day)."""
        return Actor(STAFF, ACTOR_TYPE, self.hsa_id, self.settings.booking_id_policy, {"note": note, **context})
