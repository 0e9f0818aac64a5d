"""The workers' memory of free slots (producer.interactions.free_slots) never offers a taken slot.

A producer of its own with two workers, and a unit of its own with forty slots on a day 40 days
ahead (constructed, so any day will do). Eight keep-alive connections spread the calls over both
workers; each call is checked against the database. The memory must be in use (its counter in
/metrics says so), or these tests would prove nothing.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import pytest
from support import DEMO_RESIDENT, ProducerServer, envelope, http_get
from support.calendar import insert_slot, today

from producer.calendar.units import UnitCache
from producer.interactions.free_slots import FreeSlots
from producer.platform.change_tokens import ChangeTokens
from producer.soap.codec import ResponseWriter
from producer.soap.contract import load_contract
from producer.sweden.wall_time import STOCKHOLM

UNIT = "SE2321000016-M100"
PERFORMER = "SE2321000016-M001"
CONNECTIONS = 8
GAT_NS = "urn:riv:crm:scheduling:GetAvailableTimeslotsResponder:1"
MB_NS = "urn:riv:crm:scheduling:MakeBookingResponder:1"
CORE = "urn:riv:crm:scheduling:1"
OFFERED = re.compile(rb"<ns\d+:bookingId>(T\d+)</ns\d+:bookingId>")


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    return start_producer("memory", {"TIDBOK_WORKERS": "2"})


@pytest.fixture(scope="module")
def conn(server: ProducerServer) -> Iterator[psycopg.Connection]:
    with server.connect() as connection:
        yield connection


@pytest.fixture(scope="module")
def day(conn: psycopg.Connection) -> date:
    """A unit with 40 ten-minute slots from 08:00 on a day 40 days ahead."""
    chosen = today() + timedelta(days=40)
    conn.execute(
        "INSERT INTO care_unit (hsa_id, name, message_allowed) VALUES (%s, 'Minnesmottagningen', true)", (UNIT,)
    )
    conn.execute("INSERT INTO care_type (unit_hsa_id, code, name) VALUES (%s, 'ALLM', 'Allmänmedicin')", (UNIT,))
    conn.execute(
        "INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes, care_type_code)"
        " VALUES (%s, 'LAK', 'Läkarbesök', 10, 'ALLM')",
        (UNIT,),
    )
    conn.execute(
        "INSERT INTO performer (unit_hsa_id, hsa_id, title, first_name, last_name)"
        " VALUES (%s, %s, 'Läkare', 'Minna', 'Minnesson')",
        (UNIT, PERFORMER),
    )
    for n in range(40):
        _insert_slot(conn, _at(chosen, 8 * 60 + 10 * n))
    return chosen


def _at(day: date, minutes: int) -> datetime:
    local = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=STOCKHOLM)
    return local.astimezone(UTC)


def _insert_slot(conn: psycopg.Connection, start: datetime) -> int:
    return insert_slot(conn, UNIT, start, start + timedelta(minutes=10), "LAK", "ALLM", PERFORMER)


def _free(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT 'T' || id FROM slot_named WHERE unit_hsa_id = %s AND booking_pk IS NULL", (UNIT,))
    return {r[0] for r in rows}


class Client:
    """One keep-alive connection to the producer."""

    def __init__(self, server: ProducerServer) -> None:
        parts = urlsplit(server.base_url)
        self.http = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def post(self, interaction: str, body: str) -> bytes:
        data = envelope(UNIT, body)
        self.http.request(
            "POST", f"/{interaction}/1/rivtabp21", body=data, headers={"Content-Type": "text/xml; charset=utf-8"}
        )
        response = self.http.getresponse()
        answer = response.read()
        assert response.status == 200, answer
        return answer

    def offered(self, day: date) -> set[str]:
        d = f"{day:%Y%m%d}"
        answer = self.post(
            "GetAvailableTimeslots",
            f'<r:GetAvailableTimeslots xmlns:r="{GAT_NS}" xmlns:e="{GAT_NS}.1">'
            f"<r:healthcare_facility>{UNIT}</r:healthcare_facility>"
            f"<r:startDateInclusive>{d}</r:startDateInclusive><r:endDateInclusive>{d}</r:endDateInclusive>"
            f"<e:subject_of_care>{DEMO_RESIDENT}</e:subject_of_care></r:GetAvailableTimeslots>",
        )
        return {m.decode() for m in OFFERED.findall(answer)}

    def book(self, slot_id: str, start: datetime) -> bytes:
        local = start.astimezone(STOCKHOLM)
        return self.post(
            "MakeBooking",
            f'<r:MakeBooking xmlns:r="{MB_NS}" xmlns:c="{CORE}" xmlns:x="{CORE}.1"><r:healthcare_facility_med>{UNIT}'
            "</r:healthcare_facility_med><r:requestedTimeslot>"
            f"<c:startTimeInclusive>{local:%Y%m%d%H%M%S}</c:startTimeInclusive>"
            f"<c:endTimeExclusive>{local + timedelta(minutes=10):%Y%m%d%H%M%S}</c:endTimeExclusive>"
            f"<c:healthcare_facility>{UNIT}</c:healthcare_facility><c:bookingId>{slot_id}</c:bookingId>"
            f"<c:subject_of_care>{DEMO_RESIDENT}</c:subject_of_care></r:requestedTimeslot>"
            "<r:subject_of_care_info><x:firstName>Minna</x:firstName><x:lastName>Test</x:lastName>"
            "</r:subject_of_care_info></r:MakeBooking>",
        )


def _on_all(clients: list[Client], day: date) -> list[set[str]]:
    """GetAvailableTimeslots on every connection at once."""
    answers: list[set[str]] = [set() for _ in clients]
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            answers[i] = clients[i].offered(day)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return answers


def _from_memory(server: ProducerServer) -> float:
    _, _, body = http_get(f"{server.base_url}/metrics")
    match = re.search(rb'^tidbok_availability_memory_total\{source="memory"\} (\S+)$', body, re.M)
    return float(match.group(1)) if match else 0.0


def _slot_start(conn: psycopg.Connection, slot_id: str) -> datetime:
    return conn.execute("SELECT starts_at FROM slot WHERE id = %s", (int(slot_id[1:]),)).fetchone()[0]


def test_once_a_booking_is_answered_no_worker_offers_its_slot(
    server: ProducerServer, conn: psycopg.Connection, day: date
) -> None:
    clients = [Client(server) for _ in range(CONNECTIONS)]
    booker = Client(server)
    for _ in range(3):  # every connection's worker remembers the day
        assert all(a == _free(conn) for a in _on_all(clients, day))
    remembered = _from_memory(server)
    for _ in range(12):
        slot_id = sorted(_free(conn))[0]
        answer = booker.book(slot_id, _slot_start(conn, slot_id))
        assert b">OK<" in answer, answer
        for offered in _on_all(clients, day):
            assert slot_id not in offered
            assert offered == _free(conn)
    assert _from_memory(server) > remembered + 12 * CONNECTIONS / 2, "the workers did not answer from memory"


def test_a_change_by_another_process_reaches_every_worker(
    server: ProducerServer, conn: psycopg.Connection, day: date
) -> None:
    clients = [Client(server) for _ in range(CONNECTIONS)]
    _on_all(clients, day)
    added = f"T{_insert_slot(conn, _at(day, 18 * 60))}"  # as the loader or a staff tool would, from elsewhere
    _until_every_worker(clients, day, lambda offered: added in offered)
    conn.execute("DELETE FROM slot WHERE id = %s", (int(added[1:]),))
    _until_every_worker(clients, day, lambda offered: added not in offered)


def test_a_worker_that_stops_hearing_changes_forgets_what_it_remembered(
    server: ProducerServer, conn: psycopg.Connection, day: date
) -> None:
    """Its listening connection cut, a change made meanwhile is not heard: the worker must not answer
    from what it remembered, and remembers again once it listens again."""
    clients = [Client(server) for _ in range(CONNECTIONS)]
    _on_all(clients, day)
    cut = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'tidbok-slot-listener'"
        " AND datname = current_database()"
    ).fetchone()[0]
    assert cut == 2  # one per worker
    added = f"T{_insert_slot(conn, _at(day, 19 * 60))}"
    _until_every_worker(clients, day, lambda offered: added in offered)
    deadline = time.monotonic() + 20
    while (
        conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tidbok-slot-listener'"
            " AND datname = current_database()"
        ).fetchone()[0]
        < 2
    ):
        assert time.monotonic() < deadline, "the workers did not listen again"
        time.sleep(0.1)
    remembered = _from_memory(server)
    for _ in range(3):
        assert all(a == _free(conn) for a in _on_all(clients, day))
    assert _from_memory(server) > remembered


def _until_every_worker(clients: list[Client], day: date, seen: Callable[[set[str]], bool]) -> None:
    """A change made outside the workers reaches them by a notice: within seconds, not at once."""
    deadline = time.monotonic() + 10
    while not all(seen(offered) for offered in _on_all(clients, day)):
        assert time.monotonic() < deadline, "a worker still answers what it remembered before the change"
        time.sleep(0.05)


def test_the_memory_keeps_to_its_budget_and_reads_again_what_it_forgot(
    server: ProducerServer, conn: psycopg.Connection, day: date
) -> None:
    """In one process, on the producer's database: 40 days of 40 slots each, a budget for about ten
    of them. The memory never holds more than its budget, and a day it forgot is read again (its
    counter of reads grows) with the same slots."""
    first = day + timedelta(days=1)
    with conn.transaction():
        for d in range(40):
            for n in range(40):
                _insert_slot(conn, _at(first + timedelta(days=d), 8 * 60 + 10 * n))
    interaction = load_contract().interactions["GetAvailableTimeslots"]
    write = ResponseWriter(interaction.response_qname, interaction.response_plan).item("timeslotDetail")
    units = UnitCache()
    unit, names = units.unit(conn, UNIT), units.names(conn, UNIT)
    assert unit is not None
    memory = FreeSlots(ChangeTokens(), lambda: True, write, budget_bytes=400_000)

    def day_of_slots(d: date) -> list[str]:
        days = memory.slot_days(conn, unit, names, d, d)
        assert days is not None
        texts = memory.written(days[0], True, lambda i, changeable: {"bookingId": "x", **_detail(days[0].rows[i])})
        return [row[0] for row in days[0].rows] if texts else []

    seen = {first + timedelta(days=d): day_of_slots(first + timedelta(days=d)) for d in range(40)}
    assert all(len(ids) == 40 for ids in seen.values())
    assert memory._size <= 400_000
    assert len(memory._slots.days) < 40  # the first days were forgotten
    forgotten = first
    assert (UNIT, forgotten) not in memory._slots.days
    assert day_of_slots(forgotten) == seen[forgotten]  # read again, the same
    assert (UNIT, forgotten) in memory._slots.days


def _detail(row: tuple) -> dict[str, object]:
    slot_id, start, end, _, performer, _, tt, ct = row
    return {
        "startTimeInclusive": start,
        "endTimeExclusive": end,
        "healthcare_facility": UNIT,
        "performer": performer,
        "bookingId": f"T{slot_id}",
        "timeTypeID": tt,
        "careTypeID": ct,
        "cancel_booking_allowed": True,
        "rebooking_allowed": True,
        "message_allowed": True,
    }
