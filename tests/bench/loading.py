"""Loading speed for `make bench`: a 1,000,000-slot CSV (100 units × 5 performers × 50 weekdays ×
40 ten-minute slots) loaded through the real command, then loaded again (nothing changes).

Target on the 2-core reference machine: ≥ 100,000 slots/s for the first load.
Run alone: ``python -m tests.bench.loading`` (embedded PostgreSQL unless DATABASE_URL is set).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from support.server import PYTHON, run_cli, subprocess_env  # noqa: E402

UNITS, PERFORMERS, DAYS, PER_DAY, MINUTES = 100, 5, 50, 40, 10


def unit_id(u: int) -> str:
    return f"SE2321000016-L{u:03d}"


def performer_id(u: int, p: int) -> str:
    return f"SE2321000016-Q{u:03d}{p}"


def write_setup(path: Path) -> None:
    lines = ["units:"]
    for u in range(UNITS):
        lines += [
            f"  - hsa_id: {unit_id(u)}",
            f"    name: Lastenhet {u}",
            "    care_types: [{code: ALLM, name: Allmänmedicin}]",
            f"    time_types: [{{code: LAK, name: Läkarbesök, duration_minutes: {MINUTES}, care_type: ALLM}}]",
            "    performers:",
        ]
        lines += [
            f"      - {{hsa_id: {performer_id(u, p)}, first_name: Doktor, last_name: Nr{p}}}" for p in range(PERFORMERS)
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def weekdays(first: date, count: int) -> list[date]:
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def write_slots(path: Path, first: date) -> int:
    """Sorted as a clinic exports a schedule: by unit, day, time and performer."""
    times = [f"{8 + (n * MINUTES) // 60:02d}:{(n * MINUTES) % 60:02d}" for n in range(PER_DAY + 1)]
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("unit,start,end,time_type,performer\n")
        for u in range(UNITS):
            unit = unit_id(u)
            performers = [performer_id(u, p) for p in range(PERFORMERS)]
            block = []
            for day in weekdays(first, DAYS):
                d = day.isoformat()
                for n in range(PER_DAY):
                    for performer in performers:
                        block.append(f"{unit},{d} {times[n]},{times[n + 1]},LAK,{performer}\n")
            out.writelines(block)
            rows += len(block)
    return rows


def timed_load(url: str, files: list[Path]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [PYTHON, "-m", "producer", "load", "--quiet", *map(str, files)],
        cwd=REPO,
        env=subprocess_env({"DATABASE_URL": url}),
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"load failed:\n{result.stdout}\n{result.stderr}")
    return seconds, result.stdout


def bench(admin_url: str, fresh_database: Callable[[str, str], str], tmp: Path) -> list[str]:
    url = fresh_database(admin_url, "tidbok_test_loading")
    run_cli(["migrate"], {"DATABASE_URL": url})
    setup, slots = tmp / "bench-setup.yaml", tmp / "bench-slots.csv"
    write_setup(setup)
    run_cli(["load", "--quiet", str(setup)], {"DATABASE_URL": url})
    rows = write_slots(slots, date.today() + timedelta(days=7))
    first, _ = timed_load(url, [slots])
    again, report = timed_load(url, [slots])
    if "no changes" not in report:
        raise RuntimeError(f"the re-load changed something:\n{report}")
    return [
        f"{'slot CSV load, first (1,000,000 slots)':<40} {rows / first:>9.0f} slots/s   ({first:.1f} s, whole command)",
        f"{'slot CSV load, again (no changes)':<40} {rows / again:>9.0f} slots/s   ({again:.1f} s)",
    ]


def main() -> None:
    from support.server import fresh_database

    tmp = Path(tempfile.mkdtemp(prefix="tidbok-bench-loading-"))
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        from producer.platform.database import start_embedded

        admin = start_embedded(tmp / "pgdata").get_uri()
    print("\n".join(bench(admin, fresh_database, tmp)))


if __name__ == "__main__":
    main()
