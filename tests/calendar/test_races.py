"""Concurrent booking changes: the calendar stays consistent whoever wins.

Each thread has its own zeep client from the OFFICIAL WSDL (its own HTTP session), and a barrier
releases all of them at once, so the requests really overlap in the server. Losing a race is an
ordinary resident-facing refusal (resultCode ERROR), never a fault, and never a double booking.
Runs under both booking-id policies: per-slot ids make racing MakeBookings also collide on the
unique bookingId, a different path from the conditional slot update.

The slots come from the far end of the calendar, away from the ones test_booking_flows uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
from support import OfficialClient, ProducerServer
from support.calendar import CalendarDb, Slot, wire
from support.official import zeep_client
from support.residents import Residents

A100 = "SE2321000016-A100"
SLOT_TAKEN = "Tiden är tyvärr inte längre ledig"
BOOKERS = 16
REBOOKERS = 8


# A valid personnummer unique in the session (born 1990 onwards; test_booking_flows uses 1950 on).
new_resident = Residents(date(1990, 1, 1), "456")


class Racers(CalendarDb):
    """A producer, its database, and a separate zeep client per thread and interaction.

    Its slots come from the far end of the calendar (``last_slot``), away from test_booking_flows'."""

    def __init__(self, server: ProducerServer) -> None:
        super().__init__(server)
        self._clients: dict[str, list[OfficialClient]] = {}

    def clients(self, op: str, count: int) -> list[OfficialClient]:
        pool = self._clients.setdefault(op, [])
        while len(pool) < count:
            pool.append(zeep_client(op, self.server.base_url))
        return pool[:count]

    def make_booking(self, client: OfficialClient, resident: str, timeslot: dict[str, Any]) -> Any:
        return client.call(
            A100,
            (resident, "subject_of_care"),
            healthcare_facility_med=A100,
            requestedTimeslot=timeslot,
            subject_of_care_info={"firstName": "Rac", "lastName": "Ersson"},
        )

    def update_booking(self, client: OfficialClient, resident: str, booking_id: str, slot: Slot) -> Any:
        return client.call(A100, (resident, "subject_of_care"), requestedTimeslot=slot.timeslot(resident, booking_id))

    def cancel(self, client: OfficialClient, resident: str, booking_id: str) -> Any:
        return client.call(A100, (resident, "subject_of_care"), healthcare_facility=A100, bookingId=booking_id)

    def book(self, resident: str, slot: Slot) -> tuple[str, int]:
        """A booking made alone (setup); returns (bookingId, pk)."""
        response = self.make_booking(self.clients("MakeBooking", 1)[0], resident, slot.timeslot(resident))
        assert response.resultCode == "OK", response.resultText
        return response.bookingId, self.holder(slot.id)

    def last_slot(self, time_type: str) -> Slot:
        return self.free_slot(A100, time_type, last=True)

    def count(self, query: str, *params: Any) -> int:
        return self.db.execute(query, params).fetchone()["n"]

    def assert_calendar_consistent(self) -> None:
        """Every active booking or timed invitation holds exactly one slot; nothing else holds one."""
        held_by_inactive = self.db.execute(
            "SELECT s.id, b.pk, b.status FROM slot s JOIN booking b ON b.pk = s.booking_pk WHERE b.status <> 'active'"
        ).fetchall()
        assert held_by_inactive == []
        without_slot = self.db.execute(
            "SELECT b.pk, b.booking_id FROM booking b WHERE b.status = 'active' AND b.kind <> 'open_invitation'"
            " AND NOT EXISTS (SELECT 1 FROM slot s WHERE s.booking_pk = b.pk)"
        ).fetchall()
        assert without_slot == []
        open_with_slot = self.db.execute(
            "SELECT b.pk FROM booking b JOIN slot s ON s.booking_pk = b.pk WHERE b.kind = 'open_invitation'"
        ).fetchall()
        assert open_with_slot == []


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls on their own threads, released together by a barrier; exceptions are returned."""
    barrier = threading.Barrier(len(calls))

    def run(action: Callable[[], Any]) -> Any:
        barrier.wait(timeout=60)
        try:
            return action()
        except Exception as exc:  # a fault or a schema violation: reported by the test, not lost
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls, timeout=120))


def assert_no_exceptions(results: list[Any]) -> None:
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == [], failures


@pytest.fixture(scope="module")
def stable(start_producer: Callable[..., ProducerServer]) -> Iterator[Racers]:
    racers = Racers(start_producer("flows"))
    yield racers
    racers.close()


@pytest.fixture(scope="module")
def perslot(start_producer: Callable[..., ProducerServer]) -> Iterator[Racers]:
    racers = Racers(start_producer("perslot", {"TIDBOK_BOOKING_ID_POLICY": "per-slot"}))
    yield racers
    racers.close()


@pytest.fixture(params=["stable", "per-slot"])
def racers(request: pytest.FixtureRequest) -> Racers:
    return request.getfixturevalue("stable" if request.param == "stable" else "perslot")


@pytest.mark.parametrize("attempt", range(5))
def test_sixteen_residents_race_for_one_slot(racers: Racers, attempt: int) -> None:
    """Exactly one booking wins; the fifteen others are told the time is taken, and nothing of theirs stays."""
    slot = racers.last_slot(("LAK", "SSK", "PROV")[attempt % 3])
    residents = [new_resident() for _ in range(BOOKERS)]
    clients = racers.clients("MakeBooking", BOOKERS)
    results = race(
        [
            lambda c=client, r=resident: racers.make_booking(c, r, slot.timeslot(r))
            for client, resident in zip(clients, residents, strict=True)
        ]
    )
    assert_no_exceptions(results)
    winners = [(r, res) for r, res in zip(residents, results, strict=True) if res.resultCode == "OK"]
    losers = [res for res in results if res.resultCode != "OK"]
    assert len(winners) == 1, [(res.resultCode, res.resultText) for res in results]
    assert len(losers) == BOOKERS - 1
    for loser in losers:
        assert loser.resultCode == "ERROR" and SLOT_TAKEN in loser.resultText, loser
        assert loser.bookingId is None

    winner, answer = winners[0]
    booking = racers.db.execute(
        "SELECT pk, subject_of_care FROM booking WHERE booking_id = %s AND status = 'active'", (answer.bookingId,)
    ).fetchone()
    assert booking["subject_of_care"] == winner
    assert racers.holder(slot.id) == booking["pk"]
    assert racers.count("SELECT count(*) AS n FROM booking WHERE subject_of_care = ANY(%s)", residents) == 1
    assert racers.count("SELECT count(*) AS n FROM ei_outbox WHERE booking_pk = %s", booking["pk"]) == 1
    assert racers.count("SELECT count(*) AS n FROM booking_event WHERE booking_pk = %s", booking["pk"]) == 1
    racers.assert_calendar_consistent()


def test_eight_rebookings_race_for_one_slot(racers: Racers) -> None:
    """One booking moves; the seven others keep the slots they had, untouched."""
    residents = [new_resident() for _ in range(REBOOKERS)]
    originals = [racers.last_slot("PROV") for _ in range(REBOOKERS)]
    bookings = [racers.book(r, s) for r, s in zip(residents, originals, strict=True)]
    target = racers.last_slot("PROV")
    clients = racers.clients("UpdateBooking", REBOOKERS)
    results = race(
        [
            lambda c=client, r=resident, b=booking_id: racers.update_booking(c, r, b, target)
            for client, resident, (booking_id, _) in zip(clients, residents, bookings, strict=True)
        ]
    )
    assert_no_exceptions(results)
    won = [i for i, res in enumerate(results) if res.resultCode == "OK"]
    assert len(won) == 1, [(res.resultCode, res.resultText) for res in results]
    for i, ((booking_id, pk), original) in enumerate(zip(bookings, originals, strict=True)):
        if i == won[0]:
            assert racers.slot_of(pk) == target.id and racers.holder(original.id) is None
            assert racers.count("SELECT count(*) AS n FROM ei_outbox WHERE booking_pk = %s", pk) == 2
        else:
            assert results[i].resultCode == "ERROR" and SLOT_TAKEN in results[i].resultText, results[i]
            assert racers.slot_of(pk) == original.id
            row = racers.db.execute("SELECT booking_id, status FROM booking WHERE pk = %s", (pk,)).fetchone()
            assert row == {"booking_id": booking_id, "status": "active"}
            assert racers.count("SELECT count(*) AS n FROM ei_outbox WHERE booking_pk = %s", pk) == 1
    racers.assert_calendar_consistent()


@pytest.mark.parametrize("attempt", range(6))
def test_cancel_and_rebook_of_one_booking_at_once(racers: Racers, attempt: int) -> None:
    """Whichever runs first, the booking ends cancelled holding nothing, or active holding one slot,
    and its last EI outbox row describes that end state."""
    resident = new_resident()
    old, new = racers.last_slot("SSK"), racers.last_slot("SSK")
    booking_id, pk = racers.book(resident, old)
    canceller = racers.clients("CancelBooking", 1)[0]
    rebooker = racers.clients("UpdateBooking", 1)[0]
    calls = [
        lambda: racers.cancel(canceller, resident, booking_id),
        lambda: racers.update_booking(rebooker, resident, booking_id, new),
    ]
    if attempt % 2:
        calls.reverse()
    results = race(calls)
    assert_no_exceptions(results)
    assert any(res.resultCode == "OK" for res in results), results

    row = racers.db.execute("SELECT status FROM booking WHERE pk = %s", (pk,)).fetchone()
    last = racers.db.execute(
        "SELECT after FROM ei_outbox WHERE booking_pk = %s ORDER BY id DESC LIMIT 1", (pk,)
    ).fetchone()["after"]
    if row["status"] == "cancelled":
        assert racers.slot_of(pk) is None and last is None
    else:
        assert row["status"] == "active"
        held = racers.slot_of(pk)
        assert held in (old.id, new.id)
        assert last is not None and last["most_recent_content"] == wire(
            new.starts_at if held == new.id else old.starts_at
        )
    assert racers.holder(old.id) in (None, pk) and racers.holder(new.id) in (None, pk)
    racers.assert_calendar_consistent()
