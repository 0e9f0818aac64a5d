"""Several producer hosts and several EI publishers on one PostgreSQL: a region past one machine.

Three `tidbok serve` processes on ports of their own (as separate as hosts: no memory, no session,
no lock shared, only the database), two `tidbok publish` processes and the EI stub, all on one
database. Residents' calls are spread over the hosts as a load balancer would spread them:

- sixteen residents racing for one slot through three hosts: exactly one OK, round after round,
  and nothing of the fifteen others stays (the slot's conditional update and the bookingId's
  unique index decide, in the database, whichever host asked);
- bookings made, rebooked and cancelled through different hosts while both publishers run: EI
  ends with exactly the current posts, and each booking's changes reached it in their order (the
  publishers' advisory locks per booking id, support.ei.order_problems), none sent twice.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import OfficialClient, ProducerServer
from support.calendar import CalendarDb, Slot
from support.ei import (
    CORE_XSD,
    OFFICIAL,
    PublisherProcess,
    Stub,
    log_key,
    order_problems,
    post_tuple,
    start_publisher,
    start_stub,
    stub_posts,
    wait_until_drained,
)
from support.official import zeep_client
from support.residents import Residents
from support.server import fresh_database, http_get, run_cli, start_server

pytestmark = pytest.mark.skipif(not CORE_XSD.is_file(), reason=f"official EI contract not found at {OFFICIAL}")

A100 = "SE2321000016-A100"
HOSTS = 3
BOOKERS = 16
ROUNDS = 5
SLOT_TAKEN = "Tiden är tyvärr inte längre ledig"
RESIDENTS = 60  # each booked, some rebooked (up to twice), some cancelled, through random hosts
DRAIN_SECONDS = 60.0

# A valid personnummer nobody else in the session uses (born 1925 onwards).
new_resident = Residents(date(1925, 1, 1), "321")


@dataclass
class Region:
    """The hosts, the publishers and the stub of one region, and its database."""

    hosts: list[ProducerServer]
    publishers: list[PublisherProcess]
    stub: Stub
    calendar: CalendarDb
    _clients: dict[tuple[str, int, int], OfficialClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, op: str, host: int, thread: int = 0) -> OfficialClient:
        """A zeep client of the official WSDL bound to one host; one per thread (its own HTTP session)."""
        key = (op, host, thread)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = zeep_client(op, self.hosts[host].base_url)
            return self._clients[key]

    def make_booking(self, host: int, resident: str, slot: Slot, thread: int = 0) -> Any:
        return self.client("MakeBooking", host, thread).call(
            A100,
            (resident, "subject_of_care"),
            healthcare_facility_med=A100,
            requestedTimeslot=slot.timeslot(resident),
            subject_of_care_info={"firstName": "Värd", "lastName": "Flersson"},
        )

    def metric(self, host: int, name: str, **labels: str) -> float:
        """The sum of one host's samples of ``name`` that carry these labels, from its /metrics."""
        status, _, body = http_get(f"{self.hosts[host].base_url}/metrics")
        assert status == 200, body
        return sum(
            sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def calls(self, host: int, operation: str) -> float:
        """Calls of one operation a host answered (every outcome)."""
        return self.metric(host, "tidbok_soap_calls_total", operation=operation)

    def count(self, query: str, *params: Any) -> int:
        return self.calendar.db.execute(query, params).fetchone()["n"]


@pytest.fixture(scope="module")
def region(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    logs = tmp_path_factory.mktemp("several-hosts")
    url = fresh_database(pg_admin_url, "tidbok_test_hosts")
    run_cli(["migrate"], {"DATABASE_URL": url})
    run_cli(["demo"], {"DATABASE_URL": url})
    hosts: list[ProducerServer] = []
    publishers: list[PublisherProcess] = []
    stub = None
    try:
        # the first host with two worker processes, as a production host would have
        settings = {"TIDBOK_READY_PUBLISHERS": "4"}  # two publishers of two threads each
        hosts = [
            start_server(f"host-{n}", url, {**settings, "TIDBOK_WORKERS": "2" if n == 0 else "1"}, logs)
            for n in range(HOSTS)
        ]
        stub = start_stub(logs / "stub")
        publishers = [
            start_publisher(
                url,
                stub.endpoint("Update"),
                logs / f"publisher-{n}.log",
                {"TIDBOK_EI_BATCH_SIZE": "10", "TIDBOK_EI_POLL_MS": "10"},  # small batches: they contend
            )
            for n in range(2)
        ]
        calendar = CalendarDb(hosts[0])
        yield Region(hosts, publishers, stub, calendar)
        calendar.close()
    finally:
        for publisher in publishers:
            publisher.stop()
        if stub is not None:
            stub.stop()
        for host in hosts:
            host.stop()


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


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sixteen_residents_race_for_one_slot_through_three_hosts(region: Region, round_: int) -> None:
    slot = region.calendar.free_slot(A100, ("LAK", "SSK", "PROV")[round_ % 3], last=True)
    residents = [new_resident() for _ in range(BOOKERS)]
    host_of = [n % HOSTS for n in range(BOOKERS)]
    before = [region.calls(host, "MakeBooking") for host in range(HOSTS)]
    results = race(
        [
            lambda n=n, resident=resident: region.make_booking(host_of[n], resident, slot, thread=n)
            for n, resident in enumerate(residents)
        ]
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == [], failures
    winners = [(resident, r) for resident, r in zip(residents, results, strict=True) if r.resultCode == "OK"]
    assert len(winners) == 1, [(r.resultCode, r.resultText) for r in results]
    for loser in (r for r in results if r.resultCode != "OK"):
        assert loser.resultCode == "ERROR" and SLOT_TAKEN in loser.resultText, loser
        assert loser.bookingId is None
    after = [region.calls(host, "MakeBooking") for host in range(HOSTS)]
    assert [b - a for a, b in zip(before, after, strict=True)] == [host_of.count(h) for h in range(HOSTS)]

    winner, answer = winners[0]
    booking = region.calendar.one(
        "SELECT pk, subject_of_care FROM booking WHERE booking_id = %s AND status = 'active'", answer.bookingId
    )
    assert booking["subject_of_care"] == winner
    assert region.calendar.holder(slot.id) == booking["pk"]
    assert region.count("SELECT count(*) AS n FROM booking WHERE subject_of_care = ANY(%s)", residents) == 1
    assert region.count("SELECT count(*) AS n FROM ei_outbox WHERE booking_pk = %s", booking["pk"]) == 1
    assert region.count("SELECT count(*) AS n FROM booking_event WHERE booking_pk = %s", booking["pk"]) == 1


def _life(
    region: Region, rng: random.Random, thread: int, resident: str, slots: Callable[[str], Slot]
) -> tuple[str, int]:
    """One resident's booking through random hosts: made, perhaps rebooked (once or twice), perhaps
    cancelled. Returns its bookingId and how many changes were made to it."""
    time_type = rng.choice(("LAK", "SSK"))
    made = region.make_booking(rng.randrange(HOSTS), resident, slots(time_type), thread)
    assert made.resultCode == "OK", made.resultText
    rebookings = rng.choice((0, 1, 1, 2))
    for _ in range(rebookings):
        moved = region.client("UpdateBooking", rng.randrange(HOSTS), thread).call(
            A100, (resident, "subject_of_care"), requestedTimeslot=slots(time_type).timeslot(resident, made.bookingId)
        )
        assert moved.resultCode == "OK", moved.resultText
    if rng.random() < 0.35:
        cancelled = region.client("CancelBooking", rng.randrange(HOSTS), thread).call(
            A100, (resident, "subject_of_care"), healthcare_facility=A100, bookingId=made.bookingId
        )
        assert cancelled.resultCode == "OK", cancelled.resultText
        return made.bookingId, 2 + rebookings
    return made.bookingId, 1 + rebookings


def test_each_bookings_changes_reach_ei_in_order_through_several_hosts_and_two_publishers(region: Region) -> None:
    region.stub.control(mode="slow", delay_seconds=0.02)  # the publishers hold their claims longer: more contention
    lock = threading.Lock()

    def slots(time_type: str) -> Slot:
        with lock:  # CalendarDb's connection and its handed-out set are not for threads
            return region.calendar.free_slot(A100, time_type)

    def drive(thread: int) -> list[tuple[str, int]]:
        rng = random.Random(20261202 + thread)
        lives = []
        for _ in range(RESIDENTS // 3):
            with lock:
                resident = new_resident()
            lives.append(_life(region, rng, thread, resident, slots))
        return lives

    with ThreadPoolExecutor(max_workers=3) as pool:
        lives = [life for done in [pool.submit(drive, thread) for thread in range(3)] for life in done.result(300)]
    queued = region.count(
        "SELECT count(*) AS n FROM ei_outbox o JOIN booking b ON b.pk = o.booking_pk WHERE b.booking_id = ANY(%s)",
        [booking_id for booking_id, _ in lives],
    )
    assert queued == sum(changes for _, changes in lives) >= RESIDENTS * 2, "one outbox row per change"
    wait_until_drained(region.calendar.db, None, DRAIN_SECONDS)
    region.stub.control(mode="ok")

    rows = region.calendar.rows("SELECT * FROM ei_outbox ORDER BY id")
    assert [r["id"] for r in rows if r["published_at"] is None] == [], "every outbox row is published"
    expected = sorted(
        post_tuple(r["ei_post"]) for r in region.calendar.rows("SELECT ei_post FROM booking WHERE ei_post IS NOT NULL")
    )
    state = region.stub.state()
    assert stub_posts(state) == expected, "EI holds exactly each booking's current post"
    assert order_problems(state["log"], rows) == []
    sent = Counter((*log_key(e), e["deleteFlag"], e["mostRecentContent"]) for e in state["log"])
    assert [change for change, times in sent.items() if times > 1] == [], "a change was sent twice"
    for publisher in region.publishers:
        assert publisher.process.poll() is None, publisher.output()
        assert "published" in publisher.output(), "both publishers took part"


def test_every_host_counts_the_publishers_of_the_region(region: Region) -> None:
    """/ready on each host requires all four publishing connections (two publishers, two threads
    each): they are counted in the database, so every host sees the same region."""
    deadline = time.monotonic() + 30
    while True:
        answers = [http_get(f"{host.base_url}/ready")[::2] for host in region.hosts]
        if all(answer == (200, b"ready\n") for answer in answers) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answers == [(200, b"ready\n")] * HOSTS
    assert [region.metric(host, "tidbok_ei_publisher_connections") for host in range(HOSTS)] == [4.0] * HOSTS
