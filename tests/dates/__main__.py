"""`make test-dates`: the whole suite with the clock set to other days, through libfaketime.

A test must pass on any day at any hour. This runs ``pytest`` once per date with libfaketime
preloaded, so the test process, every producer, publisher and EI stub it starts, and the embedded
PostgreSQL all see the same fake "now". The clock is moved by a fixed offset (``FAKETIME="+N"``), not
set to a start time (``"@…"``), because a start time restarts in each process as it starts and the
processes would disagree by the minutes between their starts. The wall clock keeps running, as
real ones do.

Only the wall clock is faked. With the monotonic clock faked too, every timed wait of a Python
thread hangs (CPython waits with sem_clockwait, which libfaketime 0.9.10 does not translate), so a
pool waiting for a connection never times out; with it real, libfaketime breaks time.sleep
(EINVAL). monotonic_sleep.c, compiled here with the machine's C compiler and preloaded first, sends
monotonic sleeps straight to the kernel. Durations, timeouts and deadlines run on the monotonic
clock, which is not a date, so nothing that depends on the date escapes the fake clock.

Usage::

    make test-dates                            # every date in DATES
    make test-dates DATE="2027-10-27 10:00"    # one date (Stockholm wall time); several: comma-separated
    python -m tests.dates "2028-02-29 10:00" -- -k booking   # arguments after -- go to pytest

Dates are Stockholm wall time, as the clinic sees them. DATABASE_URL is ignored: a server outside
the fake clock would disagree with it about now(); the suite starts an embedded PostgreSQL.
Needs libfaketime (Debian: ``apt-get install faketime``) and a C compiler (``cc``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

STOCKHOLM = ZoneInfo("Europe/Stockholm")
REPO = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).with_name("monotonic_sleep.c")

# Each date, and why it finds bugs a run on an ordinary weekday does not.
DATES: dict[str, str] = {
    "2027-10-27 10:00": "a Wednesday: 10 and 11 days on are a Saturday and a Sunday",
    "2027-01-15 15:55": "a Friday at 15:55: the day's last slots are minutes away, the weekend next",
    "2026-12-31 23:59": "23:59 on New Year's Eve: the date, the month and the year turn during the run",
    "2027-03-27 10:00": "the Saturday before spring's DST change (the night has 23 hours)",
    "2027-10-30 10:00": "the Saturday before autumn's DST change (the night has 25 hours)",
    "2028-02-29 10:00": "a leap day",
}

LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def libfaketime() -> str | None:
    return next((path for path in LIBRARIES if Path(path).is_file()), None)


def build_shim(folder: Path) -> str | None:
    """monotonic_sleep.c as a shared library in `folder`; None without a C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    library = folder / "monotonic_sleep.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(SHIM), "-ldl"], check=True)
    return str(library)


def parse(text: str) -> datetime:
    """A Stockholm wall time, 'YYYY-MM-DD HH:MM' (or with a T); a date alone means 10:00."""
    text = text.strip().replace("T", " ")
    moment = datetime.fromisoformat(text if " " in text else f"{text} 10:00")
    return moment.replace(tzinfo=STOCKHOLM)


def run(moment: datetime, preload: str, pytest_args: list[str]) -> int:
    """The suite at `moment`; returns pytest's exit code."""
    offset = round(moment.timestamp() - time.time())
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update({"LD_PRELOAD": preload, "FAKETIME": f"{offset:+d}", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    print(f"== {moment:%Y-%m-%d %H:%M %A} Stockholm (clock {offset:+d} s): {' '.join(command[1:])}", flush=True)
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


def main(argv: list[str]) -> int:
    if "--" in argv:
        split = argv.index("--")
        dates, pytest_args = argv[:split], argv[split + 1 :]
    else:
        dates, pytest_args = argv, []
    dates = [d for text in dates for d in text.split(",") if d.strip()]
    library = libfaketime()
    if library is None:
        print("libfaketime not found: install it (Debian: apt-get install faketime)", file=sys.stderr)
        return 2
    try:
        moments = [parse(d) for d in dates] if dates else [parse(d) for d in DATES]
    except ValueError as error:
        print(f"a date must be 'YYYY-MM-DD HH:MM' (Stockholm time): {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tidbok-dates-") as folder:
        shim = build_shim(Path(folder))
        if shim is None:
            print("no C compiler (cc) found: it builds tests/dates/monotonic_sleep.c", file=sys.stderr)
            return 2
        results = [(moment, run(moment, f"{shim} {library}", pytest_args)) for moment in moments]
    print("\n== test-dates")
    for moment, code in results:
        why = DATES.get(f"{moment:%Y-%m-%d %H:%M}", "")
        print(f"{'passed' if code == 0 else f'FAILED (pytest exit {code})':<24} {moment:%Y-%m-%d %H:%M %a}  {why}")
    return 0 if all(code == 0 for _, code in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
