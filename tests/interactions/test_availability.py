"""GetAvailableTimeslots and GetAvailableDates: what is offered, filters, windows, rebooking, DST.

Runs against its own producer ("availability"). Tests that need data the demo lacks (a slot that
has just started, slots on the DST days) insert it with SQL; bookings made here use days the
other tests do not look at, so the tests do not depend on their order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
import pytest
from support import DEMO_RESIDENT, Caller, Official, ProducerServer
from support.calendar import insert_slot, last_sunday, today, weekday_on_or_after
from support.official import as_data, client_fault
from support.server import booking_ids_by_kind

from producer.sweden.wall_time import STOCKHOLM, format_dt, parse_dt, parse_ts

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
P001, P002, P003 = "SE2321000016-P001", "SE2321000016-P002", "SE2321000016-P003"
OTHER_RESIDENT = "198112289874"
NAMES = {"firstName": "Tolvan", "lastName": "Tolvansson"}

# A unit of our own for the DST days, so no demo slot is in the way.
D100 = "SE2321000016-D100"
D001, D002, D003, D004 = (f"SE2321000016-D00{n}" for n in range(1, 5))
NIGHT = "NATT"


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    return start_producer("availability")


@pytest.fixture(scope="module")
def call(official: Official, server: ProducerServer) -> Caller:
    return official.caller(server.base_url)


@pytest.fixture(scope="module")
def conn(server: ProducerServer) -> Iterator[psycopg.Connection]:
    with server.connect() as connection:
        yield connection


@pytest.fixture(scope="module")
def demo_ids(conn: psycopg.Connection) -> dict[str, str]:
    return booking_ids_by_kind(conn, DEMO_RESIDENT)


@pytest.fixture(scope="module")
def lak_start(conn: psycopg.Connection, demo_ids: dict[str, str]) -> datetime:
    """Start of the demo LAK booking's slot (next Monday 09:00), in Stockholm time."""
    row = conn.execute(
        "SELECT s.starts_at FROM slot s JOIN booking b ON b.pk = s.booking_pk WHERE b.booking_id = %s",
        (demo_ids["booking"],),
    ).fetchone()
    return row[0].astimezone(STOCKHOLM)


# -- helpers -------------------------------------------------------------------------------------------


def timeslots(
    call: Caller,
    unit: str,
    first: date,
    last: date | None = None,
    resident: str = DEMO_RESIDENT,
    **body: Any,
) -> list[dict[str, Any]]:
    response = call(
        "GetAvailableTimeslots",
        unit,
        healthcare_facility=unit,
        subject_of_care=resident,
        startDateInclusive=format_dt(first),
        endDateInclusive=format_dt(last or first),
        **body,
    )
    return as_data(response.timeslotDetail)


def available_dates(
    call: Caller, unit: str, first: date | str, last: date | str, resident: str = DEMO_RESIDENT, **body: Any
) -> list[dict[str, Any]]:
    response = call(
        "GetAvailableDates",
        unit,
        healthcare_facility=unit,
        subject_of_care=resident,
        startDateInclusive=first if isinstance(first, str) else format_dt(first),
        endDateInclusive=last if isinstance(last, str) else format_dt(last),
        **body,
    )
    return as_data(response.performerAvailabilityByDate)


def wall(slot: dict[str, Any]) -> str:
    """hh:mm of a slot's start, as it is on the wire."""
    return f"{slot['startTimeInclusive'][8:10]}:{slot['startTimeInclusive'][10:12]}"


def make_booking(call: Caller, unit: str, slot: dict[str, Any], resident: str = DEMO_RESIDENT) -> Any:
    """MakeBooking passing a slot back exactly as availability gave it, plus the resident."""
    return call(
        "MakeBooking",
        unit,
        healthcare_facility_med=unit,
        requestedTimeslot={**slot, "subject_of_care": resident},
        subject_of_care_info=NAMES,
    )


def booked_start(conn: psycopg.Connection, booking_id: str) -> datetime:
    """starts_at (UTC) of the slot an active booking holds."""
    row = conn.execute(
        "SELECT s.starts_at FROM slot s JOIN booking b ON b.pk = s.booking_pk"
        " WHERE b.booking_id = %s AND b.status = 'active'",
        (booking_id,),
    ).fetchone()
    assert row is not None, f"no slot held by {booking_id}"
    return row[0].astimezone(UTC)


def lak_day_starts() -> list[str]:
    """08:00–12:00 and 13:00–16:00 in 20-minute slots."""
    starts = []
    for opens, closes in ((8, 12), (13, 16)):
        minute = opens * 60
        while minute + 20 <= closes * 60:
            starts.append(f"{minute // 60:02d}:{minute % 60:02d}")
            minute += 20
    return starts


# -- the demo's weekdays -------------------------------------------------------------------------------


def test_lak_slots_of_a_weekday(call: Caller, lak_start: datetime) -> None:
    day = weekday_on_or_after(lak_start.date() + timedelta(days=1))  # the Tuesday after the demo booking
    slots = timeslots(call, A100, day, timeTypeID="LAK")
    assert len(slots) == 21
    assert [wall(s) for s in slots] == lak_day_starts()
    ids = [s["bookingId"] for s in slots]
    assert len(set(ids)) == len(ids)
    for slot in slots:
        start, end = slot["startTimeInclusive"], slot["endTimeExclusive"]
        assert len(start) == len(end) == 14 and start.isdigit() and end.isdigit()
        assert parse_ts(start).date() == day
        assert parse_ts(end).astimezone(UTC) - parse_ts(start).astimezone(UTC) == timedelta(minutes=20)
        assert slot["healthcare_facility"] == A100
        assert slot["healthcare_facility_name"] == "Vårdcentralen Exempel"
        assert slot["performer"] == P001
        assert slot["performerName"] == "Läkare Anna Andersson"  # title, first and last name (seed 001)
        assert slot["bookingId"].startswith("T") and slot["bookingId"][1:].isdigit()
        assert (slot["timeTypeID"], slot["timeTypeName"]) == ("LAK", "Läkarbesök")
        assert (slot["careTypeID"], slot["careTypeName"]) == ("ALLM", "Allmänmedicin")
        assert slot["message_allowed"] is True
        assert slot["subject_of_care"] is None  # availability is not about the resident


def test_the_demo_lak_booking_is_not_offered(call: Caller, lak_start: datetime) -> None:
    assert lak_start.weekday() == 0 and lak_start.time() == time(9)
    slots = timeslots(call, A100, lak_start.date(), timeTypeID="LAK")
    starts = [wall(s) for s in slots]
    assert "09:00" not in starts
    assert starts == [s for s in lak_day_starts() if s != "09:00"]


def test_without_time_type_every_schedule_of_the_day(call: Caller, lak_start: datetime) -> None:
    day = weekday_on_or_after(lak_start.date() + timedelta(days=1))
    slots = timeslots(call, A100, day)
    counts = {code: sum(1 for s in slots if s["timeTypeID"] == code) for code in ("LAK", "SSK", "PROV")}
    assert counts == {"LAK": 21, "SSK": 28, "PROV": 42}
    assert all(s["timeTypeID"] for s in slots)
    starts = [parse_ts(s["startTimeInclusive"]) for s in slots]
    assert starts == sorted(starts)


# -- never past ----------------------------------------------------------------------------------------


def test_never_returns_past_times(call: Caller, conn: psycopg.Connection) -> None:
    """A slot that began a minute ago is gone, one beginning in two minutes is offered.

    No performer, so the exclusion constraint can never clash with a demo slot, whatever the hour.
    SSK: the demo's LAK is booked at least two hours ahead (test_booking_rules).
    """
    now = datetime.now(UTC).replace(microsecond=0)
    inserted = []
    for offset in (timedelta(minutes=-1), timedelta(minutes=2)):
        slot_id = insert_slot(conn, A100, now + offset, now + offset + timedelta(minutes=20), "SSK", "ALLM")
        inserted.append(f"T{slot_id}")
    try:
        local_today = datetime.now(STOCKHOLM).date()
        asked_at = datetime.now(UTC).replace(microsecond=0)
        slots = timeslots(call, A100, local_today - timedelta(days=1), local_today + timedelta(days=1))
        ids = {s["bookingId"] for s in slots}
        assert inserted[0] not in ids, "a slot that has begun was offered"
        assert inserted[1] in ids
        assert all(parse_ts(s["startTimeInclusive"]) >= asked_at for s in slots)

        dates = available_dates(call, A100, local_today - timedelta(days=7), local_today + timedelta(days=1))
        assert dates, "the slot in two minutes is on today's or tomorrow's (Stockholm) date"
        assert all(parse_dt(d["date"]) >= asked_at.astimezone(STOCKHOLM).date() for d in dates)
    finally:
        conn.execute("DELETE FROM slot WHERE id = ANY(%s)", ([int(i[1:]) for i in inserted],))


# -- GetAvailableDates and windows ---------------------------------------------------------------------


def test_dates_over_62_days(call: Caller) -> None:
    first = today()
    last = first + timedelta(days=61)
    dates = available_dates(call, A100, first, last, timeTypeID="LAK")
    days = {parse_dt(d["date"]) for d in dates}
    for entry in dates:
        assert len(entry["date"]) == 8 and entry["date"].isdigit()
        assert entry["healthcare_facility"] == A100
        assert (entry["performer"], entry["timeTypeID"], entry["timeTypeName"]) == (P001, "LAK", "Läkarbesök")
    assert len(days) == len(dates), "one entry per day for one performer and time type"
    assert all(d.weekday() < 5 and first <= d <= last for d in days)
    # every weekday from tomorrow on has free LAK slots in the demo (today's may all be past)
    expected = {first + timedelta(days=n) for n in range(1, 62)}
    assert {d for d in expected if d.weekday() < 5} <= days
    assert [d["date"] for d in dates] == sorted(d["date"] for d in dates)


def test_dates_without_filters_list_each_schedule(call: Caller) -> None:
    first = weekday_on_or_after(today() + timedelta(days=2))
    dates = available_dates(call, A100, first, first)
    keys = {(d["performer"], d["resourceID"], d["timeTypeID"], d["careTypeID"]) for d in dates}
    assert keys == {(P001, None, "LAK", "ALLM"), (P002, None, "SSK", "ALLM"), (None, "PROVRUM1", "PROV", "LAB")}
    prov = next(d for d in dates if d["timeTypeID"] == "PROV")
    assert prov["resourceName"] == "Provtagningsrummet"


def test_a_92_day_window_is_answered(call: Caller) -> None:
    first = today()
    dates = available_dates(call, A100, first, first + timedelta(days=91), timeTypeID="SSK")
    assert dates
    assert all(parse_dt(d["date"]) >= first for d in dates)


def test_a_93_day_window_is_a_fault_naming_the_maximum(call: Caller) -> None:
    first = today()
    for operation in (available_dates, timeslots):
        fault = client_fault(lambda op=operation: op(call, A100, first, first + timedelta(days=92)))
        assert "92" in fault.message


def test_a_reversed_window_is_a_fault(call: Caller) -> None:
    first = today() + timedelta(days=5)
    for operation in (available_dates, timeslots):
        client_fault(lambda op=operation: op(call, A100, first, first - timedelta(days=1)))


def test_an_impossible_date_is_a_fault(call: Caller) -> None:
    client_fault(lambda: available_dates(call, A100, "20260231", "20260305"))
    client_fault(lambda: available_dates(call, A100, "20260201", "20260231"))
    fault = client_fault(
        lambda: call(
            "GetAvailableTimeslots",
            A100,
            healthcare_facility=A100,
            subject_of_care=DEMO_RESIDENT,
            startDateInclusive="20260231",
            endDateInclusive="20260301",
        )
    )
    assert "date" in fault.message.lower()


# -- filters -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filter_day(lak_start: datetime) -> date:
    """A weekday nobody books on: the Thursday after the demo booking (Wednesday has the timed invitation)."""
    return weekday_on_or_after(lak_start.date() + timedelta(days=3))


def test_filter_by_performers(call: Caller, filter_day: date) -> None:
    slots = timeslots(call, A100, filter_day, performer=[P002])
    assert len(slots) == 28 and {s["performer"] for s in slots} == {P002}
    assert {s["timeTypeID"] for s in slots} == {"SSK"}
    both = timeslots(call, A100, filter_day, performer=[P001, P002])
    assert len(both) == 49 and {s["performer"] for s in both} == {P001, P002}
    # HSA-ids compare case-insensitively
    assert len(timeslots(call, A100, filter_day, performer=[P001.lower()])) == 21
    assert timeslots(call, A100, filter_day, performer=[P003]) == []


def test_filter_by_time_type(call: Caller, filter_day: date) -> None:
    by_id = timeslots(call, A100, filter_day, timeTypeID="SSK")
    assert len(by_id) == 28 and {s["timeTypeID"] for s in by_id} == {"SSK"}
    by_name = timeslots(call, A100, filter_day, timeTypeName="Provtagning")
    assert len(by_name) == 42 and {s["timeTypeID"] for s in by_name} == {"PROV"}
    for slot in by_name:  # PROV at A100 is on a resource
        assert slot["performer"] is None and slot["performerName"] is None
        assert (slot["resourceID"], slot["resourceName"]) == ("PROVRUM1", "Provtagningsrummet")
    assert timeslots(call, A100, filter_day, timeTypeID="NOSUCH") == []


def test_filter_by_care_type(call: Caller, filter_day: date) -> None:
    by_id = timeslots(call, A100, filter_day, careTypeID="ALLM")
    assert len(by_id) == 49 and {s["timeTypeID"] for s in by_id} == {"LAK", "SSK"}
    by_name = timeslots(call, A100, filter_day, careTypeName="Laboratoriemedicin")
    assert len(by_name) == 42 and {s["careTypeID"] for s in by_name} == {"LAB"}
    assert timeslots(call, A100, filter_day, careTypeID="ALLM", timeTypeID="PROV") == []


def test_dates_filtered_by_performer(call: Caller, filter_day: date) -> None:
    dates = available_dates(call, A100, filter_day, filter_day + timedelta(days=6), performer=[P002])
    assert dates and {(d["performer"], d["timeTypeID"]) for d in dates} == {(P002, "SSK")}


# -- with a bookingId ----------------------------------------------------------------------------------


def test_with_the_lak_booking_only_lak_slots_carrying_its_id(
    call: Caller, demo_ids: dict[str, str], filter_day: date
) -> None:
    booking_id = demo_ids["booking"]
    slots = timeslots(call, A100, filter_day, bookingId=booking_id)
    assert len(slots) == 21
    assert {s["timeTypeID"] for s in slots} == {"LAK"}
    assert {s["bookingId"] for s in slots} == {booking_id}
    dates = available_dates(call, A100, filter_day, filter_day, bookingId=booking_id)
    assert [(d["date"], d["timeTypeID"]) for d in dates] == [(format_dt(filter_day), "LAK")]


def test_the_lak_booking_cannot_be_moved_to_a200(call: Caller, demo_ids: dict[str, str], filter_day: date) -> None:
    client_fault(lambda: timeslots(call, A200, filter_day, bookingId=demo_ids["booking"]))
    client_fault(lambda: available_dates(call, A200, filter_day, filter_day, bookingId=demo_ids["booking"]))


def test_the_open_prov_invitation_at_a200(call: Caller, demo_ids: dict[str, str], filter_day: date) -> None:
    invitation = demo_ids["open_invitation"]
    slots = timeslots(call, A200, filter_day, bookingId=invitation)
    assert len(slots) == 42
    assert {(s["healthcare_facility"], s["timeTypeID"], s["performer"]) for s in slots} == {(A200, "PROV", P003)}
    assert {s["bookingId"] for s in slots} == {invitation}
    # and at its own unit
    at_home = timeslots(call, A100, filter_day, bookingId=invitation)
    assert len(at_home) == 42 and {s["bookingId"] for s in at_home} == {invitation}


def test_another_residents_booking_id_is_a_fault(call: Caller, demo_ids: dict[str, str], filter_day: date) -> None:
    for operation in (timeslots, available_dates):
        fault = client_fault(
            lambda op=operation: op(
                call, A100, filter_day, filter_day, resident=OTHER_RESIDENT, bookingId=demo_ids["booking"]
            )
        )
        assert OTHER_RESIDENT not in fault.message


def test_an_unknown_booking_id_is_a_fault(call: Caller, filter_day: date) -> None:
    client_fault(lambda: timeslots(call, A100, filter_day, bookingId="B987654"))


# -- round trips: a slot passed back as is -------------------------------------------------------------


def test_a_slot_passed_back_as_is_books_it(call: Caller, conn: psycopg.Connection) -> None:
    """SSK: the demo resident holds the one upcoming LAK booking the demo allows per resident."""
    day = weekday_on_or_after(today() + timedelta(days=21))
    slots = timeslots(call, A100, day, timeTypeID="SSK")
    chosen = slots[3]
    response = make_booking(call, A100, chosen)
    assert response.resultCode == "OK", response.resultText
    assert response.bookingId
    assert booked_start(conn, response.bookingId) == parse_ts(chosen["startTimeInclusive"]).astimezone(UTC)

    after = timeslots(call, A100, day, timeTypeID="SSK")
    assert chosen["bookingId"] not in {s["bookingId"] for s in after}
    assert chosen["startTimeInclusive"] not in {s["startTimeInclusive"] for s in after}
    assert len(after) == len(slots) - 1


def test_a_slot_offered_for_a_booking_passed_back_as_is_rebooks_it(call: Caller, conn: psycopg.Connection) -> None:
    """An SSK booking of our own (the demo's LAK stays where the other tests expect it, and the demo
    allows one upcoming LAK booking per resident)."""
    day = weekday_on_or_after(today() + timedelta(days=28))
    first = timeslots(call, A100, day, timeTypeID="SSK")[0]
    made = make_booking(call, A100, first)
    assert made.resultCode == "OK", made.resultText
    booking_id = made.bookingId

    later = weekday_on_or_after(day + timedelta(days=1))
    offered = timeslots(call, A100, later, bookingId=booking_id)
    assert offered and {s["bookingId"] for s in offered} == {booking_id}
    target = offered[5]
    response = call("UpdateBooking", A100, requestedTimeslot={**target, "subject_of_care": DEMO_RESIDENT})
    assert response.resultCode == "OK", response.resultText

    assert booked_start(conn, booking_id) == parse_ts(target["startTimeInclusive"]).astimezone(UTC)
    taken = {s["startTimeInclusive"] for s in timeslots(call, A100, later, timeTypeID="SSK")}
    assert target["startTimeInclusive"] not in taken
    # the old slot is free again at once
    assert first["startTimeInclusive"] in {
        s["startTimeInclusive"] for s in timeslots(call, A100, day, timeTypeID="SSK")
    }


def open_invitation(conn: psycopg.Connection) -> str:
    """A fresh open PROV invitation for Tolvan at A100 (as the demo's K3), so the demo's stays open."""
    pk = conn.execute(
        "INSERT INTO booking (booking_id, unit_hsa_id, kind, subject_of_care, first_name, last_name, purpose,"
        " time_type_code, care_type_code, invitation_date, valid_until)"
        " VALUES ('pending', %s, 'open_invitation', %s, 'Tolvan', 'Tolvansson', 'Välkommen på provtagning.',"
        " 'PROV', 'LAB', current_date, now() + interval '30 days') RETURNING pk",
        (A100, DEMO_RESIDENT),
    ).fetchone()[0]
    conn.execute("UPDATE booking SET booking_id = %s WHERE pk = %s", (f"K{pk}", pk))
    return f"K{pk}"


@pytest.mark.parametrize("addressed", [A100, A200], ids=["addressed-to-invitation-unit", "addressed-to-slot-unit"])
def test_an_open_invitation_slot_at_a200_passed_back_as_is_books_it(
    call: Caller, conn: psycopg.Connection, addressed: str
) -> None:
    """GetAvailableTimeslots at A200 with an A100 invitation's id, then MakeBooking with that slot.

    Availability answers at A200 (an alternative unit for PROV), so the slot it gave must be bookable:
    addressed to the invitation's unit, or to A200 where the slot was offered, as for UpdateBooking.
    """
    invitation = open_invitation(conn)
    day = weekday_on_or_after(today() + timedelta(days=35 if addressed == A100 else 36))
    offered = timeslots(call, A200, day, bookingId=invitation)
    assert offered and {(s["healthcare_facility"], s["bookingId"]) for s in offered} == {(A200, invitation)}
    chosen = offered[2]
    response = make_booking(call, addressed, chosen)
    assert response.resultCode == "OK", response.resultText
    assert response.bookingId == invitation  # stable policy: the invitation keeps its id
    assert booked_start(conn, invitation) == parse_ts(chosen["startTimeInclusive"]).astimezone(UTC)
    row = conn.execute("SELECT kind, unit_hsa_id FROM booking WHERE booking_id = %s", (invitation,)).fetchone()
    assert row == ("booking", A200)


# -- daylight saving time ------------------------------------------------------------------------------


def next_change(month: int) -> date:
    """The next last-Sunday-of-`month` after today (past times are never offered)."""
    this_year = last_sunday(today().year, month)
    return this_year if this_year > today() else last_sunday(today().year + 1, month)


def stockholm(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=STOCKHOLM).astimezone(UTC)


def insert_slots(conn: psycopg.Connection, performer: str, spans: list[tuple[datetime, datetime]]) -> None:
    for start, end in spans:
        insert_slot(conn, D100, start, end, NIGHT, NIGHT, performer)


def every_half_hour(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Consecutive 30-minute slots in real (UTC) time."""
    spans, step = [], timedelta(minutes=30)
    while start + step <= end:
        spans.append((start, start + step))
        start += step
    return spans


@pytest.fixture(scope="module")
def dst_days(conn: psycopg.Connection) -> tuple[date, date]:
    """Unit D100 with night slots on the next spring and autumn change days.

    Spring: D001 every 30 minutes 00:00–05:00 local. Autumn: D001 and D004 (the latter never booked)
    every 30 minutes 01:00–04:00 local across the repeated hour; D002 one slot 02:30 CEST–03:00 CET
    and D003 one slot 02:30 CET–03:00 CET, which a wall-time request 02:30–03:00 both matches.
    """
    spring, autumn = next_change(3), next_change(10)
    conn.execute(
        "INSERT INTO care_unit (hsa_id, name, message_allowed) VALUES (%s, 'Nattmottagningen', false)", (D100,)
    )
    conn.execute("INSERT INTO care_type (unit_hsa_id, code, name) VALUES (%s, %s, 'Nattmedicin')", (D100, NIGHT))
    conn.execute(
        "INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes, care_type_code)"
        " VALUES (%s, %s, 'Nattbesök', 30, %s)",
        (D100, NIGHT, NIGHT),
    )
    for hsa_id, first in ((D001, "Dag"), (D002, "Dora"), (D003, "Dirk"), (D004, "Disa")):
        conn.execute(
            "INSERT INTO performer (unit_hsa_id, hsa_id, title, first_name, last_name) VALUES (%s, %s, 'Läkare', %s,"
            " 'Natt')",
            (D100, hsa_id, first),
        )
    insert_slots(conn, D001, every_half_hour(stockholm(spring, 0), stockholm(spring, 5)))
    insert_slots(conn, D001, every_half_hour(stockholm(autumn, 1), stockholm(autumn, 4)))
    insert_slots(conn, D004, every_half_hour(stockholm(autumn, 1), stockholm(autumn, 4)))
    cest_0230 = datetime.combine(autumn, time(0, 30), tzinfo=UTC)
    insert_slots(conn, D002, [(cest_0230, cest_0230 + timedelta(minutes=90))])
    insert_slots(conn, D003, [(cest_0230 + timedelta(hours=1), cest_0230 + timedelta(minutes=90))])
    return spring, autumn


def test_dst_days_are_the_expected_ones(dst_days: tuple[date, date]) -> None:
    spring, autumn = dst_days
    assert (spring.month, spring.weekday(), autumn.month, autumn.weekday()) == (3, 6, 10, 6)
    for day in dst_days:  # the change happens that night
        assert (
            datetime.combine(day, time(0), tzinfo=STOCKHOLM).utcoffset()
            != datetime.combine(day, time(4), tzinfo=STOCKHOLM).utcoffset()
        )


def test_spring_day_skips_the_missing_hour(call: Caller, dst_days: tuple[date, date]) -> None:
    spring, _ = dst_days
    slots = timeslots(call, D100, spring)
    assert [wall(s) for s in slots] == ["00:00", "00:30", "01:00", "01:30", "03:00", "03:30", "04:00", "04:30"]
    for slot in slots:
        assert slot["startTimeInclusive"][:8] == format_dt(spring)
        start, end = parse_ts(slot["startTimeInclusive"]), parse_ts(slot["endTimeExclusive"])
        assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(minutes=30)
    assert slots[3]["endTimeExclusive"] == format_dt(spring) + "030000"  # 01:30 CET + 30 min
    dates = available_dates(call, D100, spring, spring)
    assert [d["date"] for d in dates] == [format_dt(spring)]


def test_autumn_day_offers_both_0230_slots(call: Caller, dst_days: tuple[date, date]) -> None:
    _, autumn = dst_days
    slots = timeslots(call, D100, autumn, performer=[D004])
    assert [wall(s) for s in slots] == ["01:00", "01:30", "02:00", "02:30", "02:00", "02:30", "03:00", "03:30"]
    twice = [s for s in slots if s["startTimeInclusive"] == format_dt(autumn) + "023000"]
    assert len(twice) == 2
    assert twice[0]["bookingId"] != twice[1]["bookingId"]
    # 02:30 CEST + 30 min is 02:00 CET; 02:30 CET + 30 min is 03:00 CET
    assert [s["endTimeExclusive"][8:] for s in twice] == ["020000", "030000"]


def test_autumn_slot_ids_book_exactly_that_occurrence(
    call: Caller, conn: psycopg.Connection, dst_days: tuple[date, date]
) -> None:
    _, autumn = dst_days
    slots = timeslots(call, D100, autumn, performer=[D001])
    cest, cet = [s for s in slots if s["startTimeInclusive"] == format_dt(autumn) + "023000"]
    expected = datetime.combine(autumn, time(0, 30), tzinfo=UTC)
    # the later one first, so that "the earlier wins" cannot explain a right answer
    for slot, utc_start in ((cet, expected + timedelta(hours=1)), (cest, expected)):
        response = make_booking(call, D100, slot)
        assert response.resultCode == "OK", response.resultText
        assert booked_start(conn, response.bookingId) == utc_start
        assert conn.execute(
            "SELECT booking_pk IS NOT NULL FROM slot WHERE id = %s", (int(slot["bookingId"][1:]),)
        ).fetchone() == (True,)
    left = [s["bookingId"] for s in timeslots(call, D100, autumn, performer=[D001])]
    assert cest["bookingId"] not in left and cet["bookingId"] not in left
    assert len(left) == len(slots) - 2


def test_autumn_wall_time_books_the_first_occurrence(
    call: Caller, conn: psycopg.Connection, dst_days: tuple[date, date]
) -> None:
    """02:30–03:00 without a slot id matches D002's slot (02:30 CEST) and D003's (02:30 CET): earlier wins."""
    _, autumn = dst_days
    wire = format_dt(autumn)
    requested = {
        "startTimeInclusive": wire + "023000",
        "endTimeExclusive": wire + "030000",
        "healthcare_facility": D100,
        "timeTypeID": NIGHT,
    }
    response = make_booking(call, D100, requested)
    assert response.resultCode == "OK", response.resultText
    assert booked_start(conn, response.bookingId) == datetime.combine(autumn, time(0, 30), tzinfo=UTC)
    held_by = conn.execute(
        "SELECT s.performer_hsa_id FROM slot_named s JOIN booking b ON b.pk = s.booking_pk WHERE b.booking_id = %s",
        (response.bookingId,),
    ).fetchone()
    assert held_by == (D002,)
