"""Staging: every slot of a load, from CSV lines, set-up lists and templates, in one temporary
table, converted and checked set-wise in SQL (one pass, joins to the catalogue).

``load_slot`` holds one row per slot with its source (``src``, ``line``) and ``problems``
("field\\x1fmessage" each; NULL when the row is good). Wall times follow tidbok's rules: the
repeated autumn hour means its first occurrence, a time in the spring gap does not exist, and an
explicit offset (``Z``, ``+01:00``) gives an exact instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg
from psycopg import sql

from producer.loading.csvfile import FIELD_SEPARATOR, Layout

ZONE = "Europe/Stockholm"
SEP = "E'\\x1f'"  # field / message separator inside a problem
HSA_RE = "^SE[0-9]{10,12}-[A-Z0-9]+$"  # producer.sweden.identifiers.is_valid_hsa_id, on upper-cased text
_TS_RE = (
    "^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?"
    "(Z|[+-][01][0-9]:?[0-5][0-9])?$"
)

SETUP = f"""
CREATE TEMP TABLE load_slot (
    n bigint GENERATED ALWAYS AS IDENTITY,
    src int NOT NULL,
    line int,
    unit text, starts_at timestamptz, ends_at timestamptz, time_type text, care_type text,
    performer text, resource text,
    unit_id int, time_type_id int, performer_id int,  -- the slot table's keys (migration 0009)
    problems text[]
) ON COMMIT DROP;
CREATE TEMP TABLE load_typed (
    line int, unit text, starts_at timestamptz, ends_at timestamptz, time_type text, care_type text,
    performer text, resource text
) ON COMMIT DROP;
-- a CSV source's lines split into fields, and each distinct time text of it as an instant
CREATE TEMP TABLE load_fields (
    line int, nfields int, malformed boolean, unit text, time_type text, care_type text, performer text,
    resource text, start_t text, end_t text
) ON COMMIT DROP;
CREATE TEMP TABLE load_instant (t text, at timestamptz) ON COMMIT DROP;
-- what each source covers: performer and resource NULL = every slot of the unit
CREATE TEMP TABLE load_scope (
    src int, unit text, performer text, resource text, lo timestamptz, hi timestamptz,
    unit_id int, performer_id int
) ON COMMIT DROP;

-- valid 'YYYY-MM-DD HH:MM[:SS][offset]' (the calendar too: no 31 April). The common shapes are
-- checked with plain string functions: a regular expression costs more than the rest of a line.
CREATE OR REPLACE FUNCTION pg_temp.load_ts_ok(t text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT CASE
                    WHEN length(t) IN (16, 19) AND translate(t, '0123456789', '') IN ('-- :', '--T:', '-- ::', '--T::')
                        THEN substr(t, 1, 1) IN ('1', '2') AND substr(t, 6, 2) BETWEEN '01' AND '12'
                             AND substr(t, 9, 2) BETWEEN '01' AND '31' AND substr(t, 12, 2) <= '23'
                             AND substr(t, 15, 2) <= '59' AND (length(t) = 16 OR substr(t, 18, 2) <= '59')
                    ELSE t ~ '{_TS_RE}' END THEN false
                WHEN substr(t, 9, 2) <= '28' THEN true
                ELSE (substr(t, 1, 8) || '01')::date + (substr(t, 9, 2)::int - 1)
                     < (substr(t, 1, 8) || '01')::date + interval '1 month' END
$$;
-- the instant: an explicit offset is exact; a Stockholm wall time is its first occurrence, NULL in
-- the spring gap. Only 02:xx can be repeated or missing in Sweden (changes at 02:00 and 03:00).
CREATE OR REPLACE FUNCTION pg_temp.load_ts(t text) RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN NOT pg_temp.load_ts_ok(t) THEN NULL
        WHEN length(t) > CASE WHEN substr(t, 17, 1) = ':' THEN 19 ELSE 16 END THEN t::timestamptz
        WHEN t NOT LIKE '___________02:%' THEN t::timestamp AT TIME ZONE '{ZONE}'
        WHEN ((t::timestamp AT TIME ZONE '{ZONE}') AT TIME ZONE '{ZONE}') <> t::timestamp THEN NULL
        WHEN (((t::timestamp AT TIME ZONE '{ZONE}') - interval '1 hour') AT TIME ZONE '{ZONE}') = t::timestamp
            THEN (t::timestamp AT TIME ZONE '{ZONE}') - interval '1 hour'
        ELSE t::timestamp AT TIME ZONE '{ZONE}' END
$$;
"""

# Step two for every source: the catalogue joins, defaults and the checks that need them.
CHECKED = f"""
INSERT INTO load_slot (src, line, unit, starts_at, ends_at, time_type, care_type, performer, resource,
                       unit_id, time_type_id, performer_id, problems)
SELECT %(src)s, p.line, p.unit, p.starts_at, e.ends_at, p.time_type, coalesce(p.care_type, tt.care_type_code),
       p.performer, p.resource, u.id, tt.id, pf.id,
       CASE WHEN p.problems IS NULL AND u.hsa_id IS NOT NULL AND tt.code IS NOT NULL
                 AND (p.performer IS NULL OR pf.hsa_id IS NOT NULL)
                 AND (p.resource IS NULL OR rs.resource_id IS NOT NULL)
                 AND (p.care_type IS NULL OR ct.code IS NOT NULL)
                 AND (p.performer IS NOT NULL OR p.resource IS NOT NULL)
                 AND p.starts_at > now() AND e.ends_at > p.starts_at AND e.ends_at - p.starts_at <= interval '1 day'
            THEN NULL  -- a good row, told apart cheaply: building the array below is half the cost of a line
       ELSE nullif(array_remove(p.problems || ARRAY[
           CASE WHEN p.unit IS NULL OR u.hsa_id IS NOT NULL THEN NULL
                WHEN p.unit !~ '{HSA_RE}' OR length(p.unit) > 31
                    THEN 'unit' || {SEP} || quote_literal(left(p.unit, 40)) || ' is not an HSA-id'
                ELSE 'unit' || {SEP} || 'no care unit ' || p.unit END,
           CASE WHEN u.hsa_id IS NULL OR p.time_type IS NULL OR tt.code IS NOT NULL THEN NULL
                ELSE 'time_type' || {SEP} || 'no time type ' || quote_literal(left(p.time_type, 40))
                     || ' at ' || p.unit END,
           CASE WHEN u.hsa_id IS NULL OR p.performer IS NULL OR pf.hsa_id IS NOT NULL THEN NULL
                WHEN p.performer !~ '{HSA_RE}' OR length(p.performer) > 31
                    THEN 'performer' || {SEP} || quote_literal(left(p.performer, 40)) || ' is not an HSA-id'
                ELSE 'performer' || {SEP} || 'no performer ' || p.performer || ' at ' || p.unit END,
           CASE WHEN u.hsa_id IS NULL OR p.resource IS NULL OR rs.resource_id IS NOT NULL THEN NULL
                ELSE 'resource' || {SEP} || 'no resource ' || quote_literal(left(p.resource, 40))
                     || ' at ' || p.unit END,
           CASE WHEN u.hsa_id IS NULL OR p.care_type IS NULL OR ct.code IS NOT NULL THEN NULL
                ELSE 'care_type' || {SEP} || 'no care type ' || quote_literal(left(p.care_type, 40))
                     || ' at ' || p.unit END,
           CASE WHEN p.performer IS NULL AND p.resource IS NULL AND p.unit IS NOT NULL
                THEN 'performer' || {SEP} || 'a slot is with a performer or a resource (or both): give one' END,
           CASE WHEN p.starts_at <= now() THEN 'start' || {SEP} || 'is in the past' END,
           CASE WHEN e.ends_at <= p.starts_at THEN 'end' || {SEP} || 'ends before it starts'
                WHEN e.ends_at - p.starts_at > interval '1 day'
                    THEN 'end' || {SEP} || 'a slot lasts at most 24 hours' END
       ], NULL), '{{}}') END
FROM ({{inner}}) p
LEFT JOIN care_unit u ON u.hsa_id = p.unit
LEFT JOIN time_type tt ON tt.unit_hsa_id = p.unit AND tt.code = p.time_type
LEFT JOIN performer pf ON pf.unit_hsa_id = p.unit AND pf.hsa_id = p.performer
LEFT JOIN resource rs ON rs.unit_hsa_id = p.unit AND rs.resource_id = p.resource
LEFT JOIN care_type ct ON ct.unit_hsa_id = p.unit AND ct.code = p.care_type
CROSS JOIN LATERAL (SELECT coalesce(p.ends_at, p.starts_at + tt.duration_minutes * interval '1 minute') AS ends_at) e
"""

TYPED = (
    "SELECT line, unit, starts_at, ends_at, time_type, care_type, performer, resource, NULL::text[] AS problems"
    " FROM load_typed"
)


# PostgreSQL 16+: the common shape checked by the server's own parser (three times cheaper).
FAST_TS_OK = f"""
CREATE OR REPLACE FUNCTION pg_temp.load_ts_ok(t text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN t LIKE '____-__-__ __:__' THEN pg_input_is_valid(t, 'timestamp')
                WHEN t ~ '{_TS_RE}' THEN pg_input_is_valid(t, 'timestamptz')
                ELSE false END
$$;
"""


def create(conn: psycopg.Connection) -> None:
    conn.execute(SETUP)
    if conn.info.server_version >= 160000:
        conn.execute(FAST_TS_OK)


def raw_table(conn: psycopg.Connection, src: int) -> str:
    name = f"load_raw_{src}"
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {} (row bigint GENERATED ALWAYS AS IDENTITY, line int, raw text) ON COMMIT DROP"
        ).format(sql.Identifier(name))
    )
    return name


def cells_table(conn: psycopg.Connection, src: int, width: int) -> str:
    """A table for a file's lines already split into their ``width`` fields (csvfile.copy_cells)."""
    name = f"load_cells_{src}"
    cells = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(f"c{n}")) for n in range(1, width + 1))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} (row bigint GENERATED ALWAYS AS IDENTITY, {}) ON COMMIT DROP").format(
            sql.Identifier(name), cells
        )
    )
    return name


def _split(table: str, layout: Layout, cells: bool = False) -> str:
    """Each line of a raw table (or of a cells table) split into its fields, an end HH:MM completed
    with the start's date.

    The lines level ends in OFFSET 0 so the planner keeps it a subquery: flattened, every reference
    to a field would split the line again."""
    separator = FIELD_SEPARATOR if not layout.verbatim else layout.separator
    sep_literal = "E'\\x1f'" if separator == FIELD_SEPARATOR else ("E'\\t'" if separator == "\t" else f"'{separator}'")

    def field(name: str, upper: bool = False) -> str:
        position = layout.columns.get(name)
        if position is None:
            return "NULL::text"
        if cells and layout.plain:  # COPY gave an empty field as NULL, and no field has blanks to trim
            return f"upper(c{position})" if upper else f"c{position}"
        value = f"btrim({f'c{position}' if cells else f'v[{position}]'}, ' \t\r')"
        return f"nullif({'upper(' + value + ')' if upper else value}, '')"

    width = layout.width
    if cells:  # every line had its fields, or the COPY would have stopped
        lines = f"SELECT row + 1 AS line, {width} AS nfields, false AS malformed, * FROM {table}"
    else:
        malformed = (
            f"cardinality(v) < {width}"
            f" OR (cardinality(v) > {width} AND array_to_string(v[{width + 1}:], '') !~ '^\\s*$')"
        )
        lines = f"""SELECT line, cardinality(v) AS nfields, {malformed} AS malformed, v FROM (
            SELECT coalesce(line, row + 1)::int AS line, string_to_array(raw, {sep_literal}) AS v
            FROM {table} WHERE raw IS NOT NULL OFFSET 0
        ) split"""
    return f"""
    INSERT INTO load_fields (line, nfields, malformed, unit, time_type, care_type, performer, resource, start_t, end_t)
    SELECT line, nfields, malformed, unit, time_type, care_type, performer, resource, start_t,
           CASE WHEN length(end_c) IN (5, 8) AND substr(end_c, 3, 1) = ':' AND start_t IS NOT NULL
                THEN substr(start_t, 1, 11) || end_c ELSE end_c END
    FROM (
        SELECT line, nfields, malformed,
               {field("unit", True)} AS unit, {field("start")} AS start_t, {field("end")} AS end_c,
               {field("time_type")} AS time_type, {field("care_type")} AS care_type,
               {field("performer", True)} AS performer, {field("resource")} AS resource
        FROM ({lines} OFFSET 0) lines OFFSET 0
    ) fields
    WHERE coalesce(unit, start_t, end_c, time_type, care_type, performer, resource) IS NOT NULL  -- not blank
    """


# Each distinct time text converted once: a schedule repeats its times (a million slots, two
# thousand texts), and converting was half the cost of checking a line.
INSTANTS = """
INSERT INTO load_instant (t, at)
SELECT t, pg_temp.load_ts(t) FROM (SELECT start_t FROM load_fields UNION SELECT end_t FROM load_fields) u(t)
WHERE t IS NOT NULL
"""

# Syntax problems here, the rest in CHECKED. A malformed line reports only that: its fields are not
# where the header says.
CSV_INNER = f"""
SELECT line, CASE WHEN malformed THEN NULL ELSE unit END AS unit,
       CASE WHEN malformed THEN NULL ELSE starts_at END AS starts_at, ends_at, time_type, care_type, performer,
       resource,
       CASE WHEN malformed THEN ARRAY[{SEP} || 'expected ' || %(width)s || ' fields, found ' || nfields]
            WHEN unit IS NOT NULL AND time_type IS NOT NULL AND starts_at IS NOT NULL
                 AND (end_t IS NULL OR ends_at IS NOT NULL) THEN NULL  -- none of the problems below
            ELSE ARRAY[
           CASE WHEN unit IS NULL THEN 'unit' || {SEP} || 'is missing' END,
           CASE WHEN time_type IS NULL THEN 'time_type' || {SEP} || 'is missing' END,
           CASE WHEN start_t IS NULL THEN 'start' || {SEP} || 'is missing'
                WHEN starts_at IS NOT NULL THEN NULL
                WHEN pg_temp.load_ts_ok(start_t)
                    THEN 'start' || {SEP} || start_t || ' does not exist in Swedish time (the spring DST gap)'
                ELSE 'start' || {SEP} || quote_literal(left(start_t, 30))
                     || ' is not a date and time YYYY-MM-DD HH:MM (Stockholm time)' END,
           CASE WHEN end_t IS NULL OR ends_at IS NOT NULL OR start_t IS NULL THEN NULL
                WHEN pg_temp.load_ts_ok(end_t)
                    THEN 'end' || {SEP} || end_t || ' does not exist in Swedish time (the spring DST gap)'
                ELSE 'end' || {SEP} || quote_literal(left(end_t, 30))
                     || ' is not a time HH:MM or a date and time YYYY-MM-DD HH:MM' END
       ] END AS problems
FROM (
    SELECT f.*, s.at AS starts_at, e.at AS ends_at
    FROM load_fields f LEFT JOIN load_instant s ON s.t = f.start_t LEFT JOIN load_instant e ON e.t = f.end_t
    ORDER BY f.line
) converted
"""


def check_csv(conn: psycopg.Connection, src: int, table: str, layout: Layout, cells: bool = False) -> None:
    """Stage a CSV source's rows from its raw table, or from its cells table (``cells``)."""
    conn.execute("TRUNCATE load_fields, load_instant")
    conn.execute(_split(table, layout, cells))
    conn.execute(INSTANTS)
    conn.execute("ANALYZE load_fields, load_instant")  # sizes known, so the joins hash the few instants
    conn.execute(CHECKED.replace("{inner}", CSV_INNER), {"src": src, "width": layout.width})


def check_typed(conn: psycopg.Connection, src: int, rows: Iterable[tuple]) -> int:
    """Rows already converted by Python (set-up slots, template expansions):
    (line, unit, start, end or None, time type, care type, performer, resource)."""
    conn.execute("TRUNCATE load_typed")
    count = 0
    with conn.cursor().copy(
        "COPY load_typed (line, unit, starts_at, ends_at, time_type, care_type, performer, resource) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    conn.execute(CHECKED.replace("{inner}", TYPED), {"src": src})
    return count


def problems(conn: psycopg.Connection, limit: int) -> tuple[list[tuple[int, int | None, str | None, str]], int]:
    """The first ``limit`` problems (src, line, field, message) in source order, and how many in all."""
    total = conn.execute(
        "SELECT coalesce(sum(cardinality(problems)), 0) FROM load_slot WHERE problems IS NOT NULL"
    ).fetchone()[0]
    rows = conn.execute(
        "SELECT src, line, split_part(p, E'\\x1f', 1), substr(p, strpos(p, E'\\x1f') + 1)"
        " FROM (SELECT src, line, n, unnest(problems) AS p FROM load_slot WHERE problems IS NOT NULL) x"
        " ORDER BY src, line, n LIMIT %s",
        (limit,),
    ).fetchall()
    return [(src, line, field or None, message) for src, line, field, message in rows], int(total)


def add_scope(conn: psycopg.Connection, src: int, unit: str, performer: str | None, resource: str | None,
              lo: datetime, hi: datetime) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO load_scope (src, unit, performer, resource, lo, hi, unit_id, performer_id)"
        " SELECT %(src)s, %(unit)s, %(performer)s, %(resource)s, %(lo)s, %(hi)s,"
        " (SELECT id FROM care_unit WHERE hsa_id = %(unit)s),"
        " (SELECT id FROM performer WHERE unit_hsa_id = %(unit)s AND hsa_id = %(performer)s)",
        {
            "src": src,
            "unit": unit,
            "performer": performer,
            "resource": None if performer else resource,
            "lo": lo,
            "hi": hi,
        },
    )


def scope_from_rows(conn: psycopg.Connection, srcs: list[int], whole_units: bool) -> None:
    """What listed slots cover: per source and performer (else resource), the Stockholm days from
    its first slot's to its last slot's; with whole_units, per unit, every slot of the unit.
    Grouped by the integer keys; the texts are the catalogue's."""
    lane = (
        "NULL::int AS performer_id, NULL::text" if whole_units
        else "performer_id, CASE WHEN performer_id IS NULL THEN resource END"
    )  # fmt: skip
    group = "src, unit_id" + ("" if whole_units else ", performer_id, CASE WHEN performer_id IS NULL THEN resource END")
    conn.execute(
        f"INSERT INTO load_scope (src, unit, performer, resource, unit_id, performer_id, lo, hi)"
        f" SELECT g.src, u.hsa_id, p.hsa_id, g.resource, g.unit_id, g.performer_id, g.lo, g.hi FROM ("
        f" SELECT src, unit_id, {lane} AS resource,"
        f" ((min(starts_at) AT TIME ZONE '{ZONE}')::date)::timestamp AT TIME ZONE '{ZONE}' AS lo,"
        f" ((max(starts_at) AT TIME ZONE '{ZONE}')::date + 1)::timestamp AT TIME ZONE '{ZONE}' AS hi"
        f" FROM load_slot WHERE problems IS NULL AND src = ANY(%s) GROUP BY {group}) g"
        f" JOIN care_unit u ON u.id = g.unit_id LEFT JOIN performer p ON p.id = g.performer_id",
        (srcs,),
    )


def scope_from_span(conn: psycopg.Connection, srcs: list[int], whole_units: bool, lo: datetime, hi: datetime) -> None:
    """An explicit span for the listed sources: rows outside it are problems."""
    conn.execute(
        f"UPDATE load_slot SET problems = ARRAY['start' || {SEP} || 'outside the span given for this load']"
        " WHERE src = ANY(%s) AND problems IS NULL AND (starts_at < %s OR starts_at >= %s)",
        (srcs, lo, hi),
    )
    lane = (
        "NULL::text, NULL::text, unit_id, NULL::int" if whole_units
        else "performer, CASE WHEN performer IS NULL THEN resource END, unit_id, performer_id"
    )  # fmt: skip
    conn.execute(
        f"INSERT INTO load_scope (src, unit, performer, resource, unit_id, performer_id, lo, hi)"
        f" SELECT DISTINCT src, unit, {lane}, %s::timestamptz, %s::timestamptz"
        " FROM load_slot WHERE problems IS NULL AND src = ANY(%s)",
        (lo, hi, srcs),
    )
