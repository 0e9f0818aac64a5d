"""Stopping on SIGTERM (a deploy, `make run`'s Ctrl-C, an orchestrator): the server finishes the
requests in flight and serves no new ones, within a bound; the publisher finishes the EI batch in
hand and leaves the rest pending.

Each test starts its own processes (SIGTERM ends them) on one database of this module, and makes a
request slow by holding the row lock it needs, so "in flight" is a known state, not a race.
"""

from __future__ import annotations

import contextlib
import http.client
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from lxml import etree
from support import Official, ProducerServer, fresh_database, http_get, run_cli, soap_post
from support.calendar import Slot, staff_invitation, unused_free_slot
from support.ei import running_stub, start_publisher, wait_until_drained
from support.locks import holding, waiting_backend
from support.residents import Residents
from support.server import connect, start_server
from support.tcp_proxy import proxied_url, proxy_to

A100 = "SE2321000016-A100"
STOP_SECONDS = 5.0  # how long after its last request ends a stopping server may take to exit
SHUTDOWN_SECONDS = 2  # TIDBOK_SHUTDOWN_TIMEOUT: the bound on a graceful stop
SLOW_EI_SECONDS = 2.0
DB_TIMEOUT = 2  # TIDBOK_DB_TIMEOUT where the database stops answering

new_resident = Residents(date(1942, 1, 1), "714")


@dataclass
class Database:
    """The module's database, read and locked directly by the tests."""

    url: str
    db: psycopg.Connection[dict[str, Any]]
    used: set[int]

    def free_slot(self) -> Slot:
        return unused_free_slot(self.db, A100, self.used)

    def bookings_of(self, resident: str) -> list[dict[str, Any]]:
        return self.db.execute(
            "SELECT b.booking_id, b.status, s.id AS slot,"
            " (SELECT count(*) FROM booking_event e WHERE e.booking_pk = b.pk) AS events,"
            " (SELECT count(*) FROM ei_outbox o WHERE o.booking_pk = b.pk) AS outbox"
            " FROM booking b LEFT JOIN slot s ON s.booking_pk = b.pk WHERE b.subject_of_care = %s",
            (resident,),
        ).fetchall()

    def holding_slot(self, slot: Slot) -> contextlib.AbstractContextManager[None]:
        """The slot's row locked by the test until the block ends: a MakeBooking of it waits."""
        return holding(self.url, "SELECT 1 FROM slot WHERE id = %s FOR UPDATE", slot.id)

    def wait_for_lock_wait(self) -> None:
        waiting_backend(self.db, "UPDATE slot")  # MakeBooking takes the slot inside a CTE


@pytest.fixture(scope="module")
def database(pg_admin_url: str) -> Iterator[Database]:
    url = fresh_database(pg_admin_url, "tidbok_test_shutdown")
    run_cli(["migrate"], {"DATABASE_URL": url})
    run_cli(["demo"], {"DATABASE_URL": url})
    with connect(url, dict_rows=True, utc=True) as db:
        yield Database(url, db, set())


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as running:
        yield running


@contextlib.contextmanager
def serving(
    name: str, database: Database, log_dir: Path, env: dict[str, str] | None = None
) -> Iterator[ProducerServer]:
    server = start_server(name, database.url, env or {}, log_dir)
    try:
        yield server
    finally:
        server.stop()


def make_booking(server: ProducerServer, official: Official, resident: str, slot: Slot) -> tuple[int, bytes]:
    message = official.zeep_client("MakeBooking", server.base_url).create_message(
        A100,
        (resident, "subject_of_care"),
        healthcare_facility_med=A100,
        requestedTimeslot=slot.timeslot(resident),
        subject_of_care_info={"firstName": "Sista", "lastName": "Anropet"},
    )
    status, _, body = soap_post(server.base_url, "MakeBooking", etree.tostring(message), timeout=60)
    return status, body


def result_code(body: bytes) -> str | None:
    found = etree.fromstring(body).xpath("//*[local-name() = 'resultCode']")
    return found[0].text if found else None


def served(server: ProducerServer) -> bool:
    """Does a new connection get an answer (within a second)?"""
    try:
        return http_get(f"{server.base_url}/health", timeout=1)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


GRANIAN_MISSED_SIGTERM = (
    "granian 2.8.7 (upstream): its WSGI worker intermittently never acts on the SIGTERM the main "
    "process forwards while a request is in flight; it keeps serving until it is killed "
    "(after TIDBOK_SHUTDOWN_TIMEOUT)"
)


def worker_missed_sigterm(server: ProducerServer) -> bool:
    """The main process began its shutdown, the worker never began its own."""
    log = (server.log_dir / f"{server.name}.stderr").read_text(errors="replace")
    return "Shutting down granian" in log and "Stopping worker" not in log


def exits_within(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


# -- the server ---------------------------------------------------------------------------------------


def test_sigterm_finishes_the_request_in_flight_and_serves_no_new_one(
    database: Database, official: Official, executor: ThreadPoolExecutor, tmp_path: Path
) -> None:
    """A MakeBooking in flight at SIGTERM gets its normal answer (and is booked); meanwhile neither new
    connections nor idle keep-alive ones are served; then the process exits on its own."""
    resident, slot = new_resident(), database.free_slot()
    with serving("shutdown-graceful", database, tmp_path) as server:
        parts = urlsplit(server.base_url)
        idle = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)  # a keep-alive client
        idle.request("GET", "/health")
        assert idle.getresponse().read() == b"ok\n"
        with database.holding_slot(slot):
            in_flight: Future[tuple[int, bytes]] = executor.submit(make_booking, server, official, resident, slot)
            database.wait_for_lock_wait()
            server.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while served(server):
                if time.monotonic() > deadline and worker_missed_sigterm(server):
                    pytest.xfail(GRANIAN_MISSED_SIGTERM)
                assert time.monotonic() < deadline, "new connections were still served 5 s after SIGTERM"
                time.sleep(0.05)
            with pytest.raises((OSError, http.client.HTTPException)):  # nor are idle keep-alive connections
                idle.request("GET", "/health")
                idle.getresponse().read()
            assert not in_flight.done(), in_flight.result()
            assert server.process.poll() is None, "the server exited with a request in flight"
        status, body = in_flight.result(timeout=30)
        assert status == 200, body
        official.validate_response("MakeBooking", body)
        assert result_code(body) == "OK", body
        assert exits_within(server.process, STOP_SECONDS) == 0, server.output()
    (booking,) = database.bookings_of(resident)
    assert (booking["status"], booking["slot"], booking["events"], booking["outbox"]) == ("active", slot.id, 1, 1)


def test_sigterm_stops_within_the_bound_even_if_a_request_never_finishes(
    database: Database, official: Official, executor: ThreadPoolExecutor, tmp_path: Path
) -> None:
    """A request stuck past the bound is given up (its worker killed): the process exits, and the
    booking it was making leaves nothing behind."""
    resident, slot = new_resident(), database.free_slot()
    env = {"TIDBOK_SHUTDOWN_TIMEOUT": str(SHUTDOWN_SECONDS)}
    with serving("shutdown-bounded", database, tmp_path, env) as server:
        with database.holding_slot(slot):
            executor.submit(make_booking, server, official, resident, slot)
            database.wait_for_lock_wait()
            server.process.send_signal(signal.SIGTERM)
            code = exits_within(server.process, SHUTDOWN_SECONDS + STOP_SECONDS)
        assert code is not None, f"still running {SHUTDOWN_SECONDS + STOP_SECONDS} s after SIGTERM"
    deadline = time.monotonic() + 5
    while database.bookings_of(resident) != []:
        assert time.monotonic() < deadline, database.bookings_of(resident)
        time.sleep(0.05)


# -- the publisher ------------------------------------------------------------------------------------


def test_sigterm_publisher_finishes_the_batch_in_hand_and_leaves_the_rest_pending(
    database: Database, tmp_path: Path
) -> None:
    """SIGTERM while EI is slow to answer the first call: that batch is completed (EI has it, its rows
    are marked published), no other is begun, the process exits, and the rows not sent stay pending
    for the next publisher, untouched (not parked, no attempt counted)."""
    db = database.db
    for _ in range(12):
        staff_invitation(db, new_resident(), None, A100)
    pending = [r["id"] for r in db.execute("SELECT id FROM ei_outbox WHERE published_at IS NULL ORDER BY id")]
    assert len(pending) >= 12, pending
    one_batch = {"TIDBOK_EI_BATCH_SIZE": "5", "TIDBOK_EI_PUBLISHER_THREADS": "1"}
    with running_stub(tmp_path / "stub") as stub:
        stub.control(mode="slow", delay_seconds=SLOW_EI_SECONDS)
        publisher = start_publisher(database.url, stub.endpoint("Update"), tmp_path / "publisher.log", one_batch)
        try:
            deadline = time.monotonic() + 20
            while stub.state()["update_calls"] == 0:
                assert publisher.process.poll() is None, publisher.output()
                assert time.monotonic() < deadline, f"no Update call within 20 s\n{publisher.output()}"
                time.sleep(0.02)
            publisher.process.send_signal(signal.SIGTERM)
            code = exits_within(publisher.process, SLOW_EI_SECONDS + STOP_SECONDS)
        finally:
            if publisher.process.poll() is None:
                publisher.kill()
        assert code == 0, publisher.output()

        state = stub.state()
        assert state["update_calls"] == 1, state["log"]  # the batch in hand, and no other begun after SIGTERM
        sent = {entry["key"]["businessObjectInstanceIdentifier"] for entry in state["log"]}
        rows = db.execute(
            "SELECT id, published_at IS NOT NULL AS published, parked_at, attempts,"
            " coalesce(after, before)->>'booking_id' AS booking_id FROM ei_outbox WHERE id = ANY(%s) ORDER BY id",
            (pending,),
        ).fetchall()
        published = [r for r in rows if r["published"]]
        assert [r["id"] for r in published] == pending[:5], rows  # the five oldest: the batch it had claimed
        assert {r["booking_id"] for r in published} == sent, (rows, state["log"])
        left = [r for r in rows if not r["published"]]
        assert all(r["parked_at"] is None and r["attempts"] == 0 for r in left), left
        assert not {r["booking_id"] for r in left} & sent

        # Nothing lost: the next publisher sends the rest.
        stub.control(mode="ok")
        publisher = start_publisher(database.url, stub.endpoint("Update"), tmp_path / "publisher-2.log", one_batch)
        try:
            deadline = time.monotonic() + 30
            while db.execute("SELECT count(*) AS n FROM ei_outbox WHERE published_at IS NULL").fetchone()["n"]:
                assert time.monotonic() < deadline, publisher.output()
                time.sleep(0.05)
        finally:
            assert publisher.stop() == 0, publisher.output()
        held = {post["businessObjectInstanceIdentifier"] for post in stub.state()["posts"]}
        assert {r["booking_id"] for r in rows} <= held


def test_sigterm_stops_a_publisher_whose_database_stopped_answering(database: Database, tmp_path: Path) -> None:
    """A publisher waiting for a database that stopped answering still stops on SIGTERM, within the
    database timeout (nothing is in hand: the batch it was reading is rolled back with its connection)."""
    staff_invitation(database.db, new_resident(), None, A100)  # something to publish first
    settings = {"TIDBOK_DB_TIMEOUT": str(DB_TIMEOUT), "TIDBOK_EI_PUBLISHER_THREADS": "1"}
    with proxy_to(database.url) as proxy, running_stub(tmp_path / "stub") as stub:
        url = proxied_url(database.url, proxy.port)
        publisher = start_publisher(url, stub.endpoint("Update"), tmp_path / "publisher.log", settings)
        try:
            wait_until_drained(database.db, publisher, seconds=20)
            proxy.cut("stall")
            time.sleep(0.5)  # its next look for work is waiting for the database now
            publisher.process.send_signal(signal.SIGTERM)
            code = exits_within(publisher.process, DB_TIMEOUT + 3)
        finally:
            if publisher.process.poll() is None:
                publisher.kill()
    assert code == 0, publisher.output()
