"""The resident's booking flows end to end: book, rebook, cancel, invitations, schedule and history.

Every call goes through zeep clients built from the OFFICIAL WSDLs (responses schema-checked by the
harness) against producers of our own ("flows": stable ids, "perslot": per-slot ids), and what the
server stored is checked in its database: the booking, the slot it holds, `booking_event` and the
EI outbox. Tests that depend on the booking-id policy run under both. Each test uses its own
residents and its own slots, so they stay independent in any order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import zeep
from support import ProducerServer
from support.calendar import Slot, wire
from support.flows import A100, A200, CONSUMER_HSA_ID, PLAIN_PURPOSE, Api, new_resident
from support.official import client_fault
from support.residents import as_resident
from zeep.helpers import serialize_object

from producer.calendar import resident_texts

AGENT: tuple[str, str] = ("SE2321000016-AG01", "subject_of_care_agent")

# The plain-Swedish texts 1177 shows as they are; a refusal must be one of them, never a technical message.
RESIDENT_TEXTS = {v for k, v in vars(resident_texts).items() if k.isupper() and isinstance(v, str)}
SLOT_TAKEN = "Tiden är tyvärr inte längre ledig"
ALREADY_CANCELLED = "Tiden var redan avbokad."
DOCBOOK = (
    "<article><title>Kallelse till provtagning</title>"
    "<para>Du är kallad till provtagning.</para>"
    "<section><title>Inför besöket</title><para>Du behöver inte fasta.</para></section></article>"
)


@pytest.fixture(scope="module")
def flows(start_producer: Callable[..., ProducerServer]) -> Iterator[Api]:
    api = Api(start_producer("flows"), "stable")
    yield api
    api.close()


@pytest.fixture(scope="module")
def perslot(start_producer: Callable[..., ProducerServer]) -> Iterator[Api]:
    api = Api(start_producer("perslot", {"TIDBOK_BOOKING_ID_POLICY": "per-slot"}), "per-slot")
    yield api
    api.close()


@pytest.fixture(params=["stable", "per-slot"])
def api(request: pytest.FixtureRequest) -> Api:
    """The same test under both booking-id policies."""
    return request.getfixturevalue("flows" if request.param == "stable" else "perslot")


def assert_refused(response: Any, text: str | None = None) -> None:
    """resultCode ERROR with one of the Swedish texts a resident can read."""
    assert response.resultCode == "ERROR", (response.resultCode, response.resultText)
    assert response.resultText in RESIDENT_TEXTS, response.resultText
    if text is not None:
        assert text in response.resultText


def expected_new_id(api: Api, pk: int, slot: Slot, current: str | None = None) -> str:
    """A-4: stable keeps (or gets B<pk>), per-slot becomes the slot's id."""
    if api.policy == "per-slot":
        return slot.ref
    return current or f"B{pk}"


# -- flow 1: book ------------------------------------------------------------------------------


def test_book_a_slot_from_availability(api: Api) -> None:
    """Flow 1 as 1177 runs it: a slot from GetAvailableTimeslots passed back as is to MakeBooking."""
    resident = new_resident()
    hint = api.free_slot(A100, "LAK")  # a day with free LAK slots; the slot itself comes from availability
    offered = [s for s in api.available(resident, A100, hint.starts_at, "LAK") if s.bookingId == hint.ref]
    assert len(offered) == 1
    chosen = serialize_object(offered[0], dict)
    assert chosen["startTimeInclusive"] == hint.start and chosen["timeTypeID"] == "LAK"
    chosen["subject_of_care"] = resident

    response = api.make_booking(chosen)
    assert response.resultCode == "OK", response.resultText
    row = api.booking(response.bookingId)
    assert row is not None and row["subject_of_care"] == resident and row["unit_hsa_id"] == A100
    assert response.bookingId == expected_new_id(api, row["pk"], hint)
    assert api.holder(hint.id) == row["pk"]

    detail = api.details(response.bookingId, resident, A100)
    assert (detail.startTimeInclusive, detail.endTimeExclusive) == (hint.start, hint.end)
    assert detail.bookingId == response.bookingId and detail.subject_of_care == resident
    assert detail.healthcare_facility == A100 and detail.healthcare_facility_name == "Vårdcentralen Exempel"
    assert detail.performer == hint.performer and detail.performerName == "Läkare Anna Andersson"
    assert (detail.timeTypeID, detail.timeTypeName) == ("LAK", "Läkarbesök")
    assert (detail.careTypeID, detail.careTypeName) == ("ALLM", "Allmänmedicin")
    assert detail.cancel_booking_allowed is True and detail.rebooking_allowed is True
    assert detail.message_allowed is True  # A100 allows messages
    assert detail.isInvitation is False

    assert [s.bookingId for s in api.schedule(resident, A100)] == [response.bookingId]
    assert hint.ref not in {s.bookingId for s in api.available(resident, A100, hint.starts_at, "LAK")}

    events = api.events(row["pk"])
    assert [(e["action"], e["channel"], e["actor_type"], e["actor_id"]) for e in events] == [
        ("book", "soap", "subject_of_care", resident)
    ]
    assert api.outbox(row["pk"]) == [
        {
            "reason": "book",
            "before": None,
            "after": {
                "subject_of_care": resident,
                "unit": A100,
                "booking_id": response.bookingId,
                "kind": "booking",
                "most_recent_content": hint.start,
            },
        }
    ]


def test_resent_booking_gets_the_same_booking_and_another_resident_is_refused(api: Api) -> None:
    """A consumer's retry after a timeout must not book twice; a second resident finds the slot taken."""
    resident, other = new_resident(), new_resident()
    slot = api.free_slot(A100, "SSK")
    first = api.make_booking(slot.timeslot(resident, bookingId=slot.ref))
    assert first.resultCode == "OK", first.resultText
    pk = api.booking(first.bookingId)["pk"]

    again = api.make_booking(slot.timeslot(resident, bookingId=slot.ref))
    assert (again.resultCode, again.bookingId) == ("OK", first.bookingId)
    by_times = api.make_booking(slot.timeslot(resident))
    assert (by_times.resultCode, by_times.bookingId) == ("OK", first.bookingId)
    assert api.one("SELECT count(*) AS n FROM booking WHERE subject_of_care = %s", resident)["n"] == 1
    assert len(api.outbox(pk)) == 1 and len(api.events(pk)) == 1

    before = api.state()
    data, answer = api.raw(
        "MakeBooking",
        A100,
        as_resident(other),
        healthcare_facility_med=A100,
        requestedTimeslot=slot.timeslot(other, bookingId=slot.ref),
        subject_of_care_info={"firstName": "Annan", "lastName": "Person"},
    )
    ns = {"r": "urn:riv:crm:scheduling:MakeBookingResponder:1"}
    assert answer.findtext("r:resultCode", namespaces=ns) == "ERROR"
    assert SLOT_TAKEN in answer.findtext("r:resultText", namespaces=ns)
    assert answer.find("r:bookingId", namespaces=ns) is None, data  # absent, not empty
    refused = api.make_booking(slot.timeslot(other))
    assert_refused(refused, SLOT_TAKEN)
    assert refused.bookingId is None
    assert api.state() == before
    assert api.holder(slot.id) == pk


# -- MakeBooking refusals ----------------------------------------------------------------------


def _bad_check_digit(api: Api) -> dict[str, Any]:
    resident = new_resident(bad_check_digit=True)
    return {"timeslot": api.free_slot(A100, "LAK").timeslot(resident), "text": resident_texts.INVALID_RESIDENT}


def _agent_without_resident(api: Api) -> dict[str, Any]:
    return {
        "timeslot": api.free_slot(A100, "LAK").timeslot(None),
        "actor": AGENT,
        "text": resident_texts.MISSING_RESIDENT,
    }


def _facility_med_mismatch(api: Api) -> dict[str, Any]:
    return {
        "timeslot": api.free_slot(A100, "LAK").timeslot(new_resident()),
        "med": A200,
        "text": resident_texts.FACILITY_MISMATCH,
    }


def _time_matching_no_slot(api: Api) -> dict[str, Any]:
    slot = api.free_slot(A100, "LAK")
    shift = timedelta(minutes=5)
    return {
        "timeslot": slot.timeslot(
            new_resident(), startTimeInclusive=wire(slot.starts_at + shift), endTimeExclusive=wire(slot.ends_at + shift)
        ),
        "text": resident_texts.SLOT_NOT_FOUND,
    }


def _past_slot(api: Api) -> dict[str, Any]:
    slot = api.free_slot(A100, "PROV")
    api.move_to_past(slot.id)
    return {"timeslot": api.slot(slot.id).timeslot(new_resident()), "text": resident_texts.SLOT_PASSED}


def _impossible_time(api: Api) -> dict[str, Any]:
    timeslot = api.free_slot(A100, "LAK").timeslot(new_resident())
    impossible = {"startTimeInclusive": "20261131090000", "endTimeExclusive": "20261131092000"}
    return {"timeslot": timeslot | impossible, "text": resident_texts.INVALID_TIME}


def _lak_at_a200_via_a100(api: Api) -> dict[str, Any]:
    return {"timeslot": api.lak_slot_at_a200().timeslot(new_resident()), "text": resident_texts.WRONG_UNIT}


def _slot_ref_of_another_unit(api: Api) -> dict[str, Any]:
    here, elsewhere = api.free_slot(A100, "PROV"), api.free_slot(A200, "PROV")
    return {"timeslot": here.timeslot(new_resident(), bookingId=elsewhere.ref), "text": resident_texts.SLOT_NOT_FOUND}


@pytest.mark.parametrize(
    "case",
    [
        _bad_check_digit,
        _agent_without_resident,
        _facility_med_mismatch,
        _time_matching_no_slot,
        _past_slot,
        _impossible_time,
        _lak_at_a200_via_a100,
        _slot_ref_of_another_unit,
    ],
    ids=lambda case: case.__name__.strip("_"),
)
def test_make_booking_refusals_write_nothing(flows: Api, case: Callable[[Api], dict[str, Any]]) -> None:
    """Logical errors are resultCode ERROR with a Swedish text, no bookingId and nothing stored."""
    request = case(flows)
    before = flows.state()
    response = flows.make_booking(request["timeslot"], actor=request.get("actor"), med=request.get("med"))
    assert_refused(response, request["text"])
    assert response.bookingId is None
    assert flows.state() == before


def test_prov_booked_at_the_alternative_unit(api: Api) -> None:
    """PROV may be booked at A200 through A100 (unit_alternative): the booking belongs to A200."""
    resident = new_resident()
    slot = api.free_slot(A200, "PROV")
    response = api.make_booking(slot.timeslot(resident), unit=A100)
    assert response.resultCode == "OK", response.resultText
    row = api.booking(response.bookingId)
    assert row["unit_hsa_id"] == A200 and api.holder(slot.id) == row["pk"]
    assert api.details(response.bookingId, resident, A200).healthcare_facility == A200
    client_fault(lambda: api.details(response.bookingId, resident, A100))
    assert api.outbox(row["pk"])[-1]["after"]["unit"] == A200


# -- flow 3: rebook ----------------------------------------------------------------------------


def test_rebook_to_another_slot(api: Api) -> None:
    """Flow 3: availability asked with the bookingId, a slot passed back as is to UpdateBooking."""
    resident = new_resident()
    old = api.free_slot(A100, "LAK")
    booking_id = api.book(resident, old)
    pk = api.booking(booking_id)["pk"]
    hint = api.free_slot(A100, "LAK")
    offered = [
        s
        for s in api.available(resident, A100, hint.starts_at, booking_id=booking_id)
        if s.startTimeInclusive == hint.start
    ]
    assert len(offered) == 1 and offered[0].bookingId == booking_id and offered[0].timeTypeID == "LAK"
    requested = serialize_object(offered[0], dict) | {"subject_of_care": resident}

    response = api.call("UpdateBooking", A100, as_resident(resident), requestedTimeslot=requested)
    assert response.resultCode == "OK", response.resultText
    assert api.holder(old.id) is None and api.holder(hint.id) == pk
    new_id = expected_new_id(api, pk, hint, booking_id)
    assert api.current_id(pk) == new_id
    assert [s.bookingId for s in api.schedule(resident, A100)] == [new_id]
    detail = api.details(new_id, resident, A100)
    assert (detail.startTimeInclusive, detail.endTimeExclusive) == (hint.start, hint.end)
    if new_id != booking_id:
        client_fault(lambda: api.details(booking_id, resident, A100))
    assert old.ref in {s.bookingId for s in api.available(resident, A100, old.starts_at, "LAK")}

    change = api.outbox(pk)[-1]
    assert change["reason"] == "rebook"
    assert change["before"]["most_recent_content"] == old.start
    assert change["after"]["most_recent_content"] == hint.start
    assert change["before"]["booking_id"] == booking_id and change["after"]["booking_id"] == new_id
    if api.policy == "stable":
        assert change["before"]["booking_id"] == change["after"]["booking_id"]
    else:
        assert change["before"]["booking_id"] != change["after"]["booking_id"]


def test_resent_rebooking_is_ok_and_changes_nothing(api: Api) -> None:
    """The same UpdateBooking twice (a consumer's retry): OK both times, one change in EI."""
    resident = new_resident()
    old, new = api.free_slot(A100, "SSK"), api.free_slot(A100, "SSK")
    booking_id = api.book(resident, old)
    pk = api.booking(booking_id)["pk"]
    assert api.update_booking(booking_id, resident, new, A100).resultCode == "OK"
    before = api.state()
    again = api.update_booking(booking_id, resident, new, A100)
    assert (again.resultCode, again.resultText) == ("OK", None)
    assert api.state() == before
    assert api.holder(new.id) == pk and len(api.outbox(pk)) == 2


def test_rebook_to_a_taken_slot_leaves_the_booking_as_it_was(api: Api) -> None:
    resident, other = new_resident(), new_resident()
    mine, theirs = api.free_slot(A100, "LAK"), api.free_slot(A100, "LAK")
    booking_id = api.book(resident, mine)
    api.book(other, theirs)
    before = api.state()
    assert_refused(api.update_booking(booking_id, resident, theirs, A100), SLOT_TAKEN)
    assert api.state() == before
    row = api.booking(booking_id)
    assert row is not None and api.slot_of(row["pk"]) == mine.id
    assert api.details(booking_id, resident, A100).startTimeInclusive == mine.start


def test_rebook_prov_to_the_alternative_unit(api: Api) -> None:
    """A PROV booking at A100 may move to A200; afterwards it belongs to A200 alone."""
    resident = new_resident()
    old, new = api.free_slot(A100, "PROV"), api.free_slot(A200, "PROV")
    booking_id = api.book(resident, old)
    pk = api.booking(booking_id)["pk"]
    response = api.update_booking(booking_id, resident, new, A100)
    assert response.resultCode == "OK", response.resultText
    new_id = expected_new_id(api, pk, new, booking_id)
    row = api.booking_by_pk(pk)
    assert (row["unit_hsa_id"], row["booking_id"]) == (A200, new_id)
    assert api.holder(old.id) is None and api.holder(new.id) == pk
    assert api.details(new_id, resident, A200).startTimeInclusive == new.start
    client_fault(lambda: api.details(new_id, resident, A100))
    change = api.outbox(pk)[-1]
    assert (change["before"]["unit"], change["after"]["unit"]) == (A100, A200)


def test_rebook_lak_to_another_unit_is_refused(flows: Api) -> None:
    """LAK has no alternative unit: even a LAK slot at A200 may not take an A100 booking."""
    resident = new_resident()
    old = flows.free_slot(A100, "LAK")
    booking_id = flows.book(resident, old)
    target = flows.lak_slot_at_a200()
    before = flows.state()
    assert_refused(flows.update_booking(booking_id, resident, target, A100), resident_texts.WRONG_UNIT)
    assert_refused(flows.update_booking(booking_id, resident, target, A200))
    assert flows.state() == before
    assert flows.slot_of(flows.booking(booking_id)["pk"]) == old.id


def test_rebook_within_the_deadline_is_refused(flows: Api) -> None:
    """A100 allows changes until 24 hours before the start."""
    resident = new_resident()
    old, new = flows.free_slot(A100, "PROV"), flows.free_slot(A100, "PROV")
    booking_id = flows.book(resident, old)
    flows.move_near(old.id)
    before = flows.state()
    assert_refused(flows.update_booking(booking_id, resident, new, A100), resident_texts.TOO_LATE_TO_REBOOK)
    assert flows.state() == before
    detail = flows.details(booking_id, resident, A100)
    assert detail.rebooking_allowed is False and detail.cancel_booking_allowed is False


def test_rebook_of_an_open_invitation_tells_to_book_instead(flows: Api) -> None:
    resident = new_resident()
    invitation = flows.create_invitation(resident, A100, None)
    before = flows.state()
    assert_refused(flows.update_booking(invitation, resident, flows.free_slot(A100, "PROV"), A100), "Boka")
    assert flows.state() == before


def test_rebook_without_booking_id_is_refused(flows: Api) -> None:
    resident = new_resident()
    booking_id = flows.book(resident, flows.free_slot(A100, "SSK"))
    before = flows.state()
    assert_refused(
        flows.update_booking(None, resident, flows.free_slot(A100, "SSK"), A100), resident_texts.MISSING_BOOKING_ID
    )
    assert flows.state() == before
    assert flows.booking(booking_id) is not None


@pytest.mark.parametrize("names_resident", [True, False], ids=["subject_of_care", "actor_only"])
def test_rebook_of_another_residents_booking_is_refused(flows: Api, names_resident: bool) -> None:
    """Knowing (or guessing) a bookingId must not let one resident move another's booking.

    subject_of_care is 1..1 in UpdateBooking (TKB); when a consumer leaves it out the resident in
    the Actor header is who asks, as in MakeBooking."""
    owner, other = new_resident(), new_resident()
    mine = flows.free_slot(A100, "SSK")
    booking_id = flows.book(owner, mine)
    timeslot = flows.free_slot(A100, "SSK").timeslot(other if names_resident else None, bookingId=booking_id)
    before = flows.state()
    response = flows.call("UpdateBooking", A100, as_resident(other), requestedTimeslot=timeslot)
    assert_refused(response)
    assert flows.state() == before
    assert flows.slot_of(flows.booking(booking_id)["pk"]) == mine.id


# -- invitations -------------------------------------------------------------------------------


def test_timed_invitation_is_shown_and_becomes_a_booking_when_rebooked(api: Api) -> None:
    resident = new_resident()
    slot, new = api.free_slot(A200, "PROV"), api.free_slot(A200, "PROV")
    invitation = api.create_invitation(resident, A200, slot, purpose=DOCBOOK)
    pk = api.booking(invitation)["pk"]

    detail = api.details(invitation, resident, A200)
    assert detail.isInvitation is True and detail.purpose == DOCBOOK
    assert detail.startTimeInclusive == slot.start
    data, _ = api.raw("GetBookingDetails", A200, as_resident(resident), healthcare_facility=A200, bookingId=invitation)
    assert b"&lt;article&gt;" in data and b"<article>" not in data
    assert [s.bookingId for s in api.schedule(resident, A200)] == [invitation]

    response = api.update_booking(invitation, resident, new, A200)
    assert response.resultCode == "OK", response.resultText
    new_id = expected_new_id(api, pk, new, invitation)
    detail = api.details(new_id, resident, A200)
    assert detail.isInvitation is False and detail.startTimeInclusive == new.start
    assert api.booking_by_pk(pk)["kind"] == "booking"
    change = api.outbox(pk)[-1]
    assert (change["before"]["kind"], change["after"]["kind"]) == ("invitation", "booking")
    assert change["before"]["booking_id"] == invitation and change["after"]["booking_id"] == new_id


def test_open_invitation_booked_with_make_booking(api: Api) -> None:
    """Flow 7: an open invitation has no times until booked, and is booked once only."""
    resident = new_resident()
    invitation = api.create_invitation(resident, A100, None)
    pk = api.booking(invitation)["pk"]

    detail = api.details(invitation, resident, A100)
    assert detail.startTimeInclusive is None and detail.endTimeExclusive is None
    assert detail.isInvitation is True and detail.purpose == PLAIN_PURPOSE
    assert api.schedule(resident, A100) == []

    slot = api.free_slot(A100, "PROV")
    request = slot.timeslot(resident, bookingId=invitation)
    response = api.make_booking(request)
    assert response.resultCode == "OK", response.resultText
    assert response.bookingId == expected_new_id(api, pk, slot, invitation)
    assert api.holder(slot.id) == pk
    assert api.one("SELECT count(*) AS n FROM booking WHERE subject_of_care = %s", resident)["n"] == 1
    detail = api.details(response.bookingId, resident, A100)
    assert detail.isInvitation is False
    assert (detail.startTimeInclusive, detail.endTimeExclusive) == (slot.start, slot.end)
    assert [s.bookingId for s in api.schedule(resident, A100)] == [response.bookingId]
    assert [e["action"] for e in api.events(pk)] == ["book_invitation"]
    change = api.outbox(pk)[-1]
    assert change["before"]["kind"] == "invitation" and change["after"]["kind"] == "booking"
    assert change["after"]["most_recent_content"] == slot.start

    before = api.state()
    other_slot = api.free_slot(A100, "PROV").timeslot(resident, bookingId=invitation)
    assert_refused(api.make_booking(other_slot), resident_texts.INVITATION_ALREADY_BOOKED)
    assert api.state() == before
    again = api.make_booking(request)
    assert (again.resultCode, again.bookingId) == ("OK", response.bookingId)
    assert api.state() == before


def test_open_invitation_refuses_another_time_type(flows: Api) -> None:
    """The time type of an invitation cannot change: a LAK slot cannot book a PROV invitation."""
    resident = new_resident()
    invitation = flows.create_invitation(resident, A100, None)
    before = flows.state()
    response = flows.make_booking(flows.free_slot(A100, "LAK").timeslot(resident, bookingId=invitation))
    assert_refused(response)
    assert response.resultText == resident_texts.SLOT_NOT_FOUND  # no slot of the invitation's time type there
    assert flows.state() == before
    assert flows.booking(invitation)["kind"] == "open_invitation"


def test_expired_open_invitation_is_refused(flows: Api) -> None:
    resident = new_resident()
    invitation = flows.create_invitation(resident, A100, None)
    flows.db.execute("UPDATE booking SET valid_until = now() - interval '1 hour' WHERE booking_id = %s", (invitation,))
    before = flows.state()
    response = flows.make_booking(flows.free_slot(A100, "PROV").timeslot(resident, bookingId=invitation))
    assert_refused(response, resident_texts.INVITATION_EXPIRED)
    assert flows.state() == before


def test_open_invitation_of_another_resident_is_refused(flows: Api) -> None:
    owner, other = new_resident(), new_resident()
    invitation = flows.create_invitation(owner, A100, None)
    before = flows.state()
    response = flows.make_booking(flows.free_slot(A100, "PROV").timeslot(other, bookingId=invitation))
    assert_refused(response, resident_texts.INVITATION_NOT_FOUND)
    assert flows.state() == before
    assert flows.booking(invitation)["kind"] == "open_invitation"


# -- flow 4: cancel ----------------------------------------------------------------------------


def test_cancel_frees_the_slot_at_once(api: Api) -> None:
    resident = new_resident()
    slot = api.free_slot(A100, "LAK")
    booking_id = api.book(resident, slot)
    pk = api.booking(booking_id)["pk"]

    response = api.cancel(booking_id, resident, A100, message="Jag är bortrest.")
    assert response.resultCode == "OK", response.resultText
    row = api.booking_by_pk(pk)
    assert row["status"] == "cancelled" and row["cancel_message"] == "Jag är bortrest."
    assert api.holder(slot.id) is None
    assert slot.ref in {s.bookingId for s in api.available(resident, A100, slot.starts_at, "LAK")}
    client_fault(lambda: api.details(booking_id, resident, A100))
    assert api.schedule(resident, A100) == []
    change = api.outbox(pk)[-1]
    assert change["reason"] == "cancel" and change["after"] is None
    assert change["before"]["booking_id"] == booking_id

    before = api.state()
    again = api.cancel(booking_id, resident, A100)
    assert (again.resultCode, again.resultText) == ("INFO", ALREADY_CANCELLED)
    assert api.state() == before


def test_cancel_message_is_dropped_where_messages_are_not_allowed(flows: Api) -> None:
    resident = new_resident()
    booking_id = flows.book(resident, flows.free_slot(A200, "PROV"))
    assert flows.details(booking_id, resident, A200).message_allowed is False
    assert flows.cancel(booking_id, resident, A200, message="Hej").resultCode == "OK"
    row = flows.one("SELECT status, cancel_message FROM booking WHERE booking_id = %s", booking_id)
    assert row == {"status": "cancelled", "cancel_message": None}


def test_cancel_within_the_deadline_is_refused(flows: Api) -> None:
    resident = new_resident()
    slot = flows.free_slot(A100, "PROV")
    booking_id = flows.book(resident, slot)
    flows.move_near(slot.id)
    before = flows.state()
    assert_refused(flows.cancel(booking_id, resident, A100), resident_texts.TOO_LATE_TO_CANCEL)
    assert flows.state() == before
    assert flows.booking(booking_id) is not None


def test_cancel_of_an_unknown_booking_is_refused(flows: Api) -> None:
    before = flows.state()
    assert_refused(flows.cancel("B999999999", new_resident(), A100), resident_texts.BOOKING_NOT_FOUND)
    assert flows.state() == before


def test_cancel_with_another_facility_than_the_logical_address_is_refused(flows: Api) -> None:
    resident = new_resident()
    booking_id = flows.book(resident, flows.free_slot(A100, "SSK"))
    before = flows.state()
    assert_refused(flows.cancel(booking_id, resident, A100, facility=A200), resident_texts.FACILITY_MISMATCH)
    assert_refused(flows.cancel(booking_id, resident, A200))  # asked at the wrong unit altogether
    assert flows.state() == before


def test_an_open_invitation_cannot_be_cancelled_by_the_resident(flows: Api) -> None:
    """Seed 001 §5.14.2: an open invitation can only be booked, not rebooked or cancelled, and
    GetBookingDetails says so (the clinic withdraws it: test_staff)."""
    resident = new_resident()
    invitation = flows.create_invitation(resident, A100, None)
    pk = flows.booking(invitation)["pk"]
    detail = flows.details(invitation, resident, A100)
    assert (detail.cancel_booking_allowed, detail.rebooking_allowed) == (False, False)
    before = flows.state()
    response = flows.cancel(invitation, resident, A100)
    assert_refused(response, resident_texts.OPEN_INVITATION_CANCEL)
    assert flows.state() == before
    assert flows.booking_by_pk(pk)["status"] == "active"


def test_cancel_resent_after_the_slot_was_rebooked_by_someone_else(api: Api) -> None:
    """A retried CancelBooking must never cancel another resident's booking.

    Under the per-slot policy a freed slot's next booking gets the same bookingId ("T<slot>"), so a
    late retry of the first resident's cancel names the second resident's booking."""
    first, second = new_resident(), new_resident()
    slot = api.free_slot(A100, "LAK")
    first_id = api.book(first, slot)
    assert api.cancel(first_id, first, A100).resultCode == "OK"
    second_id = api.book(second, slot)
    second_pk = api.booking(second_id)["pk"]

    retry = api.cancel(first_id, first, A100)
    assert retry.resultCode in ("INFO", "ERROR"), retry.resultText
    assert api.booking_by_pk(second_pk)["status"] == "active"
    assert api.holder(slot.id) == second_pk


# -- queries -----------------------------------------------------------------------------------


def test_stale_booking_id_never_shows_another_residents_booking(api: Api) -> None:
    """GetBookingDetails with an id the resident once had (e.g. still in EI until the delete is
    published) must not answer with someone else's booking: per-slot ids come back with the slot."""
    first, second = new_resident(), new_resident()
    slot = api.free_slot(A100, "LAK")
    first_id = api.book(first, slot)
    assert api.cancel(first_id, first, A100).resultCode == "OK"
    api.book(second, slot)
    try:
        detail = api.details(first_id, first, A100)
    except zeep.exceptions.Fault as fault:
        assert (fault.code or "").endswith("Client")
    else:
        assert detail.subject_of_care != second, "the first resident was shown the second resident's booking"


def test_booking_details_at_another_unit_is_a_client_fault(flows: Api) -> None:
    """There is no resultCode in GetBookingDetails: another unit's booking is as unknown as none."""
    resident = new_resident()
    booking_id = flows.book(resident, flows.free_slot(A100, "LAK"))
    fault = client_fault(lambda: flows.details(booking_id, resident, A200))
    assert resident not in (fault.message or "")
    client_fault(lambda: flows.details("B999999999", resident, A100))


def test_schedule_lists_future_bookings_and_timed_invitations_only(flows: Api) -> None:
    resident = new_resident()
    current = flows.book(resident, flows.free_slot(A100, "LAK"))
    cancelled = flows.book(resident, flows.free_slot(A100, "SSK"))
    assert flows.cancel(cancelled, resident, A100).resultCode == "OK"
    past_slot = flows.free_slot(A100, "PROV")
    past = flows.book(resident, past_slot)
    flows.move_to_past(past_slot.id)
    flows.create_invitation(resident, A100, None)
    timed_slot = flows.free_slot(A100, "PROV")
    timed = flows.create_invitation(resident, A100, timed_slot, purpose=DOCBOOK)

    listed = {s.bookingId: s for s in flows.schedule(resident, A100)}
    assert set(listed) == {current, timed}, (past, cancelled)
    assert listed[timed].isInvitation is True and listed[timed].startTimeInclusive == timed_slot.start
    assert listed[current].isInvitation is False
    for item in listed.values():
        assert item.subject_of_care == resident and item.healthcare_facility == A100
    assert flows.schedule(resident, A200) == []


# -- history -----------------------------------------------------------------------------------


def test_every_change_is_recorded_with_actor_channel_and_consumer(flows: Api) -> None:
    """Staff follow up residents' own changes (TKB: log citizen-initiated rebookings and cancels)."""
    resident = new_resident()
    first, second = flows.free_slot(A100, "SSK"), flows.free_slot(A100, "SSK")
    booking_id = flows.book(resident, first)
    pk = flows.booking(booking_id)["pk"]
    assert flows.update_booking(booking_id, resident, second, A100, actor=AGENT).resultCode == "OK"
    assert flows.cancel(booking_id, resident, A100).resultCode == "OK"

    invitation = flows.create_invitation(resident, A100, None)
    invitation_pk = flows.booking(invitation)["pk"]
    booked = flows.make_booking(flows.free_slot(A100, "PROV").timeslot(resident, bookingId=invitation), actor=AGENT)
    assert booked.resultCode == "OK", booked.resultText

    events = flows.events(pk) + flows.events(invitation_pk)
    assert [(e["action"], e["channel"], e["actor_type"], e["actor_id"]) for e in events] == [
        ("book", "soap", "subject_of_care", resident),
        ("rebook", "soap", *AGENT[::-1]),
        ("cancel", "soap", "subject_of_care", resident),
        ("book_invitation", "soap", *AGENT[::-1]),
    ]
    assert all(e["details"]["consumer"] == CONSUMER_HSA_ID for e in events)
    rebook = events[1]["details"]
    assert (rebook["from_slot"], rebook["to_slot"]) == (first.id, second.id)
