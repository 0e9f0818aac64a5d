"""The demo's values the kit builds on, handed in by the CLI (the kit never imports the demo's module)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoFacts:
    """What a fixed demo holds that replays and collections name."""

    units: tuple[str, ...]  # the care units served: LogicalAddress values replay leaves as they are
    resident: str  # the demo resident's personnummer (a test number)
    first_name: str
    last_name: str
    booking: str  # the resident's booking (stable id policy), at units[0]
    booking_time_type: str  # its time type
    flow_time_type: str  # what the booking flow books, with a performer (one the resident may book more of)
    timed_invitation: str
    timed_invitation_unit: str
    open_invitation: str
    open_invitation_unit: str
    open_invitation_time_type: str

    @property
    def unit(self) -> str:
        """The unit the flows call, and replay's LogicalAddress for units not served here."""
        return self.units[0]
