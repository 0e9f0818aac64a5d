"""`tidbok demo`: the integration testers' commands.

Exit status: 0 done, 1 refused, 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, datetime

import psycopg

from producer.cli import demo
from producer.platform.database import migrate
from producer.platform.settings import ConfigError, Settings
from producer.sweden.wall_time import STOCKHOLM

log = logging.getLogger("tidbok")


def _date(text: str) -> date:
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a date written YYYY-MM-DD")


def _today() -> date:
    return datetime.now(STOCKHOLM).date()


def demo_week(settings: Settings, given: date | None = None) -> date:
    """The demo week's Monday: the date given, else TIDBOK_DEMO_DATE, else today (Stockholm)."""
    return demo.demo_monday(given or settings.demo_date or _today())


# -- tidbok demo ------------------------------------------------------------------------------------


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidbok demo",
        description="Load the demo data into an empty calendar, or (reset) empty the calendar and load it "
        "again with the same ids, anchored at the Monday of a week.",
    )
    parser.add_argument("action", nargs="?", choices=("reset",), help="empty the calendar first")
    parser.add_argument(
        "--date", type=_date, help="a date in the demo week (YYYY-MM-DD); default TIDBOK_DEMO_DATE, else this week"
    )
    parser.add_argument("--force", action="store_true", help="reset even a calendar holding other care units")
    return parser


def demo_main(argv: list[str], url: str) -> int:
    parser = demo_parser()
    args = parser.parse_args(argv)
    if (args.date or args.force) and args.action != "reset":
        parser.error("--date and --force go with `tidbok demo reset`; `tidbok demo` takes TIDBOK_DEMO_DATE")
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"tidbok: configuration error: {exc}", file=sys.stderr)
        return 2
    monday = demo_week(settings, args.date)
    problem = demo.week_problem(monday, _today())
    if problem:
        print(f"tidbok demo: {problem}", file=sys.stderr)
        return 2
    migrate(url)  # a fresh database gets its schema first: nothing to load into otherwise
    if args.action != "reset":
        load_into_empty(url, monday, settings.booking_id_policy)
        return 0
    with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:
        try:
            done = demo.reset_demo(conn, monday, settings.booking_id_policy, force=args.force)
        except demo.NotDemoData as refused:
            print(f"tidbok demo reset: {refused}; nothing changed (--force empties it anyway)", file=sys.stderr)
            return 1
        except psycopg.errors.LockNotAvailable:
            print(
                f"tidbok demo reset: the calendar stayed busy for {demo.LOCK_TIMEOUT}; nothing changed, try again",
                file=sys.stderr,
            )
            return 1
    print(f"demo reset: the week of Monday {done.monday}; {done.slots} slots (T1-T{done.slots}) for {demo.WEEKS} weeks")
    for booking_id, kind in done.bookings:
        print(f"  {booking_id}\t{kind}\tresident {demo.TOLVAN}")
    if done.posts_left_in_ei:
        print(
            f"  {done.posts_left_in_ei} EI post(s) of the emptied calendar were not withdrawn from EI"
            " (the EI stub: POST /_stub/reset empties it)"
        )
    return 0


def load_into_empty(url: str, monday: date, policy: str) -> None:
    """What `make run` does: the demo into an empty calendar, anchored at `monday`; a calendar with
    care units is left as it is."""
    with psycopg.connect(url, options="-c TimeZone=UTC") as conn:
        if demo.load_demo(conn, monday, policy):
            log.info("demo data loaded: the week of Monday %s, slots for %d weeks", monday, demo.WEEKS)
        else:
            log.info("the calendar already has care units; demo data not loaded (`tidbok demo reset` reloads it)")
