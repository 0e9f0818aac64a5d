"""The /admin API's request and response models: they validate each request (unknown fields are
refused) and are the OpenAPI description's schemas, every status code with its body."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, RootModel

from producer.staff import BatchReport, BookingInfo, Change, DaySlot, History


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


class BatchIn(Strict):
    staff: str | None = STAFF_FIELD
    csv: str = Field(description="the personnummer, one per line (or a column headed personnummer)")
    time_type: str
    campaign: str
    purpose: str
    valid_until: str
    invitation_date: str | None = None


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
    """A screening batch's report, by line."""


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
