"""EI figures for `make bench`: engagements/s drained from a 100,000-row outbox backlog to the EI
stub, and the lag from outbox row to EI while bookings arrive at 200/s.

Targets on the 2-core reference machine: ≥ 5,000 engagements/s drained; lag p99 ≤ 2 s.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from support.ei import start_publisher, start_stub
from support.server import run_cli

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


def drain(admin_url: str, fresh_database: Callable[[str, str], str], tmp: Path, publishers: int = 1) -> float:
    """Seconds for `publishers` publisher processes (with their default threads) to empty a
    BACKLOG-row outbox into a fresh stub."""
    url = fresh_database(admin_url, f"tidbok_test_eidrain{publishers}")
    run_cli(["migrate"], {"DATABASE_URL": url})
    _backlog(url, BACKLOG)
    stub = start_stub(tmp / f"stub-drain{publishers}")
    processes = []
    try:
        started = time.perf_counter()
        processes = [
            start_publisher(url, stub.endpoint("Update"), tmp / f"publisher-drain{publishers}-{i}.log")
            for i in range(publishers)
        ]
        with psycopg.connect(url, autocommit=True) as conn:
            while _pending(conn) and time.perf_counter() - started < 300:
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            assert _pending(conn) == 0, "the backlog was not drained within 300 s"
        stored = len(stub.state()["posts"])
        assert stored == BACKLOG, f"the stub holds {stored} posts, expected {BACKLOG}"
        return elapsed
    finally:
        for p in processes:
            p.stop()
        stub.stop()


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
