"""Delivery to the engagement index when things go wrong: EI down, slow, failing, refusing data, the
publisher killed mid-call, and two publishers racing on one outbox.

The issue's promise is at-least-once delivery that never loses, reorders or silently drops a change,
while the SOAP booking calls never wait for EI. So every test here drives real bookings through the
producer's SOAP interface (official WSDLs), runs real publisher processes (``python -m producer
publish``) against a real EI stub, and judges the outcome by what the stub ended up holding and by
the order of its applied log, compared with what the producer's database says should be in EI.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from lxml import etree
from support import ProducerServer, run_cli
from support.calendar import SLOT_COLUMNS, Slot, staff_invitation
from support.ei import (
    CORE_XSD,
    OFFICIAL,
    PublisherProcess,
    Stub,
    log_key,
    order_problems,
    post_tuple,
    running_stub,
    start_publisher,
    stub_posts,
)
from support.official import Official
from support.residents import Residents

from engagement_index.client import UpdateClient
from engagement_index.config import EiSettings
from engagement_index.publisher import Publisher
from producer.calendar.history import publish_change

pytestmark = pytest.mark.skipif(not CORE_XSD.is_file(), reason=f"official EI contract not found at {OFFICIAL}")

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
# One publishing loop per process where a test asserts an exact sequence of calls: two threads
# starting together may split one batch between them (they are covered by the two-publisher race).
ONE_THREAD = {"TIDBOK_EI_PUBLISHER_THREADS": "1"}
# A SOAP booking call never waits for EI: it must answer well before the shortest time EI keeps a
# caller waiting in these tests (a 3 s timeout against a 4 s answer, or 5 s against a dead EI). Not
# a speed target (make bench has those): 1 s was missed on a loaded 2-core machine (1.25 s).
SOAP_BUDGET_SECONDS = 2.5
WAIT_SECONDS = 60.0
UPDATE_NS = "urn:riv:itintegration:engagementindex:UpdateResponder:1"

T = TypeVar("T")


# -- residents, slots and the producer under test --------------------------------------------------


# A valid personnummer nobody else in this module uses (born 1930 onwards, one per day).
new_resident = Residents(date(1930, 1, 1), "456")


class Calendar:
    """One producer: bookings through SOAP (official WSDLs), its database for setup and judgement.

    Every SOAP call is timed: the issue requires that none of them waits for EI."""

    def __init__(self, server: ProducerServer, official: Official) -> None:
        self.server = server
        self.call = official.caller(server.base_url)
        self.db = server.connect(dict_rows=True, utc=True)
        self.durations: list[float] = []
        self._free: dict[tuple[str, str], list[Slot]] = {}

    def close(self) -> None:
        self.db.close()

    def reset(self) -> None:
        """An empty calendar and outbox (no publisher may run), so each test starts from nothing."""
        with self.db.transaction():
            self.db.execute("UPDATE slot SET booking_pk = NULL WHERE booking_pk IS NOT NULL")
            self.db.execute("DELETE FROM ei_outbox")
            self.db.execute("DELETE FROM booking_event")
            self.db.execute("DELETE FROM booking")
        self._free.clear()
        self.durations.clear()

    # -- slots ------------------------------------------------------------------------------------

    def slot(self, time_type: str = "LAK", unit: str = A100) -> Slot:
        """A free slot more than two days ahead, never handed out twice in one test."""
        free = self._free.get((unit, time_type))
        if free is None:
            rows = self.db.execute(
                f"SELECT {SLOT_COLUMNS} FROM slot_named"
                " WHERE unit_hsa_id = %s AND time_type_code = %s AND booking_pk IS NULL"
                " AND starts_at > now() + interval '2 days' ORDER BY starts_at, id",
                (unit, time_type),
            ).fetchall()
            free = self._free[(unit, time_type)] = [Slot(**row) for row in reversed(rows)]
        assert free, f"no free {time_type} slot left at {unit}"
        return free.pop()

    # -- SOAP -------------------------------------------------------------------------------------

    def _timed(self, op: str, unit: str, resident: str, **body: Any) -> Any:
        started = time.monotonic()
        answer = self.call(op, unit, actor=(resident, "subject_of_care"), **body)
        self.durations.append(time.monotonic() - started)
        return answer

    def book(self, resident: str, slot: Slot, booking_id: str | None = None) -> str:
        """MakeBooking (of a free slot, or of an open invitation quoting its id); must succeed."""
        answer = self._timed(
            "MakeBooking",
            slot.unit,
            resident,
            healthcare_facility_med=slot.unit,
            requestedTimeslot=slot.timeslot(resident, booking_id),
            subject_of_care_info={"firstName": "Ei", "lastName": "Testsson"},
        )
        assert answer.resultCode == "OK", answer.resultText
        return answer.bookingId

    def rebook(self, booking_id: str, resident: str, slot: Slot, unit: str = A100) -> None:
        answer = self._timed(
            "UpdateBooking", unit, resident, requestedTimeslot=slot.timeslot(resident, booking_id=booking_id)
        )
        assert answer.resultCode == "OK", answer.resultText

    def cancel(self, booking_id: str, resident: str, unit: str = A100) -> None:
        answer = self._timed("CancelBooking", unit, resident, healthcare_facility=unit, bookingId=booking_id)
        assert answer.resultCode == "OK", answer.resultText

    # -- staff (SQL, as the staff tools write) ----------------------------------------------------

    def invitation(self, resident: str, slot: Slot | None, unit: str = A100, booking_id: str | None = None) -> str:
        """A clinic's invitation: timed when given a slot, open (valid 30 days) otherwise; queued for EI."""
        return staff_invitation(self.db, resident, slot, unit, booking_id=booking_id)

    # -- the outbox -------------------------------------------------------------------------------

    def pk(self, booking_id: str) -> int:
        return self.db.execute("SELECT pk FROM booking WHERE booking_id = %s", (booking_id,)).fetchone()["pk"]

    def outbox(self) -> list[dict[str, Any]]:
        return self.db.execute("SELECT * FROM ei_outbox ORDER BY id").fetchall()

    def unpublished(self) -> list[dict[str, Any]]:
        return self.db.execute("SELECT * FROM ei_outbox WHERE published_at IS NULL ORDER BY id").fetchall()

    def pending(self) -> list[dict[str, Any]]:
        return [r for r in self.unpublished() if r["parked_at"] is None]

    def parked(self) -> list[dict[str, Any]]:
        return [r for r in self.unpublished() if r["parked_at"] is not None]

    def expected_posts(self) -> list[tuple[str, ...]]:
        """What EI should hold: the post each booking last queued (booking.ei_post)."""
        rows = self.db.execute("SELECT ei_post FROM booking WHERE ei_post IS NOT NULL").fetchall()
        return sorted(post_tuple(r["ei_post"]) for r in rows)

    def cli(self, *args: str) -> str:
        return run_cli(["outbox", *args], {"DATABASE_URL": self.server.database_url}).stdout


# -- what EI holds, and its log --------------------------------------------------------------------


def assert_delivered(calendar: Calendar, stub: Stub) -> dict[str, Any]:
    """Everything published, EI holds exactly the current posts, reached in outbox order per booking."""
    rows = calendar.outbox()
    assert [r["id"] for r in rows if r["published_at"] is None] == [], "every outbox row is published"
    state = stub.state()
    assert stub_posts(state) == calendar.expected_posts()
    assert order_problems(state["log"], rows) == []
    return state


def request_sizes(stub: Stub) -> list[int]:
    """Engagements per Update request the stub kept (injected faults are refused before they are kept)."""
    _, requests = stub.api("GET", "requests")
    sizes = []
    for request in requests:
        if request["operation"] == "Update":
            root = etree.fromstring(request["body"].encode())
            sizes.append(len(root.findall(f".//{{{UPDATE_NS}}}engagementTransaction")))
    return sizes


# -- waiting ---------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], T], what: str, publishers: Sequence[PublisherProcess] = ()) -> T:
    """Poll (bounded) until `condition` returns something truthy; fail with the publishers' logs."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- publisher {p.process.pid} ---\n{p.output()[-4000:]}" for p in publishers)
            pytest.fail(f"timed out after {WAIT_SECONDS:.0f} s waiting for {what}\n{logs}", pytrace=False)
        time.sleep(0.05)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stub]:
    with running_stub(tmp_path_factory.mktemp("ei-faults-stub")) as running:
        yield running


@pytest.fixture(scope="module")
def calendar(start_producer: Callable[..., ProducerServer], official: Official) -> Iterator[Calendar]:
    running = Calendar(start_producer("eifaults"), official)
    yield running
    running.close()


@dataclass
class Publishers:
    """Publisher processes of one test, on the test's producer database and the module's stub."""

    calendar: Calendar
    stub: Stub
    log_dir: Path
    started: list[PublisherProcess]

    def start(self, **env: str) -> PublisherProcess:
        log = self.log_dir / f"publisher-{len(self.started) + 1}.log"
        publisher = start_publisher(self.calendar.server.database_url, self.stub.endpoint("Update"), log, env)
        self.started.append(publisher)
        return publisher

    def wait(self, condition: Callable[[], T], what: str) -> T:
        return wait_for(condition, what, self.started)

    def drained(self) -> None:
        """Wait until nothing is pending (parked rows stay as they are)."""
        self.wait(lambda: not self.calendar.pending(), "the outbox to drain")


@pytest.fixture
def publishers(calendar: Calendar, stub: Stub, tmp_path: Path) -> Iterator[Publishers]:
    """A clean calendar, outbox and EI; publishers started by the test are killed at its end."""
    calendar.reset()
    assert stub.api("POST", "reset", {})[0] == 200
    running = Publishers(calendar, stub, tmp_path, [])
    yield running
    for publisher in running.started:
        publisher.kill()


def assert_soap_never_waited(calendar: Calendar) -> None:
    assert calendar.durations, "no SOAP call was made"
    slowest = max(calendar.durations)
    assert slowest < SOAP_BUDGET_SECONDS, f"a SOAP booking call took {slowest:.2f} s while EI was unwell"


def make_changes(calendar: Calendar) -> dict[str, str]:
    """A bit of everything, on fresh residents: bookings made, rebooked (twice, and to another unit),
    cancelled (also straight after booking), a timed and an open invitation taken up as bookings.
    Returns booking id -> resident."""
    made: dict[str, str] = {}
    for _ in range(2):
        resident = new_resident()
        made[calendar.book(resident, calendar.slot("LAK"))] = resident
    resident = new_resident()
    moved = calendar.book(resident, calendar.slot("SSK"))
    calendar.rebook(moved, resident, calendar.slot("SSK"))
    calendar.rebook(moved, resident, calendar.slot("SSK"))
    made[moved] = resident
    resident = new_resident()
    cancelled = calendar.book(resident, calendar.slot("LAK"))
    calendar.cancel(cancelled, resident)
    made[cancelled] = resident
    resident = new_resident()
    elsewhere = calendar.book(resident, calendar.slot("PROV"))
    calendar.rebook(elsewhere, resident, calendar.slot("PROV", A200))  # logicalAddress changes
    made[elsewhere] = resident
    resident = new_resident()
    timed = calendar.invitation(resident, calendar.slot("PROV", A200))
    calendar.rebook(timed, resident, calendar.slot("PROV", A200), unit=A200)  # Invitation -> Booking
    made[timed] = resident
    resident = new_resident()
    opened = calendar.invitation(resident, None)
    made[calendar.book(resident, calendar.slot("PROV"), booking_id=opened)] = resident
    resident = new_resident()
    made[calendar.invitation(resident, None)] = resident  # stays an open invitation
    return made


# -- EI down, then back ----------------------------------------------------------------------------


def test_ei_down_for_a_while_then_everything_arrives_in_order(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """While EI answers 503 the changes pile up (attempts counted, error kept), SOAP is unaffected;
    once it is back, EI ends up with exactly the current posts, reached in each booking's order."""
    stub.control(mode="down")
    publisher = publishers.start(TIDBOK_EI_RETRY_MAX_ATTEMPTS="1000", TIDBOK_EI_TIMEOUT="5")
    make_changes(calendar)
    assert_soap_never_waited(calendar)

    def all_tried() -> bool:
        rows = calendar.outbox()
        return all(r["attempts"] >= 2 for r in rows)

    publishers.wait(all_tried, "every outbox row to have been tried at least twice")
    rows = calendar.outbox()
    assert all(r["published_at"] is None and r["parked_at"] is None for r in rows), "nothing published or parked"
    assert {r["last_error"] for r in rows} == {"EI answered HTTP 503"}
    assert stub.state()["posts"] == []

    stub.control(mode="ok")
    publishers.drained()
    state = assert_delivered(calendar, stub)
    ids = [p["businessObjectInstanceIdentifier"] for p in state["posts"]]
    assert len(ids) == len(set(ids)), "no booking twice in EI (an old key left behind)"
    assert publisher.process.poll() is None, publisher.output()


@pytest.mark.parametrize("mode", ["down", "slow"])
def test_soap_booking_calls_never_wait_for_or_fail_because_of_ei(
    calendar: Calendar, stub: Stub, publishers: Publishers, mode: str
) -> None:
    """MakeBooking, UpdateBooking and CancelBooking answer OK at once whether EI refuses connections
    (503) or hangs past the publisher's timeout while a publisher is busy with it."""
    stub.control(mode=mode, delay_seconds=4)
    publishers.start(TIDBOK_EI_TIMEOUT="3", TIDBOK_EI_RETRY_MAX_ATTEMPTS="1000")
    resident = new_resident()
    first = calendar.book(resident, calendar.slot("LAK"))
    publishers.wait(lambda: stub.state()["update_calls"] >= 1, "the publisher to be talking to EI")
    for _ in range(3):
        booking = calendar.book(new_resident(), calendar.slot("LAK"))
        assert booking
    calendar.rebook(first, resident, calendar.slot("LAK"))
    calendar.cancel(first, resident)
    assert len(calendar.durations) == 6
    assert_soap_never_waited(calendar)
    assert calendar.unpublished(), "EI is unwell: the changes are still queued"


# -- retried failures ------------------------------------------------------------------------------


def test_a_call_slower_than_the_timeout_is_retried_and_the_duplicate_is_harmless(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """TIDBOK_EI_TIMEOUT=1 against a 2 s answer: the publisher gives up on it and sends again; EI had
    applied the first call anyway, and the resend changes nothing."""
    made = {calendar.book(r, calendar.slot("LAK")): r for r in (new_resident(), new_resident())}
    stub.control(mode="slow", delay_seconds=2, remaining=1)
    publisher = publishers.start(TIDBOK_EI_TIMEOUT="1", **ONE_THREAD)
    publishers.drained()

    rows = calendar.outbox()
    assert [r["attempts"] for r in rows] == [1, 1]
    assert all("timed out" in (r["last_error"] or "").lower() for r in rows), [r["last_error"] for r in rows]
    state = assert_delivered(calendar, stub)
    assert state["update_calls"] == 2
    effects = Counter((e["key"]["businessObjectInstanceIdentifier"], e["effect"]) for e in state["log"])
    assert effects == Counter({(b, "created"): 1 for b in made} | {(b, "unchanged"): 1 for b in made})
    assert re.search(r"EI unavailable \(EI could not be reached: \w*Timeout", publisher.output())


def test_injected_technical_faults_are_retried_with_exponential_backoff(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """EI000 (a technical error, not the data's fault) four times: retried after 0.1, 0.2, 0.4 and
    again 0.4 s (TIDBOK_EI_RETRY_INITIAL_MS=100 doubling up to _MAX_MS=400), then delivered; nothing
    parked."""
    calendar.book(new_resident(), calendar.slot("LAK"))
    stub.control(mode="fault", fault_code="EI000", remaining=4)
    publisher = publishers.start(TIDBOK_EI_RETRY_INITIAL_MS="100", TIDBOK_EI_RETRY_MAX_MS="400", **ONE_THREAD)
    publishers.drained()

    (row,) = calendar.outbox()
    assert row["attempts"] == 4 and row["parked_at"] is None
    assert row["last_error"].startswith("EI answered a fault: EI000")
    state = assert_delivered(calendar, stub)
    assert state["update_calls"] == 5
    delays = re.findall(r"next attempt in ([0-9.]+) s", publisher.output())
    assert delays == ["0.1", "0.2", "0.4", "0.4"]


def test_rows_that_use_up_their_attempts_are_parked_listed_and_retried_by_the_operator(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """TIDBOK_EI_RETRY_MAX_ATTEMPTS=3 with EI down: parked with a reason naming the attempts, shown
    by `outbox status` and `outbox parked`, held back after EI returns, and sent after `outbox retry`."""
    stub.control(mode="down")
    first, second = new_resident(), new_resident()
    first_id = calendar.book(first, calendar.slot("LAK"))
    second_id = calendar.book(second, calendar.slot("LAK"))
    publishers.start(TIDBOK_EI_RETRY_MAX_ATTEMPTS="3")
    publishers.wait(lambda: len(calendar.parked()) == 2, "both rows to be parked")

    parked = calendar.parked()
    assert [r["attempts"] for r in parked] == [3, 3]
    assert {r["parked_reason"] for r in parked} == {"gave up after 3 attempts: EI answered HTTP 503"}
    status = calendar.cli("status")
    assert re.search(r"^pending\s+0$", status, re.M) and re.search(r"^parked\s+2$", status, re.M), status
    listed = calendar.cli("parked").splitlines()
    assert [line.split("\t")[0] for line in listed] == [str(r["id"]) for r in parked]
    assert all("gave up after 3 attempts" in line for line in listed)
    assert f"({first_id})" in listed[0] and f"({second_id})" in listed[1]

    # EI is back: a new booking goes out, the parked ones stay parked until an operator says so
    stub.control(mode="ok")
    third = calendar.book(new_resident(), calendar.slot("LAK"))
    publishers.drained()
    assert {p["businessObjectInstanceIdentifier"] for p in stub.state()["posts"]} == {third}
    assert len(calendar.parked()) == 2

    assert calendar.cli("retry", str(parked[0]["id"])).strip() == "1 parked row(s) queued again"
    publishers.wait(lambda: len(calendar.unpublished()) == 1, "the retried row to be published")
    assert {p["businessObjectInstanceIdentifier"] for p in stub.state()["posts"]} == {third, first_id}
    assert calendar.cli("retry").strip() == "1 parked row(s) queued again"
    publishers.wait(lambda: not calendar.unpublished(), "the last parked row to be published")
    assert_delivered(calendar, stub)
    assert re.search(r"^parked\s+0$", calendar.cli("status"), re.M)


# -- data errors -----------------------------------------------------------------------------------


def test_an_injected_data_error_is_bisected_to_one_booking_which_is_parked(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """EI004 for the first four calls of a batch of eight bookings: the publisher halves the call
    (8, 4, 2, 1 refused), parks exactly the booking the one-booking call carried, and sends the
    rest (1, 2, 4). A data error is not retried: only the operator's `outbox retry` sends it again."""
    made = [calendar.book(new_resident(), calendar.slot("LAK")) for _ in range(8)]
    stub.control(mode="fault", fault_code="EI004", remaining=4)
    publishers.start(**ONE_THREAD)
    publishers.drained()

    (parked,) = calendar.parked()
    assert parked["booking_pk"] == calendar.pk(made[0])  # the first half, of the first half, ...
    assert parked["parked_reason"].startswith("EI004: ") and parked["attempts"] == 0
    state = stub.state()
    assert state["update_calls"] == 7, "one call of 8, then halves: 4, 2, 1 refused; 1, 2, 4 accepted"
    assert request_sizes(stub) == [1, 2, 4]
    per_call = Counter(e["call"] for e in state["log"])
    assert sorted(per_call.values()) == [1, 2, 4]
    assert {p["businessObjectInstanceIdentifier"] for p in state["posts"]} == set(made[1:])

    assert calendar.cli("retry").strip() == "1 parked row(s) queued again"
    publishers.drained()
    assert_delivered(calendar, stub)


def _too_long_booking(calendar: Calendar) -> tuple[int, str]:
    """A staff-made timed invitation whose id EI refuses (businessObjectInstanceIdentifier > 128)."""
    booking_id = "K" + "9" * 140
    calendar.invitation(new_resident(), calendar.slot("PROV"), booking_id=booking_id)
    return calendar.pk(booking_id), booking_id


def test_a_real_data_error_parks_one_booking_and_the_rest_of_the_batch_goes_out(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """EI004 "to long" for one booking among five queued together: that booking is parked with EI's
    reason and the four others are published; a later change of the parked booking is held back
    (never sent ahead of the parked one) while other bookings keep flowing."""
    before = [calendar.book(new_resident(), calendar.slot("LAK")) for _ in range(2)]
    bad_pk, bad_id = _too_long_booking(calendar)
    after = [calendar.book(new_resident(), calendar.slot("LAK")) for _ in range(2)]
    publisher = publishers.start()
    publishers.drained()

    (parked,) = calendar.parked()
    assert parked["booking_pk"] == bad_pk
    assert "EI004" in parked["parked_reason"] and "to long" in parked["parked_reason"]
    assert {p["businessObjectInstanceIdentifier"] for p in stub.state()["posts"]} == set(before + after)
    assert "parked" in publisher.output()

    # a later change of the parked booking (staff moved it) waits; others go out meanwhile
    def about_it() -> int:
        return sum(bad_id in r["body"] for r in stub.api("GET", "requests")[1])

    sent_before = about_it()
    with calendar.db.transaction():
        calendar.db.execute("UPDATE slot SET booking_pk = NULL WHERE booking_pk = %s", (bad_pk,))
        calendar.db.execute("UPDATE slot SET booking_pk = %s WHERE id = %s", (bad_pk, calendar.slot("PROV").id))
        publish_change(calendar.db, bad_pk, "staff", datetime.now(UTC))
    flowing = calendar.book(new_resident(), calendar.slot("LAK"))
    # published: in EI, and marked so in the outbox (the publisher marks a row once EI has answered,
    # a moment after the post appears in the stub: waiting for the post alone was a race)
    publishers.wait(
        lambda: (
            flowing in {p["businessObjectInstanceIdentifier"] for p in stub.state()["posts"]}
            and all(r["booking_pk"] == bad_pk for r in calendar.unpublished())
        ),
        "a booking made after the parked one to be published",
    )
    held = calendar.unpublished()
    assert [(r["booking_pk"], r["parked_at"] is None) for r in held] == [(bad_pk, False), (bad_pk, True)]
    assert about_it() == sent_before, "nothing about the held booking was sent"
    assert bad_id not in str(stub.state()["log"])
    assert re.search(r"^pending\s+1$", calendar.cli("status"), re.M)

    # retried unchanged, EI refuses it again: parked again, with both its rows, nothing dropped
    assert calendar.cli("retry").strip() == "1 parked row(s) queued again"
    publishers.wait(lambda: len(calendar.parked()) == 2, "the booking's two rows to be parked again")
    assert {r["booking_pk"] for r in calendar.unpublished()} == {bad_pk}
    assert "to long" in calendar.parked()[0]["parked_reason"]


def test_a_parked_booking_fixed_by_staff_reaches_ei_after_retry(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """The operator's way out of a data error: staff correct the booking (a valid id), the correction
    is queued behind the parked row, `outbox retry` sends both; EI must end with the corrected post.
    (EI never stored the refused post, so it has nothing to delete under its refused key.)"""
    bad_pk, bad_id = _too_long_booking(calendar)
    publishers.start()
    publishers.wait(lambda: len(calendar.parked()) == 1, "the refused booking to be parked")

    calendar.db.execute("UPDATE booking SET booking_id = %s WHERE pk = %s", (f"K{bad_pk}", bad_pk))
    publish_change(calendar.db, bad_pk, "staff correction", datetime.now(UTC))
    assert calendar.cli("retry").strip() == "1 parked row(s) queued again"
    publishers.wait(
        lambda: all(r["published_at"] or r["parked_at"] for r in calendar.outbox()),
        "the retried booking to be published or parked",
    )
    assert calendar.parked() == [], f"parked again: {calendar.parked()[0]['parked_reason']}"
    assert_delivered(calendar, stub)
    assert {p["businessObjectInstanceIdentifier"] for p in stub.state()["posts"]} == {f"K{bad_pk}"}
    assert bad_id not in str(stub.state()["posts"])


# -- the publisher killed mid-call -----------------------------------------------------------------


def test_a_publisher_killed_mid_call_leaves_its_rows_pending_and_a_new_one_resends_them(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """SIGKILL while an Update is in flight (EI applied it, the answer had not come back): none of
    the rows is marked; a new publisher sends all of them again and the end state is right."""
    made = {}
    for _ in range(6):
        resident = new_resident()
        booking = calendar.book(resident, calendar.slot("LAK"))
        made[booking] = resident
    moved = next(iter(made))
    calendar.rebook(moved, made[moved], calendar.slot("LAK"))  # a booking with two rows in the batch
    stub.control(mode="slow", delay_seconds=5, remaining=1)
    first = publishers.start(TIDBOK_EI_BATCH_SIZE="3", TIDBOK_EI_TIMEOUT="30", **ONE_THREAD)
    publishers.wait(lambda: stub.state()["log"], "the first Update to be applied and its answer delayed")
    in_flight = {e["key"]["businessObjectInstanceIdentifier"] for e in stub.state()["log"]}
    assert len(in_flight) == 3, "EI applied the batch of three before answering"
    first.kill()

    rows = calendar.outbox()
    assert all(r["published_at"] is None and r["attempts"] == 0 for r in rows), "nothing marked by a dead publisher"
    publishers.start(TIDBOK_EI_BATCH_SIZE="3")
    publishers.drained()
    state = assert_delivered(calendar, stub)
    resent = Counter(e["key"]["businessObjectInstanceIdentifier"] for e in state["log"] if not e["deleteFlag"])
    assert {b for b, n in resent.items() if n == 2} == in_flight, "the killed call's bookings were sent again"
    assert set(resent) == set(made)


# -- two publishers at once ------------------------------------------------------------------------


def test_two_publishers_race_over_hundreds_of_changes_without_reordering_or_sending_twice(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """Two publisher processes on one outbox while 300 residents book, and some rebook and cancel,
    through SOAP: every row is published once (no post sent twice, as each change's content is new),
    in each booking's order, small batches so they contend, and EI ends with exactly the current posts."""
    stub.control(mode="slow", delay_seconds=0.02)  # both hold their claims a little longer: more contention
    settings = {"TIDBOK_EI_BATCH_SIZE": "10", "TIDBOK_EI_POLL_MS": "10"}
    racers = [publishers.start(**settings), publishers.start(**settings)]
    rng = random.Random(20240601)
    active: dict[str, str] = {}
    for n in range(300):
        resident = new_resident()
        active[calendar.book(resident, calendar.slot(rng.choice(("LAK", "SSK"))))] = resident
        if n % 3 == 2:
            booking = rng.choice(sorted(active))
            if rng.random() < 0.65:
                time_type = calendar.db.execute(
                    "SELECT time_type_code FROM booking WHERE booking_id = %s", (booking,)
                ).fetchone()["time_type_code"]
                calendar.rebook(booking, active[booking], calendar.slot(time_type))
            else:
                calendar.cancel(booking, active.pop(booking))
    publishers.drained()
    for racer in racers:
        assert racer.stop() == 0, racer.output()

    rows = calendar.outbox()
    assert len(rows) >= 400
    state = assert_delivered(calendar, stub)
    sent = Counter((*log_key(e), e["deleteFlag"], e["mostRecentContent"]) for e in state["log"])
    assert [change for change, times in sent.items() if times > 1] == [], "a change was sent twice"
    assert all(e["effect"] != "unchanged" for e in state["log"])
    for racer in racers:
        assert "published" in racer.output(), "both publishers took part"
    assert max(request_sizes(stub)) <= 10


class _PausedBeforeLocking:
    """A publisher's connection that stops just before the publisher takes its advisory locks, and
    waits there until told to go on: the gap between reading candidates and locking them."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.arrived = threading.Event()
        self.go_on = threading.Event()

    def transaction(self) -> Any:
        return self.conn.transaction()

    def execute(self, query: str, params: Any = None) -> Any:
        if "pg_try_advisory_xact_lock" in query and not self.arrived.is_set():
            self.arrived.set()
            assert self.go_on.wait(WAIT_SECONDS), "never told to go on"
        return self.conn.execute(query, params)


def test_a_row_parked_by_another_publisher_holds_its_booking_back(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """Two publishers, scripted into an interleaving that real ones can hit: A sends a booking's row;
    while A's call is in flight the resident rebooks and B reads its candidates; EI refuses A's call
    (EI004), A parks the row and commits; only then does B take its locks. B must not send the
    rebooking: a later change may never overtake a parked one."""
    resident = new_resident()
    booking = calendar.book(resident, calendar.slot("LAK"))
    settings = EiSettings()
    client = UpdateClient(settings, stub.endpoint("Update"))
    outcomes: dict[str, Any] = {}

    with calendar.server.connect(utc=True) as a_conn, calendar.server.connect(utc=True) as b_conn:
        paused = _PausedBeforeLocking(b_conn)
        b = Publisher(paused, settings, client.update)  # duck-typed connection
        b_thread = threading.Thread(target=lambda: outcomes.setdefault("b", b.publish_once()))

        def a_sends(transactions: Any) -> None:
            calendar.rebook(booking, resident, calendar.slot("LAK"))  # a change arriving during A's call
            b_thread.start()
            assert paused.arrived.wait(WAIT_SECONDS), "B never reached its locks"
            stub.control(mode="fault", fault_code="EI004", remaining=1)
            client.update(transactions)

        outcomes["a"] = Publisher(a_conn, settings, a_sends).publish_once()
        paused.go_on.set()
        b_thread.join(WAIT_SECONDS)

    assert outcomes["a"].parked == 1
    rows = calendar.outbox()
    assert [(r["parked_at"] is not None, r["published_at"] is not None) for r in rows] == [
        (True, False),
        (False, False),
    ], "the rebooking was published while the booking's first row is parked"
    assert stub.state()["posts"] == []


# -- batch size ------------------------------------------------------------------------------------


def test_no_update_call_carries_more_engagements_than_the_batch_size(
    calendar: Calendar, stub: Stub, publishers: Publishers
) -> None:
    """TIDBOK_EI_BATCH_SIZE bounds every call, also when one booking's change needs two transactions
    (a timed invitation rebooked: delete its Invitation post, create its Booking post)."""
    resident = new_resident()
    timed = calendar.invitation(resident, calendar.slot("PROV", A200))
    calendar.rebook(timed, resident, calendar.slot("PROV", A200), unit=A200)
    for _ in range(3):
        calendar.book(new_resident(), calendar.slot("LAK"))
    publishers.start(TIDBOK_EI_BATCH_SIZE="1")
    publishers.drained()
    assert max(request_sizes(stub)) <= 1, f"Update calls of {request_sizes(stub)} engagements with batch size 1"
    assert_delivered(calendar, stub)
