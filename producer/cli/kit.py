"""`tidbok demo`, `tidbok fixtures replay` and `tidbok collection`: the integration testers' commands.

Exit status: 0 done (replay: every request got what was expected), 1 refused or not as expected, 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, datetime
from pathlib import Path

import psycopg

from producer.cli import demo
from producer.platform.database import migrate
from producer.platform.settings import ConfigError, Settings
from producer.sweden.wall_time import STOCKHOLM
from producer.testkit import collection, replay
from producer.testkit.facts import DemoFacts

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
    if problem and args.action == "reset":
        print(f"tidbok demo reset: {problem}", file=sys.stderr)
        return 2
    logging.getLogger("alembic").setLevel(logging.WARNING)
    migrate(url)  # a fresh database gets its schema first: nothing to load into otherwise
    if args.action != "reset":
        try:
            load_into_empty(url, monday, settings.booking_id_policy)
        except ValueError as refused:
            print(f"tidbok demo: TIDBOK_DEMO_DATE: {refused}", file=sys.stderr)
            return 2
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
    care units is left as it is. Raises ValueError (nothing loaded) for a week that cannot be the
    demo's (demo.week_problem), but only when there is something to load."""
    with psycopg.connect(url, options="-c TimeZone=UTC") as conn:
        empty = not conn.execute("SELECT EXISTS (SELECT 1 FROM care_unit)").fetchone()[0]
        problem = demo.week_problem(monday, _today())
        if empty and problem:
            raise ValueError(problem)
        if demo.load_demo(conn, monday, policy):
            log.info("demo data loaded: the week of Monday %s, slots for %d weeks", monday, demo.WEEKS)
        else:
            log.info("the calendar already has care units; demo data not loaded (`tidbok demo reset` reloads it)")


# -- tidbok fixtures / collection ---------------------------------------------------------------------


def fixtures_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tidbok fixtures",
        description="Replay recorded crm:scheduling 1.1 SOAP requests against a producer and compare the answers.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser(
        "replay",
        help="send every request envelope found in DIR",
        description=replay.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("directory", type=Path, metavar="DIR")
    run.add_argument("--url", required=True, help="the producer's base URL, e.g. http://127.0.0.1:8080")
    run.add_argument("--vars", type=Path, metavar="FILE", help="values of ${...} placeholders (TOML)")
    run.add_argument("--rules", type=Path, metavar="FILE", help="what may differ, what to expect (TOML)")
    run.add_argument("--mask", action="store_true", help="mask personnummer in what is printed")
    run.add_argument("--date", type=_date, help="a date in the producer's demo week (default as `tidbok demo`)")
    run.add_argument("-v", "--verbose", action="store_true", help="also print each substitution made")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        options = replay.Options.read(
            args.vars, args.rules, demo_week(settings, args.date), mask=args.mask, verbose=args.verbose, facts=facts()
        )
    except (ConfigError, replay.KitFileError) as exc:
        print(f"tidbok fixtures replay: {exc}", file=sys.stderr)
        return 2
    if not args.directory.is_dir():
        print(f"tidbok fixtures replay: {args.directory} is not a folder", file=sys.stderr)
        return 2
    return replay.run(args.directory, args.url, options, sys.stdout)


def collection_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tidbok collection",
        description="Write a Postman (v2.1) collection or a SoapUI 5 project of all eleven operations, with the "
        "demo's values and the 1177 flows chained through variables.",
    )
    parser.add_argument("--format", choices=("postman", "soapui"), required=True)
    parser.add_argument("out", type=Path, metavar="OUT", help="the file to write")
    parser.add_argument("--base-url", default=collection.BASE_URL, help="the baseUrl variable's default value")
    args = parser.parse_args(argv)
    text = collection.write(args.format, facts(), args.base_url)
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.format} collection written to {args.out}")
    return 0


def facts() -> DemoFacts:
    """The demo's values as the kit needs them (the kit never imports the demo's module)."""
    return DemoFacts(
        units=tuple(hsa_id for hsa_id, *_ in demo.UNITS),
        resident=demo.TOLVAN,
        first_name=demo.TOLVAN_NAMES[0],
        last_name=demo.TOLVAN_NAMES[1],
        booking=demo.BOOKING_ID,
        booking_time_type="LAK",
        flow_time_type="SSK",  # the demo allows one upcoming LAK per resident, and B1 is Tolvan's
        timed_invitation=demo.TIMED_INVITATION_ID,
        timed_invitation_unit=demo.A200,
        open_invitation=demo.OPEN_INVITATION_ID,
        open_invitation_unit=demo.A100,
        open_invitation_time_type="PROV",
    )
