"""What a handler knows about the call it answers, beyond the request body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from producer.calendar.units import Unit, UnitCache
from producer.interactions.free_slots import FreeSlots
from producer.platform.settings import Settings


@dataclass(frozen=True)
class Call:
    interaction: str
    unit: Unit
    actor_id: str | None
    actor_type: str | None
    caller: str | None  # the calling consumer's HSA-id from its certificate (None in the open mode)
    consumer_hsa_id: str | None  # x-rivta-original-serviceconsumer-hsaid: audit only
    correlation_id: str | None
    now: datetime
    settings: Settings
    units: UnitCache  # this worker's memory of units and their catalogue names
    free_slots: FreeSlots | None = None  # this worker's memory of free slots (None: always ask the database)

    @property
    def rules_consumer(self) -> str | None:
        """The consumer a booking rule applies to (producer.calendar.rules): the one the platform says
        it calls for when the caller is a configured platform, or when nobody is identified (open
        mode, where every header is taken at its word); otherwise the caller itself."""
        if self.caller is None or self.caller.upper() in self.settings.platforms:
            return self.consumer_hsa_id or self.caller
        return self.caller

    @property
    def resident_actor(self) -> str | None:
        """The resident calling for themselves, if the Actor says so; None for staff agents."""
        return self.actor_id if self.actor_type == "subject_of_care" else None
