"""The workers' memory of free slots (producer.interactions.free_slots) on two paths the other memory
tests do not take: a slot naming what the worker's cached names do not know yet, and a memory far
too small for the traffic.

Three producers on one database of their own: "remembering" (the memory on, one worker, so the
worker that remembered a day is the one asked), "forgetting" (the memory on at its smallest budget,
TIDBOK_AVAILABILITY_MEMORY_MB=1, two workers) and "reference" (TIDBOK_AVAILABILITY_MEMORY=off: every
answer from the queries). Requests are built by zeep from the official WSDLs and sent as bytes to
each, so the answers can be compared byte for byte; each is validated against the official schema.
The calendar is written in SQL on days constructed from today (40 days ahead and on), so any day
and hour will do.
"""

from __future__ import annotations

import http.client
import itertools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from lxml import etree
from support import DEMO_RESIDENT, ProducerServer, http_get, soap_post, validate_response
from support.calendar import STOCKHOLM, insert_slot, today, wire
from support.official import OfficialClient, zeep_client
from support.residents import Residents, as_resident
from support.server import start_server

from producer.calendar.units import TTL_SECONDS
from producer.platform.change_tokens import ChangeTokens

GAT, GAD, MB = "GetAvailableTimeslots", "GetAvailableDates", "MakeBooking"
NS = {"c": "urn:riv:crm:scheduling:1"}
OFFERED = re.compile(rb"<ns\d+:bookingId>(T\d+)</ns\d+:bookingId>")
FAULT = b"Fault>"

new_resident = Residents(date(1953, 4, 1), "591")  # this module's own database: nobody else's residents


@dataclass
class Producers:
    remembering: ProducerServer
    forgetting: ProducerServer
    reference: ProducerServer
    conn: psycopg.Connection
    clients: dict[str, OfficialClient]

    def message(self, op: str, unit: str, actor: tuple[str, str], **body: Any) -> bytes:
        """The request as zeep writes it from the official WSDL (nothing is sent)."""
        return etree.tostring(self.clients[op].create_message(unit, actor, **body))


@pytest.fixture(scope="module")
def producers(
    start_producer: Callable[..., ProducerServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Producers]:
    remembering = start_producer("memory_paths", {"TIDBOK_WORKERS": "1"})
    logs = Path(tmp_path_factory.mktemp("memory-paths-logs"))
    url = remembering.database_url
    started: list[ProducerServer] = []
    try:
        # TIDBOK_AVAILABILITY_MEMORY_MB's minimum (producer.platform.settings: minimum=1)
        started.append(
            start_server("memory_paths_tiny", url, {"TIDBOK_WORKERS": "2", "TIDBOK_AVAILABILITY_MEMORY_MB": "1"}, logs)
        )
        started.append(
            start_server("memory_paths_off", url, {"TIDBOK_WORKERS": "1", "TIDBOK_AVAILABILITY_MEMORY": "off"}, logs)
        )
        clients = {op: zeep_client(op, remembering.base_url) for op in (GAT, GAD, MB)}
        with remembering.connect() as conn:
            running = Producers(remembering, started[0], started[1], conn, clients)
            _until_listening(running, remembering)
            yield running
    finally:
        for server in started:
            server.stop()


def _until_listening(producers: Producers, server: ProducerServer) -> None:
    """A worker listens for slot changes (and so uses its memory) only from its first call on."""
    unit = "SE2321000016-A100"  # the demo's
    day = f"{today() + timedelta(days=7):%Y%m%d}"
    request = producers.message(
        GAT, unit, as_resident(DEMO_RESIDENT), healthcare_facility=unit, startDateInclusive=day,
        endDateInclusive=day, subject_of_care=DEMO_RESIDENT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while _metric(server, "memory") == 0:
        assert time.monotonic() < deadline, f"{server.name} never answered from its memory"
        _post(server, GAT, request)
        time.sleep(0.05)


def _at(day: date, minutes: int) -> datetime:
    local = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=STOCKHOLM)
    return local.astimezone(UTC)


def _unit(conn: psycopg.Connection, unit: str, time_types: list[tuple[str, str, str]], performers: list[str]) -> None:
    """A care unit with care type ALLM, the time types (code, name, SQL of its rules) and performers."""
    conn.execute(
        "INSERT INTO care_unit (hsa_id, name, message_allowed) VALUES (%s, 'Minnesmottagningen', true)", (unit,)
    )
    conn.execute("INSERT INTO care_type (unit_hsa_id, code, name) VALUES (%s, 'ALLM', 'Allmänmedicin')", (unit,))
    for code, name, rules in time_types:
        _time_type(conn, unit, code, name, rules)
    for performer in performers:
        _performer(conn, unit, performer, "Minnesson")


def _time_type(conn: psycopg.Connection, unit: str, code: str, name: str, rules: str = "") -> None:
    conn.execute(
        "INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes, care_type_code)"
        " VALUES (%s, %s, %s, 15, 'ALLM')",
        (unit, code, name),
    )
    if rules:
        conn.execute(f"UPDATE time_type SET {rules} WHERE unit_hsa_id = %s AND code = %s", (unit, code))


def _performer(conn: psycopg.Connection, unit: str, hsa_id: str, last_name: str) -> None:
    conn.execute(
        "INSERT INTO performer (unit_hsa_id, hsa_id, title, first_name, last_name)"
        " VALUES (%s, %s, 'Läkare', 'Åsa', %s)",
        (unit, hsa_id, last_name),
    )


def _asked(producers: Producers, op: str, unit: str, first: date, last: date) -> bytes:
    """An availability request of a new resident's for the unit's days first..last."""
    resident = new_resident()
    return producers.message(
        op,
        unit,
        as_resident(resident),
        healthcare_facility=unit,
        startDateInclusive=f"{first:%Y%m%d}",
        endDateInclusive=f"{last:%Y%m%d}",
        subject_of_care=resident,
    )


def _answered_from_memory(server: ProducerServer, op: str, request: bytes, answer: bytes, tries: int = 5) -> None:
    """Ask until the worker answers from its memory (the day read again; on a slow machine the names'
    TTL may pass between two calls and make it read once more), every answer the same."""
    for _ in range(tries):
        from_memory = _metric(server, "memory")
        assert _post(server, op, request) == answer
        if _metric(server, "memory") == from_memory + 1:
            return
    pytest.fail(f"not one of {tries} answers came from the memory")


def _post(server: ProducerServer, op: str, request: bytes) -> bytes:
    status, _, data = soap_post(server.base_url, op, request)
    assert status == 200, data
    return data


def _metric(server: ProducerServer, source: str) -> float:
    """tidbok_availability_memory_total{source}, summed over the server's workers."""
    _, _, body = http_get(f"{server.base_url}/metrics")
    match = re.search(rb'^tidbok_availability_memory_total\{source="%s"\} (\S+)$' % source.encode(), body, re.M)
    return float(match.group(1)) if match else 0.0


# -- a slot naming a time type or performer the cached names do not know ------------------------------

_units = itertools.count(1)


@pytest.mark.parametrize("op", [GAT, GAD])
@pytest.mark.parametrize("new", ["time type", "performer", "both"])
@pytest.mark.parametrize("rules", ["no rules", "rules"])
def test_a_slot_naming_what_the_cached_names_lack_is_offered_at_once(
    producers: Producers, op: str, new: str, rules: str
) -> None:
    """A day remembered, then a new time type and/or performer and a free slot of it that day (in
    SQL, the harness renewing the tokens): asked at once, well within the names' TTL, the worker's
    memory meets a key its names lack, gives up, and the answer comes from the database with the
    names reloaded: the new slot is offered with its codes and names, byte for byte as a producer
    without memory answers; and the next answers come from memory again, as before.

    "rules": the unit's time types differ in lead time and self-booking (as the demo's A100 does),
    so that the search names the offered types instead of taking every type."""
    conn = producers.conn
    unit = f"SE2321000016-M2{next(_units):02d}"  # a unit nobody asked for: its names are loaded by this test
    old_types = [("LAK", "Läkarbesök", "")]
    if rules == "rules":
        old_types += [
            ("SSK", "Sjuksköterskebesök", "min_lead = interval '2 hours'"),
            ("DIAB", "Diabetes", "self_booking = false"),
        ]
    _unit(conn, unit, old_types, ["SE2321000016-P001"])
    day = today() + timedelta(days=40)
    for n in range(4):  # 08:00, 08:30, 09:00, 09:30 the first day, the same the next
        for d in (day, day + timedelta(days=1)):
            insert_slot(
                conn, unit, _at(d, 8 * 60 + 30 * n), _at(d, 8 * 60 + 30 * n + 15), "LAK", None, "SE2321000016-P001"
            )
    request = _asked(producers, op, unit, day, day + timedelta(days=1))
    remembering, reference = producers.remembering, producers.reference

    names_loaded = time.monotonic()  # no later than this the worker loads the unit's names (the first call)
    before = _post(remembering, op, request)
    assert _post(reference, op, request) == before
    from_memory = _metric(remembering, "memory")
    assert _post(remembering, op, request) == before
    assert _metric(remembering, "memory") == from_memory + 1, "the day was not remembered: nothing is tested"

    time_type, performer = "LAK", "SE2321000016-P001"
    if new in ("time type", "both"):
        time_type = "NYTT"
        _time_type(conn, unit, time_type, "Nybesök på Älvsjö-mottagningen")
    if new in ("performer", "both"):
        performer = "SE2321000016-P002"
        _performer(conn, unit, performer, "Ödmark")
    added = insert_slot(conn, unit, _at(day, 8 * 60 + 15), _at(day, 8 * 60 + 30), time_type, None, performer)

    answer = _post(remembering, op, request)
    elapsed = time.monotonic() - names_loaded
    assert elapsed < TTL_SECONDS, f"{elapsed:.1f} s: the worker may have reloaded its names by their TTL"
    assert answer == _post(reference, op, request)
    assert answer != before

    element = validate_response(op, answer)
    if op == GAT:
        slots = element.findall("{*}timeslotDetail")
        offered = [s.findtext("{*}bookingId") for s in slots]
        assert offered.count(f"T{added}") == 1, offered
        assert offered.index(f"T{added}") == 1  # 08:15, between 08:00 and 08:30
        slot = slots[offered.index(f"T{added}")]
        assert slot.findtext("{*}startTimeInclusive") == wire(_at(day, 8 * 60 + 15))
    else:
        kinds = element.findall("{*}performerAvailabilityByDate")
        slot = next(
            (k for k in kinds if (k.findtext("{*}timeTypeID"), k.findtext("{*}performer")) == (time_type, performer)),
            None,
        )
        assert slot is not None, etree.tostring(element)
        assert slot.findtext("{*}date") == f"{day:%Y%m%d}"
    assert slot.findtext("{*}timeTypeID") == time_type
    assert slot.findtext("{*}timeTypeName") == (
        "Nybesök på Älvsjö-mottagningen" if time_type == "NYTT" else "Läkarbesök"
    )
    assert slot.findtext("{*}performer") == performer
    if op == GAT:
        assert slot.findtext("{*}performerName") == (
            "Läkare Åsa Ödmark" if new != "time type" else "Läkare Åsa Minnesson"
        )

    # the names reloaded, the memory reads the day again and answers from memory as before
    _answered_from_memory(remembering, op, request, answer)


@pytest.mark.parametrize("op", [GAT, GAD])
@pytest.mark.parametrize("rule", ["self_booking = false", "min_lead = interval '100 days'"])
def test_a_time_type_added_since_the_names_were_read_is_not_offered_against_its_own_rules(
    producers: Producers, op: str, rule: str
) -> None:
    """As above, but the new time type's own rules keep its slot from residents: booked only through
    an invitation or by staff, or not this early. Asked at once, within the names' TTL, the slot
    must not be offered (its type was unknown when the search was split by the cached rules), and
    the answer is the same as before the slot was added, and as a producer without memory gives."""
    conn = producers.conn
    unit = f"SE2321000016-M2{next(_units):02d}"
    _unit(
        conn,
        unit,
        [("LAK", "Läkarbesök", ""), ("SSK", "Sjuksköterskebesök", "min_lead = interval '2 hours'")],
        ["SE2321000016-P001"],
    )
    day = today() + timedelta(days=40)
    for n in range(4):
        insert_slot(
            conn, unit, _at(day, 8 * 60 + 30 * n), _at(day, 8 * 60 + 30 * n + 15), "LAK", None, "SE2321000016-P001"
        )
    request = _asked(producers, op, unit, day, day)
    remembering, reference = producers.remembering, producers.reference
    names_loaded = time.monotonic()
    before = _post(remembering, op, request)
    assert _post(remembering, op, request) == before  # remembered

    _time_type(conn, unit, "REMISS", "Remissbesök", rule)
    added = insert_slot(conn, unit, _at(day, 8 * 60 + 15), _at(day, 8 * 60 + 30), "REMISS", None, "SE2321000016-P001")

    answer = _post(remembering, op, request)
    elapsed = time.monotonic() - names_loaded
    assert elapsed < TTL_SECONDS, f"{elapsed:.1f} s: the worker may have reloaded its names by their TTL"
    assert f"T{added}".encode() not in answer and b"REMISS" not in answer, answer
    assert answer == before == _post(reference, op, request)
    assert _post(remembering, op, request) == answer  # and after the names were reloaded


# -- a memory far too small for the traffic ------------------------------------------------------------

TRAFFIC_UNITS = 8
TRAFFIC_DAYS = 20
SLOTS_A_DAY = 24
THREADS = 6
REQUESTS = 720
BOOKINGS = 8


@dataclass(frozen=True)
class Ask:
    """One availability request of the traffic: its unit, its first day (an offset), its days, its op."""

    unit: str
    first: int
    days: int
    op: str


class Gate:
    """Bookings one at a time between pairs of answers: a pair (the same request to both producers)
    never has a booking made between its two answers, and a booking made is in `booked` before any
    pair that starts after it."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pairs = 0
        self._booking = False
        self.booked: set[str] = set()

    @contextmanager
    def pair(self) -> Iterator[frozenset[str]]:
        with self._lock:
            self._lock.wait_for(lambda: not self._booking)
            self._pairs += 1
            booked = frozenset(self.booked)
        try:
            yield booked
        finally:
            with self._lock:
                self._pairs -= 1
                self._lock.notify_all()

    @contextmanager
    def booking(self) -> Iterator[None]:
        with self._lock:
            self._booking = True
            self._lock.wait_for(lambda: self._pairs == 0)
        try:
            yield
        finally:
            with self._lock:
                self._booking = False
                self._lock.notify_all()


class Connection:
    """A keep-alive connection to one producer, opened again now and then (so both workers get some)."""

    def __init__(self, server: ProducerServer) -> None:
        self.server = server
        self.http: http.client.HTTPConnection | None = None
        self.used = 0

    def post(self, op: str, request: bytes) -> bytes:
        if self.http is None or self.used % 16 == 0:
            if self.http is not None:
                self.http.close()
            parts = urlsplit(self.server.base_url)
            self.http = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.used += 1
        self.http.request(
            "POST",
            f"/{op}/1/rivtabp21",
            body=request,
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": f'"urn:riv:crm:scheduling:{op}Responder:1:{op}"',
            },
        )
        response = self.http.getresponse()
        data = response.read()
        assert response.status == 200 and FAULT not in data, data[:2000]
        return data


def _traffic_calendar(conn: psycopg.Connection, first_day: date) -> list[str]:
    """TRAFFIC_UNITS units, each with SLOTS_A_DAY slots on each of TRAFFIC_DAYS days from first_day:
    LAK and SSK, two performers, every other unit with a lead time on SSK (its searches split)."""
    units = [f"SE2321000016-M3{n:02d}" for n in range(TRAFFIC_UNITS)]
    for n, unit in enumerate(units):
        ssk_rules = "min_lead = interval '2 hours'" if n % 2 else ""
        _unit(conn, unit, [("LAK", "Läkarbesök", ""), ("SSK", "Sjuksköterskebesök", ssk_rules)], ["P1", "P2"])
    rows = []
    for unit in units:
        keys = dict(
            conn.execute(
                "SELECT 'unit', id FROM care_unit WHERE hsa_id = %(u)s"
                " UNION ALL SELECT code, id FROM time_type WHERE unit_hsa_id = %(u)s"
                " UNION ALL SELECT hsa_id, id FROM performer WHERE unit_hsa_id = %(u)s",
                {"u": unit},
            ).fetchall()
        )
        for d in range(TRAFFIC_DAYS):
            for n in range(SLOTS_A_DAY):
                start = _at(first_day + timedelta(days=d), 8 * 60 + 20 * n)
                tt = ("LAK", "SSK")[n % 2]
                rows.append(
                    (keys["unit"], start, start + timedelta(minutes=15), keys[tt], keys[("P1", "P2")[n // 2 % 2]])
                )
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO slot (unit_id, starts_at, ends_at, time_type_id, care_type_code, performer_id)"
            " VALUES (%s, %s, %s, %s, 'ALLM', %s)",
            rows,
        )
    return units


def test_a_memory_far_too_small_forgets_and_reads_again_and_never_answers_otherwise(producers: Producers) -> None:
    """TIDBOK_AVAILABILITY_MEMORY_MB at its minimum (1) and two workers; 160 unit-days of 12 slots
    (several megabytes written) asked for by six threads at once, GetAvailableTimeslots and
    GetAvailableDates over two to four days, a few requests far more often than the rest: days are
    forgotten and read again all the time. Every answer is byte for byte the memory-off producer's
    for the same request, and no answer is a fault. Bookings are made now and then through the
    small memory's producer (MakeBooking, between pairs of answers): a booked slot is offered by
    neither producer afterwards. The memory is used (calls answered from it) and forgets (more
    calls read the database than could without forgetting)."""
    forgetting, reference = producers.forgetting, producers.reference
    first_day = today() + timedelta(days=45)
    units = _traffic_calendar(producers.conn, first_day)
    pick = random.Random(20261)  # the same traffic every run; only its interleaving varies
    asks = [
        Ask(unit, first, days, op)
        for unit in units
        for first in range(0, TRAFFIC_DAYS, 4)
        for days, op in [(pick.choice((2, 3, 4)), GAT if pick.random() < 0.75 else GAD)]
    ]
    hot = pick.sample(asks, 6)
    traffic = [pick.choice(hot) if pick.random() < 0.3 else pick.choice(asks) for _ in range(REQUESTS)]
    requests: dict[Ask, bytes] = {}
    for ask in set(traffic) | {Ask(a.unit, a.first, a.days, GAT) for a in hot}:
        resident = new_resident()
        start = first_day + timedelta(days=ask.first)
        end = start + timedelta(days=ask.days - 1)
        requests[ask] = producers.message(
            ask.op, ask.unit, as_resident(resident), healthcare_facility=ask.unit,
            startDateInclusive=f"{start:%Y%m%d}", endDateInclusive=f"{end:%Y%m%d}", subject_of_care=resident,
        )  # fmt: skip
    _until_listening(producers, forgetting)

    gate = Gate()
    work = iter(enumerate(traffic))
    taken = threading.Lock()
    done = [0]
    failures: list[str] = []
    memory, database = _metric(forgetting, "memory"), _metric(forgetting, "database")

    def asker() -> None:
        on, off = Connection(forgetting), Connection(reference)
        try:
            while True:
                with taken:
                    item = next(work, None)
                if item is None or failures:
                    return
                n, ask = item
                with gate.pair() as booked:
                    answer = on.post(ask.op, requests[ask])
                    expected = off.post(ask.op, requests[ask])
                if answer != expected:
                    failures.append(f"request {n} ({ask}): the answers differ\n{answer!r}\n{expected!r}")
                offered = {m.decode() for m in OFFERED.findall(answer)}
                if offered & booked:
                    failures.append(f"request {n} ({ask}): booked {sorted(offered & booked)} offered")
                with taken:
                    done[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(f"{type(exc).__name__}: {exc}")

    def booker() -> None:
        on = Connection(forgetting)
        try:
            for k in range(BOOKINGS):
                while done[0] < (k + 1) * REQUESTS // (BOOKINGS + 2) and not failures:
                    time.sleep(0.005)
                if failures:
                    return
                ask = hot[k % len(hot)]  # a day the traffic asks for often: remembered when booked
                slot = producers.conn.execute(
                    "SELECT id, starts_at, ends_at, time_type_code, performer_hsa_id FROM slot_named"
                    " WHERE unit_hsa_id = %s AND booking_pk IS NULL AND starts_at >= %s ORDER BY starts_at, id LIMIT 1",
                    (ask.unit, _at(first_day + timedelta(days=ask.first), 0)),
                ).fetchone()
                resident = new_resident()
                request = producers.message(
                    MB, ask.unit, as_resident(resident), healthcare_facility_med=ask.unit,
                    requestedTimeslot={
                        "startTimeInclusive": wire(slot[1]), "endTimeExclusive": wire(slot[2]),
                        "healthcare_facility": ask.unit, "performer": slot[4], "bookingId": f"T{slot[0]}",
                        "subject_of_care": resident, "timeTypeID": slot[3],
                    },
                    subject_of_care_info={"firstName": "Minna", "lastName": "Glömsk"},
                )  # fmt: skip
                with gate.booking():
                    answer = on.post(MB, request)
                    assert validate_response(MB, answer).findtext("{*}resultCode") == "OK", answer
                    gate.booked.add(f"T{slot[0]}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(f"booking: {type(exc).__name__}: {exc}")

    started = time.monotonic()
    threads = [threading.Thread(target=asker) for _ in range(THREADS)] + [threading.Thread(target=booker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    assert not failures, "\n".join(failures[:5])
    assert done[0] == REQUESTS and len(gate.booked) == BOOKINGS

    # afterwards too: each booked slot's day, asked of both
    for ask in hot:
        request = requests[Ask(ask.unit, ask.first, ask.days, GAT)]
        answer = _post(forgetting, GAT, request)
        assert answer == _post(reference, GAT, request)
        assert not {m.decode() for m in OFFERED.findall(answer)} & gate.booked

    from_memory = _metric(forgetting, "memory") - memory
    read = _metric(forgetting, "database") - database
    # Without forgetting, a worker reads a request's days once, and again only after a change of
    # its unit (a booking; units whose tokens share a bucket count each other's)
    bucket = ChangeTokens.bucket
    changes = {u: sum(bucket(a.unit) == bucket(u) for a in (hot[k % len(hot)] for k in range(BOOKINGS))) for u in units}
    bound = 2 * sum(1 + changes[ask.unit] for ask in set(traffic))
    print(f"{REQUESTS} requests in {seconds:.1f} s: {from_memory:.0f} from memory, {read:.0f} read; bound {bound}")
    assert from_memory > 0, "the memory was never used: nothing is tested"
    assert read > bound, "the memory did not forget: nothing is tested"
    assert from_memory + read == REQUESTS + len(hot), "every call is counted once"
