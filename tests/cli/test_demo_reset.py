"""The fixed demo (`tidbok demo reset`): the same ids every time, times anchored at the Monday of the
demo week, and a calendar holding anything but demo data left alone unless --force.

Through the real command on a real PostgreSQL database; dates are built from today's, never assumed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from support import fresh_database
from support.calendar import STOCKHOLM, today
from support.server import PYTHON, REPO, connect, subprocess_env

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
TOLVAN = "191212121212"
# LAK 20 min, SSK 15 min, PROV 10 min at A100 and A200, 7 hours a day; DIAB 30 min, 4 hours
SLOTS_PER_WEEKDAY = 21 + 28 + 42 + 42 + 8


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def tidbok(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "producer", *args],
        cwd=REPO,
        env=subprocess_env({"DATABASE_URL": url, **(env or {})}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def url(pg_admin_url: str) -> str:
    return fresh_database(pg_admin_url, "tidbok_test_demoreset")


@pytest.fixture
def db(url: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(url, utc=True) as conn:
        yield conn


def snapshot(db: psycopg.Connection[Any]) -> dict[str, Any]:
    """Everything a fixture could name: slot ids with their unit, type and wall time, the bookings."""
    slots = db.execute(
        "SELECT id, unit_hsa_id, time_type_code, coalesce(performer_hsa_id, resource_id),"
        " to_char(starts_at AT TIME ZONE 'Europe/Stockholm', 'ID HH24:MI'),"
        " to_char(ends_at AT TIME ZONE 'Europe/Stockholm', 'ID HH24:MI') FROM slot_named ORDER BY id"
    ).fetchall()
    bookings = db.execute(
        "SELECT b.booking_id, b.kind, b.unit_hsa_id, s.id FROM booking b LEFT JOIN slot s ON s.booking_pk = b.pk"
        " ORDER BY b.pk"
    ).fetchall()
    first = db.execute("SELECT min(starts_at) FROM slot").fetchone()[0]
    return {"slots": slots, "bookings": bookings, "first": first.astimezone(STOCKHOLM)}


@pytest.fixture(scope="module")
def week() -> str:
    """A day of next week: a reset for it gives the same result whenever the module runs (this
    week's Monday would change if a run crossed Sunday midnight)."""
    return (today() + timedelta(days=7)).isoformat()


def test_by_default_the_demo_week_is_this_week(url: str) -> None:
    before = today()
    out = ok(tidbok(url, "demo", "reset"))
    assert any(f"the week of Monday {monday(day)};" in out for day in (before, today())), out


def test_every_reset_gives_the_same_ids(url: str, db: psycopg.Connection[Any], week: str) -> None:
    ok(tidbok(url, "demo", "reset", "--date", week))
    first = snapshot(db)
    ok(tidbok(url, "demo", "reset", "--date", week))
    assert snapshot(db) == first
    assert first["bookings"][0][:3] == ("B1", "booking", A100)
    assert [b[:2] for b in first["bookings"]] == [
        ("B1", "booking"),
        ("K2", "timed_invitation"),
        ("K3", "open_invitation"),
    ]
    assert first["slots"][0][0] == 1 and len(first["slots"]) == 14 * 5 * SLOTS_PER_WEEKDAY


def test_the_demo_is_anchored_at_the_monday_of_its_week(url: str, db: psycopg.Connection[Any], week: str) -> None:
    """Slots start on the Monday (this week's past ones are simply past), the booking is the next
    Monday 09:00, the timed invitation the next Wednesday 08:30, the open invitation valid through
    the Monday + 60 days."""
    ok(tidbok(url, "demo", "reset", "--date", week))
    week = monday(date.fromisoformat(week))
    assert snapshot(db)["first"] == datetime.combine(week, datetime.min.time().replace(hour=8), tzinfo=STOCKHOLM)
    rows = {
        row[0]: row[1:]
        for row in db.execute(
            "SELECT b.booking_id, b.unit_hsa_id, b.time_type_code, s.starts_at, b.invitation_date, b.valid_until"
            " FROM booking b LEFT JOIN slot s ON s.booking_pk = b.pk"
        )
    }
    assert rows["B1"][:3] == (A100, "LAK", datetime.combine(week + timedelta(days=7), _at(9, 0), tzinfo=STOCKHOLM))
    assert rows["K2"][:3] == (A200, "PROV", datetime.combine(week + timedelta(days=9), _at(8, 30), tzinfo=STOCKHOLM))
    unit, code, start, invited, valid_until = rows["K3"]
    assert (unit, code, start, invited) == (A100, "PROV", None, week)
    assert valid_until == datetime.combine(week + timedelta(days=61), _at(0, 0), tzinfo=STOCKHOLM)  # through +60


def _at(hour: int, minute: int) -> Any:
    return datetime.min.time().replace(hour=hour, minute=minute)


def test_another_week_has_the_same_ids_at_the_same_wall_times(url: str, db: psycopg.Connection[Any], week: str) -> None:
    ok(tidbok(url, "demo", "reset", "--date", week))
    now = snapshot(db)
    later = date.fromisoformat(week) + timedelta(days=5 * 7 + 3)  # five weeks on: its week's Monday anchors it
    out = ok(tidbok(url, "demo", "reset", "--date", later.isoformat()))
    assert f"the week of Monday {monday(later)}" in out
    then = snapshot(db)
    assert then["bookings"] == now["bookings"]
    assert [s[:4] for s in then["slots"]] == [s[:4] for s in now["slots"]]
    assert [s[4:] for s in then["slots"]] == [s[4:] for s in now["slots"]]  # weekday and wall time (DST or not)
    assert then["first"].date() == monday(later)


def test_a_testers_changes_are_demo_data_and_go(url: str, db: psycopg.Connection[Any], week: str) -> None:
    ok(tidbok(url, "demo", "reset", "--date", week))
    before = snapshot(db)
    free = db.execute(
        "SELECT id FROM slot_named WHERE unit_hsa_id = %s AND booking_pk IS NULL"
        " AND starts_at > now() + interval '2 days' ORDER BY starts_at LIMIT 1",
        (A100,),
    ).fetchone()[0]
    ok(tidbok(url, "staff", "book", "--staff", "SE2321000016-ST01", "--resident", "196408233234", "--slot", f"T{free}"))
    ok(tidbok(url, "staff", "cancel", "K2", "--staff", "SE2321000016-ST01"))
    assert snapshot(db) != before
    ok(tidbok(url, "demo", "reset", "--date", week))
    assert snapshot(db) == before


def test_a_calendar_with_other_units_is_refused_unless_forced(url: str, db: psycopg.Connection[Any]) -> None:
    ok(tidbok(url, "demo", "reset"))
    db.execute("INSERT INTO care_unit (hsa_id, name) VALUES ('SE2321000016-Z999', 'Vårdcentralen Riktig')")
    refused = tidbok(url, "demo", "reset")
    assert refused.returncode == 1, refused
    assert "SE2321000016-Z999" in refused.stderr and "--force" in refused.stderr
    assert db.execute("SELECT count(*) FROM care_unit").fetchone()[0] == 3  # nothing changed
    ok(tidbok(url, "demo", "reset", "--force"))
    assert [r[0] for r in db.execute("SELECT hsa_id FROM care_unit ORDER BY hsa_id")] == [A100, A200]


def test_a_renamed_demo_unit_is_not_demo_data(url: str, db: psycopg.Connection[Any]) -> None:
    ok(tidbok(url, "demo", "reset"))
    db.execute("UPDATE care_unit SET name = 'Vårdcentralen Norr' WHERE hsa_id = %s", (A200,))
    assert tidbok(url, "demo", "reset").returncode == 1
    ok(tidbok(url, "demo", "reset", "--force"))


@pytest.mark.parametrize("args", [["--date", "x"], ["--date", "2027-13-01"], ["--force"]])
def test_usage_errors(url: str, args: list[str]) -> None:
    result = tidbok(url, "demo", *(["reset"] if args != ["--force"] else []), *args)
    assert result.returncode == 2, result


def test_a_week_before_this_one_is_refused(url: str) -> None:
    past = monday(today()) - timedelta(days=1)
    result = tidbok(url, "demo", "reset", "--date", past.isoformat())
    assert result.returncode == 2 and "this week" in result.stderr, result


def test_tidbok_demo_honours_tidbok_demo_date(pg_admin_url: str) -> None:
    """What `make run` does (`tidbok run` loads the demo the same way): the variable's week anchors it."""
    url = fresh_database(pg_admin_url, "tidbok_test_demodate")
    later = today() + timedelta(days=15)
    ok(tidbok(url, "demo", env={"TIDBOK_DEMO_DATE": later.isoformat()}))
    with connect(url, utc=True) as conn:
        first = conn.execute("SELECT min(starts_at) FROM slot").fetchone()[0].astimezone(STOCKHOLM)
    assert first.date() == monday(later)
    again = tidbok(url, "demo", env={"TIDBOK_DEMO_DATE": "2027-02-30"})
    assert again.returncode == 2 and "TIDBOK_DEMO_DATE" in again.stderr, again
    past = (monday(today()) - timedelta(days=7)).isoformat()
    ok(tidbok(url, "demo", env={"TIDBOK_DEMO_DATE": past}))  # nothing to load: the calendar is not empty
    empty = fresh_database(pg_admin_url, "tidbok_test_demopast")
    refused = tidbok(empty, "demo", env={"TIDBOK_DEMO_DATE": past})
    assert refused.returncode == 2 and "TIDBOK_DEMO_DATE" in refused.stderr and "this week" in refused.stderr
