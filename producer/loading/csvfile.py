"""Slot lists as CSV, the way clinics export spreadsheets, streamed into a staging table by COPY.

One header line names the columns (any order, case-insensitive): ``unit``, ``start``,
``time_type`` (required), ``end``, ``performer``, ``resource``, ``care_type``. The delimiter is
what the header uses (``,``, ``;`` as Swedish Excel writes, or tab); UTF-8, a BOM is fine.

Each line is copied verbatim as one text value and split in SQL, so a line with too few or too
many fields is one more reported problem rather than an aborted COPY. A file with quotes (or other
characters COPY would read specially) goes through Python's csv reader instead, which also gives
exact line numbers when a quoted field spans lines.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass

import psycopg
from psycopg import sql

from producer.loading.progress import Progress
from producer.loading.report import Problem, Report
from producer.loading.sources import Source

COLUMNS = ("unit", "start", "end", "time_type", "performer", "resource", "care_type")
REQUIRED = ("unit", "start", "time_type")
FIELD_SEPARATOR = "\x1f"  # between fields of a line the csv reader has split
_SPECIAL = (b'"', b"\x1e", b"\x1f", b"\x00", b"\\.")


def _edges(separator: bytes) -> bytes:
    """A translation that makes each delimiter and line end 0 and each blank or tab 1: a field has
    a blank at an edge where 1 meets 0 (a CR before LF is the line's end: COPY reads CRLF lines).
    Translating and searching for two bytes reads a million lines in 0.1 s (a regular expression,
    or a search per pair of characters, took 0.9 s)."""
    table = bytearray(range(256))
    for blank in b" \t":
        table[blank] = 1
    for edge in separator + b"\r\n":
        table[edge] = 0
    return bytes(table)


@dataclass(frozen=True)
class Layout:
    separator: str
    columns: dict[str, int]  # name -> 1-based position
    width: int
    header_bytes: int
    verbatim: bool  # lines can be copied as they are
    plain: bool = False  # no field has a blank or tab at its edges: nothing to trim (verbatim files)


def read_layout(source: Source, report: Report) -> Layout | None:
    """The header's columns and delimiter, and whether the file can be copied verbatim; None (with
    problems reported) if the file cannot be loaded at all."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    head = b""
    verbatim = True
    lines_before = 0
    plain = True
    edges = b""
    tail = b"\0"  # the byte before the chunk (translated): a file starts as a line does
    for chunk in source.chunks():
        if len(head) < 65536:
            head += chunk[:65536]
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            line = lines_before + chunk[: exc.start].count(b"\n") + 1
            report.add(Problem(source.name, line, None, "not UTF-8 text: save the file as CSV UTF-8"))
            return None
        lines_before += chunk.count(b"\n")
        verbatim = verbatim and not any(special in chunk for special in _SPECIAL)
        if plain:
            if not edges:
                first_line = chunk.split(b"\n", 1)[0]
                edges = _edges(max((b";", b",", b"\t"), key=first_line.count))
            marked = tail + chunk.translate(edges)
            plain = b"\1\0" not in marked and b"\0\1" not in marked
            tail = marked[-1:]
    bom = 3 if head.startswith(codecs.BOM_UTF8) else 0
    end = head.find(b"\n")
    header = head[bom : end if end >= 0 else len(head)].decode("utf-8", "replace").rstrip("\r")
    if not header.strip():
        report.add(Problem(source.name, 1, None, f"the first line names the columns: {', '.join(COLUMNS)}"))
        return None
    separator = max((";", ",", "\t"), key=header.count)
    names = [
        name.strip().strip('"').strip().lower().replace(" ", "_").replace("-", "_") for name in header.split(separator)
    ]
    columns: dict[str, int] = {}
    ok = True
    for position, name in enumerate(names, 1):
        if name not in COLUMNS:
            report.add(
                Problem(
                    source.name, 1, name or f"column {position}", f"unknown column (expected: {', '.join(COLUMNS)})"
                )
            )
            ok = False
        elif name in columns:
            report.add(Problem(source.name, 1, name, "column given twice"))
            ok = False
        else:
            columns[name] = position
    for name in REQUIRED:
        if name not in columns:
            report.add(Problem(source.name, 1, name, "column is missing"))
            ok = False
    if not ok:
        return None
    header_bytes = end + 1 if end >= 0 else len(head)
    plain = plain and tail != b"\1"  # nor does the last line end with one
    return Layout(separator, columns, len(names), header_bytes, verbatim, plain and verbatim)


def copy_cells(conn: psycopg.Connection, table: str, source: Source, layout: Layout, progress: Progress) -> None:
    """Copy the lines after the header of a verbatim file into ``table`` (row identity, c1 … cN),
    split by PostgreSQL's own CSV reader: the fast way, for files whose every line has its fields.

    A line with too few or too many fields (or a blank one) stops the COPY with BadCopyFileFormat;
    the caller then takes the lines one by one (copy_raw), which can say which lines are wrong."""
    columns = sql.SQL(", ").join(sql.Identifier(f"c{n}") for n in range(1, layout.width + 1))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, DELIMITER {})").format(
        sql.Identifier(table), columns, sql.Literal(layout.separator)
    )
    _copy_verbatim(conn, statement, source, layout, progress)


def _copy_verbatim(
    conn: psycopg.Connection, statement: sql.Composed, source: Source, layout: Layout, progress: Progress
) -> None:
    total = source.size()
    sent = 0
    with conn.cursor().copy(statement) as copy:
        for chunk in source.chunks():
            if sent == 0:
                chunk = chunk[layout.header_bytes :]
                sent = layout.header_bytes
            copy.write(chunk)
            sent += len(chunk)
            progress.advance(sent, total)


def copy_raw(
    conn: psycopg.Connection, table: str, source: Source, layout: Layout, progress: Progress, report: Report
) -> None:
    """Copy the lines after the header into ``table`` (row identity, line, raw)."""
    total = source.size()
    target = sql.Identifier(table)
    if layout.verbatim:
        # CSV format with a delimiter and quote that do not occur: one field per line, taken as is.
        statement = sql.SQL("COPY {} (raw) FROM STDIN (FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e')")
        _copy_verbatim(conn, statement.format(target), source, layout, progress)
        return
    with (
        source.open() as stream,
        conn.cursor().copy(sql.SQL("COPY {} (line, raw) FROM STDIN").format(target)) as copy,
    ):
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=layout.separator)
        next(reader, None)
        line = reader.line_num + 1
        try:
            for count, fields in enumerate(reader):
                copy.write_row((line, FIELD_SEPARATOR.join(fields)))
                line = reader.line_num + 1
                if count % 10000 == 0:
                    progress.advance(stream.tell(), total)
        except csv.Error as exc:
            report.add(Problem(source.name, line, None, f"not readable as CSV: {exc}"))
        progress.advance(total, total)
