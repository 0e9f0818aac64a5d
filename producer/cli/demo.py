"""The deterministic demo dataset: two units, three performers, 14 weeks of free slots from the
Monday of the demo week, and resident Tolvan Tolvansson with a booking, a timed and an open
invitation; the booking rules of a clinic (at most one doctor's visit per resident, booked at least
two hours ahead; a preparation text for sampling; a diabetes visit booked only by staff or through
an invitation) and the care unit that holds the medical responsibility for both units; Egen provhantering (EP) as a
consumer that may cancel until the start, and the sampling time types' offers in EP (UnitOfferID).

Everything is placed relative to that Monday (the demo week: this week's, or TIDBOK_DEMO_DATE's),
so the same week gives the same times. `reset_demo` empties the calendar first and restarts its
ids, so every reset gives the same ids too (bookings B1, K2, K3; slots from T1 in a fixed order):
a fixture recorded once replays the same next month. Slots of the demo week that are past are
simply past (availability never offers them).

Loaded through the same writes as every other channel, so its bookings and invitations reach the
EI outbox like any others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from psycopg import sql

from producer.platform.settings import Settings
from producer.staff import Contact, Staff, book, invite_open, invite_timed
from producer.sweden.wall_time import STOCKHOLM

A100 = "SE2321000016-A100"
A200 = "SE2321000016-A200"
P001, P002, P003 = "SE2321000016-P001", "SE2321000016-P002", "SE2321000016-P003"
LAB_ROOM = "PROVRUM1"
DIAB_ROOM = "DIABRUM"
MEDICAL_UNIT = ("SE2321000016-V100", "Vårdenheten Exempel")  # holds the medical responsibility for both units
PREPARATION = "Kom fastande. Ta med legitimation."
TOLVAN = "191212121212"
TOLVAN_NAMES = ("Tolvan", "Tolvansson")
# Tolvan's ids after a reset under the default (stable) id policy: B + pk for the booking, K + pk
# for the invitations, in the order they are made (producer.staff).
BOOKING_ID, TIMED_INVITATION_ID, OPEN_INVITATION_ID = "B1", "K2", "K3"
DEMO_STAFF = "SE2321000016-S001"  # the staff member who made the demo bookings
WEEKS = 14  # of slots from the demo week's Monday: at least 13 weeks ahead whatever the weekday
OPENING_HOURS = ((time(8), time(12)), (time(13), time(16)))

UNITS = (
    (A100, "Vårdcentralen Exempel", True, "24 hours"),
    (A200, "Provtagningen Exempel", False, "24 hours"),
)
CARE_TYPES = ((A100, "ALLM", "Allmänmedicin"), (A100, "LAB", "Laboratoriemedicin"), (A200, "LAB", "Laboratoriemedicin"))
TIME_TYPES = (
    (A100, "LAK", "Läkarbesök", 20, "ALLM"),
    (A100, "SSK", "Sjuksköterskebesök", 15, "ALLM"),
    (A100, "PROV", "Provtagning", 10, "LAB"),
    (A200, "PROV", "Provtagning", 10, "LAB"),
    (A100, "DIAB", "Diabetesbesök", 30, "ALLM"),
)
# unit, time type, its booking rules (columns of time_type, producer.calendar.rules)
RULES = (
    (A100, "LAK", {"max_active_per_resident": 1, "min_lead": timedelta(hours=2)}),
    (A100, "PROV", {"purpose": PREPARATION, "ep_unit_offer_id": "6"}),
    (A200, "PROV", {"purpose": PREPARATION, "ep_unit_offer_id": "7"}),
    (A100, "DIAB", {"self_booking": False}),
)
# Egen provhantering books sampling times as part of an order and cancels them when the order is
# undone: until the start at both units (a consumer rule), and staff see its bookings by its name.
EP_CONSUMER = ("SE2321000016-EP01", "Egen provhantering")
CONSUMER_RULES = ((A100, *EP_CONSUMER, "0"), (A200, *EP_CONSUMER, "0"))
PERFORMERS = (
    (A100, P001, "Läkare", "Anna", "Andersson"),
    (A100, P002, "Sjuksköterska", "Bertil", "Berg"),
    (A200, P003, "Biomedicinsk analytiker", "Cecilia", "Carlsson"),
)
RESOURCES = ((A100, LAB_ROOM, "Provtagningsrummet"), (A100, DIAB_ROOM, "Diabetesmottagningens rum"))
ALTERNATIVES = ((A100, "PROV", A200), (A200, "PROV", A100))
# unit, time type, performer, resource, minutes per slot
SCHEDULES = (
    (A100, "LAK", P001, None, 20),
    (A100, "SSK", P002, None, 15),
    (A100, "PROV", None, LAB_ROOM, 10),
    (A200, "PROV", P003, None, 10),
    (A100, "DIAB", None, DIAB_ROOM, 30),
)
HOURS = {(A100, "DIAB"): ((time(8), time(12)),)}  # schedules open only part of OPENING_HOURS
DOCBOOK_PURPOSE = (
    "<article><title>Kallelse till provtagning</title>"
    "<para>Du är kallad till provtagning hos Provtagningen Exempel.</para>"
    "<section><title>Inför besöket</title><para>Du behöver inte fasta före provet.</para></section>"
    "</article>"
)
OPEN_PURPOSE = "Du är välkommen att boka en tid för provtagning. Kallelsen gäller i 60 dagar."
OPEN_VALID_DAYS = 60  # the open invitation is valid through the demo week's Monday + 60 days
LOCK_TIMEOUT = "10s"  # a reset waits this long for the calendar's tables (a running server's calls finish)


def demo_monday(day: date) -> date:
    """The demo week's Monday for a date in it."""
    return day - timedelta(days=day.weekday())


def week_problem(week: date, today: date) -> str | None:
    """Why the demo cannot be anchored at `week`'s Monday, or None: the week before this one or
    earlier would put the demo's booking (the next week's Monday) in the past."""
    if demo_monday(week) < demo_monday(today):
        return f"the demo week ({demo_monday(week)}) must be this week ({demo_monday(today)}) or later"
    return None


@dataclass(frozen=True)
class Reset:
    """What `reset_demo` did: the demo week, how many slots, and how many EI posts of the emptied
    calendar the new demo does not publish again (a reset writes no EI deletes for what it removes:
    those stay in EI)."""

    monday: date
    slots: int
    bookings: tuple[tuple[str, str], ...]  # (booking id, what it is) for the demo resident
    posts_left_in_ei: int


class NotDemoData(Exception):
    """The calendar holds care units that are not the demo's; they are named (HSA-ids, never patient data)."""

    def __init__(self, units: list[str], message: str | None = None) -> None:
        shown = ", ".join(units[:3]) + (f" and {len(units) - 3} more" if len(units) > 3 else "")
        super().__init__(message or f"the calendar holds care units that are not the demo's ({shown})")
        self.units = units


def load_demo(conn: psycopg.Connection, week: date, booking_id_policy: str = "stable") -> bool:
    """Load the dataset anchored at the Monday of `week`; False (and nothing written) when units
    exist already.

    Under the per-slot policy the booking's id is its slot's, as for bookings made over SOAP."""
    if conn.execute("SELECT EXISTS (SELECT 1 FROM care_unit)").fetchone()[0]:
        return False
    with conn.transaction():
        _load(conn, demo_monday(week), booking_id_policy)
    conn.execute("ANALYZE")  # fresh statistics, so the first queries get good plans
    return True


def foreign_units(conn: psycopg.Connection) -> list[str]:
    """Care units that are not the demo's: what tells a calendar holding anything but demo data.

    A unit is the demo's when both its HSA-id and its name are; bookings, cancellations and slots
    that testers add at the demo's units are demo data (the units are fictitious: no real resident
    books there)."""
    demo = {(hsa_id, name) for hsa_id, name, _m, _d in UNITS}
    rows = conn.execute("SELECT hsa_id, name FROM care_unit ORDER BY hsa_id").fetchall()
    return [hsa_id for hsa_id, name in rows if (hsa_id, name) not in demo]


def reset_demo(conn: psycopg.Connection, week: date, booking_id_policy: str = "stable", force: bool = False) -> Reset:
    """Empty the calendar (every table but the schema's version, ids restarted) and load the demo
    anchored at the Monday of `week`, in one transaction: a failed reset leaves the calendar as it was.

    Raises NotDemoData (nothing changed) when the calendar holds other units, unless `force`.
    `conn` must be in autocommit mode (the reset is its own transaction)."""
    monday = demo_monday(week)
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        names = _calendar_tables(conn)
        if not names:
            raise NotDemoData([], "the database has no calendar tables (run `tidbok migrate`)")
        tables = sql.SQL(", ").join(sql.Identifier(name) for name in names)
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(tables))
        foreign = foreign_units(conn)
        if foreign and not force:
            raise NotDemoData(foreign)
        before = _ei_keys(conn)
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))
        _load(conn, monday, booking_id_policy)
        left = len(before - _ei_keys(conn))
        slots = conn.execute("SELECT count(*) FROM slot").fetchone()[0]
        bookings = conn.execute(
            "SELECT booking_id, kind FROM booking WHERE subject_of_care = %s ORDER BY pk", (TOLVAN,)
        ).fetchall()
    conn.execute("ANALYZE")
    return Reset(monday, slots, tuple((b, kind) for b, kind in bookings), left)


def _ei_keys(conn: psycopg.Connection) -> set[tuple[str, ...]]:
    """The keys of the EI posts the calendar's bookings have (resident, unit, id, kind): a post whose
    key the new demo does not publish again stays in EI after a reset."""
    rows = conn.execute(
        "SELECT ei_post->>'subject_of_care', ei_post->>'unit', ei_post->>'booking_id', ei_post->>'kind'"
        " FROM booking WHERE ei_post IS NOT NULL"
    ).fetchall()
    return {tuple(row) for row in rows}


def _calendar_tables(conn: psycopg.Connection) -> list[str]:
    """Every table of the schema but alembic's version: what the migrations made, whatever they add."""
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
        " ORDER BY tablename"
    ).fetchall()
    return [name for (name,) in rows]


def _load(conn: psycopg.Connection, monday: date, policy: str) -> None:
    _catalogue(conn)
    _slots(conn, monday)
    _tolvan(conn, monday, policy)


def _catalogue(conn: psycopg.Connection) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO care_unit (hsa_id, name, message_allowed, change_deadline) VALUES (%s, %s, %s, %s)", UNITS
        )
        cur.executemany("INSERT INTO care_type (unit_hsa_id, code, name) VALUES (%s, %s, %s)", CARE_TYPES)
        cur.executemany(
            "INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes, care_type_code)"
            " VALUES (%s, %s, %s, %s, %s)",
            TIME_TYPES,
        )
        cur.executemany(
            "INSERT INTO performer (unit_hsa_id, hsa_id, title, first_name, last_name) VALUES (%s, %s, %s, %s, %s)",
            PERFORMERS,
        )
        cur.executemany("INSERT INTO resource (unit_hsa_id, resource_id, name) VALUES (%s, %s, %s)", RESOURCES)
        cur.executemany(
            "INSERT INTO unit_alternative (unit_hsa_id, time_type_code, alternative_hsa_id) VALUES (%s, %s, %s)",
            ALTERNATIVES,
        )
        cur.execute("UPDATE care_unit SET medical_unit_hsa_id = %s, medical_unit_name = %s", MEDICAL_UNIT)
        cur.executemany(
            "INSERT INTO consumer_rule (unit_hsa_id, consumer_hsa_id, name, change_deadline) VALUES (%s, %s, %s, %s)",
            CONSUMER_RULES,
        )
        for unit, code, rules in RULES:
            assignments = ", ".join(f"{column} = %s" for column in rules)  # column names are this file's own
            values = (*rules.values(), unit, code)
            cur.execute(f"UPDATE time_type SET {assignments} WHERE unit_hsa_id = %s AND code = %s", values)


def _slots(conn: psycopg.Connection, monday: date) -> None:
    """Every weekday 08–12 and 13–16 Stockholm time, cut into each schedule's slot length, written in
    a fixed order (day, schedule, time), so a reset gives every slot the same id."""
    care_type = {(unit, code): ct for unit, code, _n, _d, ct in TIME_TYPES}
    rows = []
    for offset in range(WEEKS * 7):
        day = monday + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for unit, code, performer, resource, minutes in SCHEDULES:
            for opens, closes in HOURS.get((unit, code), OPENING_HOURS):
                start = datetime.combine(day, opens, tzinfo=STOCKHOLM).astimezone(UTC)
                end_of_block = datetime.combine(day, closes, tzinfo=STOCKHOLM).astimezone(UTC)
                while start + timedelta(minutes=minutes) <= end_of_block:
                    end = start + timedelta(minutes=minutes)
                    rows.append((unit, start, end, code, care_type[(unit, code)], performer, resource))
                    start = end
    # the slot table names its unit, time type and performer by their integer keys (migration 0009)
    units = dict(conn.execute("SELECT hsa_id, id FROM care_unit").fetchall())
    types = {(u, c): i for u, c, i in conn.execute("SELECT unit_hsa_id, code, id FROM time_type").fetchall()}
    people = {(u, h): i for u, h, i in conn.execute("SELECT unit_hsa_id, hsa_id, id FROM performer").fetchall()}
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY slot (unit_id, starts_at, ends_at, time_type_id, care_type_code, performer_id, resource_id)"
            " FROM STDIN"
        ) as copy,
    ):
        for unit, start, end, code, care, performer, resource in rows:
            who = people[(unit, performer)] if performer else None
            copy.write_row((units[unit], start, end, types[(unit, code)], care, who, resource))


def _slot_at(conn: psycopg.Connection, unit: str, code: str, day: date, at: time) -> int:
    start = datetime.combine(day, at, tzinfo=STOCKHOLM)
    return conn.execute(
        "SELECT id FROM slot_named WHERE unit_hsa_id = %s AND time_type_code = %s AND starts_at = %s",
        (unit, code, start),
    ).fetchone()[0]


def _tolvan(conn: psycopg.Connection, monday: date, policy: str) -> None:
    """Made by a member of staff through the same service layer clinics use, so the bookings get
    ids by the policy, history rows and EI outbox rows like any others: the booking on the next
    week's Monday 09:00, the timed invitation on its Wednesday 08:30."""
    staff = Staff(DEMO_STAFF, Settings(booking_id_policy=policy))
    tolvan = Contact(first_name=TOLVAN_NAMES[0], last_name=TOLVAN_NAMES[1], phone="070-1212121")
    now = datetime.now(UTC)
    lak = _slot_at(conn, A100, "LAK", monday + timedelta(days=7), time(9))
    prov = _slot_at(conn, A200, "PROV", monday + timedelta(days=9), time(8, 30))
    book(conn, staff, resident=TOLVAN, slot=lak, contact=tolvan, reason="Återbesök", now=now)
    invite_timed(conn, staff, resident=TOLVAN, slot=prov, purpose=DOCBOOK_PURPOSE, contact=tolvan, now=now)
    invite_open(
        conn,
        staff,
        resident=TOLVAN,
        unit=A100,
        time_type="PROV",
        purpose=OPEN_PURPOSE,
        valid_until=monday + timedelta(days=OPEN_VALID_DAYS),
        invitation_date=monday,
        contact=tolvan,
        now=now,
    )
