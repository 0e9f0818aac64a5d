"""Loading units, schedules and slots (`tidbok load`), end to end: the real command in a subprocess
against a fresh, migrated database per test, and the database read back. Plus the slot table's own
guarantees (0004: set-wise overlap and reference checks) and a property test of template expansion.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import count
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.calendar import insert_slot, last_sunday
from support.server import PYTHON, REPO, fresh_database, subprocess_env

from producer.loading.templates import Template, Window, expand
from producer.platform.database import migrate
from producer.sweden.wall_time import STOCKHOLM

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
P001, P002 = "SE2321000016-P001", "SE2321000016-P002"
_names = count()

SETUP = f"""\
units:
  - hsa_id: {A100}
    name: Vårdcentralen Exempel
    message_allowed: true
    change_deadline: 24h
    care_types:
      - {{code: ALLM, name: Allmänmedicin}}
      - {{code: LAB, name: Laboratoriemedicin}}
    time_types:
      - {{code: LAK, name: Läkarbesök, duration_minutes: 20, care_type: ALLM}}
      - {{code: SSK, name: Sjuksköterskebesök, duration_minutes: 15, care_type: ALLM}}
      - {{code: PROV, name: Provtagning, duration_minutes: 10, care_type: LAB, alternatives: [{A200}]}}
    performers:
      - {{hsa_id: {P001}, title: Läkare, first_name: Anna, last_name: Andersson}}
      - {{hsa_id: {P002}, title: Sjuksköterska, first_name: Bertil, last_name: Berg}}
    resources:
      - {{id: PROVRUM1, name: Provtagningsrummet}}
"""

SETUP_JSON = {
    "units": [
        {
            "hsa_id": A200,
            "name": "Provtagningen Exempel",
            "message_allowed": False,
            "change_deadline": 90,
            "care_types": [{"code": "LAB", "name": "Laboratoriemedicin"}],
            "time_types": [
                {"code": "PROV", "name": "Provtagning", "duration_minutes": 10, "care_type": "LAB",
                 "alternatives": [A100]},
            ],
        }
    ]
}  # fmt: skip


# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
def url(pg_admin_url: str) -> str:
    """A fresh, migrated database for this test."""
    database = fresh_database(pg_admin_url, f"tidbok_test_loading_{next(_names)}")
    migrate(database)
    return database


@pytest.fixture
def conn(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as connection:
        yield connection


def run_load(url: str, *args: str | Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """``python -m producer load ARGS``; asserts the exit status."""
    result = subprocess.run(
        [PYTHON, "-m", "producer", "load", *map(str, args)],
        cwd=REPO,
        env=subprocess_env({"DATABASE_URL": url}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == expect, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def report(url: str, *args: str | Path, expect: int = 0) -> dict:
    return json.loads(run_load(url, "--json", "--quiet", *args, expect=expect).stdout)


def changes(rep: dict) -> dict[str, tuple[int, int, int]]:
    """kind -> (created, changed, removed), only kinds with any."""
    out = {}
    for kind, c in rep["counts"].items():
        if c["created"] or c["changed"] or c["removed"]:
            out[kind] = (c["created"], c["changed"], c["removed"])
    return out


def problems(rep: dict) -> list[str]:
    return [f"{p['source']}:{p['line']}: {p['field']}: {p['message']}" for p in rep["problems"]]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def monday(weeks: int = 2) -> date:
    """A Monday some weeks ahead, so every slot is in the future."""
    today = datetime.now(STOCKHOLM).date()
    return today + timedelta(days=7 * weeks - today.weekday())


def csv(rows: list[str], header: str = "unit,start,end,time_type,performer,resource,care_type") -> str:
    return header + "\n" + "\n".join(rows) + "\n"


def at(day: date, hhmm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), tzinfo=STOCKHOLM).astimezone(UTC)


def slots(conn: psycopg.Connection, unit: str = A100) -> list[tuple]:
    return conn.execute(
        "SELECT starts_at, ends_at, time_type_code, care_type_code, performer_hsa_id, resource_id, id FROM slot_named"
        " WHERE unit_hsa_id = %s ORDER BY starts_at, performer_hsa_id NULLS LAST, resource_id",
        (unit,),
    ).fetchall()


def set_up(url: str, tmp_path: Path) -> None:
    setup = write(tmp_path, "setup.yaml", SETUP)
    setup_json = write(tmp_path, "setup-a200.json", json.dumps(SETUP_JSON))
    run_load(url, setup, setup_json)


def day_rows(day: date, performer: str = P001, first: str = "08:00", count_: int = 3, minutes: int = 20) -> list[str]:
    start = datetime.combine(day, time.fromisoformat(first))
    out = []
    for _ in range(count_):
        end = start + timedelta(minutes=minutes)
        out.append(f"{A100},{start:%Y-%m-%d %H:%M},{end:%H:%M},LAK,{performer},,")
        start = end
    return out


def book(conn: psycopg.Connection, slot_id: int) -> str:
    """Hold a slot with a booking row, as a booking channel would (no EI needed for loading)."""
    pk = conn.execute(
        "INSERT INTO booking (booking_id, unit_hsa_id, kind, subject_of_care, time_type_code)"
        " VALUES ('B' || nextval('booking_pk_seq'), %s, 'booking', '191212121212', 'LAK') RETURNING pk",
        (A100,),
    ).fetchone()[0]
    conn.execute("UPDATE slot SET booking_pk = %s WHERE id = %s", (pk, slot_id))
    return conn.execute("SELECT booking_id FROM booking WHERE pk = %s", (pk,)).fetchone()[0]


# -- set-up documents -------------------------------------------------------------------------------


def test_setup_yaml_and_json_then_reload_changes_nothing(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    setup = write(tmp_path, "setup.yaml", SETUP)
    setup_json = write(tmp_path, "a200.json", json.dumps(SETUP_JSON, ensure_ascii=False))
    first = report(url, setup, setup_json)
    assert first["ok"] and first["written"]
    assert changes(first) == {
        "units": (2, 0, 0), "care_types": (3, 0, 0), "time_types": (4, 0, 0), "performers": (2, 0, 0),
        "resources": (1, 0, 0), "alternatives": (2, 0, 0),
    }  # fmt: skip
    assert conn.execute(
        "SELECT hsa_id, name, message_allowed, extract(epoch FROM change_deadline)::int / 60 FROM care_unit ORDER BY 1"
    ).fetchall() == [(A100, "Vårdcentralen Exempel", True, 1440), (A200, "Provtagningen Exempel", False, 90)]
    assert conn.execute(
        "SELECT code, duration_minutes, care_type_code FROM time_type WHERE unit_hsa_id = %s ORDER BY 1", (A100,)
    ).fetchall() == [("LAK", 20, "ALLM"), ("PROV", 10, "LAB"), ("SSK", 15, "ALLM")]
    assert set(conn.execute("SELECT unit_hsa_id, time_type_code, alternative_hsa_id FROM unit_alternative")) == {
        (A100, "PROV", A200),
        (A200, "PROV", A100),
    }
    again = report(url, setup, setup_json)
    assert again["ok"] and changes(again) == {}
    assert "no changes" in run_load(url, "--quiet", setup, setup_json).stdout


def test_setup_changes_and_removals(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up(url, tmp_path)
    changed = SETUP.replace("Anna, last_name: Andersson", "Anna, last_name: Ek").replace(
        "      - {hsa_id: SE2321000016-P002, title: Sjuksköterska, first_name: Bertil, last_name: Berg}\n", ""
    )
    rep = report(url, write(tmp_path, "changed.yaml", changed))
    assert changes(rep) == {"performers": (0, 1, 1)}
    assert conn.execute("SELECT hsa_id, last_name FROM performer").fetchall() == [(P001, "Ek")]


# -- slot lists ------------------------------------------------------------------------------------


def test_csv_load_reload_and_dry_run(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up(url, tmp_path)
    day = monday()
    rows = day_rows(day) + day_rows(day + timedelta(days=1), P002, count_=2, minutes=15)
    rows = [r.replace(f"LAK,{P002}", f"SSK,{P002}") for r in rows]
    rows.append(f"{A100},{day} 08:00,,PROV,,PROVRUM1,")
    path = write(tmp_path, "slots.csv", csv(rows))

    dry = report(url, "--dry-run", path)
    assert dry["ok"] and dry["dry_run"] and not dry["written"]
    assert changes(dry) == {"slots": (6, 0, 0)}
    assert slots(conn) == [], "a dry run wrote slots"

    first = report(url, path)
    assert changes(first) == {"slots": (6, 0, 0)}
    stored = slots(conn)
    assert [(s[0], s[1], s[2], s[3], s[4], s[5]) for s in stored[:2]] == [
        (at(day, "08:00"), at(day, "08:20"), "LAK", "ALLM", P001, None),  # care type: the time type's
        (at(day, "08:00"), at(day, "08:10"), "PROV", "LAB", None, "PROVRUM1"),  # end: the time type's 10 minutes
    ]
    again = report(url, path)
    assert again["ok"] and changes(again) == {} and again["counts"]["slots"]["unchanged"] == 6
    assert slots(conn) == stored, "a re-load changed the slots (or their ids)"


def test_changed_slots_keep_their_ids(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up(url, tmp_path)
    day = monday()
    run_load(url, write(tmp_path, "v1.csv", csv(day_rows(day))))
    before = {s[0]: s[6] for s in slots(conn)}
    rows = day_rows(day)
    rows[1] = rows[1].replace(",LAK,", ",SSK,")  # another time type for the same performer and start
    rows[2] = rows[2].replace(f",{P001},,", f",{P001},,LAB")  # another care type
    rep = report(url, write(tmp_path, "v2.csv", csv(rows)))
    assert changes(rep) == {"slots": (0, 2, 0)}
    after = slots(conn)
    assert [(s[2], s[3]) for s in after] == [("LAK", "ALLM"), ("SSK", "ALLM"), ("LAK", "LAB")]
    assert {s[0]: s[6] for s in after} == before


def test_scope_removes_free_slots_of_listed_performers_and_days(
    url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    set_up(url, tmp_path)
    day = monday()
    week = [day + timedelta(days=d) for d in range(3)]
    everything = [r for d in week for r in day_rows(d)] + day_rows(day, P002, first="10:00")
    run_load(url, write(tmp_path, "all.csv", csv(everything)))
    # P001 only, days 0-1, without the 08:20 slot of day 0: that one goes; day 2 and P002 are outside the scope
    rows = [r for r in day_rows(week[0]) if " 08:20," not in r] + day_rows(week[1])
    rep = report(url, write(tmp_path, "p001.csv", csv(rows)))
    assert changes(rep) == {"slots": (0, 0, 1)}
    left = [(s[0], s[4]) for s in slots(conn)]
    assert (at(week[0], "08:20"), P001) not in left
    assert (at(week[2], "08:20"), P001) in left and (at(day, "10:00"), P002) in left
    assert len(left) == len(everything) - 1
    # --from/--to: the scope is those days, for the performers listed
    rep = report(url, "--from", str(week[0]), "--to", str(week[2]), write(tmp_path, "d0.csv", csv(day_rows(week[0]))))
    assert changes(rep) == {"slots": (1, 0, 6)}
    # --whole-units: every slot of the unit on those days, P002's too
    rep = report(url, "--whole-units", write(tmp_path, "w.csv", csv(day_rows(week[0]))))
    assert changes(rep) == {"slots": (0, 0, 3)}


def test_booked_slots_are_never_removed_or_changed(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up(url, tmp_path)
    day = monday()
    run_load(url, write(tmp_path, "v1.csv", csv(day_rows(day))))
    booked = slots(conn)[1]
    booking_id = book(conn, booked[6])

    without = [r for r in day_rows(day) if " 08:20," not in r]
    rep = report(url, write(tmp_path, "without.csv", csv(without)), expect=1)
    assert not rep["written"]
    assert any(
        booking_id in p and "never removes a booked slot" in p and p.startswith("without.csv") for p in problems(rep)
    )

    moved = day_rows(day)
    moved[1] = moved[1].replace(",08:40,", ",08:35,")
    rep = report(url, write(tmp_path, "moved.csv", csv(moved)), expect=1)
    refused = f"the slot at {day} 08:20 is booked ({booking_id}): loading never changes a booked slot"
    assert problems(rep) == [f"moved.csv:3: None: {refused}"]
    assert slots(conn)[1] == booked and len(slots(conn)) == 3

    # other changes in the same scope go through once the booked slot is kept as it is
    rows = day_rows(day) + day_rows(day, first="09:00", count_=1)
    assert changes(report(url, write(tmp_path, "kept.csv", csv(rows)))) == {"slots": (1, 0, 0)}


def test_overlaps_are_refused_naming_both_lines(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up(url, tmp_path)
    day = monday()
    rows = [
        f"{A100},{day} 08:00,08:20,LAK,{P001},,",
        f"{A100},{day} 08:10,08:30,LAK,{P001},,",  # line 3: overlaps line 2 for P001
        f"{A100},{day} 09:00,09:10,PROV,,PROVRUM1,",
        f"{A100},{day} 09:05,09:15,PROV,{P002},PROVRUM1,",  # line 5: overlaps line 4 for the room
        f"{A100},{day} 10:00,10:20,LAK,{P002},,",
    ]
    rep = report(url, write(tmp_path, "overlap.csv", csv(rows)), expect=1)
    found = problems(rep)
    assert len(found) == 2, found
    assert (
        found[0].startswith("overlap.csv:3: performer: performer SE2321000016-P001")
        and "(overlap.csv line 2)" in found[0]
    )
    assert found[1].startswith("overlap.csv:5: resource: resource PROVRUM1") and "(overlap.csv line 4)" in found[1]
    assert slots(conn) == []

    # against a slot outside the file's scope (another file's performer P002 on the room)
    run_load(url, write(tmp_path, "room.csv", csv([f"{A100},{day} 09:00,09:10,PROV,{P002},PROVRUM1,"])))
    rep = report(url, write(tmp_path, "room2.csv", csv([f"{A100},{day} 09:05,09:15,PROV,,PROVRUM1,"])), expect=1)
    assert len(problems(rep)) == 1 and "existing slot T" in problems(rep)[0] and "room2.csv:2" in problems(rep)[0]


def test_bad_input_is_reported_by_file_line_and_field(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up(url, tmp_path)
    day = monday()
    rows = [
        f"{A100},{day} 08:00,08:20,LAK,{P001},,",  # 2: fine
        f"{A100},{day} 08:20,08:40,LAK",  # 3: malformed (too few fields)
        f"{A100},{day} 09:00,09:20,XYZ,{P001},,",  # 4: unknown time type
        f"{A100},{day} 09:20,09:40,LAK,SE12-P1,,",  # 5: invalid HSA-id
        f"{A100},2020-01-06 09:40,10:00,LAK,{P001},,",  # 6: in the past
        f"{A100},{day} 10:20,10:00,LAK,{P001},,",  # 7: end before start
        f"{A100},{day} 25:00,,LAK,{P001},,",  # 8: not a time
        f"{A100},2027-02-30 08:00,,LAK,{P001},,",  # 9: no such date
        f"SE2321000016-X999,{day} 11:00,,LAK,{P001},,",  # 10: unknown unit
    ]
    rep = report(url, write(tmp_path, "bad.csv", csv(rows)), expect=1)
    found = problems(rep)
    expected = [
        ("bad.csv:3: None:", "expected 7 fields, found 4"),
        ("bad.csv:4: time_type:", "no time type 'XYZ' at SE2321000016-A100"),
        ("bad.csv:5: performer:", "'SE12-P1' is not an HSA-id"),
        ("bad.csv:6: start:", "is in the past"),
        ("bad.csv:7: end:", "ends before it starts"),
        ("bad.csv:8: start:", "is not a date and time"),
        ("bad.csv:9: start:", "is not a date and time"),
        ("bad.csv:10: unit:", "no care unit SE2321000016-X999"),
    ]
    for prefix, text in expected:
        assert any(p.startswith(prefix) and text in p for p in found), (prefix, text, found)
    assert slots(conn) == [], "the good line of a failed load was written"

    spring = f"{A100},2027-03-28 02:30,,LAK,{P001},,"
    rep = report(url, write(tmp_path, "gap.csv", csv([spring])), expect=1)
    assert "does not exist in Swedish time" in problems(rep)[0] or "is in the past" in problems(rep)[0]

    bad_setup = (
        SETUP.replace("duration_minutes: 20", "duration_minutes: twenty").replace(f"hsa_id: {P002}", "hsa_id: P002")
        + "    colour: blue\n"
    )
    rep = report(url, write(tmp_path, "bad.yaml", bad_setup), expect=1)
    found = problems(rep)
    assert any(p.startswith("bad.yaml:10: units[0].time_types[0].duration_minutes:") for p in found), found
    assert any(p.startswith("bad.yaml:15: units[0].performers[1].hsa_id:") and "not an HSA-id" in p for p in found)
    assert any(p.startswith("bad.yaml:18: units[0].colour: unknown field") for p in found), found

    broken = write(tmp_path, "broken.json", '{"units": [\n{"hsa_id": "SE2321000016-A300",\n"name": }]}')
    assert problems(report(url, broken, expect=1))[0].startswith("broken.json:3:")


def test_quoted_csv_with_semicolons(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    """Swedish Excel: semicolons, a BOM, quoted fields; still exact lines."""
    set_up(url, tmp_path)
    day = monday()
    text = (
        "\ufeffUnit;Start;End;Time type;Performer\n"
        + f'"{A100}";"{day} 08:00";"08:20";"LAK";"{P001}"\n'
        + f'{A100};{day} 08:20;"08:40";LAK;{P001}\n'
        + f'{A100};{day} 09:00;"09:20";"NOPE";{P001}\n'
    )
    rep = report(url, write(tmp_path, "excel.csv", text), expect=1)
    assert problems(rep) == ["excel.csv:4: time_type: no time type 'NOPE' at SE2321000016-A100"]
    rep = report(url, write(tmp_path, "excel2.csv", text.rsplit("\n", 2)[0] + "\n"))
    assert changes(rep) == {"slots": (2, 0, 0)}


def test_both_ways_of_reading_a_csv_give_the_same_slots(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    """A file whose lines all have their fields is split by PostgreSQL's CSV reader; one with a blank
    line or extra empty fields is taken line by line. The same slots either way (CRLF, tabs, spaces
    around fields, lower-case ids), and a line with too few fields is still reported by number."""
    set_up(url, tmp_path)
    day = monday()
    rows = [
        f" {A100.lower()}\t{day} 08:00 \t08:20\tLAK\t{P001.lower()} ",
        f"{A100}\t{day} 08:20\t{day} 08:40\tLAK\t{P001}",
        f"{A100}\t{day} 08:40\t\tLAK\t{P001}",  # the time type's duration: 20 minutes
    ]
    header = "unit\tstart\tend\ttime_type\tperformer"
    tidy = write(tmp_path, "tidy.csv", "\r\n".join([header, *rows]) + "\r\n")
    assert changes(report(url, tidy)) == {"slots": (3, 0, 0)}
    expected = [
        (at(day, a), at(day, b), "LAK", P001) for a, b in (("08:00", "08:20"), ("08:20", "08:40"), ("08:40", "09:00"))
    ]
    assert [s[:3] + s[4:5] for s in slots(conn)] == expected

    assert "load: copying tidy.csv line by line" not in run_load(url, "--dry-run", tidy).stderr.splitlines()

    # nothing to trim (CRLF, commas, an empty end): the fields are taken as COPY read them
    plain_rows = [r.replace("\t", ",").strip() for r in rows]
    plain = write(tmp_path, "plain.csv", "\r\n".join([header.replace("\t", ","), *plain_rows]) + "\r\n")
    assert changes(report(url, plain)) == {}  # the same slots: nothing to do
    assert [s[:3] + s[4:5] for s in slots(conn)] == expected

    untidy = write(tmp_path, "untidy.csv", "\r\n".join([header, rows[0] + "\t", "", *rows[1:]]) + "\r\n")
    assert "load: copying untidy.csv line by line" in run_load(url, "--dry-run", untidy).stderr.splitlines()
    assert changes(report(url, untidy)) == {}  # the same slots: nothing to do
    assert [s[:3] + s[4:5] for s in slots(conn)] == expected

    short = write(tmp_path, "short.csv", "\n".join([header, *rows[:2], f"{A100}\t{day} 09:00"]) + "\n")
    assert problems(report(url, short, expect=1)) == ["short.csv:4: None: expected 5 fields, found 2"]


def test_a_file_is_plain_only_without_blanks_at_field_edges() -> None:
    """Whether the fields need trimming is read from the bytes, across chunk boundaries too."""
    from producer.loading.csvfile import read_layout
    from producer.loading.report import Report
    from producer.loading.sources import CHUNK, Source

    def plain(text: str) -> bool:
        layout = read_layout(Source.csv("x.csv", text.encode()), Report())
        assert layout is not None and layout.verbatim
        return layout.plain

    header = "unit,start,end,time_type,performer\n"
    line = f"{A100},2027-03-01 08:00,08:20,LAK,{P001}\n"
    assert plain(header + line * 3) and plain(header + line.replace("\n", "\r\n") * 3)
    assert plain(header + line.replace(",08:20,", ",,"))  # an empty field is NULL to COPY: nothing to trim
    for blank in (f" {A100},", f"{A100} ,", ", 2027", "08:20\t,", f"{P001} \n", f"{P001}\t\r\n"):
        assert not plain(header + line + line.replace(blank.strip(" \t\r\n,"), blank.strip(",\n"), 1)), blank
    assert not plain(header + line + line.rstrip("\n") + " ")  # the last line, without its newline
    first = header + line * (CHUNK // len(line) - 1)
    first += "x" * (CHUNK - len(first) - 1) + "\n"  # the first chunk ends with a line
    assert plain(first + line) and not plain(first + " " + line)  # the blank only the chunk before tells


def test_progress_lines_when_not_a_terminal(url: str, tmp_path: Path) -> None:
    set_up(url, tmp_path)
    result = run_load(url, write(tmp_path, "p.csv", csv(day_rows(monday()))))
    lines = result.stderr.splitlines()
    assert "load: copying p.csv" in lines and "load: writing slots" in lines
    assert any(line.startswith("load: finished in") for line in lines)
    assert "\r" not in result.stderr


# -- templates and DST ------------------------------------------------------------------------------


def dst_year() -> int:
    """2027, or the first later year whose spring change is more than a week ahead: the test's
    weekday template starts six days before it, and a load makes no slots in the past (on the
    Saturday before the change, "the change is still ahead" left five of those days behind)."""
    year = 2027
    while last_sunday(year, 3) - timedelta(days=7) <= datetime.now(STOCKHOLM).date():
        year += 1
    return year


def test_template_across_both_dst_days(url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    year = dst_year()
    spring, autumn = last_sunday(year, 3), last_sunday(year, 10)
    setup = SETUP + (
        "    templates:\n"
        f"      - {{performer: {P001}, time_type: LAK, days: [sun], hours: ['00:00-06:00'],"
        f" from: {spring}, to: {autumn}, except: []}}\n"
        f"      - {{performer: {P002}, time_type: SSK, days: [mon, tue, wed, thu, fri], hours: ['08:00-09:00'],"
        f" slot_minutes: 30, from: {spring - timedelta(days=6)}, to: {spring + timedelta(days=1)},"
        f" except: [{spring - timedelta(days=5)}]}}\n"
        "    slots:\n"
        f"      - {{start: '{spring + timedelta(days=1)} 12:00', time_type: PROV, resource: PROVRUM1}}\n"
    )
    setup_json = write(tmp_path, "a200.json", json.dumps(SETUP_JSON))
    rep = report(url, write(tmp_path, "templates.yaml", setup), setup_json)
    assert rep["ok"], problems(rep)

    def night(day: date) -> list[tuple[datetime, datetime]]:
        lo = datetime.combine(day, time(0), tzinfo=STOCKHOLM)
        return conn.execute(
            "SELECT starts_at, ends_at FROM slot_named WHERE performer_hsa_id = %s AND starts_at >= %s"
            " AND starts_at < %s + interval '1 day' ORDER BY starts_at",
            (P001, lo, lo),
        ).fetchall()

    def utc(day: date, hh: int, mm: int) -> datetime:
        return datetime(day.year, day.month, day.day, hh, mm, tzinfo=UTC)

    # spring: 00:00-01:40 CET (UTC+1), then 03:00-05:40 CEST (UTC+2); nothing starts 02:00-03:00, and
    # 01:40-02:00 would end at the change (20 min real, 80 min on the wall clock): not made
    spring_slots = night(spring)
    assert spring_slots[0] == (utc(spring - timedelta(days=1), 23, 0), utc(spring - timedelta(days=1), 23, 20))
    assert [s for s, _ in spring_slots][4:7] == [
        utc(spring, 0, 20), utc(spring, 1, 0), utc(spring, 1, 20),
    ]  # fmt: skip  # 01:20 CET, then 03:00 CEST
    assert len(spring_slots) == 5 + 9
    assert all(e - s == timedelta(minutes=20) for s, e in spring_slots)
    assert all(s.astimezone(STOCKHOLM).hour != 2 for s, _ in spring_slots)

    # autumn: 02:00 and 02:20 once, in summer time (first occurrence); 02:40 would span the change
    autumn_slots = night(autumn)
    walls = [s.astimezone(STOCKHOLM).strftime("%H:%M%z") for s, _ in autumn_slots]
    assert walls[5:10] == ["01:40+0200", "02:00+0200", "02:20+0200", "03:00+0100", "03:20+0100"]
    assert len(autumn_slots) == 8 + 9
    assert all(e - s == timedelta(minutes=20) for s, e in autumn_slots)
    assert all(a[1] <= b[0] for a, b in zip(autumn_slots, autumn_slots[1:], strict=False)), "overlapping slots"

    # weekday template: 30-minute slots, one day excepted, scope from/to
    ssk = conn.execute("SELECT count(*) FROM slot_named WHERE performer_hsa_id = %s", (P002,)).fetchone()[0]
    assert ssk == 2 * (6 - 1)  # Mon-Fri before the spring Sunday, minus one excepted, plus the Monday after
    room = conn.execute("SELECT starts_at, ends_at FROM slot WHERE resource_id = 'PROVRUM1'").fetchall()
    assert room == [(at(spring + timedelta(days=1), "12:00"), at(spring + timedelta(days=1), "12:10"))]

    assert changes(report(url, write(tmp_path, "again.yaml", setup), setup_json)) == {}


WINDOW_STARTS = st.integers(0, 23 * 60 - 1)


@settings(max_examples=300, deadline=None)
@given(
    day=st.sampled_from(
        [date(2027, 3, 28), date(2027, 10, 31), date(2026, 10, 25), date(2027, 3, 27), date(2027, 6, 1)]
    ),
    opens=WINDOW_STARTS,
    length=st.integers(1, 8 * 60),
    minutes=st.integers(1, 90),
)
def test_template_expansion_property(day: date, opens: int, length: int, minutes: int) -> None:
    """Every slot lies inside its window in wall time, none overlap, each lasts its length in real
    time, and none starts in or spans a DST gap."""
    closes = min(opens + length, 24 * 60)
    window = Window(time(opens // 60, opens % 60), time(closes // 60 % 24, closes % 60), closes == 24 * 60)
    template = Template(frozenset(range(7)), (window,), minutes, day, day)
    made = list(expand(template))
    first, last = window.bounds(day)
    for start, end in made:
        wall_start = start.astimezone(STOCKHOLM).replace(tzinfo=None)
        wall_end = end.astimezone(STOCKHOLM).replace(tzinfo=None)
        assert first <= wall_start and wall_end <= last
        assert end - start == timedelta(minutes=minutes)
        assert wall_end - wall_start == timedelta(minutes=minutes), "spans a change of offset"
        assert (
            start.astimezone(STOCKHOLM).utcoffset() == end.astimezone(STOCKHOLM).utcoffset()
            or (end.astimezone(STOCKHOLM) - timedelta(microseconds=1)).utcoffset()
            == start.astimezone(STOCKHOLM).utcoffset()
        )
    assert all(a[1] <= b[0] for a, b in zip(made, made[1:], strict=False))
    if day.month == 6:  # an ordinary day: every step that fits
        assert len(made) == (closes - opens) // minutes


# -- units: new HSA-id, removal ---------------------------------------------------------------------


def test_unit_hsa_id_change_and_removal_refused_with_active_bookings(
    url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    set_up(url, tmp_path)
    run_load(url, write(tmp_path, "s.csv", csv(day_rows(monday()))))
    booking_id = book(conn, slots(conn)[0][6])
    renamed = SETUP.replace(f"hsa_id: {A100}\n", f"hsa_id: SE2321000016-A101\n    previous_hsa_id: {A100}\n")
    rep = report(url, write(tmp_path, "renamed.yaml", renamed), expect=1)
    assert "1 active booking(s)" in problems(rep)[0]
    removed = f"units:\n  - {{hsa_id: {A100}, remove: true}}\n"
    rep = report(url, write(tmp_path, "removed.yaml", removed), expect=1)
    assert "1 active booking(s)" in problems(rep)[0]

    conn.execute("UPDATE booking SET status = 'cancelled' WHERE booking_id = %s", (booking_id,))
    conn.execute("UPDATE slot SET booking_pk = NULL")
    rep = report(url, write(tmp_path, "renamed.yaml", renamed))
    assert rep["ok"] and rep["counts"]["units"]["changed"] == 1
    assert conn.execute("SELECT count(*) FROM slot_named WHERE unit_hsa_id = 'SE2321000016-A101'").fetchone()[0] == 3
    assert conn.execute("SELECT unit_hsa_id FROM booking").fetchone()[0] == "SE2321000016-A101"
    assert set(conn.execute("SELECT unit_hsa_id, alternative_hsa_id FROM unit_alternative")) == {
        ("SE2321000016-A101", A200), (A200, "SE2321000016-A101"),
    }  # fmt: skip
    removed = "units:\n  - {hsa_id: SE2321000016-A101, remove: true}\n"
    rep = report(url, write(tmp_path, "removed.yaml", removed))
    assert rep["ok"] and rep["counts"]["units"]["removed"] == 1 and rep["counts"]["slots"]["removed"] == 3
    assert conn.execute("SELECT hsa_id FROM care_unit").fetchall() == [(A200,)]


# -- the slot table's own guarantees (migration 0004) ------------------------------------------------


def test_slot_table_refuses_overlaps_and_dangling_references(
    url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    set_up(url, tmp_path)
    start = at(monday(), "08:00")

    def insert(unit: str, start: datetime, end: datetime, code: str, performer: str | None, room: str | None) -> None:
        insert_slot(conn, unit, start, end, code, performer=performer, resource=room)

    insert(A100, start, start + timedelta(minutes=20), "LAK", P001, None)
    with pytest.raises(psycopg.errors.ExclusionViolation):
        insert(A100, start + timedelta(minutes=10), start + timedelta(minutes=30), "LAK", P001, None)
    insert(A100, start, start + timedelta(minutes=10), "PROV", None, "PROVRUM1")
    with pytest.raises(psycopg.errors.ExclusionViolation):
        insert(A100, start + timedelta(minutes=5), start + timedelta(minutes=15), "PROV", P002, "PROVRUM1")
    insert(A100, start + timedelta(minutes=40), start + timedelta(minutes=60), "LAK", P001, None)
    with pytest.raises(psycopg.errors.ExclusionViolation):
        conn.execute(
            "UPDATE slot SET ends_at = ends_at + interval '30 minutes' WHERE starts_at = %s AND resource_id IS NULL",
            (start,),
        )
    conn.execute("UPDATE slot SET booking_pk = NULL, care_type_code = 'LAB'")  # no times changed: not checked
    # the slot table holds integer keys (migration 0009): each must name a row of the slot's own unit
    by_keys = (
        "INSERT INTO slot (unit_id, starts_at, ends_at, time_type_id, performer_id, resource_id)"
        " VALUES ((SELECT id FROM care_unit WHERE hsa_id = %s), %s, %s, %s, %s, %s)"
    )
    later = (start + timedelta(hours=2), start + timedelta(hours=3))
    lak = conn.execute("SELECT id FROM time_type WHERE unit_hsa_id = %s AND code = 'LAK'", (A100,)).fetchone()[0]
    no_type, nobody = conn.execute(
        "SELECT (SELECT max(id) + 1 FROM time_type), (SELECT max(id) + 1 FROM performer)"
    ).fetchone()
    elsewhere = conn.execute("SELECT id FROM time_type WHERE unit_hsa_id = %s AND code = 'PROV'", (A200,)).fetchone()[0]
    wrong = [(no_type, None, "PROVRUM1"), (lak, nobody, None), (elsewhere, None, "PROVRUM1"), (lak, None, "NOROOM")]
    for time_type, performer, room in wrong:
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(by_keys, (A100, *later, time_type, performer, room))
    # the booking a slot holds exists (a set-wise check since 0009, as the foreign key was), and stays
    first = conn.execute("SELECT id FROM slot WHERE starts_at = %s AND performer_id IS NOT NULL", (start,)).fetchone()[
        0
    ]
    no_booking = conn.execute("SELECT coalesce(max(pk), 0) + 1 FROM booking").fetchone()[0]
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("UPDATE slot SET booking_pk = %s WHERE id = %s", (no_booking, first))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            "INSERT INTO slot (unit_id, starts_at, ends_at, time_type_id, resource_id, booking_pk)"
            " SELECT unit_id, %s, %s, time_type_id, 'PROVRUM1', %s FROM slot WHERE id = %s",
            (*later, no_booking, first),
        )
    held = book(conn, first)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("DELETE FROM booking WHERE booking_id = %s", (held,))
    conn.execute("UPDATE slot SET booking_pk = NULL WHERE id = %s", (first,))
    conn.execute("DELETE FROM booking WHERE booking_id = %s", (held,))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("DELETE FROM performer WHERE hsa_id = %s", (P001,))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("DELETE FROM time_type WHERE code = 'PROV' AND unit_hsa_id = %s", (A100,))
    conn.execute("DELETE FROM unit_alternative")
    conn.execute("DELETE FROM care_unit WHERE hsa_id = %s", (A100,))
    assert conn.execute("SELECT count(*) FROM slot").fetchone()[0] == 0


# -- the Python API the HTTP API calls -------------------------------------------------------------


def test_python_api_with_request_bodies(url: str, conn: psycopg.Connection) -> None:
    from producer.loading import Source, load, load_setup, load_slot_csv
    from producer.loading.progress import Progress

    document = {"units": [{"hsa_id": A100, **{k: v for k, v in SETUP_JSON["units"][0].items() if k != "hsa_id"}}]}
    document["units"][0]["time_types"][0].pop("alternatives")
    document["units"][0]["performers"] = [{"hsa_id": P001, "first_name": "Anna", "last_name": "Andersson"}]
    document["units"][0]["time_types"].append({"code": "LAK", "name": "Läkarbesök", "duration_minutes": 20})
    with psycopg.connect(url) as api_conn:
        rep = load_setup(api_conn, document, name="body", dry_run=True)
        assert rep.ok and not rep.written and rep.counts["units"].created == 1
        assert load_setup(api_conn, document, name="body").written
        body = csv(day_rows(monday())).encode()
        rep = load_slot_csv(api_conn, body, name="body")
        assert rep.written and rep.counts["slots"].created == 3
        bad = load_setup(api_conn, {"units": [{"hsa_id": "nope", "name": "x"}]}, name="body")
        assert [str(p) for p in bad.problems] == [
            "body: units[0].hsa_id: 'NOPE' is not an HSA-id (SE + 10-12 digits + '-' + letters/digits)"
        ]
        import io

        shown = io.StringIO()
        rep = load(api_conn, [Source.csv("again.csv", body)], progress=Progress(shown, terminal=True))
        assert rep.ok and rep.changes() == 0
        assert "\r[" in shown.getvalue() and "100%" in shown.getvalue()
    assert len(slots(conn)) == 3


# -- booking rules ----------------------------------------------------------------------------------


RULES_SETUP = """\
units:
  - hsa_id: SE2321000016-B100
    name: Mottagningen Regler
    medical_unit: {hsa_id: SE2321000016-V100, name: Vårdenheten Exempel}
    publish_to_ei: false
    consumers:
      - {hsa_id: SE2321000016-EP01, change_deadline: 0}
    care_types:
      - {code: ALLM, name: Allmänmedicin}
    time_types:
      - {code: LAK, name: Läkarbesök, duration_minutes: 20, care_type: ALLM, max_active_per_resident: 1,
         min_lead: 2h, horizon: 90d, change_deadline: 12h, message_allowed: true,
         purpose: "<article><para>Kom i god tid.</para></article>"}
      - {code: DIAB, name: Diabetesbesök, duration_minutes: 30, self_booking: false}
"""


def test_booking_rules_are_loaded_and_reloading_changes_nothing(
    url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    path = write(tmp_path, "rules.yaml", RULES_SETUP)
    rep = report(url, path)
    assert rep["ok"], problems(rep)
    rules = conn.execute(
        "SELECT code, self_booking, min_lead, horizon, max_active_per_resident, change_deadline, message_allowed,"
        " purpose FROM time_type WHERE unit_hsa_id = 'SE2321000016-B100' ORDER BY code"
    ).fetchall()
    assert rules == [
        ("DIAB", False, timedelta(0), None, None, None, None, None),
        ("LAK", True, timedelta(hours=2), timedelta(days=90), 1, timedelta(hours=12), True,
         "<article><para>Kom i god tid.</para></article>"),
    ]  # fmt: skip
    unit = conn.execute(
        "SELECT medical_unit_hsa_id, medical_unit_name, publish_to_ei FROM care_unit WHERE hsa_id = 'SE2321000016-B100'"
    ).fetchone()
    assert unit == ("SE2321000016-V100", "Vårdenheten Exempel", False)
    assert conn.execute("SELECT consumer_hsa_id, change_deadline FROM consumer_rule").fetchall() == [
        ("SE2321000016-EP01", timedelta(0))
    ]
    again = report(url, path)
    assert again["ok"] and changes(again) == {}, changes(again)


def test_bad_booking_rules_are_named_by_line_and_field(url: str, tmp_path: Path) -> None:
    long_name = "L" * 101
    bad = (
        "units:\n  - hsa_id: SE2321000016-B200\n    name: Fel\n    time_types:\n"
        f"      - {{code: LAK, name: {long_name}, duration_minutes: 20}}\n"
        "      - {code: SSK, name: Sköterska, duration_minutes: 15, min_lead: soon, max_active_per_resident: 0,\n"
        "         purpose: '<article><table/></article>', self_booking: maybe}\n"
    )
    rep = report(url, write(tmp_path, "bad-rules.yaml", bad), expect=1)
    found = problems(rep)
    assert any(":5:" in p and "longer than 100 characters" in p for p in found), found
    for field, words in (
        ("min_lead", "expected a duration"),
        ("max_active_per_resident", "between 1 and 1000"),
        ("purpose", "DocBook element <table> is not allowed"),
        ("self_booking", "expected true or false"),
    ):
        assert any(field in p and words in p for p in found), (field, found)


def test_a_dry_run_lists_what_it_would_remove_and_add_only_removes_nothing(
    url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    """The scope rule removes the free slots of a listed performer's days that the file does not
    list: a dry run names each of them, and --add-only keeps them (and still creates and changes)."""
    set_up(url, tmp_path)
    day = monday()
    run_load(url, write(tmp_path, "day.csv", csv(day_rows(day, count_=4))))
    before = slots(conn)
    extra = f"{A100},{day:%Y-%m-%d} 12:00,12:20,LAK,{P001},,"
    one = write(tmp_path, "one.csv", csv([day_rows(day, count_=1)[0], extra]))

    dry = run_load(url, "--dry-run", "--quiet", one).stdout
    assert "would remove 3 slot(s) in scope that the load does not list (--add-only keeps them):" in dry
    listed = [line.strip() for line in dry.splitlines() if line.startswith(f"  {A100} {P001} ")]
    assert listed == [f"{A100} {P001} {day:%Y-%m-%d} {t} (T{s[6]})" for t, s in zip(
        ("08:20–08:40", "08:40–09:00", "09:00–09:20"), before[1:], strict=True)]  # fmt: skip
    assert report(url, "--dry-run", one)["removed_slots"] == listed
    assert slots(conn) == before

    added = report(url, "--add-only", one)
    assert changes(added) == {"slots": (1, 0, 0)} and added["removed_slots"] == []
    assert [s[6] for s in slots(conn)][:4] == [s[6] for s in before]
    assert len(slots(conn)) == len(before) + 1
    # add-only still refuses an overlap with a slot it keeps
    clash = write(tmp_path, "clash.csv", csv([f"{A100},{day:%Y-%m-%d} 08:30,08:50,LAK,{P001},,"]))
    assert "overlaps existing slot" in json.dumps(report(url, "--add-only", clash, expect=1)["problems"])
    # and the real load without it removes them, and says which
    gone = run_load(url, "--quiet", one).stdout
    assert "removed 3 slot(s) in scope" in gone and all(line in gone for line in listed)


def test_a_file_that_is_not_utf8_is_refused_by_line(url: str, tmp_path: Path) -> None:
    set_up(url, tmp_path)
    day = monday()
    path = tmp_path / "latin.csv"
    path.write_bytes(csv(day_rows(day, count_=1)).encode() + f"# Läkare {day}\n".encode("cp1252"))
    rep = report(url, path, expect=1)
    assert problems(rep) == ["latin.csv:3: None: not UTF-8 text: save the file as CSV UTF-8"]
