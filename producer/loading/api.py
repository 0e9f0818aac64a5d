"""One load: parse the set-up documents, then in one transaction apply the catalogue, stage every
slot, check and compare set-wise, write, and remove what is no longer listed. Any problem rolls
all of it back; a dry run rolls back too, after reporting what it would have done.

Only one load runs at a time (a transaction-level advisory lock): reports stay exact, and two
administrators cannot race each other's removals.
"""

from __future__ import annotations

import time as clock
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg

from producer.loading import slots as slot_diff
from producer.loading import staging
from producer.loading.catalogue import Catalogue
from producer.loading.csvfile import Layout, copy_cells, copy_raw, read_layout
from producer.loading.documents import DocumentError, from_python, parse_text
from producer.loading.progress import Progress, Silent
from producer.loading.report import MAX_REMOVALS, Problem, Report, SlotChange
from producer.loading.setup import SlotSpec, UnitSpec, parse_setup
from producer.loading.sources import Source
from producer.loading.templates import expand, resolve_wall

LOCK_KEY = 0x7469_6462_6F6B_4C44  # "tidbokLD"


class Refused(Exception):
    """Unwinds the load's transaction once the report says why."""


@dataclass(frozen=True)
class Options:
    """``span``: the Stockholm days (first, last) the listed slots cover, instead of each performer's
    first to last day in the file. ``whole_units``: the scope is every slot of each unit listed,
    not only those of the performers and resources listed. ``add_only``: slots are created and
    changed, never removed."""

    dry_run: bool = False
    span: tuple[date, date] | None = None
    whole_units: bool = False
    add_only: bool = False  # remove no slot: what is in scope but not listed stays
    list_slots: int = 0  # list up to this many slots created, changed and removed (each) in the report


def load(
    conn: psycopg.Connection, sources: Sequence[Source], options: Options = Options(), progress: Progress | None = None
) -> Report:
    """Load sources (CSV slot lists, set-up documents) into the calendar; see the module docstring."""
    started = clock.monotonic()
    progress = progress or Silent()
    report = Report(dry_run=options.dry_run)
    names = {src: source.name for src, source in enumerate(sources, 1)}
    documents: list[tuple[int, str, list[UnitSpec]]] = []
    layouts: dict[int, Layout] = {}
    for src, source in enumerate(sources, 1):
        progress.step(f"reading {source.name}")
        if source.kind == "csv":
            layout = read_layout(source, report)
            if layout is not None:
                layouts[src] = layout
        else:
            documents.append((src, source.name, _setup(source, report)))
    if options.span and options.span[1] < options.span[0]:
        report.add(Problem("options", None, "to", "the span ends before it starts"))
    try:
        with conn.transaction():
            _run(conn, sources, options, progress, report, names, documents, layouts)
            if not report.ok or options.dry_run:
                raise Refused
    except Refused:
        pass
    progress.done()
    report.seconds = clock.monotonic() - started
    return report


def load_files(conn: psycopg.Connection, paths: Sequence[str], dry_run: bool = False, **options) -> Report:
    """``load`` for files by path (kind from the suffix: .csv, .yaml/.yml, .json)."""
    return load(conn, [Source.file(p) for p in paths], Options(dry_run=dry_run, **options))


def load_setup(conn: psycopg.Connection, document: dict, name: str = "request", dry_run: bool = False) -> Report:
    """A set-up document already parsed (e.g. an HTTP API's JSON body)."""
    return load(conn, [Source.setup_document(name, document)], Options(dry_run=dry_run))


def load_slot_csv(
    conn: psycopg.Connection, data: bytes, name: str = "request", dry_run: bool = False, **options
) -> Report:
    """A CSV slot list as bytes (e.g. an HTTP request body)."""
    return load(conn, [Source.csv(name, data)], Options(dry_run=dry_run, **options))


def _setup(source: Source, report: Report) -> list[UnitSpec]:
    try:
        root = from_python(source.document) if source.document is not None else parse_text(source.text(), source.kind)
    except DocumentError as exc:
        report.add(Problem(source.name, exc.line, None, str(exc)))
        return []
    except UnicodeDecodeError:
        report.add(Problem(source.name, None, None, "not UTF-8 text"))
        return []
    return parse_setup(root, source.name, report)


def _run(
    conn: psycopg.Connection,
    sources: Sequence[Source],
    options: Options,
    progress: Progress,
    report: Report,
    names: dict[int, str],
    documents: list[tuple[int, str, list[UnitSpec]]],
    layouts: dict[int, Layout],
) -> None:
    if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
        report.add(Problem("load", None, None, "another load is running; try again when it has finished"))
        raise Refused
    conn.execute("SET LOCAL TimeZone = 'UTC'")
    conn.execute("SET LOCAL work_mem = '256MB'")  # sorts and hashes of a million staged rows in memory
    now = conn.execute("SELECT now()").fetchone()[0]
    progress.step("setting up units")
    catalogue = Catalogue(conn, report)
    catalogue.apply([(name, units) for _src, name, units in documents])
    staging.create(conn)
    listed = _stage(conn, sources, layouts, documents, names, now, progress, report)
    progress.step("comparing with the calendar")
    conn.execute("ANALYZE load_slot")  # its size known: the scopes are a hash of a few groups, not a sort of every row
    if options.span:
        lo, hi = _day_start(options.span[0]), _day_start(options.span[1] + timedelta(days=1))
        staging.scope_from_span(conn, listed, options.whole_units, lo, hi)
    else:
        staging.scope_from_rows(conn, listed, options.whole_units)
    found, total = staging.problems(conn, report.room())
    for src, line, field, message in found:
        report.add(Problem(names[src], line, field, message))
    report.more_problems += total - len(found)
    counts = slot_diff.compare(conn, slot_diff.scopes_overlap(conn), options.add_only)
    if counts.removed:
        report.removals = slot_diff.removals(conn, MAX_REMOVALS)
    if options.list_slots:
        report.slots_listed = [SlotChange(*row) for row in slot_diff.listing(conn, options.list_slots)]
    for src, line, message in slot_diff.booked_conflicts(conn, report.room()):
        report.add(Problem(names[src], line, None, message))
    _write(conn, counts, names, progress, report)
    c = report.counts["slots"]
    c.created, c.changed, c.removed, c.unchanged = counts.created, counts.changed, counts.removed, counts.unchanged
    progress.step("removing what is no longer listed")
    catalogue.finish()


def _stage(
    conn: psycopg.Connection,
    sources: Sequence[Source],
    layouts: dict[int, Layout],
    documents: list[tuple[int, str, list[UnitSpec]]],
    names: dict[int, str],
    now: datetime,
    progress: Progress,
    report: Report,
) -> list[int]:
    """Every slot of the load into load_slot; returns the sources whose scope comes from the slots
    they list (CSV files, set-up ``slots:``)."""
    for src, layout in layouts.items():
        progress.step(f"copying {names[src]}")
        table, cells = _copy_csv(conn, src, sources[src - 1], layout, progress, report)
        progress.step(f"checking {names[src]}")
        staging.check_csv(conn, src, table, layout, cells)
    listed = list(layouts)
    for src, name, units in documents:
        if any(unit.slots for unit in units):
            listed.append(src)
        rows = [(unit.hsa_id, slot) for unit in units for slot in unit.slots]
        staging.check_typed(conn, src, [_slot_row(hsa_id, slot) for hsa_id, slot in rows])
        # template slots: a source of their own (-src), whose scope is each template's from..to
        names[-src] = name
        staging.check_typed(conn, -src, list(_template_rows(conn, -src, name, units, now, report)))
    return listed


def _copy_csv(
    conn: psycopg.Connection, src: int, source: Source, layout: Layout, progress: Progress, report: Report
) -> tuple[str, bool]:
    """Copy a CSV source into the staging table it fits; returns the table and whether it holds cells.

    A verbatim file goes through PostgreSQL's CSV reader first (a million lines: 0.5 s to copy and
    1.3 s to tidy, against 0.5 s and 1.9 s to copy whole lines and split them in SQL); when a line
    lacks fields or has extra ones, that COPY is undone and the lines are taken whole, so that each
    wrong line is reported."""
    if layout.verbatim:
        try:
            with conn.transaction():
                table = staging.cells_table(conn, src, layout.width)
                copy_cells(conn, table, source, layout, progress)
            return table, True
        except psycopg.errors.BadCopyFileFormat:
            progress.step(f"copying {source.name} line by line")
    table = staging.raw_table(conn, src)
    copy_raw(conn, table, source, layout, progress, report)
    return table, False


def _write(
    conn: psycopg.Connection, counts: slot_diff.SlotCounts, names: dict[int, str], progress: Progress, report: Report
) -> None:
    """Write the difference when all is well. The slot table's triggers have the last word on
    overlaps; when they (or an earlier problem) object, the staged comparison names the lines."""
    check_overlaps = not report.ok or slot_diff.duplicate_matches(conn, counts)
    if not check_overlaps:
        progress.step("writing slots")
        try:
            with conn.transaction():
                for message in slot_diff.apply(conn, counts):
                    report.add(Problem("load", None, None, message))
        except psycopg.errors.ExclusionViolation:
            check_overlaps = True
        except psycopg.errors.ForeignKeyViolation as exc:  # a concurrent catalogue change
            report.add(Problem("load", None, None, f"the catalogue changed while loading: {exc.diag.message_primary}"))
    if check_overlaps:
        for src, line, field, message in slot_diff.overlaps(conn, report.room(), names):
            report.add(Problem(names[src], line, field, message))
        if report.ok:  # a clash the triggers saw that the staged comparison cannot place
            report.add(Problem("load", None, None, "slots would overlap (a concurrent change?): load again"))


def _slot_row(unit: str, slot: SlotSpec) -> tuple:
    o = slot.owner
    return (slot.node.line, unit, slot.start, slot.end, o.time_type, o.care_type, o.performer, o.resource)


def _template_rows(
    conn: psycopg.Connection, src: int, name: str, units: list[UnitSpec], now: datetime, report: Report
) -> Iterator[tuple]:
    """Staging rows of the templates' future slots; each template's scope is recorded here too."""
    for unit in units:
        for spec in unit.templates:
            o = spec.owner
            row = conn.execute(
                "SELECT duration_minutes FROM time_type WHERE unit_hsa_id = %s AND code = %s",
                (unit.hsa_id, o.time_type),
            ).fetchone()
            if row is None:
                where = f"{spec.node.path}.time_type"
                report.add(Problem(name, spec.node.line, where, f"no time type {o.time_type} at {unit.hsa_id}"))
                continue
            staging.add_scope(
                conn, src, unit.hsa_id, o.performer, o.resource,
                _day_start(spec.first), _day_start(spec.last + timedelta(days=1)),
            )  # fmt: skip
            for start, end in expand(spec.template(row[0])):
                if start > now:
                    yield (spec.node.line, unit.hsa_id, start, end, o.time_type, o.care_type, o.performer, o.resource)


def _day_start(day: date) -> datetime:
    """Midnight in Stockholm (never in a DST gap: Sweden changes at 02:00 and 03:00)."""
    instant = resolve_wall(datetime(day.year, day.month, day.day))
    assert instant is not None
    return instant
