"""Loading units, schedules and slots from files or the HTTP API, a channel. May import: calendar, platform, sweden.

``tidbok load`` and /admin call it.

The core takes a connection and sources and returns a Report; it never prints (the CLI does):

    load(conn, sources, Options(dry_run=..., span=..., whole_units=...), progress=None) -> Report
    load_files(conn, paths, dry_run=False) -> Report
    load_setup(conn, document: dict, name="request", dry_run=False) -> Report    # parsed JSON body
    load_slot_csv(conn, data: bytes, name="request", dry_run=False) -> Report    # CSV body
    Source.file(path) / Source.csv(name, bytes) / Source.setup_text(name, text, "yaml"|"json")
        / Source.setup_document(name, dict)
"""

from producer.loading.api import Options, load, load_files, load_setup, load_slot_csv
from producer.loading.report import Problem, Report
from producer.loading.sources import Source

__all__ = ["Options", "Problem", "Report", "Source", "load", "load_files", "load_setup", "load_slot_csv"]
