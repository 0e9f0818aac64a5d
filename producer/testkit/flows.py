"""The collections' content, once for both tools: the eleven operations with the fixed demo's values,
and the 1177 flows chained through variables (producer.testkit.postman and .soapui render it).

- 0 The fixed demo: the demo's booking and invitations are where a reset puts them (the open
  invitation still open: the collection books it, so it runs green once per `tidbok demo reset`).
- 1 Catalogue: GetAllHealthcareFacilities, GetAllPerformers, GetAllTimeTypes, GetAllCareTypes.
- 2 Book, see, rebook, cancel: seed 001 §4.3 (Nybokning: time types, dates, times, MakeBooking;
  Visa bokade tider: GetSubjectOfCareSchedule, GetBookingDetails) and seed 003 (Omboka: details,
  facilities, performers, dates and times for the booking, UpdateBooking), then Avboka
  (CancelBooking). It books the first free time from the day after tomorrow on, so the booking can
  still be moved and cancelled (24 hours' notice at the demo's units); it can run again and again.
- 3 Open invitation booked (flow 7): details, facilities for it, dates and times for it, MakeBooking
  quoting its bookingId, details again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from producer.testkit.facts import DemoFacts

SEARCH_FROM, SEARCH_DAYS = 2, 62  # the day after tomorrow, and 1177's 62-day window
RESET = "if this fails, the collection ran before: run `tidbok demo reset`"


@dataclass(frozen=True)
class Var:
    """A variable set by an earlier step."""

    name: str


@dataclass(frozen=True)
class Day:
    """Today (Stockholm) plus `offset` days, as YYYYMMDD, computed when the request is sent."""

    offset: int

    @property
    def name(self) -> str:
        return f"today_plus_{self.offset}"


Value = str | Var | Day


@dataclass(frozen=True)
class Extract:
    """Set `variable` to the text of the first `element` (inside the first `within`, if given)."""

    variable: str
    element: str
    within: str | None = None


@dataclass(frozen=True)
class Has:
    """Some `element` of the answer has `value` (exists at all when value is None); `why` names the
    check where its failure needs explaining."""

    element: str
    value: Value | None = None
    why: str = ""


@dataclass(frozen=True)
class HasNo:
    """No `element` has `value` (no `element` at all when value is None)."""

    element: str
    value: Value | None = None
    why: str = ""


Check = Has | HasNo


@dataclass(frozen=True)
class Step:
    name: str
    interaction: str
    body: dict[str, Any]
    extract: tuple[Extract, ...] = ()
    checks: tuple[Check, ...] = ()

    @property
    def unit(self) -> Value:
        """The LogicalAddress: the unit the body names (RIV-TA: the same HSA-id)."""
        body = self.body
        found = body.get("healthcare_facility") or body.get("healthcare_facility_med")
        return found or body["requestedTimeslot"]["healthcare_facility"]

    @property
    def result_code(self) -> bool:
        """The updating contracts answer a resultCode, which must be OK."""
        return self.interaction in ("MakeBooking", "UpdateBooking", "CancelBooking")


@dataclass(frozen=True)
class Flow:
    name: str
    description: str
    steps: tuple[Step, ...] = field(default_factory=tuple)


def variables(flows: tuple[Flow, ...]) -> list[str]:
    """Every variable the flows set, in the order first set."""
    names: list[str] = []
    for flow in flows:
        for step in flow.steps:
            for extract in step.extract:
                if extract.variable not in names:
                    names.append(extract.variable)
    return names


def days(flows: tuple[Flow, ...]) -> list[Day]:
    """Every relative day a request names."""
    found: dict[int, Day] = {}

    def walk(value: Any) -> None:
        if isinstance(value, Day):
            found[value.offset] = value
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for flow in flows:
        for step in flow.steps:
            walk(step.body)
    return [found[offset] for offset in sorted(found)]


def flows(facts: DemoFacts) -> tuple[Flow, ...]:
    unit, resident = facts.unit, facts.resident
    window = {"startDateInclusive": Day(SEARCH_FROM), "endDateInclusive": Day(SEARCH_FROM + SEARCH_DAYS - 1)}
    names = {"firstName": facts.first_name, "lastName": facts.last_name}
    slot = Extract  # the first free time of an answer: its fields, for the booking that follows
    return (
        Flow(
            "0 The fixed demo",
            "The demo's booking and invitations are where `tidbok demo reset` puts them; the open invitation "
            "has no time yet (this collection books it: reset the demo to run it again).",
            (
                Step(
                    f"GetBookingDetails {facts.booking}: the demo's booking",
                    "GetBookingDetails",
                    {"healthcare_facility": unit, "bookingId": facts.booking},
                    checks=(Has("bookingId", facts.booking), Has("timeTypeID", facts.booking_time_type)),
                ),
                Step(
                    f"GetBookingDetails {facts.timed_invitation}: the timed invitation",
                    "GetBookingDetails",
                    {"healthcare_facility": facts.timed_invitation_unit, "bookingId": facts.timed_invitation},
                    checks=(Has("isInvitation", "true"), Has("startTimeInclusive"), Has("purpose")),
                ),
                Step(
                    f"GetBookingDetails {facts.open_invitation}: the open invitation, not booked yet",
                    "GetBookingDetails",
                    {"healthcare_facility": facts.open_invitation_unit, "bookingId": facts.open_invitation},
                    checks=(
                        Has("isInvitation", "true", why=f"{facts.open_invitation} is still an invitation ({RESET})"),
                        HasNo("startTimeInclusive", why=f"{facts.open_invitation} has no time yet ({RESET})"),
                    ),
                ),
            ),
        ),
        Flow(
            "1 Catalogue",
            "What the unit offers (GetAll*), as 1177 reads it before a booking.",
            (
                Step(
                    "GetAllHealthcareFacilities",
                    "GetAllHealthcareFacilities",
                    {"healthcare_facility": unit, "subject_of_care": resident},
                    checks=(Has("healthcare_facility", unit),),
                ),
                Step(
                    "GetAllPerformers",
                    "GetAllPerformers",
                    {"healthcare_facility": unit, "subject_of_care": resident},
                    checks=(Has("perfomer"),),  # sic: the contract spells it so
                ),
                Step(
                    "GetAllTimeTypes",
                    "GetAllTimeTypes",
                    {"healthcare_facility": unit, "subject_of_care": resident},
                    checks=(Has("timeTypeId"),),  # GetAllTimeTypes answers timeTypeId
                ),
                Step(
                    "GetAllCareTypes",
                    "GetAllCareTypes",
                    {"healthcare_facility": unit, "subject_of_care": resident},
                    checks=(Has("careTypeId"),),
                ),
            ),
        ),
        Flow(
            "2 Book, see, rebook, cancel",
            "Seed 001 §4.3 (Nybokning, Visa bokade tider) and seed 003 (Omboka), then Avboka: the first free "
            f"{facts.flow_time_type} time from the day after tomorrow is booked, moved and cancelled.",
            (
                Step(
                    "Nybokning: GetAllTimeTypes",
                    "GetAllTimeTypes",
                    {"healthcare_facility": unit, "subject_of_care": resident},
                    checks=(Has("timeTypeId", facts.flow_time_type),),
                ),
                Step(
                    "Nybokning: GetAvailableDates",
                    "GetAvailableDates",
                    {
                        "healthcare_facility": unit,
                        **window,
                        "timeTypeID": facts.flow_time_type,
                        "subject_of_care": resident,
                    },
                    extract=(Extract("bookDate", "date"),),
                ),
                Step(
                    "Nybokning: GetAvailableTimeslots (the first time of that date)",
                    "GetAvailableTimeslots",
                    {
                        "healthcare_facility": unit,
                        "startDateInclusive": Var("bookDate"),
                        "endDateInclusive": Var("bookDate"),
                        "timeTypeID": facts.flow_time_type,
                        "subject_of_care": resident,
                    },
                    extract=(
                        slot("slotStart", "startTimeInclusive", "timeslotDetail"),
                        slot("slotEnd", "endTimeExclusive", "timeslotDetail"),
                        slot("slotPerformer", "performer", "timeslotDetail"),
                        slot("slotId", "bookingId", "timeslotDetail"),
                    ),
                ),
                Step(
                    "Nybokning: MakeBooking",
                    "MakeBooking",
                    {
                        "healthcare_facility_med": unit,
                        "requestedTimeslot": {
                            "startTimeInclusive": Var("slotStart"),
                            "endTimeExclusive": Var("slotEnd"),
                            "healthcare_facility": unit,
                            "performer": Var("slotPerformer"),
                            "bookingId": Var("slotId"),
                            "subject_of_care": resident,
                            "reason": "Bokad från testsamlingen",
                            "timeTypeID": facts.flow_time_type,
                        },
                        "subject_of_care_info": {"phone": "070-1212121", **names},
                    },
                    extract=(Extract("bookingId", "bookingId"),),
                ),
                Step(
                    "Visa bokade tider: GetSubjectOfCareSchedule",
                    "GetSubjectOfCareSchedule",
                    {"healthcare_facility": unit, "subject_of_care": resident},
                    checks=(Has("bookingId", Var("bookingId")),),
                ),
                Step(
                    "Visa bokade tider: GetBookingDetails",
                    "GetBookingDetails",
                    {"healthcare_facility": unit, "bookingId": Var("bookingId")},
                    checks=(
                        Has("startTimeInclusive", Var("slotStart")),
                        Has("rebooking_allowed", "true"),
                        Has("cancel_booking_allowed", "true"),
                    ),
                ),
                Step(
                    "Omboka: GetAllHealthcareFacilities for the booking",
                    "GetAllHealthcareFacilities",
                    {"healthcare_facility": unit, "subject_of_care": resident, "bookingId": Var("bookingId")},
                    checks=(Has("healthcare_facility", unit),),
                ),
                Step(
                    "Omboka: GetAllPerformers",
                    "GetAllPerformers",
                    {
                        "healthcare_facility": unit,
                        "timeTypeIDs": [facts.flow_time_type],
                        "subject_of_care": resident,
                    },
                    checks=(Has("perfomer", Var("slotPerformer")),),
                ),
                Step(
                    "Omboka: GetAvailableDates for the booking",
                    "GetAvailableDates",
                    {"healthcare_facility": unit, "bookingId": Var("bookingId"), **window, "subject_of_care": resident},
                    extract=(Extract("rebookDate", "date"),),
                ),
                Step(
                    "Omboka: GetAvailableTimeslots for the booking",
                    "GetAvailableTimeslots",
                    {
                        "healthcare_facility": unit,
                        "bookingId": Var("bookingId"),
                        "startDateInclusive": Var("rebookDate"),
                        "endDateInclusive": Var("rebookDate"),
                        "subject_of_care": resident,
                    },
                    extract=(
                        slot("newStart", "startTimeInclusive", "timeslotDetail"),
                        slot("newEnd", "endTimeExclusive", "timeslotDetail"),
                        slot("newPerformer", "performer", "timeslotDetail"),
                    ),
                    checks=(Has("bookingId", Var("bookingId")),),
                ),
                Step(
                    "Omboka: UpdateBooking",
                    "UpdateBooking",
                    {
                        "requestedTimeslot": {
                            "startTimeInclusive": Var("newStart"),
                            "endTimeExclusive": Var("newEnd"),
                            "healthcare_facility": unit,
                            "performer": Var("newPerformer"),
                            "bookingId": Var("bookingId"),
                            "subject_of_care": resident,
                            "timeTypeID": facts.flow_time_type,
                        },
                    },
                ),
                Step(
                    "Omboka: GetBookingDetails (moved)",
                    "GetBookingDetails",
                    {"healthcare_facility": unit, "bookingId": Var("bookingId")},
                    checks=(Has("startTimeInclusive", Var("newStart")),),
                ),
                Step(
                    "Avboka: CancelBooking",
                    "CancelBooking",
                    {
                        "healthcare_facility": unit,
                        "bookingId": Var("bookingId"),
                        "message": "Avbokad från testsamlingen",
                    },
                ),
                Step(
                    "Avboka: GetSubjectOfCareSchedule (gone)",
                    "GetSubjectOfCareSchedule",
                    {"healthcare_facility": unit, "subject_of_care": resident},
                    checks=(HasNo("bookingId", Var("bookingId")),),
                ),
            ),
        ),
        Flow(
            "3 Open invitation booked",
            f"Flow 7: the open invitation {facts.open_invitation} gets a time with MakeBooking quoting its bookingId "
            "(once per `tidbok demo reset`).",
            _open_invitation(facts, window),
        ),
    )


def _open_invitation(facts: DemoFacts, window: dict[str, Any]) -> tuple[Step, ...]:
    unit, resident, invitation = facts.open_invitation_unit, facts.resident, facts.open_invitation
    return (
        Step(
            "GetBookingDetails of the invitation",
            "GetBookingDetails",
            {"healthcare_facility": unit, "bookingId": invitation},
            checks=(Has("isInvitation", "true"), HasNo("startTimeInclusive"), Has("purpose")),
        ),
        Step(
            "GetAllHealthcareFacilities for the invitation",
            "GetAllHealthcareFacilities",
            {"healthcare_facility": unit, "subject_of_care": resident, "bookingId": invitation},
            checks=(Has("healthcare_facility", unit),),
        ),
        Step(
            "GetAvailableDates for the invitation",
            "GetAvailableDates",
            {"healthcare_facility": unit, "bookingId": invitation, **window, "subject_of_care": resident},
            extract=(Extract("invitationDate", "date"),),
        ),
        Step(
            "GetAvailableTimeslots for the invitation",
            "GetAvailableTimeslots",
            {
                "healthcare_facility": unit,
                "bookingId": invitation,
                "startDateInclusive": Var("invitationDate"),
                "endDateInclusive": Var("invitationDate"),
                "subject_of_care": resident,
            },
            extract=(
                Extract("invitationStart", "startTimeInclusive", "timeslotDetail"),
                Extract("invitationEnd", "endTimeExclusive", "timeslotDetail"),
                Extract("invitationResource", "resourceID", "timeslotDetail"),
            ),
            checks=(Has("bookingId", invitation),),
        ),
        Step(
            "MakeBooking quoting the invitation",
            "MakeBooking",
            {
                "healthcare_facility_med": unit,
                "requestedTimeslot": {
                    "startTimeInclusive": Var("invitationStart"),
                    "endTimeExclusive": Var("invitationEnd"),
                    "healthcare_facility": unit,
                    "bookingId": invitation,
                    "subject_of_care": resident,
                    "resourceID": Var("invitationResource"),
                    "timeTypeID": facts.open_invitation_time_type,
                },
                "subject_of_care_info": {"firstName": facts.first_name, "lastName": facts.last_name},
            },
            checks=(Has("bookingId", invitation),),
        ),
        Step(
            "GetBookingDetails of the invitation (booked)",
            "GetBookingDetails",
            {"healthcare_facility": unit, "bookingId": invitation},
            checks=(Has("startTimeInclusive", Var("invitationStart")), Has("isInvitation", "false")),
        ),
    )
