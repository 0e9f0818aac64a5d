"""EI figures for `make bench`: engagements/s drained from a 100,000-row outbox backlog to the EI
stub and to a null EI endpoint (tests/bench/null_ei.py: the publisher's own ceiling), with the CPU
each party spent; and the lag from outbox row to EI while bookings arrive at 200/s.

Alone: `.venv/bin/python -m tests.bench.ei_drain --help` (py-spy profiles with --profile DIR).
Targets on the 2-core reference machine: ≥ 15,000 engagements/s drained; lag p99 ≤ 2 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:  # alone (python -m tests.bench.ei_drain), as run.py does
    sys.path.insert(0, str(REPO / "tests"))

from support.ei import start_publisher, start_stub  # noqa: E402
from support.server import free_port, http_get, run_cli  # noqa: E402

from tests.bench import spy  # noqa: E402
from tests.bench.cpu import machine_busy, postmaster_pid, tree_cpu  # noqa: E402

BACKLOG = 100_000
UNIT = "SE2321000016-E000"


def _backlog(url: str, rows: int) -> None:
    """`rows` bookings of one unit, each with a pending outbox row: a backlog as after an EI outage."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO care_unit (hsa_id, name) VALUES ('{UNIT}', 'EI-bench');
            INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes)
                VALUES ('{UNIT}', 'LAK', 'Läkarbesök', 10);
            INSERT INTO booking (booking_id, unit_hsa_id, kind, subject_of_care, time_type_code)
                SELECT 'B' || i, '{UNIT}', 'booking', '191212121212', 'LAK' FROM generate_series(1, {rows}) i;
            INSERT INTO ei_outbox (booking_pk, reason, after)
                SELECT pk, 'bench', jsonb_build_object('subject_of_care', subject_of_care, 'unit', unit_hsa_id,
                       'booking_id', booking_id, 'kind', 'booking', 'most_recent_content', '20301015093000')
                FROM booking WHERE unit_hsa_id = '{UNIT}' ORDER BY pk;
            """
        )


def _pending(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM ei_outbox WHERE published_at IS NULL AND parked_at IS NULL").fetchone()[0]


def _any_pending(conn: psycopg.Connection) -> bool:
    """Cheaper than counting while the drain runs (the poll shares the 2 cores with it)."""
    sql = "SELECT EXISTS (SELECT 1 FROM ei_outbox WHERE published_at IS NULL AND parked_at IS NULL)"
    return conn.execute(sql).fetchone()[0]


# -- the EI at the other end: the stub, or a null endpoint --------------------------------------------


@dataclass
class NullEi:
    """tests/bench/null_ei.py as a process: every Update answered OK unparsed; it counts what arrived."""

    base_url: str
    process: subprocess.Popen[bytes]

    def endpoint(self, op: str) -> str:
        return f"{self.base_url}/{op}/1/rivtabp21"

    def engagements(self) -> int:
        return json.loads(http_get(f"{self.base_url}/count")[2])["engagements"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_null_ei() -> NullEi:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.null_ei"],
        cwd=REPO,
        env={**os.environ, "TIDBOK_PORT": str(port)},
        stdin=subprocess.DEVNULL,
    )
    null = NullEi(f"http://127.0.0.1:{port}", process)
    for _ in range(100):
        with contextlib.suppress(OSError):
            if http_get(f"{null.base_url}/health", timeout=1)[0] == 200:
                return null
        time.sleep(0.1)
    null.stop()
    raise RuntimeError("the null EI endpoint did not answer within 10 s")


@dataclass
class Drain:
    """One drain: its wall time, and the CPU seconds each party spent on it."""

    target: str  # "stub" or "null"
    publishers: int
    seconds: float  # from starting the publisher processes to the last row marked published
    first_seconds: float  # from starting them to the first row marked published (start-up)
    # CPU seconds: publisher (all processes), ei (stub or null), postgres, and others: the rest of
    # the machine's busy time meanwhile (other work on a shared machine, and this script's polling)
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return BACKLOG / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "engagements_per_s": round(self.rate),
            "seconds": round(self.seconds, 2),
            "startup_seconds": round(self.first_seconds, 2),
            "publisher_processes": self.publishers,
            "cpu_ms_per_1000_engagements": {k: round(v * 1e6 / BACKLOG, 1) for k, v in self.cpu.items()},
        }

    def line(self) -> str:
        label = f"EI drain, {BACKLOG:,} rows, {'to the stub' if self.target == 'stub' else 'to a null EI'}"
        cpu = ", ".join(f"{k} {v * 1e6 / BACKLOG:.0f}" for k, v in self.cpu.items())
        plural = "es" if self.publishers > 1 else ""
        return (
            f"{label:<40} {self.rate:>9.0f} engagements/s   ({self.seconds:.1f} s of which start-up"
            f" {self.first_seconds:.1f} s, {self.publishers}"
            f" publisher process{plural}; CPU ms per 1,000: {cpu})"
        )


def drain(
    admin_url: str,
    fresh_database: Callable[[str, str], str],
    tmp: Path,
    publishers: int = 1,
    target: str = "stub",
    profile: Path | None = None,
    publisher_env: dict[str, str] | None = None,
    gil: bool = False,
) -> Drain:
    """`publishers` publisher processes (with their default threads) empty a BACKLOG-row outbox
    into a fresh stub (`target` "stub") or the null endpoint ("null"). `profile`: a folder where
    py-spy records each process (raw, collapsed stacks; `gil`: only the GIL's holder);
    `publisher_env`: TIDBOK_EI_* settings."""
    url = fresh_database(admin_url, f"tidbok_test_eidrain{target}{publishers}")
    run_cli(["migrate"], {"DATABASE_URL": url})
    _backlog(url, BACKLOG)
    with psycopg.connect(url, autocommit=True) as conn, contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        # the backlog's pages written out now, not during the drain; no ANALYZE: a backlog that
        # appears at once (an EI outage, a campaign) has no statistics yet, and that is the case here
        conn.execute("CHECKPOINT")
    name = f"{target}-drain{publishers}"
    ei = start_stub(tmp / f"stub-{name}") if target == "stub" else start_null_ei()
    postgres = postmaster_pid(url)
    processes: list[Any] = []
    spies: list[subprocess.Popen[bytes]] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            cpu_before = {"ei": tree_cpu(ei.process.pid), "postgres": tree_cpu(postgres) if postgres else 0.0}
            machine_before = machine_busy()
            db_started = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            started = time.perf_counter()
            processes = [
                start_publisher(url, ei.endpoint("Update"), tmp / f"publisher-{name}-{i}.log", publisher_env)
                for i in range(publishers)
            ]
            if profile is not None:
                targets = [(f"{name}-ei", ei.process.pid)]
                targets += [(f"{name}-publisher{i}", p.process.pid) for i, p in enumerate(processes)]
                spies = spy.record(profile, targets, gil=gil)
            while _any_pending(conn) and time.perf_counter() - started < 300:
                time.sleep(0.1)
            spy.stop(spies)  # before the checks below: reading the stub's state is no part of the drain
            cpu = {
                "publisher": sum(tree_cpu(p.process.pid) for p in processes),
                "ei": tree_cpu(ei.process.pid) - cpu_before["ei"],
            }
            if postgres:
                cpu["postgres"] = tree_cpu(postgres) - cpu_before["postgres"]
            cpu["others"] = max(0.0, machine_busy() - machine_before - sum(cpu.values()))
            assert not _any_pending(conn), "the backlog was not drained within 300 s"
            first, last, published = conn.execute(
                "SELECT min(published_at) - %s, max(published_at) - %s, count(published_at) FROM ei_outbox",
                (db_started, db_started),
            ).fetchone()
        assert published == BACKLOG, f"{published} rows published, expected {BACKLOG}"
        if isinstance(ei, NullEi):
            arrived = ei.engagements()
            assert arrived >= BACKLOG, f"the null EI received {arrived} engagements, expected {BACKLOG}"
        else:
            stored = len(ei.state()["posts"])
            assert stored == BACKLOG, f"the stub holds {stored} posts, expected {BACKLOG}"
        return Drain(target, publishers, last.total_seconds(), first.total_seconds(), cpu)
    finally:
        spy.stop(spies)
        for p in processes:
            p.stop()
        ei.stop()


def figures(admin_url: str, fresh_database: Callable[[str, str], str], tmp: Path) -> dict[str, Any]:
    """The EI drain figures of `make bench`: one publisher process to the stub, and one and two
    to the null endpoint (the publisher's own ceiling); printed with :func:`lines`."""
    runs = [
        drain(admin_url, fresh_database, tmp, 1, "stub"),
        drain(admin_url, fresh_database, tmp, 1, "null"),
        drain(admin_url, fresh_database, tmp, 2, "null"),
    ]
    return {f"ei_drain_{r.target}_{r.publishers}": r.as_dict() | {"line": r.line()} for r in runs}


def lines(drained: dict[str, Any]) -> list[str]:
    return [figure["line"] for figure in drained.values()]


def lag(
    server: Any, make_booking_bodies: list[bytes], tmp: Path, rate: float = 200, seconds: float = 10
) -> list[float]:
    """Outbox lag (row written -> EI answered OK) in seconds, for bookings arriving at `rate`/s."""
    import http.client
    from urllib.parse import urlsplit

    stub = start_stub(tmp / "stub-lag")
    publisher = start_publisher(server.database_url, stub.endpoint("Update"), tmp / "publisher-lag.log")
    parts = urlsplit(server.endpoint("MakeBooking"))
    try:
        with psycopg.connect(server.database_url, autocommit=True) as conn:
            while _pending(conn):  # the demo data first
                time.sleep(0.05)
            first_id = conn.execute("SELECT coalesce(max(id), 0) FROM ei_outbox").fetchone()[0]
        interval = 1 / rate
        count = min(len(make_booking_bodies), int(rate * seconds))
        lanes = 4

        def send(lane: int) -> None:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            start = time.perf_counter()
            for k in range(lane, count, lanes):
                delay = start + k * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                conn.request("POST", parts.path, body=make_booking_bodies[k], headers={"Content-Type": "text/xml"})
                conn.getresponse().read()
            conn.close()

        threads = [threading.Thread(target=send, args=(lane,)) for lane in range(lanes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with psycopg.connect(server.database_url, autocommit=True) as conn:
            deadline = time.perf_counter() + 60
            while _pending(conn) and time.perf_counter() < deadline:
                time.sleep(0.05)
            rows = conn.execute(
                "SELECT extract(epoch FROM published_at - created_at) FROM ei_outbox WHERE id > %s",
                (first_id,),
            ).fetchall()
        return sorted(float(r[0]) for r in rows if r[0] is not None)
    finally:
        publisher.stop()
        stub.stop()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    """The drain alone (`.venv/bin/python -m tests.bench.ei_drain [--target stub|null] [--publishers N]
    [--repeat N] [--profile DIR]`), on DATABASE_URL's server or an embedded PostgreSQL."""
    import argparse
    import tempfile

    from support.server import fresh_database

    parser = argparse.ArgumentParser(prog="python -m tests.bench.ei_drain", description=main.__doc__)
    parser.add_argument("--target", choices=("stub", "null"), action="append", help="default: both")
    parser.add_argument("--publishers", type=int, action="append", help="processes (default: 1)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the combinations, alternating")
    parser.add_argument("--profile", type=Path, help="py-spy records of every process here, and their top")
    parser.add_argument("--gil", action="store_true", help="profile only the threads holding the GIL")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the publishers (TIDBOK_EI_*)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tidbok-bench-ei-"))
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        from producer.platform.database import start_embedded

        # one folder for every run, reused (each drain recreates its database): 370 MB a run otherwise
        admin = start_embedded(Path(tempfile.gettempdir()) / "tidbok-bench-ei-pgdata").get_uri()
    for _ in range(args.repeat):
        for target in args.target or ["stub", "null"]:
            for publishers in args.publishers or [1]:
                folder = None if args.profile is None else args.profile / f"{target}{publishers}"
                env = dict(item.split("=", 1) for item in args.env)
                result = drain(admin, fresh_database, tmp, publishers, target, folder, env, args.gil)
                print(result.line(), flush=True)
                if folder is not None:
                    for record in sorted(folder.glob("*.txt")):
                        print(spy.top(record))


if __name__ == "__main__":
    main()
