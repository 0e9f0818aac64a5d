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

import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from lxml import etree
from support import DEMO_RESIDENT, ProducerServer, http_get, soap_post, validate_response
from support.calendar import STOCKHOLM, insert_slot, today, wire
from support.official import OfficialClient, zeep_client
from support.residents import Residents, as_resident
from support.server import start_server

from producer.calendar.units import TTL_SECONDS

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
    resident = new_resident()
    request = producers.message(
        op,
        unit,
        as_resident(resident),
        healthcare_facility=unit,
        startDateInclusive=f"{day:%Y%m%d}",
        endDateInclusive=f"{day + timedelta(days=1):%Y%m%d}",
        subject_of_care=resident,
    )
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
    assert _post(remembering, op, request) == answer
    from_memory = _metric(remembering, "memory")
    assert _post(remembering, op, request) == answer
    assert _metric(remembering, "memory") == from_memory + 1
