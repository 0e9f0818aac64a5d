"""`make bench`: the staff page's week view of a unit with 5 performers, in the 1,000,000-slot
calendar. The unit (40 ten-minute slots a day per performer, 200 days) is added next to the
calendar's 100 units, a few hundred of its slots are booked over SOAP, and one logged-in client
asks for its weeks (all performers at once) while nothing else runs. Reported: the application's
time from its Server-Timing header (the server time the target is about) and the client's.

Target on the 2-core reference machine: p99 ≤ 100 ms server time.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta

import psycopg
import requests

UNIT = "SE2321000016-W001"
PERFORMERS = tuple(f"SE2321000016-WP0{i}" for i in range(1, 6))
STAFF, PASSWORD = "SE2321000016-WS01", "bench-week-view-1"
ACCOUNTS = f"{STAFF}={UNIT}:{PASSWORD}"
SLOTS_PER_DAY = 40
DAYS = 200
WEEKS = 8  # the weeks asked for: the next eight, where the bookings are
REQUESTS = 400
WARM_UP = 20


def add_unit(url: str) -> int:
    """The unit with 5 performers and their slots (generated in PostgreSQL, as the calendar is)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO care_unit (hsa_id, name, message_allowed) VALUES ('{UNIT}', 'Vårdcentralen Vecka', true);
            INSERT INTO care_type (unit_hsa_id, code, name) VALUES ('{UNIT}', 'ALLM', 'Allmänmedicin');
            INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes, care_type_code)
                VALUES ('{UNIT}', 'LAK', 'Läkarbesök', 10, 'ALLM');
            INSERT INTO performer (unit_hsa_id, hsa_id, title, first_name, last_name)
                SELECT '{UNIT}', p, 'Läkare', 'Doktor', 'Veckosson' FROM unnest(%s::text[]) p;
            INSERT INTO slot (unit_id, starts_at, ends_at, time_type_id, care_type_code, performer_id)
                SELECT u.id, t, t + interval '10 minutes', tt.id, 'ALLM', pf.id
                FROM care_unit u JOIN time_type tt ON tt.unit_hsa_id = u.hsa_id AND tt.code = 'LAK'
                     JOIN performer pf ON pf.unit_hsa_id = u.hsa_id AND pf.hsa_id = ANY(%s::text[]),
                     generate_series(1, {DAYS}) d, generate_series(0, {SLOTS_PER_DAY} - 1) n,
                     LATERAL (SELECT ((current_date + d) + time '08:00' + n * interval '10 minutes')
                              AT TIME ZONE 'Europe/Stockholm' AS t) s
                WHERE u.hsa_id = '{UNIT}'
                ORDER BY t;
            """.replace("%s", "'{" + ",".join(PERFORMERS) + "}'"),
        )
        conn.execute("ANALYZE slot")
        return conn.execute("SELECT count(*) FROM slot").fetchone()[0]


def book_some(base_url: str, url: str, booking: Callable[[str, int, str, str, str], bytes],
              resident: Callable[[int], str], count: int = 300) -> int:  # fmt: skip
    """Book `count` random slots of the unit's next WEEKS weeks over SOAP (so the weeks show bookings)."""
    with psycopg.connect(url, options="-c TimeZone=Europe/Stockholm") as conn:
        rows = conn.execute(
            "SELECT id, to_char(starts_at, 'YYYYMMDDHH24MISS'), to_char(ends_at, 'YYYYMMDDHH24MISS') FROM slot_named"
            " WHERE unit_hsa_id = %s AND starts_at > now() + interval '1 day'"
            " AND starts_at < now() + %s * interval '1 week' ORDER BY random() LIMIT %s",
            (UNIT, WEEKS, count),
        ).fetchall()
    ok = 0
    with requests.Session() as http:
        for k, (slot_id, start, end) in enumerate(rows):
            body = booking(UNIT, slot_id, start, end, resident(700000 + k))
            answer = http.post(f"{base_url}/MakeBooking/1/rivtabp21", data=body, timeout=30,
                               headers={"Content-Type": "text/xml; charset=utf-8"})  # fmt: skip
            ok += b">OK<" in answer.content
    return ok


def week_view(base_url: str, seed: int = 20261202) -> tuple[list[float], list[float], int]:
    """(server ms, client ms, slots on the last page) of REQUESTS week views after a warm-up."""
    rng = random.Random(seed)
    with requests.Session() as http:
        page = http.get(f"{base_url}/staff/login", timeout=30).text
        token = re.search(r'name="login_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        http.post(f"{base_url}/staff/login", timeout=30,
                  data={"login_token": token, "hsa_id": STAFF, "password": PASSWORD})  # fmt: skip
        today = date.today()
        server, client, shown = [], [], 0
        for i in range(WARM_UP + REQUESTS):
            day = today + timedelta(days=rng.randrange(WEEKS * 7))
            started = time.perf_counter()
            answer = http.get(f"{base_url}/staff/units/{UNIT}/week", params={"date": day.isoformat()}, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200, answer.text[:500]
            if i >= WARM_UP:
                client.append(elapsed)
                server.append(float(answer.headers["Server-Timing"].split("dur=")[1]))
                shown = answer.text.count('class="slot ')
    return server, client, shown


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(server: list[float], client: list[float], shown: int) -> str:
    return (
        f"{'staff week view, 5 performers':<40} server p50 {statistics.median(server):.1f} ms"
        f"   p99 {percentile(server, 99):.1f} ms   client p50 {statistics.median(client):.1f} ms"
        f"   p99 {percentile(client, 99):.1f} ms   n={len(server)}   {shown} slots a week (target: server p99 ≤ 100 ms)"
    )


def main() -> None:
    """This scenario alone (`.venv/bin/python -m tests.bench.web`): the calendar, the unit, the server."""
    import tempfile
    from pathlib import Path

    from tests.bench import run  # here, not at the top: run imports this module

    tmp = Path(tempfile.mkdtemp(prefix="tidbok-bench-web-"))
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        from producer.platform.database import start_embedded

        admin = start_embedded(tmp / "pgdata").get_uri()
    url = run.fresh_database(admin, "tidbok_test_bench_web")
    run.run_cli(["migrate"], {"DATABASE_URL": url})
    print(f"calendar: {run.build_calendar(url):.1f} s; with the week view's unit: {add_unit(url):,} slots")
    env = {"TIDBOK_WORKERS": run.WORKERS, "TIDBOK_LOG_LEVEL": "WARNING", "TIDBOK_STAFF_ACCOUNTS": ACCOUNTS}
    server = run.start_server("bench-web", url, env, tmp)
    try:
        booked = book_some(server.base_url, url, run.make_booking_request, run.personnummer)
        print(report(*week_view(server.base_url)), f"({booked} booked)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
