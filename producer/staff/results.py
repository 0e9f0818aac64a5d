"""What staff functions return: plain dataclasses, and their JSON form for the API and the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from producer.calendar.ids import slot_ref
from producer.calendar.offers import OfferTerms, ResidentOffer
from producer.calendar.views import BookingView
from producer.sweden.wall_time import STOCKHOLM


def local(moment: datetime | None) -> datetime | None:
    """Stockholm wall time with its offset, so both occurrences of the autumn hour stay apart."""
    return None if moment is None else moment.astimezone(STOCKHOLM)


@dataclass(frozen=True)
class BookingInfo:
    """A booking or invitation as staff see it (times in Stockholm, with their offset)."""

    booking_id: str
    kind: str  # booking | timed_invitation | open_invitation
    status: str  # active | cancelled | expired
    unit: str
    unit_name: str
    resident: str
    first_name: str | None
    last_name: str | None
    time_type: str
    time_type_name: str
    slot: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    performer: str | None
    resource: str | None
    purpose: str | None
    reason: str | None  # what the resident gave as the reason for the visit (MakeBooking)
    phone: str | None  # the phone number the resident (1177) gave
    message: str | None  # the resident's message to the clinic when cancelling (CancelBooking)
    medical_unit: str | None  # healthcare_facility_med: the care unit with medical responsibility
    invitation_date: date | None
    valid_until: datetime | None
    consumer: str | None = None  # the service consumer it was booked through (SOAP), e.g. Egen provhantering's
    consumer_name: str | None = None  # its name in the unit's consumer rules, when it has one

    @classmethod
    def of(cls, view: BookingView) -> BookingInfo:
        return cls(
            booking_id=view.booking_id,
            kind=view.kind,
            status=view.status,
            unit=view.unit_hsa_id,
            unit_name=view.unit_name,
            resident=view.subject_of_care,
            first_name=view.first_name,
            last_name=view.last_name,
            time_type=view.time_type_code,
            time_type_name=view.time_type_name,
            slot=slot_ref(view.slot_id),
            starts_at=local(view.starts_at),
            ends_at=local(view.ends_at),
            performer=view.performer_hsa_id,
            resource=view.resource_id,
            purpose=view.purpose,
            reason=view.reason,
            phone=view.phone,
            message=view.cancel_message,
            medical_unit=view.healthcare_facility_med,
            invitation_date=view.invitation_date,
            valid_until=local(view.valid_until),
            consumer=view.consumer,
            consumer_name=view.consumer_name,
        )


@dataclass(frozen=True)
class Change:
    """The booking or invitation after an action; `changed` is False when there was nothing to do
    (cancelled already, moved to the slot it holds), so a repeated request is harmless."""

    booking: BookingInfo
    changed: bool


@dataclass(frozen=True)
class Invited:
    line: int
    resident: str
    booking_id: str


@dataclass(frozen=True)
class AlreadyInvited:
    """A resident the campaign has invited already (earlier, or on an earlier line of this file)."""

    line: int
    resident: str
    booking_id: str


@dataclass(frozen=True)
class InvalidLine:
    """A line whose personnummer cannot be used; the number itself is not repeated."""

    line: int
    reason: str


@dataclass(frozen=True)
class Offered:
    """A resident of a campaign's list and its offer in Egen provhantering (by line)."""

    line: int
    resident: str


@dataclass(frozen=True)
class OfferReport:
    """What a batch did with EP offers: queued for the publisher, given by the campaign before (or
    on an earlier line), not possible (a reserve number)."""

    unit_offer_id: str
    access_unit_id: str
    queued: list[Offered]
    already_offered: list[Offered]
    not_offered: list[InvalidLine]


@dataclass(frozen=True)
class BatchReport:
    unit: str
    campaign: str
    invited: list[Invited]
    already_invited: list[AlreadyInvited]
    invalid: list[InvalidLine]
    offers: OfferReport | None = None  # when the campaign gives offers in Egen provhantering


@dataclass(frozen=True)
class CampaignOffers:
    """A campaign's offers: its terms, how many residents are in each status, and each resident."""

    unit: str
    campaign: str
    terms: OfferTerms
    counts: dict[str, int]
    residents: list[ResidentOffer] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Retried:
    unit: str
    campaign: str
    queued: int  # rows queued again
    terms: OfferTerms


@dataclass(frozen=True)
class Withdrawn:
    unit: str
    campaign: str
    done: str  # dropped (never sent), undo (queued), already (withdrawn before)
    offer: ResidentOffer


@dataclass(frozen=True)
class DaySlot:
    """One slot of a unit's day, with the booking or invitation holding it (None when free)."""

    slot: str
    starts_at: datetime
    ends_at: datetime
    time_type: str
    performer: str | None
    resource: str | None
    booking: BookingInfo | None
    # bookings cancelled from this slot, with what the resident wrote, so the clinic reads it
    cancelled: list[BookingInfo] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Event:
    """One booking_event row: who did what, when, and through which channel."""

    at: datetime
    action: str
    channel: str
    actor_type: str | None
    actor_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class History:
    booking: BookingInfo
    events: list[Event]


def jsonable(value: Any) -> Any:
    """Dataclasses, lists and dicts with ISO 8601 dates and times, ready for json.dumps."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
