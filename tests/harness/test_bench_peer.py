"""The benchmark's peer (tests/bench/peer_spyne, GetAvailableTimeslots and MakeBooking on spyne
2.14) must answer what tidbok answers, valid against the official contract, or the ratio `make
bench` prints compares different work. Both serve the same demo database; spyne is the bench
extra's, so without it (make test installs only .[dev]) these tests are skipped."""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from lxml import etree
from support import SOAP_ENV, Official, ProducerServer, soap_post
from support.server import PYTHON, REPO, free_port, http_get, subprocess_env

from tests.bench.run import make_booking_request, personnummer, timeslots_request

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("spyne") is None,
    reason="spyne is not installed: the peer is the bench extra's (pip install -e '.[dev,bench]', or make bench)",
)

UNIT = "SE2321000016-A100"
CORE = "urn:riv:crm:scheduling:1"


@pytest.fixture(scope="module")
def producer(start_producer) -> ProducerServer:
    """tidbok on a demo database of its own: the peer books in it."""
    return start_producer("benchpeer")


@pytest.fixture(scope="module")
def peer(producer: ProducerServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m tests.bench.peer_spyne` on tidbok's database, one worker; its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("peer") / "peer.log"
    env = {"DATABASE_URL": producer.database_url, "TIDBOK_HOST": "127.0.0.1", "TIDBOK_PORT": str(port)}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "tests.bench.peer_spyne"],
            cwd=REPO,
            env=subprocess_env({**env, "TIDBOK_WORKERS": "1"}),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base, process, Path(log))
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_for(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the peer exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_get(f"{base}/", timeout=1)[0] == 404:  # serving: only the two endpoints exist
                return
        time.sleep(0.1)
    pytest.fail(f"the peer did not answer within 30 s:\n{log.read_text(errors='replace')[-4000:]}")


def _answer(base: str, interaction: str, body: bytes) -> etree._Element:
    """The response element of a 200 answer, asserted valid against the official contract."""
    status, _, answer = soap_post(base, interaction, body)
    assert status == 200, answer.decode(errors="replace")
    return Official.validate_response(interaction, answer)


def _slots(element: etree._Element) -> list[dict[str, str]]:
    """Each timeslotDetail as {element QName: text}: namespaces count, prefixes do not."""
    return [{child.tag: child.text for child in detail} for detail in element]


def _free_day(producer: ProducerServer) -> date:
    """The first Stockholm day from the day after tomorrow on with a free doctor's, nurse's and
    sampling slot at the unit: an answer with every kind of name (performer, resource, purpose)."""
    with producer.connect() as conn:
        row = conn.execute(
            """SELECT d FROM (
                   SELECT (starts_at AT TIME ZONE 'Europe/Stockholm')::date AS d, time_type_code FROM slot_named
                   WHERE unit_hsa_id = %s AND booking_pk IS NULL AND starts_at > now() + interval '2 days'
                     AND time_type_code IN ('LAK', 'SSK', 'PROV')) s
               GROUP BY d HAVING count(DISTINCT time_type_code) = 3 ORDER BY d LIMIT 1""",
            (UNIT,),
        ).fetchone()
    assert row is not None, "the demo data has no day with free LAK, SSK and PROV slots"
    return row[0]


def test_get_available_timeslots_offers_what_tidbok_offers(producer: ProducerServer, peer: str) -> None:
    request = timeslots_request(UNIT, _free_day(producer), "191212121212")
    offered = _slots(_answer(producer.base_url, "GetAvailableTimeslots", request))
    assert {s[f"{{{CORE}}}timeTypeID"] for s in offered} == {"LAK", "SSK", "PROV"}  # DIAB: staff and invitations
    assert _slots(_answer(peer, "GetAvailableTimeslots", request)) == offered


def test_make_booking_books_the_slot_for_tidbok_too(producer: ProducerServer, peer: str) -> None:
    day = _free_day(producer)
    resident = personnummer(4711)
    search = timeslots_request(UNIT, day, resident)
    offered = _slots(_answer(peer, "GetAvailableTimeslots", search))
    slot = next(s for s in offered if s[f"{{{CORE}}}timeTypeID"] == "SSK")
    slot_id = int(slot[f"{{{CORE}}}bookingId"].removeprefix("T"))
    start, end = slot[f"{{{CORE}}}startTimeInclusive"], slot[f"{{{CORE}}}endTimeExclusive"]
    request = make_booking_request(UNIT, slot_id, start, end, resident)

    result = {child.tag.split("}")[1]: child.text for child in _answer(peer, "MakeBooking", request)}
    assert result["resultCode"] == "OK", result
    with producer.connect() as conn:
        holder = conn.execute(
            "SELECT b.booking_id, b.subject_of_care FROM slot s JOIN booking b ON b.pk = s.booking_pk WHERE s.id = %s",
            (slot_id,),
        ).fetchone()
    assert holder == (result["bookingId"], resident)
    # tidbok sees the same booking: the slot is no longer offered, and the same request again is
    # the resident's resend, answered with the booking the peer made
    still = _slots(_answer(producer.base_url, "GetAvailableTimeslots", search))
    assert slot not in still and len(still) == len(offered) - 1
    again = _answer(producer.base_url, "MakeBooking", request)
    assert {child.tag.split("}")[1]: child.text for child in again} == result


def test_the_peer_validates_what_it_is_sent(producer: ProducerServer, peer: str) -> None:
    """Validation is part of the work measured: a request the contract refuses is refused by both."""
    request = timeslots_request(UNIT, _free_day(producer), "191212121212").replace(
        b"<e:subject_of_care>191212121212<", b"<e:subject_of_care>19121212121X<"
    )
    for base in (producer.base_url, peer):
        status, _, answer = soap_post(base, "GetAvailableTimeslots", request)
        fault = etree.fromstring(answer).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
        assert status == 500 and fault is not None, answer.decode(errors="replace")
        assert fault.findtext("faultcode").split(":")[1].startswith("Client"), answer.decode(errors="replace")
