"""The database failing under a running producer: gone (refused, black-holed, stalled), and a booking
transaction killed or cut at each of its statements.

The producer under test reaches PostgreSQL only through a TCP proxy this module controls
(support.tcp_proxy), so the database can vanish for it while the session's shared server keeps
running; the test itself reads the database directly. Calls are sent as raw SOAP built from the
official WSDLs, so the HTTP status, the fault and the time to answer are seen as the VP sees them.

What the issue promises, and each test judges:
- the database down: every call answers a soap:Server fault "temporarily unavailable" within the
  configured timeout (never hangs), /health still answers, and the producer recovers by itself;
- a changing call killed at any point of its transaction leaves nothing behind, answers a fault or
  resultCode ERROR (never a stack trace, never a hang), and the same call again succeeds.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import psycopg
import pytest
from lxml import etree
from support import SOAP_ENV, Official, ProducerServer, fresh_database, http_get, run_cli, soap_post
from support.calendar import Slot, unused_free_slot, wire_date
from support.locks import holding, waiting_backend
from support.residents import Residents
from support.server import connect, start_server
from support.tcp_proxy import TcpProxy, proxied_url, proxy_to

A100 = "SE2321000016-A100"
TIMEOUT = 2  # TIDBOK_DB_TIMEOUT of the producer under test, seconds
MARGIN = 1.5  # what a loaded 2-core machine may add to it
OUTAGE_SECONDS = 10  # long enough for reconnection attempts to back off past the timeout
RECOVERY_SECONDS = 3.0  # how soon after the database is back (or a call failed) calls must succeed again
UNAVAILABLE = "The service is temporarily unavailable (database); try again later"
OPERATIONS = ("MakeBooking", "UpdateBooking", "CancelBooking")

new_resident = Residents(date(1941, 1, 1), "713")


# -- answers ----------------------------------------------------------------------------------------


@dataclass
class Answer:
    """A SOAP answer as it came over HTTP."""

    op: str
    status: int
    seconds: float
    body: bytes

    @property
    def root(self) -> etree._Element:
        return etree.fromstring(self.body)

    @property
    def fault(self) -> tuple[str, str] | None:
        fault = self.root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
        if fault is None:
            return None
        return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""

    def text(self, name: str) -> str | None:
        """The text of the response's first element with this local name (resultCode, bookingId, ...)."""
        found = self.root.xpath(f"//*[local-name() = '{name}']")
        return found[0].text if found else None

    def __str__(self) -> str:
        return f"{self.op}: HTTP {self.status} after {self.seconds:.2f} s: {self.body[:600]!r}"


def assert_unavailable(answer: Answer, within: float | None = TIMEOUT + MARGIN) -> None:
    """A soap:Server fault saying the database is unavailable, in time (``within`` seconds of the call)."""
    assert answer.status == 500, answer
    assert answer.fault == ("soap:Server", UNAVAILABLE), answer
    if within is not None:
        assert answer.seconds <= within, f"answered after {answer.seconds:.2f} s, more than {within} s: {answer}"


def assert_refused_cleanly(answer: Answer) -> None:
    """What a call whose transaction died may answer: the unavailable fault, or resultCode ERROR."""
    if answer.status == 500:
        assert answer.fault == ("soap:Server", UNAVAILABLE), answer
    else:
        assert answer.status == 200 and answer.text("resultCode") == "ERROR", answer
        assert answer.text("resultText"), answer


def until_answered(call: Callable[[], Answer], seconds: float = RECOVERY_SECONDS) -> Answer:
    """The call repeated, as a consumer retries, while it answers "temporarily unavailable" (for at
    most ``seconds``): the first other answer, or the last one."""
    deadline = time.monotonic() + seconds
    while True:
        answer = call()
        if answer.fault != ("soap:Server", UNAVAILABLE) or time.monotonic() >= deadline:
            return answer
        time.sleep(0.1)


def assert_ok(answer: Answer, official: Official) -> None:
    assert answer.status == 200, answer
    official.validate_response(answer.op, answer.body)
    assert answer.text("resultCode") in (None, "OK"), answer


# -- the producer behind the proxy -------------------------------------------------------------------


@dataclass
class Faulty:
    """A producer whose database connections all go through ``proxy``; ``db`` is a direct connection."""

    server: ProducerServer
    proxy: TcpProxy
    url: str  # the database, directly
    official: Official
    db: psycopg.Connection[dict[str, Any]] = field(init=False)
    _used: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.db = connect(self.url, dict_rows=True, utc=True)

    # SOAP

    def soap(self, op: str, resident: str, timeout: float = 60, **body: Any) -> Answer:
        message = self.official.zeep_client(op, self.server.base_url).create_message(
            A100, (resident, "subject_of_care"), **body
        )
        started = time.monotonic()
        status, _, data = soap_post(self.server.base_url, op, etree.tostring(message), timeout=timeout)
        return Answer(op, status, time.monotonic() - started, data)

    def time_types(self, resident: str) -> Answer:
        return self.soap("GetAllTimeTypes", resident, healthcare_facility=A100, subject_of_care=resident)

    def timeslots(self, resident: str, slot: Slot) -> Answer:
        day = wire_date(slot.starts_at)
        return self.soap(
            "GetAvailableTimeslots",
            resident,
            healthcare_facility=A100,
            subject_of_care=resident,
            startDateInclusive=day,
            endDateInclusive=day,
        )

    def make_booking(self, resident: str, slot: Slot) -> Answer:
        return self.soap(
            "MakeBooking",
            resident,
            healthcare_facility_med=A100,
            requestedTimeslot=slot.timeslot(resident),
            subject_of_care_info={"firstName": "Fel", "lastName": "Tolerant"},
        )

    def update_booking(self, resident: str, booking_id: str, slot: Slot) -> Answer:
        return self.soap("UpdateBooking", resident, requestedTimeslot=slot.timeslot(resident, booking_id))

    def cancel_booking(self, resident: str, booking_id: str) -> Answer:
        return self.soap("CancelBooking", resident, healthcare_facility=A100, bookingId=booking_id)

    def book(self, resident: str, slot: Slot) -> str:
        answer = self.make_booking(resident, slot)
        assert_ok(answer, self.official)
        booking_id = answer.text("bookingId")
        assert booking_id, answer
        return booking_id

    # the database, directly

    def free_slot(self) -> Slot:
        return unused_free_slot(self.db, A100, self._used)

    def snapshot(self, resident: str, slots: list[int]) -> dict[str, list[Any]]:
        """Everything a booking change of this resident and these slots could have written."""
        by_resident = "JOIN booking b ON b.pk = x.booking_pk WHERE b.subject_of_care = %s ORDER BY x.id"
        return {
            "slots": self.rows("SELECT id, booking_pk FROM slot WHERE id = ANY(%s) ORDER BY id", slots),
            "bookings": self.rows("SELECT to_jsonb(b) FROM booking b WHERE subject_of_care = %s ORDER BY pk", resident),
            "events": self.rows(f"SELECT to_jsonb(x) FROM booking_event x {by_resident}", resident),
            "outbox": self.rows(f"SELECT to_jsonb(x) FROM ei_outbox x {by_resident}", resident),
        }

    def rows(self, query: str, *params: Any) -> list[Any]:
        return self.db.execute(query, params).fetchall()

    def assert_calendar_consistent(self) -> None:
        """Slots are held only by active bookings; an active booking holds exactly one; EI was told of
        every booking's last change (its post is its last outbox row's after)."""
        problems = self.rows(
            "SELECT 'slot of inactive booking' AS problem, b.booking_id FROM slot s"
            " JOIN booking b ON b.pk = s.booking_pk WHERE b.status <> 'active'"
            " UNION ALL SELECT 'active booking without one slot', b.booking_id FROM booking b"
            " WHERE b.status = 'active' AND b.kind <> 'open_invitation'"
            " AND (SELECT count(*) FROM slot s WHERE s.booking_pk = b.pk) <> 1"
            " UNION ALL SELECT 'post not in the outbox', b.booking_id FROM booking b"
            " WHERE b.ei_post IS DISTINCT FROM"
            " (SELECT o.after FROM ei_outbox o WHERE o.booking_pk = b.pk ORDER BY o.id DESC LIMIT 1)"
        )
        assert problems == [], problems

    def holding(self, statement: str, *params: Any) -> contextlib.AbstractContextManager[None]:
        return holding(self.url, statement, *params)

    def blocked_backend(self, statement: str, seconds: float = 10) -> int:
        return waiting_backend(self.db, statement, seconds)


@pytest.fixture(scope="module")
def faulty_module(pg_admin_url: str, official: Official, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    url = fresh_database(pg_admin_url, "tidbok_test_dbfaults")
    run_cli(["migrate"], {"DATABASE_URL": url})
    run_cli(["demo"], {"DATABASE_URL": url})
    with proxy_to(url) as proxy:
        env = {"TIDBOK_DB_TIMEOUT": str(TIMEOUT)}
        server = start_server("dbfaults", proxied_url(url, proxy.port), env, Path(tmp_path_factory.mktemp("dbfaults")))
        faulty = Faulty(server, proxy, url, official)
        try:
            yield faulty
        finally:
            server.stop()
            faulty.db.close()


@pytest.fixture
def faulty(faulty_module: Faulty) -> Iterator[Faulty]:
    """The module's producer, answering (a test starts from a producer that has recovered), with the
    database reachable again after each test."""
    assert faulty_module.server.process.poll() is None, faulty_module.server.output()
    assert_ok(until_answered(lambda: faulty_module.time_types(new_resident())), faulty_module.official)
    yield faulty_module
    faulty_module.proxy.disarm()
    faulty_module.proxy.restore()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


# -- the database down ------------------------------------------------------------------------------


DownMode = Literal["refuse", "blackhole", "stall"]


@pytest.mark.parametrize("mode", ["refuse", "blackhole", "stall"])
def test_database_down_calls_fail_fast_and_the_producer_recovers_by_itself(
    faulty: Faulty, pool: ThreadPoolExecutor, mode: DownMode
) -> None:
    """refuse: the server is down; blackhole: something accepts connections and never answers (a
    proxy or pooler whose database died); stall: connections freeze mid-stream (a hung server, a
    network dropping everything), so a query on a pooled connection never gets an answer.

    The first call meets the pooled connections, the next ones a pool that cannot reconnect."""
    resident, slot = new_resident(), faulty.free_slot()
    calls = outage_calls(faulty, resident, slot)
    for answer in [f.result() for f in [pool.submit(calls["GetAllTimeTypes"]) for _ in range(4)]]:
        assert_ok(answer, faulty.official)  # connections in the pool, which the outage leaves dead or frozen

    faulty.proxy.cut(mode)
    for call in calls.values():
        assert_unavailable(call())

    faulty.proxy.restore()
    restored = time.monotonic()
    assert_ok(until_answered(calls["GetAllTimeTypes"]), faulty.official)
    assert time.monotonic() - restored <= RECOVERY_SECONDS
    again = {name: pool.submit(call) for name, call in calls.items()}  # and every call from then on
    more = [pool.submit(calls["GetAllTimeTypes"]) for _ in range(5)]
    for answer in [f.result(timeout=60) for f in [*again.values(), *more]]:
        assert_ok(answer, faulty.official)
    # The MakeBooking refused during the outage left nothing: the slot was still free to book now.
    assert again["MakeBooking"].result().text("bookingId")
    assert len(faulty.snapshot(resident, [slot.id])["bookings"]) == 1
    faulty.assert_calendar_consistent()


def test_while_the_database_is_down_concurrent_calls_and_health_answer_in_time(
    faulty: Faulty, pool: ThreadPoolExecutor
) -> None:
    """Calls arriving together while the database does not answer each fail within the timeout (none
    waits for another), and /health answers at once meanwhile."""
    resident, slot = new_resident(), faulty.free_slot()
    calls = outage_calls(faulty, resident, slot)
    assert_ok(faulty.time_types(resident), faulty.official)
    faulty.proxy.cut("stall")
    futures = [pool.submit(call) for call in calls.values()]
    time.sleep(0.3)  # the calls are waiting for the database now
    started = time.monotonic()
    status, _, body = http_get(f"{faulty.server.base_url}/health", timeout=10)
    health_seconds = time.monotonic() - started
    for future in futures:
        assert_unavailable(future.result(timeout=60))
    assert (status, body) == (200, b"ok\n")
    assert health_seconds < 1.0, f"/health took {health_seconds:.2f} s while the database was down"


def outage_calls(faulty: Faulty, resident: str, slot: Slot) -> dict[str, Callable[[], Answer]]:
    return {
        "GetAllTimeTypes": lambda: faulty.time_types(resident),
        "GetAvailableTimeslots": lambda: faulty.timeslots(resident, slot),
        "MakeBooking": lambda: faulty.make_booking(resident, slot),
    }


def test_after_a_long_outage_the_first_call_reconnects(faulty: Faulty) -> None:
    """Reconnection attempts back off while the database is down (psycopg_pool: 1, 2, 4, 8 s … for
    up to 5 minutes); that must not keep the producer away from a database that has returned."""
    resident = new_resident()
    assert_ok(faulty.time_types(resident), faulty.official)
    faulty.proxy.cut("refuse")
    down_until = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < down_until:
        assert_unavailable(faulty.time_types(resident))
        time.sleep(0.5)
    faulty.proxy.restore()
    restored = time.monotonic()
    assert_ok(until_answered(lambda: faulty.time_types(resident)), faulty.official)
    assert time.monotonic() - restored <= RECOVERY_SECONDS


def test_a_call_in_flight_when_the_database_stalls_gives_up_in_time(faulty: Faulty, pool: ThreadPoolExecutor) -> None:
    """A MakeBooking already inside its transaction (waiting for a row lock) when the database stops
    answering: it gives up within the timeout, and nothing of it is left when the database returns."""
    resident, slot = new_resident(), faulty.free_slot()
    before = faulty.snapshot(resident, [slot.id])
    with faulty.holding("SELECT 1 FROM slot WHERE id = %s FOR UPDATE", slot.id):
        future = pool.submit(faulty.make_booking, resident, slot)
        faulty.blocked_backend("UPDATE slot")
        faulty.proxy.cut("stall")
        stalled_at = time.monotonic()
        answer = future.result(timeout=60)
    assert_unavailable(answer, within=None)  # it had waited for the lock before; timed from the stall:
    assert time.monotonic() - stalled_at <= TIMEOUT + MARGIN, answer
    faulty.proxy.restore()
    assert faulty.snapshot(resident, [slot.id]) == before
    assert_ok(until_answered(lambda: faulty.make_booking(resident, slot)), faulty.official)
    faulty.assert_calendar_consistent()


def test_a_long_lock_wait_is_not_taken_for_a_dead_database(faulty: Faulty, pool: ThreadPoolExecutor) -> None:
    """Giving up on a silent database must not give up on a busy one: a MakeBooking waiting longer
    than the timeout for a row lock (a staff change, a large load) still completes when it is released."""
    resident, slot = new_resident(), faulty.free_slot()
    with faulty.holding("SELECT 1 FROM slot WHERE id = %s FOR UPDATE", slot.id):
        future: Future[Answer] = pool.submit(faulty.make_booking, resident, slot)
        faulty.blocked_backend("UPDATE slot")
        time.sleep(TIMEOUT * 1.25)
        assert not future.done(), future.result()
    answer = future.result(timeout=30)
    assert_ok(answer, faulty.official)
    assert answer.text("bookingId"), answer


# -- a transaction killed part-way ---------------------------------------------------------------------


@dataclass
class Change:
    """One booking change to break: its call, what it touches, and what it leaves when it succeeds."""

    op: str
    faulty: Faulty
    resident: str
    slot: Slot  # the slot booked (MakeBooking), moved from (UpdateBooking) or freed (CancelBooking)
    target: Slot | None = None  # UpdateBooking: the slot moved to
    booking_id: str | None = None

    @classmethod
    def prepare(cls, op: str, faulty: Faulty) -> Change:
        resident, slot = new_resident(), faulty.free_slot()
        if op == "MakeBooking":
            return cls(op, faulty, resident, slot)
        booking_id = faulty.book(resident, slot)
        target = faulty.free_slot() if op == "UpdateBooking" else None
        return cls(op, faulty, resident, slot, target, booking_id)

    @property
    def slots(self) -> list[int]:
        return [s.id for s in (self.slot, self.target) if s is not None]

    @property
    def contended_slot(self) -> int:
        """The slot row whose lock the change waits for mid-transaction, after it has written something:
        MakeBooking after inserting the booking, UpdateBooking after freeing the old slot,
        CancelBooking after locking the booking."""
        return (self.target or self.slot).id

    def call(self) -> Answer:
        if self.op == "MakeBooking":
            return self.faulty.make_booking(self.resident, self.slot)
        if self.op == "UpdateBooking":
            assert self.booking_id and self.target
            return self.faulty.update_booking(self.resident, self.booking_id, self.target)
        assert self.booking_id
        return self.faulty.cancel_booking(self.resident, self.booking_id)

    def snapshot(self) -> dict[str, list[Any]]:
        return self.faulty.snapshot(self.resident, self.slots)

    def done(self) -> bool:
        """Has the change taken full effect: slots, booking, one history row and one outbox row for it?"""
        db = self.faulty
        booking = db.rows(
            "SELECT pk, booking_id, status FROM booking WHERE subject_of_care = %s AND status = %s",
            self.resident,
            "cancelled" if self.op == "CancelBooking" else "active",
        )
        if len(booking) != 1:
            return False
        pk = booking[0]["pk"]
        holders = {
            r["id"]: r["booking_pk"] for r in db.rows("SELECT id, booking_pk FROM slot WHERE id = ANY(%s)", self.slots)
        }
        expected_holders = {self.slot.id: None if self.op == "CancelBooking" else pk}
        if self.target is not None:  # UpdateBooking: moved from slot to target
            expected_holders = {self.slot.id: None, self.target.id: pk}
        action = {"MakeBooking": "book", "UpdateBooking": "rebook", "CancelBooking": "cancel"}[self.op]
        events = db.rows("SELECT count(*) AS n FROM booking_event WHERE booking_pk = %s AND action = %s", pk, action)
        outbox = db.rows("SELECT count(*) AS n FROM ei_outbox WHERE booking_pk = %s AND reason = %s", pk, action)
        return holders == expected_holders and events[0]["n"] == 1 and outbox[0]["n"] == 1

    def wait_until_done(self, seconds: float = 5) -> None:
        deadline = time.monotonic() + seconds
        while not self.done():
            assert time.monotonic() < deadline, f"{self.op} did not take full effect: {self.snapshot()}"
            time.sleep(0.05)

    def retry_succeeds(self) -> None:
        """The consumer's retry (repeated while the producer still says "temporarily unavailable")."""
        answer = until_answered(self.call)
        assert_ok(answer, self.faulty.official)
        self.wait_until_done(0)
        self.faulty.assert_calendar_consistent()


@pytest.mark.parametrize("point", ["slot", "outbox"])
@pytest.mark.parametrize("op", OPERATIONS)
def test_backend_killed_mid_transaction_leaves_nothing(
    faulty: Faulty, pool: ThreadPoolExecutor, op: str, point: str
) -> None:
    """The producer's backend is terminated while it waits for a lock part-way through the change:
    at a slot row (after its first writes), or at the outbox (after every write but the EI row)."""
    change = Change.prepare(op, faulty)
    before = change.snapshot()
    if point == "slot":
        lock, waits_in = ("SELECT 1 FROM slot WHERE id = %s FOR UPDATE", (change.contended_slot,)), "UPDATE slot"
    else:
        lock, waits_in = ("LOCK TABLE ei_outbox IN SHARE MODE", ()), "INSERT INTO ei_outbox"
    with faulty.holding(lock[0], *lock[1]):
        future = pool.submit(change.call)
        pid = faulty.blocked_backend(waits_in)
        faulty.db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        answer = future.result(timeout=30)
    assert_refused_cleanly(answer)
    assert change.snapshot() == before
    change.retry_succeeds()


@pytest.mark.parametrize("op", OPERATIONS)
def test_connection_cut_at_every_statement_leaves_nothing(faulty: Faulty, op: str) -> None:
    """The connection dies before the n-th statement of the change's transaction reaches the server,
    for n = 1, 2, … up to its COMMIT: each time nothing is left, and the same call again succeeds."""
    cut_before: list[str] = []
    for at in itertools.count(1):
        change = Change.prepare(op, faulty)
        before = change.snapshot()
        cut = faulty.proxy.cut_transaction(at)
        answer = change.call()
        faulty.proxy.disarm()
        if not cut.fired.is_set():  # fewer statements than `at`: this call ran to its end
            assert_ok(answer, faulty.official)
            change.wait_until_done(0)
            break
        cut_before.append(cut.statements[-1])
        assert_refused_cleanly(answer)
        assert change.snapshot() == before, f"cut before statement {at}: {cut.statements[-1]}"
        change.retry_succeeds()
    # the shortest change, MakeBooking, has four: slot lookup, booking and slot, history and outbox, COMMIT
    assert cut_before[-1] == "COMMIT" and len(cut_before) >= 4, cut_before


@pytest.mark.parametrize("op", OPERATIONS)
def test_commit_whose_answer_is_lost_took_full_effect_and_a_resend_is_answered(faulty: Faulty, op: str) -> None:
    """The COMMIT reaches the server but the connection dies before its answer: the consumer gets a
    fault, the change is complete (not half), and the consumer's resend gets the normal answer."""
    change = Change.prepare(op, faulty)
    cut = faulty.proxy.cut_transaction("COMMIT", deliver=True)
    answer = change.call()
    assert cut.fired.is_set(), cut.statements
    assert_refused_cleanly(answer)
    change.wait_until_done()
    resend = until_answered(change.call)
    if op == "CancelBooking":
        assert (resend.status, resend.text("resultCode"), resend.text("resultText")) == (
            200,
            "INFO",
            "Tiden var redan avbokad.",
        ), resend
    else:
        assert_ok(resend, faulty.official)
    if op == "MakeBooking":
        booked = faulty.rows("SELECT booking_id FROM booking WHERE subject_of_care = %s", change.resident)
        assert booked == [{"booking_id": resend.text("bookingId")}], (booked, resend)
    assert change.done()  # the resend added nothing
    faulty.assert_calendar_consistent()


def test_one_dead_connection_does_not_refuse_the_calls_after_it(faulty: Faulty) -> None:
    """A connection that dies mid-call (its backend terminated, a restart) is that call's problem:
    the database is up, the pool hands the next call a fresh connection, and it succeeds at once."""
    change = Change.prepare("MakeBooking", faulty)
    cut = faulty.proxy.cut_transaction(1)
    assert_refused_cleanly(change.call())
    assert cut.fired.is_set(), cut.statements
    assert_ok(change.call(), faulty.official)
