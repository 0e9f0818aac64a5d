"""Booking rules a clinic sets, and the contract details 1177 relies on, through both channels.

Residents go through SOAP with zeep clients built from the OFFICIAL WSDLs (every answer checked by
the official schema); staff through the /admin API. The demo's rules (README, the demo dataset): at
A100 LAK is booked at most once per resident and at least two hours ahead, DIAB only through an
invitation or by staff, PROV carries a preparation text; both units name SE2321000016-V100 as the
care unit with medical responsibility. Rules the demo lacks (a horizon, a time type's own change
deadline and message rule, a consumer's deadline, a unit not yet live in EI) are loaded here into a
unit of this module's own, R100, through the set-up document, as a clinic would.

Every refusal is checked to write nothing (a fingerprint of the bookings, slots, history and outbox).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import zeep
from support import OfficialClient, ProducerServer
from support.admin import admin_api
from support.calendar import CalendarDb, Slot, insert_slot, wire_date
from support.official import zeep_client
from support.residents import Residents, as_resident

from producer.calendar import resident_texts as texts

A100, A200, R100 = "SE2321000016-A100", "SE2321000016-A200", "SE2321000016-R100"
MEDICAL_UNIT = "SE2321000016-V100"
TOKEN = "rules-token-000000000001"
STAFF = "SE2321000016-S077"
CONSUMER_HEADER = "x-rivta-original-serviceconsumer-hsaid"
P1177 = "SE2321000016-1177"  # 1177 Vårdguidens e-tjänster, as the platform names the original consumer
EP = "SE2321000016-EP01"  # Egen provhantering: may cancel and rebook at R100 until the start
PREPARATION = "Kom fastande. Ta med legitimation."

new_resident = Residents(date(1930, 1, 1), "456")  # nobody else uses 1930 on

R100_SETUP = f"""
units:
  - hsa_id: {R100}
    name: Mottagningen Regler
    message_allowed: false
    change_deadline: 24h
    medical_unit: {{hsa_id: {MEDICAL_UNIT}, name: Vårdenheten Exempel}}
    consumers:
      - {{hsa_id: {EP}, change_deadline: 0}}
    care_types:
      - {{code: ALLM, name: Allmänmedicin}}
    time_types:
      - {{code: NARA, name: Nära besök, duration_minutes: 20, care_type: ALLM, horizon: 30d}}
      - {{code: SENT, name: Sent besök, duration_minutes: 20, care_type: ALLM, change_deadline: 0,
          message_allowed: true}}
    resources:
      - {{id: RUM1, name: Rum ett}}
"""


class Rules(CalendarDb):
    """The producer under test: zeep clients per operation and consumer, its database, its /admin API."""

    def __init__(self, server: ProducerServer) -> None:
        super().__init__(server)
        self._clients: dict[tuple[str, str], OfficialClient] = {}

    def call(self, op: str, unit: str, actor: tuple[str, str] | None, consumer: str = P1177, **body: Any) -> Any:
        key = (op, consumer)
        if key not in self._clients:
            self._clients[key] = zeep_client(op, self.server.base_url, http_headers={CONSUMER_HEADER: consumer})
        return self._clients[key].call(unit, actor, **body)

    def make_booking(
        self, resident: str, slot: Slot, *, booking_id: str | None = None, med: str | None = None, **more: Any
    ) -> Any:
        timeslot = slot.timeslot(resident, booking_id or slot.ref)
        timeslot.update(more.pop("timeslot", {}))
        return self.call(
            "MakeBooking",
            slot.unit,
            more.pop("actor", as_resident(resident)),
            healthcare_facility_med=med or slot.unit,
            requestedTimeslot=timeslot,
            subject_of_care_info={"firstName": "Regel", "lastName": "Testsson", **more.pop("info", {})},
            **more,
        )

    def update_booking(self, resident: str, booking_id: str, slot: Slot, **more: Any) -> Any:
        return self.call(
            "UpdateBooking",
            slot.unit,
            more.pop("actor", as_resident(resident)),
            requestedTimeslot=slot.timeslot(resident, booking_id),
            **more,
        )

    def cancel(self, resident: str, unit: str, booking_id: str, **more: Any) -> Any:
        actor = more.pop("actor", as_resident(resident))
        return self.call("CancelBooking", unit, actor, healthcare_facility=unit, bookingId=booking_id, **more)

    def details(self, resident: str, unit: str, booking_id: str, consumer: str = P1177) -> Any:
        response = self.call("GetBookingDetails", unit, as_resident(resident), consumer, healthcare_facility=unit,
                             bookingId=booking_id)  # fmt: skip
        return response.timeslotDetail

    def offered(
        self, resident: str, unit: str, first: date, last: date, consumer: str = P1177, **filters: Any
    ) -> list[Any]:
        response = self.call(
            "GetAvailableTimeslots", unit, as_resident(resident), consumer, healthcare_facility=unit,
            subject_of_care=resident,
            startDateInclusive=f"{first:%Y%m%d}", endDateInclusive=f"{last:%Y%m%d}", **filters,
        )  # fmt: skip
        return list(response.timeslotDetail or [])

    def dates(self, resident: str, unit: str, first: date, last: date, **filters: Any) -> list[str]:
        response = self.call(
            "GetAvailableDates", unit, as_resident(resident), healthcare_facility=unit, subject_of_care=resident,
            startDateInclusive=f"{first:%Y%m%d}", endDateInclusive=f"{last:%Y%m%d}", **filters,
        )  # fmt: skip
        return [d.date for d in response.performerAvailabilityByDate or []]

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, answer = admin_api(self.server, method, path, body, token=TOKEN)
        return status, answer

    def invite(self, resident: str, time_type: str) -> str:
        """An open invitation at A100, valid 30 days, made by staff through the API; its id."""
        status, made = self.admin("POST", f"/admin/units/{A100}/invitations", {
            "staff": STAFF, "resident": resident, "time_type": time_type, "purpose": "Välkommen.",
            "valid_until": f"{date.today() + timedelta(days=30)}",
        })  # fmt: skip
        assert status == 201, made
        return made["booking"]["booking_id"]

    def staff_book(self, unit: str, resident: str, slot: Slot, **more: Any) -> tuple[int, Any]:
        return self.admin("POST", f"/admin/units/{unit}/bookings",
                          {"staff": STAFF, "resident": resident, "slot": slot.ref, **more})  # fmt: skip

    def slot_in(self, unit: str, time_type: str, starts: timedelta, resource: str | None = None) -> Slot:
        """A new free slot `starts` from now (whole minutes), without a performer so nothing overlaps it."""
        start = (datetime.now(UTC) + starts).replace(second=0, microsecond=0)
        minutes = self.one("SELECT duration_minutes FROM time_type WHERE unit_hsa_id = %s AND code = %s",
                           unit, time_type)["duration_minutes"]  # fmt: skip
        slot_id = insert_slot(self.db, unit, start, start + timedelta(minutes=minutes), time_type, resource=resource)
        self.claim(slot_id)
        return self.slot(slot_id)

    def fingerprint(self) -> dict[str, Any]:
        """Row counts and a digest of every booking and held slot: to show that a refusal wrote nothing."""
        return self.one(
            "SELECT (SELECT count(*) FROM booking) AS bookings, (SELECT count(*) FROM booking_event) AS events,"
            " (SELECT count(*) FROM ei_outbox) AS outbox,"
            " (SELECT md5(coalesce(string_agg(concat_ws('|', pk, status, updated_at), ',' ORDER BY pk), ''))"
            "  FROM booking) AS rows,"
            " (SELECT md5(coalesce(string_agg(concat_ws('|', id, booking_pk), ',' ORDER BY id), ''))"
            "  FROM slot WHERE booking_pk IS NOT NULL) AS held"
        )

    def events(self, booking_id: str) -> list[dict[str, Any]]:
        status, history = self.admin("GET", f"/admin/units/{self.unit_of(booking_id)}/bookings/{booking_id}/history")
        assert status == 200, history
        return history["events"]

    def unit_of(self, booking_id: str) -> str:
        return self.one("SELECT unit_hsa_id FROM booking WHERE booking_id = %s ORDER BY pk DESC LIMIT 1",
                        booking_id)["unit_hsa_id"]  # fmt: skip

    def refused(self, response: Any, text: str, before: dict[str, Any]) -> None:
        assert (response.resultCode, response.resultText) == ("ERROR", text)
        assert self.fingerprint() == before, "a refused change wrote something"


@pytest.fixture(scope="module")
def rules(start_producer: Any) -> Iterator[Rules]:
    server = start_producer("rules", {"TIDBOK_ADMIN_TOKENS": f"{TOKEN}=*@{STAFF}"})
    status, _, report = admin_api(
        server, "POST", "/admin/load", R100_SETUP.encode(), token=TOKEN, content_type="application/yaml", timeout=60
    )
    assert status == 200 and report["ok"], report
    api = Rules(server)
    yield api
    api.close()


# -- who may book it ----------------------------------------------------------------------------------


def test_a_type_booked_only_by_invitation_is_not_offered_to_residents(rules: Rules) -> None:
    resident = new_resident()
    types = rules.call("GetAllTimeTypes", A100, as_resident(resident), healthcare_facility=A100,
                       subject_of_care=resident)  # fmt: skip
    assert {t.timeTypeId for t in types.ListOfTimeTypes} == {"LAK", "SSK", "PROV"}
    diab = rules.free_slot(A100, "DIAB")
    day = diab.day
    assert rules.offered(resident, A100, day, day, timeTypeID="DIAB") == []
    assert "DIAB" not in {s.timeTypeID for s in rules.offered(resident, A100, day, day)}
    assert rules.dates(resident, A100, day, day, timeTypeID="DIAB") == []
    before = rules.fingerprint()
    rules.refused(rules.make_booking(resident, diab), texts.NOT_SELF_BOOKABLE, before)


def test_an_invitation_opens_the_type_to_its_resident(rules: Rules) -> None:
    resident = new_resident()
    invitation = rules.invite(resident, "DIAB")
    diab = rules.free_slot(A100, "DIAB")
    day = diab.day
    offered = rules.offered(resident, A100, day, day, bookingId=invitation)
    assert offered and {s.timeTypeID for s in offered} == {"DIAB"} and {s.bookingId for s in offered} == {invitation}
    assert day.strftime("%Y%m%d") in rules.dates(resident, A100, day, day, bookingId=invitation)
    response = rules.make_booking(resident, diab, booking_id=invitation)
    assert response.resultCode == "OK", response.resultText
    assert rules.holder(diab.id) is not None


def test_staff_book_a_type_closed_to_residents_and_the_history_says_so(rules: Rules) -> None:
    resident, diab = new_resident(), rules.free_slot(A100, "DIAB")
    status, made = rules.staff_book(A100, resident, diab)
    assert status == 201, made
    (book,) = [e for e in rules.events(made["booking"]["booking_id"]) if e["action"] == "book"]
    assert book["channel"] == "staff" and book["details"]["overrides"] == ["self_booking"]


# -- how soon and how far -----------------------------------------------------------------------------


def test_a_lead_time_keeps_sooner_slots_from_residents(rules: Rules) -> None:
    """LAK at A100 is booked at least two hours ahead: a slot in 90 minutes is neither offered nor
    bookable by a resident; one in three hours is; staff may book the sooner one (recorded)."""
    resident = new_resident()
    soon, later = rules.slot_in(A100, "LAK", timedelta(minutes=90)), rules.slot_in(A100, "LAK", timedelta(hours=3))
    offered = {s.bookingId for s in rules.offered(resident, A100, soon.day, later.day,
                                                  timeTypeID="LAK")}  # fmt: skip
    assert soon.ref not in offered and later.ref in offered
    before = rules.fingerprint()
    rules.refused(rules.make_booking(resident, soon), texts.TOO_SOON, before)
    status, made = rules.staff_book(A100, resident, soon)
    assert status == 201, made
    (book,) = [e for e in rules.events(made["booking"]["booking_id"]) if e["action"] == "book"]
    assert book["details"]["overrides"] == ["min_lead"]


def test_a_horizon_keeps_later_slots_from_residents(rules: Rules) -> None:
    resident = new_resident()
    near, far = rules.slot_in(R100, "NARA", timedelta(days=10)), rules.slot_in(R100, "NARA", timedelta(days=40))
    offered = {s.bookingId for s in rules.offered(resident, R100, near.day, far.day)}
    assert near.ref in offered and far.ref not in offered
    assert f"{far.day:%Y%m%d}" not in rules.dates(resident, R100, far.day, far.day)
    before = rules.fingerprint()
    rules.refused(rules.make_booking(resident, far), texts.TOO_FAR, before)
    booked = rules.make_booking(resident, near)
    assert booked.resultCode == "OK", booked.resultText
    rules.refused(rules.update_booking(resident, booked.bookingId, far), texts.TOO_FAR, rules.fingerprint())


# -- how many -----------------------------------------------------------------------------------------


def test_at_most_one_upcoming_lak_booking_per_resident(rules: Rules) -> None:
    resident = new_resident()
    first, second, third = (rules.free_slot(A100, "LAK") for _ in range(3))
    made = rules.make_booking(resident, first)
    assert made.resultCode == "OK", made.resultText
    before = rules.fingerprint()
    too_many = "Du har redan en bokad tid för Läkarbesök. Omboka den i stället."  # the issue's own words
    rules.refused(rules.make_booking(resident, second), too_many, before)
    # staff are bound too: the answer names the field
    status, answer = rules.staff_book(A100, resident, second)
    assert status == 409 and answer["error"]["field"] == "resident", answer
    assert rules.fingerprint() == before
    # rebooking it is allowed, and once it is cancelled another may be booked
    moved = rules.update_booking(resident, made.bookingId, third)
    assert moved.resultCode == "OK", moved.resultText
    assert rules.cancel(resident, A100, made.bookingId).resultCode == "OK"
    again = rules.make_booking(resident, second)
    assert again.resultCode == "OK", again.resultText


# -- change deadline and messages per time type, and per consumer -------------------------------------


def test_change_deadline_and_messages_per_time_type(rules: Rules) -> None:
    """R100: 24 hours and no messages, but SENT may be changed until the start, with a message."""
    resident = new_resident()
    sent, nara = rules.slot_in(R100, "SENT", timedelta(hours=3)), rules.slot_in(R100, "NARA", timedelta(hours=3))
    [offered_sent] = [s for s in rules.offered(resident, R100, sent.day, sent.day)
                      if s.bookingId == sent.ref]  # fmt: skip
    assert (offered_sent.cancel_booking_allowed, offered_sent.message_allowed) == (True, True)
    booked_sent = rules.make_booking(resident, sent).bookingId
    booked_nara = rules.make_booking(resident, nara).bookingId
    assert rules.details(resident, R100, booked_nara).cancel_booking_allowed is False
    assert rules.details(resident, R100, booked_sent).cancel_booking_allowed is True
    before = rules.fingerprint()
    rules.refused(rules.cancel(resident, R100, booked_nara), texts.TOO_LATE_TO_CANCEL, before)
    cancelled = rules.cancel(resident, R100, booked_sent, message="Jag är sjuk.")
    assert cancelled.resultCode == "OK", cancelled.resultText
    (event,) = [e for e in rules.events(booked_sent) if e["action"] == "cancel"]
    assert event["details"]["message"] == "Jag är sjuk."


def test_a_consumer_may_cancel_until_the_start(rules: Rules) -> None:
    """Egen provhantering (a consumer rule at R100) cancels an hour before the start; 1177 may not;
    each is told so in the flags of the free slots and of the booking."""
    resident = new_resident()
    first, second = rules.slot_in(R100, "NARA", timedelta(hours=1)), rules.slot_in(R100, "NARA", timedelta(hours=1))
    day = first.day
    for consumer, allowed in ((P1177, False), (EP, True)):
        [free] = [s for s in rules.offered(resident, R100, day, day, consumer) if s.bookingId == first.ref]
        assert (free.cancel_booking_allowed, free.rebooking_allowed) == (allowed, allowed), consumer
    for_1177 = rules.make_booking(resident, first, consumer=P1177)
    by_ep = rules.make_booking(new_resident(), second, consumer=EP)
    assert for_1177.resultCode == by_ep.resultCode == "OK"
    before = rules.fingerprint()
    rules.refused(rules.cancel(resident, R100, for_1177.bookingId), texts.TOO_LATE_TO_CANCEL, before)
    ep_resident = rules.one("SELECT subject_of_care FROM booking WHERE booking_id = %s", by_ep.bookingId)
    assert rules.details(ep_resident["subject_of_care"], R100, by_ep.bookingId, EP).cancel_booking_allowed is True
    response = rules.cancel(ep_resident["subject_of_care"], R100, by_ep.bookingId, consumer=EP)
    assert response.resultCode == "OK", response.resultText


# -- what 1177 shows ----------------------------------------------------------------------------------


def test_the_preparation_text_is_on_free_slots_and_bookings(rules: Rules) -> None:
    resident, prov = new_resident(), rules.free_slot(A200, "PROV")
    day = prov.day
    [offered] = [s for s in rules.offered(resident, A200, day, day) if s.bookingId == prov.ref]
    assert offered.purpose == PREPARATION
    booked = rules.make_booking(resident, prov)
    assert rules.details(resident, A200, booked.bookingId).purpose == PREPARATION
    schedule = rules.call("GetSubjectOfCareSchedule", A200, as_resident(resident), healthcare_facility=A200,
                          subject_of_care=resident)  # fmt: skip
    assert [t.purpose for t in schedule.timeslotDetail] == [PREPARATION]


def test_medical_responsibility(rules: Rules) -> None:
    resident = new_resident()
    ok, other = rules.free_slot(A100, "SSK"), rules.free_slot(A100, "SSK")
    made = rules.make_booking(resident, ok, med=MEDICAL_UNIT)
    assert made.resultCode == "OK", made.resultText
    assert rules.one("SELECT healthcare_facility_med FROM booking WHERE booking_id = %s", made.bookingId) == {
        "healthcare_facility_med": MEDICAL_UNIT
    }
    rules.refused(rules.make_booking(new_resident(), other, med="SE2321000016-V999"), texts.FACILITY_MISMATCH,
                  rules.fingerprint())  # fmt: skip


def test_performer_name_is_title_first_and_last(rules: Rules) -> None:
    lak = rules.free_slot(A100, "LAK")
    day = lak.day
    names = {s.performerName for s in rules.offered(new_resident(), A100, day, day, timeTypeID="LAK")}
    assert names == {"Läkare Anna Andersson"}


def test_an_expired_invitation_cannot_be_booked_before_the_sweeper_runs(rules: Rules) -> None:
    resident = new_resident()
    invitation = rules.invite(resident, "PROV")
    rules.db.execute("UPDATE booking SET valid_until = now() - interval '1 minute' WHERE booking_id = %s",
                     (invitation,))  # fmt: skip
    before = rules.fingerprint()
    rules.refused(rules.make_booking(resident, rules.free_slot(A100, "PROV"), booking_id=invitation),
                  texts.INVITATION_EXPIRED, before)  # fmt: skip


# -- the Actor ----------------------------------------------------------------------------------------


def test_a_resident_acts_only_on_their_own_bookings(rules: Rules) -> None:
    owner, other = new_resident(), new_resident()
    slot, target = rules.free_slot(A100, "SSK"), rules.free_slot(A100, "SSK")
    booking_id = rules.make_booking(owner, slot).bookingId
    before = rules.fingerprint()
    moved = rules.update_booking(owner, booking_id, target, actor=as_resident(other))
    rules.refused(moved, texts.OTHER_RESIDENT, before)
    rules.refused(rules.cancel(owner, A100, booking_id, actor=as_resident(other)), texts.BOOKING_NOT_FOUND, before)
    with pytest.raises(zeep.exceptions.Fault):
        rules.call("GetBookingDetails", A100, as_resident(other), healthcare_facility=A100, bookingId=booking_id)
    with pytest.raises(zeep.exceptions.Fault):
        rules.call("GetSubjectOfCareSchedule", A100, as_resident(other), healthcare_facility=A100,
                   subject_of_care=owner)  # fmt: skip
    rules.refused(rules.make_booking(owner, target, actor=as_resident(other)), texts.OTHER_RESIDENT, before)
    # an agent acts for the resident the request names
    agent = ("SE2321000016-AG01", "subject_of_care_agent")
    assert rules.update_booking(owner, booking_id, target, actor=agent).resultCode == "OK"


def test_update_booking_changes_the_names_too(rules: Rules) -> None:
    resident = new_resident()
    slot, target = rules.free_slot(A100, "SSK"), rules.free_slot(A100, "SSK")
    booking_id = rules.make_booking(resident, slot).bookingId
    response = rules.update_booking(
        resident, booking_id, target,
        subject_of_care_info={"firstName": "Nytt", "middleName": "Mellan", "lastName": "Namn", "phone": "070-111"},
    )  # fmt: skip
    assert response.resultCode == "OK", response.resultText
    row = rules.one("SELECT first_name, middle_name, last_name, phone FROM booking WHERE booking_id = %s", booking_id)
    assert row == {"first_name": "Nytt", "middle_name": "Mellan", "last_name": "Namn", "phone": "070-111"}


# -- what the resident writes reaches the clinic ------------------------------------------------------


def test_reason_phone_and_message_reach_the_day_list_and_history(rules: Rules) -> None:
    resident, slot = new_resident(), rules.free_slot(A100, "SSK")
    made = rules.make_booking(resident, slot, timeslot={"reason": "Ont i ryggen"}, info={"phone": "070-1234567"})
    assert made.resultCode == "OK", made.resultText
    status, listed = rules.admin("GET", f"/admin/units/{A100}/bookings?date={wire_day(slot)}")
    assert status == 200, listed
    [entry] = [e for e in listed if e["slot"] == slot.ref]
    assert (entry["booking"]["reason"], entry["booking"]["phone"]) == ("Ont i ryggen", "070-1234567")
    assert rules.cancel(resident, A100, made.bookingId, message="Kan inte komma, förlåt.").resultCode == "OK"
    status, listed = rules.admin("GET", f"/admin/units/{A100}/bookings?date={wire_day(slot)}")
    [entry] = [e for e in listed if e["slot"] == slot.ref]
    assert entry["booking"] is None and entry["cancelled"][0]["message"] == "Kan inte komma, förlåt."


def wire_day(slot: Slot) -> str:
    """The slot's Stockholm date as the API takes it (YYYY-MM-DD)."""
    text = wire_date(slot.starts_at)
    return f"{text[:4]}-{text[4:6]}-{text[6:]}"


def test_long_texts_are_refused_whole_never_cut(rules: Rules) -> None:
    resident, slot = new_resident(), rules.free_slot(A100, "SSK")
    before = rules.fingerprint()
    too_long = "x" * 1001
    rules.refused(rules.make_booking(resident, slot, timeslot={"reason": too_long}),
                  texts.REASON_TOO_LONG.format(limit=1000), before)  # fmt: skip
    made = rules.make_booking(resident, slot, timeslot={"reason": "y" * 1000})
    assert made.resultCode == "OK", made.resultText
    rules.refused(rules.cancel(resident, A100, made.bookingId, message=too_long),
                  texts.MESSAGE_TOO_LONG.format(limit=1000), rules.fingerprint())  # fmt: skip
    status, answer = rules.staff_book(A100, new_resident(), rules.free_slot(A100, "SSK"), reason=too_long)
    assert status == 400 and answer["error"]["field"] == "reason", answer


# -- a unit not yet live in 1177 ----------------------------------------------------------------------


def test_a_unit_not_live_in_1177_writes_no_ei_posts_until_it_is(rules: Rules) -> None:
    def load(publish: bool) -> None:
        unit = {"hsa_id": R100, "name": "Mottagningen Regler", "publish_to_ei": publish}
        status, _, report = admin_api(rules.server, "POST", "/admin/load", {"units": [unit]}, token=TOKEN)
        assert status == 200 and report["ok"], report

    load(False)
    resident = new_resident()
    made = rules.make_booking(resident, rules.slot_in(R100, "NARA", timedelta(days=5)))
    assert made.resultCode == "OK", made.resultText
    pk = rules.one("SELECT pk FROM booking WHERE booking_id = %s", made.bookingId)["pk"]
    assert rules.outbox(pk) == [] and rules.one("SELECT ei_post FROM booking WHERE pk = %s", pk)["ei_post"] is None
    load(True)
    [row] = rules.outbox(pk)
    assert row["before"] is None and row["after"]["booking_id"] == made.bookingId
    load(False)
    assert rules.outbox(pk)[-1]["after"] is None  # going dark deletes the posts it had
    load(True)
