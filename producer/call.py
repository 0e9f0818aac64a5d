"""What a handler knows about the call it answers, beyond the request body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from producer.config import Settings

if TYPE_CHECKING:
    from producer.unit_cache import UnitCache


@dataclass(frozen=True)
class Unit:
    """The addressed care unit (LogicalAddress) and its rules."""

    hsa_id: str
    name: str
    message_allowed: bool
    change_deadline_seconds: float


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

    @property
    def resident_actor(self) -> str | None:
        """The resident calling for themselves, if the Actor says so; None for staff agents."""
        return self.actor_id if self.actor_type == "subject_of_care" else None
