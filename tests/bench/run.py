"""`make bench`: a 1,000,000-slot calendar over 100 units, the production server with its default
workers, a bounded load generator on loopback; prints requests/s and latency per scenario (the
first one after a short warm-up of the fresh workers, not counted), the "floor" (the same server
answering a pre-written response), and the workers' memory.

Targets on the 2-core reference machine, everything on it: GetAvailableTimeslots ≥ 1,000 req/s,
MakeBooking ≥ 500/s, GetAvailableDates p99 ≤ 20 ms, ≤ 150 MB per worker.
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.server import free_port, fresh_database, http_get, run_cli, start_server  # noqa: E402

from tests.bench import ei_drain, load, loading, offers, web  # noqa: E402
from tests.bench.cpu import describe, measured, postmaster_pid  # noqa: E402

UNITS = 100
DAYS = 200
SLOTS_PER_DAY = 50
CLIENTS = 4
SECONDS = float(os.environ.get("TIDBOK_BENCH_SECONDS", "10"))
WORKERS = "2"  # the server's default
WARM_UP_SECONDS = 3.0
# TIDBOK_BENCH_QUICK=1: the server's scenarios and the floor only (no peer, EI, loading or soak), to try a change
QUICK = os.environ.get("TIDBOK_BENCH_QUICK", "") not in ("", "0")

ENVELOPE = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:itr="urn:riv:itintegration:registry:1" xmlns:ih="urn:riv:interoperability:headers:1">'
    "<soapenv:Header><itr:LogicalAddress>{unit}</itr:LogicalAddress>"
    "<ih:Actor><ih:actorId>{resident}</ih:actorId><ih:actorType>subject_of_care</ih:actorType></ih:Actor>"
    "</soapenv:Header><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
)


def unit_id(i: int) -> str:
    return f"SE2321000016-B{i:03d}"


def personnummer(n: int) -> str:
    """A valid personnummer per n: 1980-01-01 onwards, Luhn check digit."""
    born = date(1950, 1, 1) + timedelta(days=n % 20000)
    serial = f"{born:%y%m%d}{(n // 20000) % 1000:03d}"
    total = 0
    for i, ch in enumerate(serial):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return f"{born:%Y}{serial[2:]}{(10 - total % 10) % 10}"


def envelope(unit: str, resident: str, body: str) -> bytes:
    return ENVELOPE.format(unit=unit, resident=resident, body=body).encode()


def timeslots_request(unit: str, day: date, resident: str) -> bytes:
    d = f"{day:%Y%m%d}"
    return envelope(
        unit,
        resident,
        '<r:GetAvailableTimeslots xmlns:r="urn:riv:crm:scheduling:GetAvailableTimeslotsResponder:1"'
        ' xmlns:e="urn:riv:crm:scheduling:GetAvailableTimeslotsResponder:1.1">'
        f"<r:healthcare_facility>{unit}</r:healthcare_facility><r:startDateInclusive>{d}</r:startDateInclusive>"
        f"<r:endDateInclusive>{d}</r:endDateInclusive><e:subject_of_care>{resident}</e:subject_of_care>"
        "</r:GetAvailableTimeslots>",
    )


def dates_request(unit: str, first: date, resident: str) -> bytes:
    return envelope(
        unit,
        resident,
        '<r:GetAvailableDates xmlns:r="urn:riv:crm:scheduling:GetAvailableDatesResponder:1"'
        ' xmlns:e="urn:riv:crm:scheduling:GetAvailableDatesResponder:1.1">'
        f"<r:healthcare_facility>{unit}</r:healthcare_facility>"
        f"<r:startDateInclusive>{first:%Y%m%d}</r:startDateInclusive>"
        f"<r:endDateInclusive>{first + timedelta(days=61):%Y%m%d}</r:endDateInclusive>"
        f"<e:subject_of_care>{resident}</e:subject_of_care></r:GetAvailableDates>",
    )


def make_booking_request(unit: str, slot_id: int, start: str, end: str, resident: str) -> bytes:
    return envelope(
        unit,
        resident,
        '<r:MakeBooking xmlns:r="urn:riv:crm:scheduling:MakeBookingResponder:1" xmlns:c="urn:riv:crm:scheduling:1"'
        ' xmlns:x="urn:riv:crm:scheduling:1.1">'
        f"<r:healthcare_facility_med>{unit}</r:healthcare_facility_med><r:requestedTimeslot>"
        f"<c:startTimeInclusive>{start}</c:startTimeInclusive><c:endTimeExclusive>{end}</c:endTimeExclusive>"
        f"<c:healthcare_facility>{unit}</c:healthcare_facility><c:bookingId>T{slot_id}</c:bookingId>"
        f"<c:subject_of_care>{resident}</c:subject_of_care></r:requestedTimeslot>"
        "<r:subject_of_care_info><x:firstName>Bench</x:firstName><x:lastName>Marksson</x:lastName>"
        "</r:subject_of_care_info></r:MakeBooking>",
    )


def build_calendar(url: str, units: int = UNITS, days: int = DAYS, slots_per_day: int = SLOTS_PER_DAY) -> float:
    """`units` × `days` × `slots_per_day` ten-minute slots (100 × 200 × 50 unless told), generated
    inside PostgreSQL; the days start tomorrow."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(  # several statements, so no server-side parameters: the numbers are ours
            f"""
            INSERT INTO care_unit (hsa_id, name, message_allowed)
                SELECT 'SE2321000016-B' || lpad(i::text, 3, '0'), 'Benchenhet ' || i, true
                FROM generate_series(0, {units} - 1) i;
            INSERT INTO care_type (unit_hsa_id, code, name) SELECT hsa_id, 'ALLM', 'Allmänmedicin' FROM care_unit;
            INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes, care_type_code)
                SELECT hsa_id, 'LAK', 'Läkarbesök', 10, 'ALLM' FROM care_unit;
            INSERT INTO performer (unit_hsa_id, hsa_id, title, first_name, last_name)
                SELECT hsa_id, replace(hsa_id, '-B', '-P'), 'Läkare', 'Doktor', 'Benchsson' FROM care_unit;
            INSERT INTO slot (unit_id, starts_at, ends_at, time_type_id, care_type_code, performer_id)
                SELECT u.id, t, t + interval '10 minutes', tt.id, 'ALLM', p.id
                FROM care_unit u
                     JOIN time_type tt ON tt.unit_hsa_id = u.hsa_id AND tt.code = 'LAK'
                     JOIN performer p ON p.unit_hsa_id = u.hsa_id AND p.hsa_id = replace(u.hsa_id, '-B', '-P'),
                     generate_series(1, {days}) d,
                     generate_series(0, {slots_per_day} - 1) n,
                     LATERAL (SELECT ((current_date + d) + time '08:00' + n * interval '10 minutes')
                              AT TIME ZONE 'Europe/Stockholm' AS t) s
                ORDER BY u.hsa_id, t;  -- as a clinic loads its schedule: one unit at a time
            """
        )
        conn.execute("VACUUM ANALYZE")  # statistics and a visibility map, as autovacuum would leave them
    return time.perf_counter() - started


def settle(admin_url: str) -> None:
    """Let PostgreSQL write out what the previous scenario left (a checkpoint), so it does not
    compete with the next one."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def worker_memory(server_pid: int) -> list[float]:
    """RSS in MB of each granian worker process (the children of the server's main process)."""
    try:
        main = psutil.Process(server_pid)
        return [round(p.memory_info().rss / 2**20, 1) for p in main.children(recursive=True)]
    except psutil.Error:
        return []


RESULTS = REPO / "bench-results.json"
TARGETS = {
    "GetAvailableTimeslots / floor": 0.40,
    "GetAvailableDates p99 ms": 10.0,
    "MakeBooking req/s": 1000.0,
    "peer ratio": 3.0,
    "EI drain engagements/s": 15000.0,
    "first load slots/s": 100000.0,
    "worker memory MB": 150.0,
}


def figures(result: load.Result, **extra: Any) -> dict[str, Any]:
    """One scenario for bench-results.json."""
    return {
        "req_s": round(result.rate, 1),
        "p50_ms": round(result.p50, 2),
        "p99_ms": round(result.percentile(99), 2),
        "requests": result.requests,
        "http": {str(k): v for k, v in sorted(result.statuses.items())},
        **extra,
    }


def write_results(results: dict[str, Any]) -> None:
    results["targets"] = TARGETS
    results["machine"]["load_after"] = os.getloadavg()
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"figures written to {RESULTS.name}")


def _count(result: load.Result) -> int:
    return result.requests


def line(name: str, result: load.Result, extra: str = "") -> None:
    print(
        f"{name:<40} {result.rate:>9.0f} req/s   p50 {result.p50:>7.2f} ms   p99 {result.percentile(99):>7.2f} ms"
        f"   n={result.requests:<6} http={dict(sorted(result.statuses.items()))} {extra}"
    )


def race(url: str, slot: tuple[int, str, str], unit: str, rounds_seed: int) -> int:
    """16 clients at once on one slot: returns how many were told OK."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    barrier = threading.Barrier(16)
    results: list[bytes] = []

    def one(i: int) -> None:
        body = make_booking_request(unit, slot[0], slot[1], slot[2], personnummer(rounds_seed * 100 + i))
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        barrier.wait()
        conn.request("POST", parts.path, body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
        results.append(conn.getresponse().read())
        conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(b"<ns0:resultCode>OK<" in r or b">OK</" in r for r in results)


PEER_TARGET = 3.0  # tidbok's requests/s over the peer's, in both scenarios


def peer_phase(admin: str, url: str, gat_bodies: list[list[bytes]], ours: dict[str, load.Result]) -> dict:
    """The peer side by side: GetAvailableTimeslots and MakeBooking on spyne 2.14 (tests/bench/peer_spyne)
    over the same database and the same interaction code, served as tidbok is (granian, RSGI, WORKERS
    workers with TIDBOK_DB_POOL_SIZE threads), loaded as tidbok was: the same warm-up, the same
    GetAvailableTimeslots requests, MakeBooking requests built the same way for other free slots of
    the same window, SECONDS each. Prints the peer's figures and our ratio to it; returns them all
    (`ours`: tidbok's results of the two scenarios, by interaction)."""
    from support.server import subprocess_env  # here, with the rest of the phase: one block to merge

    settle(admin)
    with psycopg.connect(url, options="-c TimeZone=Europe/Stockholm") as conn:
        rows = conn.execute(
            "SELECT id, unit_hsa_id, to_char(starts_at, 'YYYYMMDDHH24MISS'), to_char(ends_at, 'YYYYMMDDHH24MISS')"
            " FROM slot_named WHERE starts_at > now() + interval '100 days' AND booking_pk IS NULL"
            " ORDER BY random() LIMIT 40000"
        ).fetchall()
    mb_bodies = [
        [make_booking_request(u, i, s, e, personnummer(500000 + w * 100000 + k)) for k, (i, u, s, e) in enumerate(part)]
        for w, part in enumerate(rows[w::CLIENTS] for w in range(CLIENTS))
    ]
    port = free_port()
    env = {"DATABASE_URL": url, "TIDBOK_HOST": "127.0.0.1", "TIDBOK_PORT": str(port), "TIDBOK_WORKERS": WORKERS}
    command = [sys.executable, "-m", "tests.bench.peer_spyne"]
    peer = subprocess.Popen(
        command, cwd=REPO, env=subprocess_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # serving once anything answers (GET / is a 404)
            try:
                http_get(f"{base}/", timeout=1)
                break
            except OSError:
                if peer.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the spyne peer did not start: {' '.join(command[1:])}") from None
                time.sleep(0.1)
        gat_url = f"{base}/GetAvailableTimeslots/1/rivtabp21"
        load.run(gat_url, gat_bodies, WARM_UP_SECONDS)  # as tidbok's fresh workers had: not counted
        postgres = postmaster_pid(admin)
        gat, gat_cpu = measured(peer.pid, postgres, lambda: load.run(gat_url, gat_bodies, SECONDS), _count)
        line("peer (spyne): GetAvailableTimeslots", gat)
        print(f"{'':<40} {describe(gat_cpu)}")
        mb_url = f"{base}/MakeBooking/1/rivtabp21"
        mb, mb_cpu = measured(
            peer.pid, postgres, lambda: load.run(mb_url, mb_bodies, SECONDS, repeat=1, keep_bodies=True), _count
        )
        ok = sum(b">OK<" in body for body in mb.bodies)
        line("peer (spyne): MakeBooking", mb, f"OK={ok}")
        print(f"{'':<40} {describe(mb_cpu)}")
        memory = worker_memory(peer.pid)
    finally:
        peer.terminate()
        try:
            peer.wait(10)
        except subprocess.TimeoutExpired:
            peer.kill()
            peer.wait(10)
    figures: dict = {
        "peer": "spyne 2.14.0: Soap11 in and out, soft validation; tidbok's interaction code, queries and pool",
        "server": f"granian RSGI, body read first, {WORKERS} workers (as the production server)",
        "peer_worker_memory_mb": memory,
        "target_ratio": PEER_TARGET,
    }
    scenarios = (
        ("GetAvailableTimeslots", gat, {"peer_cpu": gat_cpu}),
        ("MakeBooking", mb, {"peer_ok": ok, "peer_cpu": mb_cpu}),
    )
    for name, theirs, extra in scenarios:
        ratio = ours[name].rate / theirs.rate if theirs.rate else float("inf")
        figures[name] = {
            "peer_req_s": round(theirs.rate, 1),
            "peer_p50_ms": round(theirs.p50, 2),
            "peer_p99_ms": round(theirs.percentile(99), 2),
            "peer_requests": theirs.requests,
            "peer_http": dict(sorted(theirs.statuses.items())),
            **extra,
            "ours_req_s": round(ours[name].rate, 1),
            "ours_p50_ms": round(ours[name].p50, 2),
            "ours_p99_ms": round(ours[name].percentile(99), 2),
            "ratio": round(ratio, 2),
            "met": ratio >= PEER_TARGET,
        }
        verdict = "met" if ratio >= PEER_TARGET else "NOT met"
        print(f"{name + ' ours/peer':<40} {ratio:>9.2f}   target ≥ {PEER_TARGET:g}: {verdict}")
    return figures


def _floor(url: str, tmp: Path, today: date, gat: load.Result, results: dict[str, Any]) -> load.Result:
    """The floor: the same server answering a pre-written 50-slot GetAvailableTimeslots response."""
    sample_request = timeslots_request(unit_id(0), today + timedelta(days=3), "191212121212")
    import http.client

    floor_body = tmp / "floor.xml"
    server = start_server("bench-sample", url, {"TIDBOK_WORKERS": "1", "TIDBOK_LOG_LEVEL": "WARNING"}, tmp)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", int(server.base_url.rsplit(":", 1)[1]))
        conn.request("POST", "/GetAvailableTimeslots/1/rivtabp21", body=sample_request,
                     headers={"Content-Type": "text/xml; charset=utf-8"})  # fmt: skip
        floor_body.write_bytes(conn.getresponse().read())
    finally:
        server.stop()
    floors: dict[str, load.Result] = {}
    cpus: dict[str, dict[str, Any]] = {}
    kinds = {
        "rsgi": {"TIDBOK_FLOOR_INTERFACE": "rsgi"},
        "wsgi": {"TIDBOK_FLOOR_INTERFACE": "wsgi"},
        "pipeline": {"TIDBOK_FLOOR_INTERFACE": "rsgi", "TIDBOK_FLOOR_PIPELINE": "1"},
    }
    for kind, kind_env in kinds.items():
        port = free_port()
        floor = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.floor"],
            cwd=REPO,
            env={
                **os.environ,
                "TIDBOK_PORT": str(port),
                "TIDBOK_WORKERS": WORKERS,
                "TIDBOK_FLOOR_BODY": str(floor_body),
                **kind_env,
            },  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    http_get(f"http://127.0.0.1:{port}/")
                    break
                except OSError:
                    time.sleep(0.1)
            floor_url = f"http://127.0.0.1:{port}/GetAvailableTimeslots/1/rivtabp21"
            floors[kind], cpus[kind] = measured(
                floor.pid,
                None,
                lambda url=floor_url: load.run(url, [[sample_request] for _ in range(CLIENTS)], SECONDS),
                _count,
            )
        finally:
            floor.terminate()
            floor.wait(10)
    line("floor, the server's own path (RSGI)", floors["rsgi"])
    print(f"{'':<40} {describe(cpus['rsgi'])}")
    line("floor, granian's WSGI (8 threads)", floors["wsgi"])
    line("floor + tidbok's SOAP pipeline", floors["pipeline"], "(parse, validate, decode each request)")
    print(f"{'':<40} {describe(cpus['pipeline'])}")
    results["floor"] = figures(
        floors["rsgi"], path="granian RSGI through the body-first adapter, on the loop", **cpus["rsgi"]
    )
    results["floor_wsgi"] = figures(floors["wsgi"], path="granian WSGI, 8 threads, no body read first", **cpus["wsgi"])
    results["floor_pipeline"] = figures(
        floors["pipeline"], path="the RSGI floor, each request parsed, validated and decoded first", **cpus["pipeline"]
    )
    results["GetAvailableTimeslots / floor"] = round(gat.rate / floors["rsgi"].rate, 3)
    results["GetAvailableTimeslots / WSGI floor"] = round(gat.rate / floors["wsgi"].rate, 3)
    results["floor with the pipeline / floor"] = round(floors["pipeline"].rate / floors["rsgi"].rate, 3)
    print(f"{'GetAvailableTimeslots / floor':<40} {gat.rate / floors['rsgi'].rate:>9.2f}   (target ≥ 0.40)")
    print(f"{'GetAvailableTimeslots / WSGI floor':<40} {gat.rate / floors['wsgi'].rate:>9.2f}")
    print(f"{'floor with the SOAP pipeline / floor':<40} {floors['pipeline'].rate / floors['rsgi'].rate:>9.2f}")
    return floors["rsgi"]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tidbok-bench-"))
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        from producer.platform.database import start_embedded

        admin = start_embedded(tmp / "pgdata").get_uri()
    url = fresh_database(admin, "tidbok_test_bench")
    run_cli(["migrate"], {"DATABASE_URL": url})
    print(f"calendar: {UNITS * DAYS * SLOTS_PER_DAY:,} slots over {UNITS} units built in {build_calendar(url):.1f} s")
    print(f"calendar: a unit with 5 performers added for the staff week view: {web.add_unit(url):,} slots in all")

    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": os.getloadavg()},
        "calendar": {"units": UNITS, "days": DAYS, "slots_per_day": SLOTS_PER_DAY},
        "server": {"workers": int(WORKERS), "clients": CLIENTS, "seconds_per_scenario": SECONDS},
    }
    settle(admin)
    postgres = postmaster_pid(admin)  # None when PostgreSQL runs elsewhere: its CPU is then not counted
    bench_env = {"TIDBOK_WORKERS": WORKERS, "TIDBOK_LOG_LEVEL": "WARNING", "TIDBOK_STAFF_ACCOUNTS": web.ACCOUNTS}
    server = start_server("bench", url, bench_env, tmp)
    rng = random.Random(20261121)
    today = date.today()
    try:
        memory_start = worker_memory(server.process.pid)
        print(f"server: granian, {WORKERS} workers; load: {CLIENTS} client processes, {SECONDS:.0f} s per scenario")
        print()
        gat_url = server.endpoint("GetAvailableTimeslots")
        gat_bodies = [
            [
                timeslots_request(
                    unit_id(rng.randrange(UNITS)), today + timedelta(days=rng.randint(2, 60)), personnummer(w)
                )
                for _ in range(200)
            ]
            for w in range(CLIENTS)
        ]
        load.run(gat_url, gat_bodies, WARM_UP_SECONDS)  # the workers' first calls and cold caches: not counted
        gat, cpu = measured(server.process.pid, postgres, lambda: load.run(gat_url, gat_bodies, SECONDS), _count)
        line("GetAvailableTimeslots (1 day, 50 slots)", gat)
        print(f"{'':<40} {describe(cpu)}")
        results["GetAvailableTimeslots"] = figures(gat, **cpu)

        sample = http_get(f"{server.base_url}/health")  # keeps the connection path warm; body unused
        del sample
        gad_bodies = [
            [
                dates_request(unit_id(rng.randrange(UNITS)), today + timedelta(days=rng.randint(1, 30)), "191212121212")
                for _ in range(200)
            ]
            for _ in range(CLIENTS)
        ]
        gad, cpu = measured(
            server.process.pid,
            postgres,
            lambda: load.run(server.endpoint("GetAvailableDates"), gad_bodies, SECONDS),
            _count,
        )
        line("GetAvailableDates (62 days)", gad)
        print(f"{'':<40} {describe(cpu)}")
        results["GetAvailableDates"] = figures(gad, **cpu)

        with psycopg.connect(url, options="-c TimeZone=Europe/Stockholm") as conn:
            rows = conn.execute(
                "SELECT id, unit_hsa_id, to_char(starts_at, 'YYYYMMDDHH24MISS'), to_char(ends_at, 'YYYYMMDDHH24MISS')"
                " FROM slot_named WHERE starts_at > now() + interval '100 days' ORDER BY random() LIMIT 42016"
            ).fetchall()
        booking_rows, race_rows, lag_rows = rows[:40000], rows[40000:40016], rows[40016:]
        per_worker = [booking_rows[w::CLIENTS] for w in range(CLIENTS)]
        mb_bodies = [
            [make_booking_request(u, i, s, e, personnummer(w * 100000 + k)) for k, (i, u, s, e) in enumerate(rows_)]
            for w, rows_ in enumerate(per_worker)
        ]
        mb, cpu = measured(
            server.process.pid,
            postgres,
            lambda: load.run(server.endpoint("MakeBooking"), mb_bodies, SECONDS, repeat=1, keep_bodies=True),
            _count,
        )
        ok = sum(b">OK<" in body for body in mb.bodies)
        line("MakeBooking (distinct slots)", mb, f"OK={ok}")
        print(f"{'':<40} {describe(cpu)}")
        results["MakeBooking"] = figures(mb, ok=ok, **cpu)

        winners = [race(server.endpoint("MakeBooking"), (i, s, e), u, n) for n, (i, u, s, e) in enumerate(race_rows)]
        print(
            f"{'16 concurrent MakeBooking on one slot':<40} rounds={len(winners)}  exactly one OK in "
            f"{sum(w == 1 for w in winners)} of {len(winners)}"
        )
        results["race_16_on_one_slot"] = {"rounds": len(winners), "exactly_one_ok": sum(w == 1 for w in winners)}
        booked = web.book_some(server.base_url, url, make_booking_request, personnummer)
        week = web.week_view(server.base_url)
        print(web.report(*week), f"({booked} booked)")
        results["staff_week_view"] = {
            "server_p50_ms": round(web.statistics.median(week[0]), 2),
            "server_p99_ms": round(web.percentile(week[0], 99), 2),
            "requests": len(week[0]),
        }
        memory_end = worker_memory(server.process.pid)
        lag_bodies = [
            make_booking_request(u, i, s, e, personnummer(900000 + k)) for k, (i, u, s, e) in enumerate(lag_rows)
        ]
        lags = ei_drain.lag(server, lag_bodies, tmp)
        print(
            f"{'EI lag, bookings at 200/s (s)':<40} p50 {ei_drain.median(lags):.3f}"
            f"   p99 {ei_drain.percentile(lags, 99):.3f}   n={len(lags)}"
        )
        results["ei_lag_at_200_bookings_s"] = {
            "p50_s": round(ei_drain.median(lags), 3),
            "p99_s": round(ei_drain.percentile(lags, 99), 3),
            "n": len(lags),
        }
        status, _, gat_body = http_get(server.base_url + "/health")
        del status
    finally:
        server.stop()

    # ours once more with the memory of free slots off: every call runs the queries the peer runs
    settle(admin)
    if QUICK:
        _floor(url, tmp, today, gat, results)
        return write_results(results)

    server = start_server("bench-nomemory", url, {**bench_env, "TIDBOK_AVAILABILITY_MEMORY": "off"}, tmp)
    try:
        load.run(server.endpoint("GetAvailableTimeslots"), gat_bodies, WARM_UP_SECONDS)
        gat_db = load.run(server.endpoint("GetAvailableTimeslots"), gat_bodies, SECONDS)
        line("GetAvailableTimeslots, memory off", gat_db)
        results["GetAvailableTimeslots_memory_off"] = figures(gat_db)
    finally:
        server.stop()

    # the peer (spyne) with the same server, load and requests; its figures for bench-results.json
    peer = peer_phase(admin, url, gat_bodies, {"GetAvailableTimeslots": gat, "MakeBooking": mb})
    peer_gat = peer["GetAvailableTimeslots"]["peer_req_s"]
    peer["GetAvailableTimeslots_memory_off"] = {
        "ours_req_s": round(gat_db.rate, 1),
        "ratio": round(gat_db.rate / peer_gat, 2) if peer_gat else None,
    }
    print(f"{'GetAvailableTimeslots ours/peer, memory off':<40} {gat_db.rate / peer_gat if peer_gat else 0:>9.2f}")
    results["peer"] = peer

    floor_result = _floor(url, tmp, today, gat, results)
    settle(admin)
    drained = ei_drain.figures(admin, fresh_database, tmp)  # stub and null EI, for bench-results.json
    print("\n".join(ei_drain.lines(drained)))
    results["ei_drain"] = drained
    settle(admin)
    results["ep_offers"] = offers.measure(fresh_database(admin, "tidbok_test_benchoffers"), tmp)
    settle(admin)
    loaded = loading.bench(admin, fresh_database, tmp)
    for text in loaded:
        print(text)
    results["loading"] = loaded
    settle(admin)
    from tests.bench import soak  # here, not at the top: soak imports this module

    print()
    soaked = soak.soak(admin, tmp)  # the 10-minute mixed soak through mutual TLS (TIDBOK_SOAK_SECONDS)
    print()
    print(f"{'GetAvailableTimeslots / floor':<40} {gat.rate / floor_result.rate:>9.2f}   (target ≥ 0.40)")
    print(f"{'server worker memory, start (MB)':<40} {memory_start}")
    print(f"{'server worker memory, end (MB)':<40} {memory_end}")
    print(soaked.summary())
    results["server_worker_memory_mb"] = {"start": memory_start, "end": memory_end}
    results["soak"] = {
        "summary": soaked.summary(),
        "worker_memory_mb": {"start": soaked.memory_start, "end": soaked.memory_end, "grew": soaked.memory_grew},
    }
    write_results(results)


if __name__ == "__main__":
    main()
