"""Who changes the calendar, through which channel, and the few rules in which channels differ.

Every channel's changes go through the same functions (producer.calendar.changes and
.invitations) with the same checks; a Channel names the documented differences:

| channel  | change deadline | timed invitation moved | open invitation moved | resend   | history |
|----------|-----------------|------------------------|-----------------------|----------|---------|
| resident | binds           | becomes a booking      | refused: book it      | answered | yes     |
| staff    | until the start | stays an invitation    | becomes a booking     | refused  | yes     |

Residents are bound by a time type's booking rules; staff may pass by those producer.calendar.rules
names, and the history row says which (producer.calendar.rules has the table).
| loader   | (changes no booking; moves or removes a unit's with the unit, producer.calendar.units)   |
| sweeper  | (expires; outbox row only, its reason the action)                                         |

A resident is whoever calls over SOAP: the resident, or an agent for them (same rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Channel:
    name: str  # booking_event.channel
    deadline_binds: bool  # a change must come change_deadline before the start (else: until the start)
    moved_invitation_stays: bool  # a timed invitation moved to another slot stays an invitation
    moves_open_invitations: bool  # rebooking an open invitation gives it a time (else: refused, book it)
    answers_resends: bool  # the same booking sent again is answered with that booking, not refused
    records_history: bool  # a change writes its booking_event row (else only its outbox row)
    omits_empty_details: bool  # history details leave out what is empty (staff: no note, no slot)
    rules_bind: bool  # self-booking, lead time and horizon refuse (else: passed by, and recorded)


RESIDENT = Channel("soap", True, False, False, True, True, False, True)
STAFF = Channel("staff", False, True, True, False, True, True, False)
LOADER = Channel("loader", False, False, False, False, False, False, False)
SWEEPER = Channel("sweeper", False, False, False, False, False, False, False)


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the channel, the actor's type and id (booking_event), the booking-id
    policy new ids follow, and what the channel adds to every history row it writes (SOAP: the
    calling consumer, the original consumer and the correlation id; staff: the staff member's note)."""

    channel: Channel
    actor_type: str | None
    actor_id: str | None
    booking_id_policy: str = "stable"
    context: Mapping[str, Any] = field(default_factory=dict)
    consumer: str | None = None  # the service consumer whose rules apply (producer.calendar.rules)

    @property
    def who(self) -> tuple[str, str | None, str | None]:
        """(channel, actor type, actor id), as history.record takes it."""
        return (self.channel.name, self.actor_type, self.actor_id)

    def details(self, base: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A history row's details: what the change records, what the call adds, the actor's context."""
        values = {**base, **(extra or {}), **self.context}
        if self.channel.omits_empty_details:
            return {key: value for key, value in values.items() if value is not None}
        return values


SWEEPER_ACTOR = Actor(SWEEPER, None, None)
