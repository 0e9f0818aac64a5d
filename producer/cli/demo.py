"""The deterministic demo dataset: two units, three performers, 90 days of free slots from today,
and resident Tolvan Tolvansson with a booking, a timed and an open invitation; the booking rules of
a clinic (at most one doctor's visit per resident, booked at least two hours ahead; a preparation
text for sampling; a diabetes visit booked only by staff or through an invitation) and the care
unit that holds the medical responsibility for both units.

Loaded only into an empty calendar, through the same writes as every other channel, so its
bookings and invitations reach the EI outbox like any others.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import psycopg

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
DEMO_STAFF = "SE2321000016-S001"  # the staff member who made the demo bookings
DAYS = 90
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
    (A100, "PROV", {"purpose": PREPARATION}),
    (A200, "PROV", {"purpose": PREPARATION}),
    (A100, "DIAB", {"self_booking": False}),
)
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


def load_demo(conn: psycopg.Connection, today: date, booking_id_policy: str = "stable") -> bool:
    """Load the dataset relative to `today`; False (and nothing written) when units exist already.

    Under the per-slot policy the booking's id is its slot's, as for bookings made over SOAP."""
    if conn.execute("SELECT EXISTS (SELECT 1 FROM care_unit)").fetchone()[0]:
        return False
    with conn.transaction():
        _catalogue(conn)
        _slots(conn, today)
        _tolvan(conn, today, booking_id_policy)
    conn.execute("ANALYZE")  # fresh statistics, so the first queries get good plans
    return True


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
        for unit, code, rules in RULES:
            assignments = ", ".join(f"{column} = %s" for column in rules)  # column names are this file's own
            values = (*rules.values(), unit, code)
            cur.execute(f"UPDATE time_type SET {assignments} WHERE unit_hsa_id = %s AND code = %s", values)


def _slots(conn: psycopg.Connection, today: date) -> None:
    """Every weekday 08–12 and 13–16 Stockholm time, cut into each schedule's slot length."""
    care_type = {(unit, code): ct for unit, code, _n, _d, ct in TIME_TYPES}
    rows = []
    for offset in range(DAYS):
        day = today + timedelta(days=offset)
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
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY slot (unit_hsa_id, starts_at, ends_at, time_type_code, care_type_code, performer_hsa_id, resource_id)"
            " FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _next_weekday(today: date, weekday: int) -> date:
    """The given weekday (0 = Monday) of next week."""
    monday = today + timedelta(days=7 - today.weekday())
    return monday + timedelta(days=weekday)


def _slot_at(conn: psycopg.Connection, unit: str, code: str, day: date, at: time) -> int:
    start = datetime.combine(day, at, tzinfo=STOCKHOLM)
    return conn.execute(
        "SELECT id FROM slot WHERE unit_hsa_id = %s AND time_type_code = %s AND starts_at = %s",
        (unit, code, start),
    ).fetchone()[0]


def _tolvan(conn: psycopg.Connection, today: date, policy: str) -> None:
    """Made by a member of staff through the same service layer clinics use, so the bookings get
    ids by the policy, history rows and EI outbox rows like any others."""
    staff = Staff(DEMO_STAFF, Settings(booking_id_policy=policy))
    tolvan = Contact(first_name="Tolvan", last_name="Tolvansson", phone="070-1212121")
    now = datetime.now(UTC)
    lak = _slot_at(conn, A100, "LAK", _next_weekday(today, 0), time(9))
    prov = _slot_at(conn, A200, "PROV", _next_weekday(today, 2), time(8, 30))
    book(conn, staff, resident=TOLVAN, slot=lak, contact=tolvan, reason="Återbesök", now=now)
    invite_timed(conn, staff, resident=TOLVAN, slot=prov, purpose=DOCBOOK_PURPOSE, contact=tolvan, now=now)
    invite_open(
        conn,
        staff,
        resident=TOLVAN,
        unit=A100,
        time_type="PROV",
        purpose=OPEN_PURPOSE,
        valid_until=now + timedelta(days=60),
        invitation_date=today,
        contact=tolvan,
        now=now,
    )
