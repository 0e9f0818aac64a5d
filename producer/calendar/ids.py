"""The ids residents and staff see: a slot's ("T123"), a booking's and an invitation's.

Bookings follow TIDBOK_BOOKING_ID_POLICY: `stable` ("B" + key, kept through rebookings) or
`per-slot` (the booked slot's id, so a rebooking changes it). Invitations are "K" + key under both.
"""

from __future__ import annotations

SLOT_PREFIX = "T"  # a slot as availability names it, and a booking's id under the per-slot policy
BOOKING_PREFIX = "B"
INVITATION_PREFIX = "K"  # an invitation's id (kallelse), kept through rebookings under `stable`


def slot_ref(slot_id: int | None) -> str | None:
    """A slot's id as GetAvailableTimeslots hands it out ("T123"), which staff functions accept."""
    return None if slot_id is None else f"{SLOT_PREFIX}{slot_id}"


def booking_id_for(policy: str, pk: int, slot_id: int, current: str | None) -> str:
    """A-4: `stable` keeps the id through rebookings; `per-slot` makes it the booked slot's id."""
    if policy == "per-slot":
        return f"{SLOT_PREFIX}{slot_id}"
    return current or f"{BOOKING_PREFIX}{pk}"
