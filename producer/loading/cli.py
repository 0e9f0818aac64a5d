"""``tidbok load``: the command-line face of producer.loading (python -m producer load …)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

import psycopg

from producer.loading.api import Options, load
from producer.loading.progress import Progress, Silent
from producer.loading.sources import Source

EPILOG = """
files: .csv slot lists (columns unit,start,time_type[,end,performer,resource,care_type]);
       .yaml/.yml/.json set-up documents (units, care types, time types, performers, resources,
       templates, slots). See the README, "Loading schedules".
scope: the slots a CSV file lists replace, for each performer (or resource) in it, every free slot
       from its first to its last day in the file (--from/--to: those days instead; --whole-units:
       every slot of each unit in it; --add-only: none is removed). Booked slots are never changed or
       removed: that is refused. The report lists the slots removed (or, with --dry-run, to be).
exit:  0 loaded (or dry run fine), 1 refused (nothing written), 2 usage.
"""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def main(argv: list[str], database_url: str) -> int:
    parser = argparse.ArgumentParser(
        prog="tidbok load",
        description="Load care units, schedules and free slots from files, in one transaction.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", help="CSV slot lists and YAML/JSON set-up documents")
    parser.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    parser.add_argument("--from", dest="first", type=_day, help="first day the CSV slot lists cover")
    parser.add_argument("--to", dest="last", type=_day, help="last day the CSV slot lists cover")
    parser.add_argument("--whole-units", action="store_true", help="slot lists cover every slot of their units")
    parser.add_argument("--add-only", action="store_true", help="create and change slots, remove none")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if (args.first is None) != (args.last is None):
        parser.error("--from and --to go together")
    try:
        sources = [Source.file(path) for path in args.files]
        missing = [s.path for s in sources if s.path is not None and not s.path.is_file()]
        if missing:
            raise ValueError(f"no such file: {missing[0]}")
    except ValueError as exc:
        parser.error(str(exc))
    if args.add_only and args.whole_units:
        parser.error("--add-only removes nothing, so --whole-units would change nothing")
    options = Options(args.dry_run, (args.first, args.last) if args.first else None, args.whole_units, args.add_only)
    progress = Silent() if args.quiet else Progress(sys.stderr)
    # room for a million staged slots in memory (temp_buffers only takes effect in a new session)
    with psycopg.connect(database_url, options="-c TimeZone=UTC -c temp_buffers=512MB") as conn:
        report = load(conn, sources, options, progress)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1
