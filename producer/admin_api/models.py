"""The /admin API's request and response models: they validate each request (unknown fields are
refused) and are the OpenAPI description's schemas, every status code with its body."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from producer.staff import BatchReport, BookingInfo, Change, DaySlot, History
from producer.staff.results import CampaignOffers, Retried, Withdrawn


class Strict(BaseModel):
    """A request part: a field it does not name is refused (400 naming the field), never ignored."""

    model_config = ConfigDict(extra="forbid")


STAFF_FIELD = Field(
    None,
    description="the acting staff member's HSA-id: optional, and when given it must be the token's own "
    "(a token acts for one staff member; naming another is refused with 403)",
)


class SlotTimes(Strict):
    start: str = Field(description="Stockholm wall time, e.g. 2026-12-01T09:00, or with an offset")
    end: str
    time_type: str | None = None
    performer: str | None = None


SlotIn = str | int | SlotTimes  # a slot id ("T123") or its times


class ContactIn(Strict):
    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None


class InvitationIn(Strict):
    """A timed invitation (with `slot`) or an open one (with `time_type` and `valid_until`)."""

    staff: str | None = STAFF_FIELD
    resident: str = Field(description="personnummer or samordningsnummer")
    purpose: str = Field(description="plain text or the DocBook subset")
    slot: SlotIn | None = None
    time_type: str | None = None
    valid_until: str | None = Field(None, description="a date (valid through that day) or a time")
    invitation_date: str | None = None
    campaign: str | None = None
    contact: ContactIn | None = None


class OfferChoiceIn(Strict):
    """A campaign's offer in Egen provhantering (EP); what is left out comes from the campaign (when it
    has given offers already), the time type (UnitOfferID), [ep] giver_* or the token's staff member."""

    unit_offer_id: str | None = Field(None, description="the offer's UnitOfferID in EP (default: the time type's)")
    notify_resident: bool | None = Field(None, description="EP notifies the resident in 1177 (default true)")
    giver_id: str | None = Field(None, description="HCProfessionalID: who gives the offer, a person or a function")
    giver_first_name: str | None = Field(None, description="shown to the resident")
    giver_last_name: str | None = Field(None, description="shown to the resident")


class BatchIn(Strict):
    staff: str | None = STAFF_FIELD
    csv: str = Field(description="the personnummer, one per line (or a column headed personnummer)")
    time_type: str
    campaign: str
    purpose: str
    valid_until: str
    invitation_date: str | None = None
    ep_offer: OfferChoiceIn | None = Field(None, description="each resident also gets this offer in EP")


class OfferBatchIn(Strict):
    staff: str | None = STAFF_FIELD
    csv: str = Field(description="the personnummer, one per line (or a column headed personnummer)")
    campaign: str = Field(description="each resident gets the offer once per campaign")
    time_type: str | None = Field(None, description="whose UnitOfferID to give when ep_offer names none")
    ep_offer: OfferChoiceIn = Field(default_factory=OfferChoiceIn)


OfferStatus = Literal["pending", "given", "already_given", "refused", "failed", "withdrawing", "withdrawn"]


class OffersQuery(BaseModel):
    campaign: str = Field(description="the campaign (GET …/ep-campaigns lists them)")
    status: OfferStatus | None = Field(None, description="only residents in this status")


class OfferRetryIn(Strict):
    staff: str | None = STAFF_FIELD
    campaign: str
    residents: list[str] | None = Field(None, description="only these residents' parked offers (default: all)")
    ep_offer: OfferChoiceIn | None = Field(None, description="the campaign's terms corrected first")


class OfferWithdrawIn(Strict):
    staff: str | None = STAFF_FIELD
    campaign: str
    resident: str


class BookIn(Strict):
    staff: str | None = STAFF_FIELD
    resident: str
    slot: SlotIn
    contact: ContactIn | None = None
    reason: str | None = None
    note: str | None = None


class RebookIn(Strict):
    staff: str | None = STAFF_FIELD
    slot: SlotIn
    note: str | None = None


class CancelIn(Strict):
    staff: str | None = STAFF_FIELD
    note: str | None = None


class CancelQuery(BaseModel):
    staff: str | None = STAFF_FIELD
    note: str | None = Field(None, description="why; kept in the booking's history")


class DayQuery(BaseModel):
    date: dt.date = Field(description="the Stockholm day, YYYY-MM-DD")
    free: bool = Field(False, description="true: the free slots too")


class LoadQuery(BaseModel):
    dry_run: bool = Field(False, description="true: report what would change, write nothing")
    add_only: bool = Field(False, description="true: create and change slots, remove none")


class UnitPath(BaseModel):
    unit: str = Field(description="the care unit's HSA-id")


class BookingPath(BaseModel):
    unit: str = Field(description="the care unit's HSA-id")
    booking_id: str


class ChangeOut(RootModel[Change]):
    """The booking or invitation after the change; `changed` false: there was nothing to do."""


class BookingOut(RootModel[BookingInfo]):
    """A booking or invitation as staff see it (Stockholm times with their offset)."""


class DayOut(RootModel[list[DaySlot]]):
    """The unit's slots of the day, with who holds them."""


class HistoryOut(RootModel[History]):
    """Every change of a booking, oldest first: who, when, through which channel."""


class BatchOut(RootModel[BatchReport]):
    """A screening batch's report, by line (with what it did with EP offers, when it gives them)."""


class CampaignOffersOut(RootModel[CampaignOffers]):
    """A campaign's EP offers: its terms, the count per status and each resident's offer."""


class CampaignListOut(RootModel[list[CampaignOffers]]):
    """The unit's campaigns that give EP offers, newest first, with their counts."""


class RetriedOut(RootModel[Retried]):
    """How many parked offer rows were queued again, and the campaign's terms."""


class WithdrawnOut(RootModel[Withdrawn]):
    """What a withdrawal did: dropped (never sent), undo (queued for EP), already (withdrawn before)."""


class LoadCounts(BaseModel):
    created: int
    changed: int
    removed: int
    unchanged: int


class LoadProblem(BaseModel):
    source: str
    line: int | None
    field: str | None
    message: str


class LoadReportOut(BaseModel):
    """What a load did (or would do, in a dry run); 422 with the problems when refused."""

    ok: bool
    dry_run: bool
    written: bool
    counts: dict[str, LoadCounts]
    problems: list[LoadProblem]
    more_problems: int
    seconds: float


class ErrorDetail(BaseModel):
    message: str
    field: str | None = Field(description="the field the error is about")
    details: object | None = None


class ErrorOut(BaseModel):
    """Every answer other than success."""

    error: ErrorDetail
