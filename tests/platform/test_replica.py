"""Availability read from a streaming replica (TIDBOK_DATABASE_REPLICA_URL), end to end.

A PostgreSQL primary of the module's own, a real hot standby of it made with pg_basebackup -R
(support.replica), and a real producer process configured with both. What is observed is real: the
producer's /metrics (which server answered each availability call), the replica's own
pg_stat_activity, the producer's log, and above all the answers, which differ when the replica is
behind: a slot booked a moment ago still shows as free on a paused replica, never in the booking
resident's own schedule.

The producer runs with its memory of free slots off (TIDBOK_AVAILABILITY_MEMORY=off), so every
availability call is a read the replica may answer. A second producer on the same database, with
its memory on, shows how that memory uses the replica: only when the replica is known to hold the
unit's last change (producer.platform.replica, Reads.holding).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import Official, ProducerServer
from support.calendar import CalendarDb, Slot
from support.official import Caller, as_data
from support.replica import Primary, Replica, make_replica, start_primary
from support.residents import Residents, as_resident, booking_details, schedule
from support.server import http_get, prepare_and_start, start_server

from producer.platform.replica import Freshness, lsn, may_read_replica
from producer.sweden.wall_time import STOCKHOLM, format_dt

A100 = "SE2321000016-A100"
DATABASE = "tidbok_test_replica"
MAX_LAG = 4.0  # seconds (TIDBOK_DATABASE_REPLICA_MAX_LAG): checks every 0.5 s, so a lagging replica is
# still used for 3.5 s at least after its last proof; a test reads it well within that
WAIT_SECONDS = 30.0
READS = "tidbok_db_replica_reads_total"
NAMES = {"firstName": "Rep", "lastName": "Likasson"}
# The line a worker logs when it finds the replica down: by its own check, or by a read that failed.
DOWN = re.compile(r"is skipped, availability is read from the primary: (unreachable|a read failed)")

new_resident = Residents(date(1935, 1, 1), "789")
T = TypeVar("T")


# -- the pure parts -----------------------------------------------------------------------------------


def test_wal_positions_are_byte_offsets() -> None:
    assert lsn("0/3000060") == 0x3000060
    assert lsn("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert lsn("1/0") - lsn("0/FFFFFFFF") == 1


def test_freshness_is_the_newest_check_whose_primary_position_the_replica_holds() -> None:
    """An idle primary (its position unchanged) keeps the replica fresh however long nothing is
    replayed; a replica that stops replaying ages from the last check whose position it reached."""
    fresh = Freshness()
    assert fresh.staleness(100.0) == float("inf")  # nothing proven yet
    fresh.observe(10.0, primary=500, replayed=500)
    fresh.observe(10.5, primary=500, replayed=500)  # idle: nothing to replay
    assert fresh.staleness(10.6) == pytest.approx(0.1) and fresh.byte_lag == 0
    fresh.observe(11.0, primary=900, replayed=500)  # 400 bytes written, not replayed
    fresh.observe(11.5, primary=1200, replayed=700)
    assert fresh.held_at == 10.5 and fresh.byte_lag == 500
    assert fresh.staleness(14.0) == pytest.approx(3.5)
    fresh.observe(12.0, primary=1200, replayed=950)  # caught up with the check at 11.0, not 11.5
    assert fresh.held_at == 11.0 and fresh.byte_lag == 250
    fresh.observe(12.5, primary=1300, replayed=1300)
    assert fresh.held_at == 12.5 and fresh.byte_lag == 0


@pytest.mark.parametrize(
    ("interaction", "request_body", "expected"),
    [
        ("GetAvailableTimeslots", {"subject_of_care": "191212121212"}, True),
        ("GetAvailableDates", {}, True),
        ("GetAllTimeTypes", {}, True),
        ("GetAllHealthcareFacilities", {}, True),
        ("GetAvailableTimeslots", {"bookingId": "B17"}, False),  # rebooking: reads the resident's booking
        ("GetAllHealthcareFacilities", {"bookingId": "B17"}, False),
        ("GetSubjectOfCareSchedule", {}, False),
        ("GetBookingDetails", {"bookingId": "B17"}, False),
        ("MakeBooking", {}, False),
        ("UpdateBooking", {}, False),
        ("CancelBooking", {}, False),
    ],
)
def test_which_calls_may_read_the_replica(interaction: str, request_body: dict[str, Any], expected: bool) -> None:
    assert may_read_replica(interaction, request_body) is expected


# -- a primary, its replica, a producer reading both ------------------------------------------------


class Setup:
    """The module's primary, its replica and a producer reading both, with what the tests observe."""

    def __init__(self, primary: Primary, replica: Replica, server: ProducerServer, official: Official) -> None:
        self.primary = primary
        self.replica = replica
        self.server = server
        self.call: Caller = official.caller(server.base_url)
        self.calendar = CalendarDb(server)

    # -- calls --------------------------------------------------------------------------------

    def timeslots(self, day: date, **body: Any) -> list[dict[str, Any]]:
        response = self.call(
            "GetAvailableTimeslots",
            A100,
            healthcare_facility=A100,
            subject_of_care=body.pop("resident", "191212121212"),
            startDateInclusive=format_dt(day),
            endDateInclusive=format_dt(day),
            **body,
        )
        return as_data(response.timeslotDetail)

    def offered(self, day: date) -> set[str]:
        """The ids of the day's free slots ("T<id>", as GetAvailableTimeslots hands them out)."""
        return {slot["bookingId"] for slot in self.timeslots(day)}

    def book(self, resident: str, slot: Slot) -> str:
        answer = self.call(
            "MakeBooking",
            A100,
            as_resident(resident),
            healthcare_facility_med=A100,
            requestedTimeslot=slot.timeslot(resident),
            subject_of_care_info=NAMES,
        )
        assert answer.resultCode == "OK", answer.resultText
        return answer.bookingId

    # -- what is observed ---------------------------------------------------------------------

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        status, _, body = http_get(f"{self.server.base_url}/metrics")
        assert status == 200, body
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }

    def served(self) -> tuple[float, float]:
        """Availability and catalogue calls answered so far: (by the replica, by the primary)."""
        found = self.metrics()
        return (
            found.get((READS, frozenset({("served_by", "replica")})), 0.0),
            found.get((READS, frozenset({("served_by", "primary")})), 0.0),
        )

    def state_changes(self, state: str) -> float:
        return self.metrics().get(("tidbok_db_replica_state_changes_total", frozenset({("state", state)})), 0.0)

    def log(self) -> str:
        return (self.server.log_dir / f"{self.server.name}.stderr").read_text(errors="replace")

    def replica_ran_the_slot_search(self) -> bool:
        """The replica's own view: a backend of the producer's database whose last query searched free slots."""
        with self.replica.connect() as conn:
            return (
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                    " AND query LIKE %s",
                    (DATABASE, "%FROM slot s%booking_pk IS NULL%"),
                ).fetchone()[0]
                > 0
            )

    def using_the_replica(self, day: date) -> None:
        """Wait (bounded) until an availability call is answered by the replica: after a start, a
        pause in calls or a recovery the first calls read the primary while the checks resume."""

        def answered_by_replica() -> bool:
            before = self.served()[0]
            self.timeslots(day)
            return self.served()[0] > before

        wait_for(answered_by_replica, "an availability call answered by the replica", self)


def wait_for(condition: Callable[[], T], what: str, setup: Setup, seconds: float = WAIT_SECONDS) -> T:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}\n{setup.log()[-4000:]}", pytrace=False)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, official: Official) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("replication")
    primary = start_primary(folder)
    replica = None
    server = None
    try:
        replica = make_replica(primary)
        server = prepare_and_start(
            primary.admin_url,
            DATABASE.removeprefix("tidbok_test_"),
            {
                "TIDBOK_DATABASE_REPLICA_URL": replica.url(DATABASE),
                "TIDBOK_DATABASE_REPLICA_MAX_LAG": str(MAX_LAG),
                "TIDBOK_AVAILABILITY_MEMORY": "off",
            },
            folder / "logs",
        )
        running = Setup(primary, replica, server, official)
        yield running
        running.calendar.close()
    finally:
        if server is not None:
            server.stop()
        if replica is not None and replica.running():
            replica.stop()
        primary.stop()


@pytest.fixture(scope="module")
def remembering(setup: Setup, tmp_path_factory: pytest.TempPathFactory, official: Official) -> Iterator[Setup]:
    """A producer on the same primary and replica with its memory of free slots on (the default)."""
    server = start_server(
        "replica_memory",
        setup.server.database_url,
        {
            "TIDBOK_DATABASE_REPLICA_URL": setup.replica.url(DATABASE),
            "TIDBOK_DATABASE_REPLICA_MAX_LAG": str(MAX_LAG),
        },
        tmp_path_factory.mktemp("replica-memory-logs"),
    )
    try:
        yield Setup(setup.primary, setup.replica, server, official)
    finally:
        server.stop()


def remembered_from_replica(remembering: Setup) -> float:
    return remembering.metrics().get(("tidbok_availability_memory_total", frozenset({("source", "replica")})), 0.0)


def a_day(setup: Setup) -> tuple[date, Slot]:
    """A free LAK slot of its own, and its day (Stockholm)."""
    slot = setup.calendar.free_slot(A100, "LAK")
    return slot.starts_at.astimezone(STOCKHOLM).date(), slot


# -- the replica in use -------------------------------------------------------------------------------


def test_availability_and_the_catalogue_are_read_from_the_replica(setup: Setup) -> None:
    day, slot = a_day(setup)
    setup.using_the_replica(day)
    replica_before, primary_before = setup.served()
    for _ in range(5):
        assert slot.ref in setup.offered(day)
    assert setup.replica_ran_the_slot_search()
    dates = setup.call(
        "GetAvailableDates",
        A100,
        healthcare_facility=A100,
        subject_of_care="191212121212",
        startDateInclusive=format_dt(day),
        endDateInclusive=format_dt(day + timedelta(days=6)),
    )
    assert dates.performerAvailabilityByDate, "GetAvailableDates found the week's slots"
    types = setup.call("GetAllTimeTypes", A100, healthcare_facility=A100, subject_of_care="191212121212")
    assert {t.timeTypeId for t in types.ListOfTimeTypes} >= {"LAK"}
    replica_after, primary_after = setup.served()
    assert (replica_after - replica_before, primary_after - primary_before) == (7, 0)
    assert setup.state_changes("usable") == 1
    assert "is used for availability reads" in setup.log()


def test_a_residents_reads_after_their_booking_see_it_while_the_replica_lags(setup: Setup) -> None:
    """Replay paused, a resident books: the replica still offers the slot (it is in use and behind,
    within the bound), while the resident's schedule, the booking's details and the rebooking
    search by its bookingId, all on the primary, have it. Beyond the bound the replica is skipped
    (logged once), and once replay resumes and it has caught up it is used again."""
    day, slot = a_day(setup)
    setup.using_the_replica(day)
    lagging_before = setup.state_changes("lagging")
    setup.replica.pause()
    try:
        resident = new_resident()
        booking_id = setup.book(resident, slot)
        booked = time.monotonic()
        replica_before = setup.served()[0]
        assert slot.ref in setup.offered(day), "the paused replica answered, and does not have the booking yet"
        assert setup.served()[0] == replica_before + 1
        assert time.monotonic() - booked < MAX_LAG - 0.5, "answered within the bound: it was the replica's to answer"

        assert [s.bookingId for s in schedule(setup.call, A100, resident)] == [booking_id]
        assert booking_details(setup.call, A100, resident, booking_id).startTimeInclusive == slot.start
        rebooking = setup.timeslots(day, resident=resident, bookingId=booking_id)
        assert rebooking and {s["bookingId"] for s in rebooking} == {booking_id}
        taken = (slot.start, slot.performer)
        assert taken not in {(s["startTimeInclusive"], s["performer"]) for s in rebooking}, "the primary has it taken"

        wait_for(lambda: slot.ref not in setup.offered(day), "the lagging replica to be skipped", setup)
        skipped_after = time.monotonic() - booked
        assert skipped_after < MAX_LAG + 2.5, f"the replica was used {skipped_after:.1f} s after the booking"
        assert setup.state_changes("lagging") == lagging_before + 1
        replica_now = setup.served()[0]
        for _ in range(3):
            assert slot.ref not in setup.offered(day)
        assert setup.served()[0] == replica_now, "a lagging replica answers nothing"
    finally:
        setup.replica.resume()
    setup.using_the_replica(day)
    assert slot.ref not in setup.offered(day), "caught up: the replica has the booking"
    assert setup.state_changes("lagging") == lagging_before + 1, "one change of state, one count"
    assert setup.log().count("is skipped, availability is read from the primary: it may miss") == 1


def test_a_replica_that_stops_is_skipped_without_failing_a_call_and_used_again_when_it_returns(
    setup: Setup,
) -> None:
    day, slot = a_day(setup)
    setup.using_the_replica(day)
    replica_before, primary_before = setup.served()
    setup.replica.stop()
    try:
        for _ in range(8):
            assert slot.ref in setup.offered(day)  # answered, by the primary
        replica_after, primary_after = setup.served()
        assert (replica_after - replica_before, primary_after - primary_before) == (0, 8)
        status, _, body = http_get(f"{setup.server.base_url}/ready")
        assert (status, body) == (200, b"ready\n"), "the replica is no part of readiness"
        wait_for(lambda: len(DOWN.findall(setup.log())) == 1, "the replica to be logged as down", setup)
        assert setup.state_changes("down") == 1
        gauges = setup.metrics()
        assert gauges[("tidbok_db_replica_usable", frozenset())] == 0
    finally:
        setup.replica.start()
    setup.using_the_replica(day)
    assert len(DOWN.findall(setup.log())) == 1, "one change of state, one line"
    assert setup.metrics()[("tidbok_db_replica_usable", frozenset())] == 1


def test_the_memory_of_free_slots_reads_the_replica_only_when_it_holds_the_units_last_change(
    setup: Setup, remembering: Setup
) -> None:
    """Days the memory reads come from the replica while it is fresh. With replay paused, a
    resident books through the remembering producer: from its answer on, that producer never offers
    the slot (it reads the day again from the primary, since the replica cannot be shown to hold the
    booking), while the producer without memory, reading the paused replica, still does."""
    day, slot = a_day(setup)
    later = iter(range(1, 60))

    def a_day_read_from_the_replica() -> bool:
        before = remembered_from_replica(remembering)
        remembering.offered(day + timedelta(days=next(later)))  # a day not remembered yet
        return remembered_from_replica(remembering) > before

    wait_for(a_day_read_from_the_replica, "a day of the memory read from the replica", remembering)
    assert slot.ref in remembering.offered(day)
    setup.using_the_replica(day)
    setup.replica.pause()
    try:
        resident = new_resident()
        remembering.book(resident, slot)
        booked = time.monotonic()
        for _ in range(5):
            assert slot.ref not in remembering.offered(day), "the memory answered from a replica behind its booking"
        assert slot.ref in setup.offered(day), "the paused replica, read without memory, still offers it"
        assert time.monotonic() - booked < MAX_LAG - 0.5, "within the bound: the replica was still in use"
    finally:
        setup.replica.resume()


def test_a_promoted_replica_is_not_read(setup: Setup) -> None:
    """Promoted (a failover manager made it a primary of its own): it no longer follows the primary
    the producer writes to, so it must not answer for it. Last in the module: it ends replication."""
    day, slot = a_day(setup)
    setup.using_the_replica(day)
    with setup.replica.connect() as conn:
        conn.execute("SELECT pg_promote()")
    wait_for(lambda: "it is not in recovery" in setup.log(), "the promoted replica to be refused", setup)
    replica_before = setup.served()[0]
    for _ in range(3):
        assert slot.ref in setup.offered(day)
    assert setup.served()[0] == replica_before
    assert setup.state_changes("refused") == 1
