"""What a handler knows about the call it answers, beyond the request body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from producer.config import Settings


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
    consumer_hsa_id: str | None  # x-rivta-original-serviceconsumer-hsaid: audit only
    correlation_id: str | None
    now: datetime
    settings: Settings

    @property
    def is_agent(self) -> bool:
        """Staff acting for the resident: availability must not be selected on the resident (TKB §3.5)."""
        return self.actor_type == "subject_of_care_agent"
