"""Comparing the staged slots with the calendar and writing the difference, set-wise.

A slot's identity is its unit, its performer (or, without one, its resource) and its start: the
same key with another end, time type, care type or resource is a change of that slot (it keeps its
id, so a resident holding "T123" still finds it). A slot in scope that the load does not list is
removed, unless the load is add-only. Booked slots are never changed or removed: that is refused,
with the booking named. The report lists the slots removed (or, dry, that would be).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from producer.sweden.wall_time import STOCKHOLM

ZONE = "Europe/Stockholm"

# Slots in scope, by the slot table's integer keys (migration 0009).
EXISTING = """
CREATE TEMP TABLE load_existing ON COMMIT DROP AS
SELECT s.id, s.unit_id, s.starts_at, s.ends_at, s.time_type_id, s.care_type_code, s.performer_id,
       s.resource_id, s.booking_pk, c.src
FROM load_scope c JOIN slot s ON s.performer_id = c.performer_id
     AND s.starts_at >= c.lo AND s.starts_at < c.hi AND s.starts_at > now()
WHERE c.performer IS NOT NULL
UNION ALL
SELECT s.id, s.unit_id, s.starts_at, s.ends_at, s.time_type_id, s.care_type_code, s.performer_id,
       s.resource_id, s.booking_pk, c.src
FROM load_scope c JOIN slot s ON s.unit_id = c.unit_id AND s.resource_id = c.resource AND s.performer_id IS NULL
     AND s.starts_at >= c.lo AND s.starts_at < c.hi AND s.starts_at > now()
WHERE c.performer IS NULL AND c.resource IS NOT NULL
UNION ALL
SELECT s.id, s.unit_id, s.starts_at, s.ends_at, s.time_type_id, s.care_type_code, s.performer_id,
       s.resource_id, s.booking_pk, c.src
FROM load_scope c JOIN slot s ON s.unit_id = c.unit_id AND s.starts_at >= c.lo AND s.starts_at < c.hi
     AND s.starts_at > now()
WHERE c.performer IS NULL AND c.resource IS NULL
"""

# Scopes of several sources may overlap (two files, a file and a template): one row per slot then.
DEDUPLICATE = """
CREATE TEMP TABLE load_existing_once ON COMMIT DROP AS SELECT DISTINCT ON (id) * FROM load_existing ORDER BY id, src;
DROP TABLE load_existing;
ALTER TABLE load_existing_once RENAME TO load_existing;
"""

MATCH = """
CREATE TEMP TABLE load_match ON COMMIT DROP AS
SELECT n.n, e.id, e.booking_pk,
       (n.ends_at, n.time_type_id, n.care_type, n.performer_id, n.resource)
       IS DISTINCT FROM (e.ends_at, e.time_type_id, e.care_type_code, e.performer_id, e.resource_id) AS changed
FROM load_slot n JOIN load_existing e
     ON e.unit_id = n.unit_id AND e.starts_at = n.starts_at
     AND coalesce(e.performer_id, 0) = coalesce(n.performer_id, 0)
     AND (n.performer_id IS NOT NULL OR e.resource_id = n.resource)
WHERE n.problems IS NULL
"""

COUNTS = """
SELECT (SELECT count(*) FROM load_slot WHERE problems IS NULL) - (SELECT count(*) FROM load_match),
       (SELECT count(*) FROM load_match WHERE changed),
       (SELECT count(*) FROM load_existing e WHERE NOT EXISTS (SELECT 1 FROM load_match m WHERE m.id = e.id)),
       (SELECT count(*) FROM load_match WHERE NOT changed)
"""

BOOKED_CHANGED = """
SELECT n.src, n.line, b.booking_id, n.starts_at
FROM load_match m JOIN load_slot n ON n.n = m.n JOIN booking b ON b.pk = m.booking_pk
WHERE m.changed ORDER BY n.src, n.line LIMIT %s
"""

BOOKED_REMOVED = """
SELECT e.src, u.hsa_id, coalesce(p.hsa_id, e.resource_id), e.starts_at, e.ends_at, b.booking_id
FROM load_existing e JOIN booking b ON b.pk = e.booking_pk
JOIN care_unit u ON u.id = e.unit_id LEFT JOIN performer p ON p.id = e.performer_id
WHERE NOT EXISTS (SELECT 1 FROM load_match m WHERE m.id = e.id)
ORDER BY e.src, u.hsa_id, e.starts_at LIMIT %s
"""

# The slots the load would remove (in scope, not listed), for the report, in calendar order.
REMOVALS = """
SELECT u.hsa_id, coalesce(p.hsa_id, e.resource_id), e.starts_at, e.ends_at, e.id
FROM load_existing e JOIN care_unit u ON u.id = e.unit_id LEFT JOIN performer p ON p.id = e.performer_id
WHERE NOT EXISTS (SELECT 1 FROM load_match m WHERE m.id = e.id)
ORDER BY u.hsa_id, 2, e.starts_at LIMIT %s
"""

# Add-only: what the load does not list is kept, so it is out of the comparison (and, still in
# the calendar, in the overlap check against the new slots).
KEEP_UNLISTED = "DELETE FROM load_existing e WHERE NOT EXISTS (SELECT 1 FROM load_match m WHERE m.id = e.id)"


# What a load would create, change and remove, slot by slot (the staff page's dry run lists them).
LISTING = """
(SELECT 'created', n.unit, coalesce(n.performer, n.resource), n.starts_at, n.ends_at, n.time_type, NULL::bigint
 FROM load_slot n WHERE n.problems IS NULL AND NOT EXISTS (SELECT 1 FROM load_match m WHERE m.n = n.n)
 ORDER BY n.unit, n.starts_at LIMIT %(limit)s)
UNION ALL
(SELECT 'changed', n.unit, coalesce(n.performer, n.resource), n.starts_at, n.ends_at, n.time_type, m.id
 FROM load_match m JOIN load_slot n ON n.n = m.n WHERE m.changed ORDER BY n.unit, n.starts_at LIMIT %(limit)s)
UNION ALL
(SELECT 'removed', u.hsa_id, coalesce(p.hsa_id, e.resource_id), e.starts_at, e.ends_at, t.code, e.id
 FROM load_existing e JOIN care_unit u ON u.id = e.unit_id JOIN time_type t ON t.id = e.time_type_id
 LEFT JOIN performer p ON p.id = e.performer_id
 WHERE NOT EXISTS (SELECT 1 FROM load_match m WHERE m.id = e.id)
 ORDER BY u.hsa_id, e.starts_at LIMIT %(limit)s)
"""

DUPLICATE_MATCHES = "SELECT EXISTS (SELECT 1 FROM load_match GROUP BY id HAVING count(*) > 1)"

REMOVE = """
DELETE FROM slot s USING load_existing e
WHERE s.id = e.id AND s.booking_pk IS NULL AND NOT EXISTS (SELECT 1 FROM load_match m WHERE m.id = e.id)
"""

CHANGE = """
UPDATE slot s SET ends_at = n.ends_at, time_type_id = n.time_type_id, care_type_code = n.care_type,
                  performer_id = n.performer_id, resource_id = n.resource
FROM load_match m JOIN load_slot n ON n.n = m.n
WHERE m.changed AND s.id = m.id AND s.booking_pk IS NULL
"""

CREATE = """
INSERT INTO slot (unit_id, starts_at, ends_at, time_type_id, care_type_code, performer_id, resource_id)
SELECT unit_id, starts_at, ends_at, time_type_id, care_type, performer_id, resource FROM load_slot n
WHERE problems IS NULL {unmatched}
ORDER BY unit_id, starts_at
"""
# When no staged slot matched one in the calendar (a first load), every good row is new: without
# the anti-join the planner does not hash a million staged rows to find none of them in load_match.
UNMATCHED = "AND NOT EXISTS (SELECT 1 FROM load_match m WHERE m.n = n.n)"

# Every new slot that overlaps an earlier one (by start) of the same performer or resource, in the
# calendar as it would be: the new slots, and the slots of those people and rooms outside the scope.
# The earlier one is the one ending last, found as max(ARRAY[end, ref]): ref > 0 a staged row
# (load_slot.n), ref < 0 an existing slot (-id).
OVERLAPS = """
WITH rows AS (
    SELECT unit_id, {who} AS who, starts_at, ends_at, n AS ref
    FROM load_slot WHERE problems IS NULL AND {who} IS NOT NULL
    UNION ALL
    SELECT s.unit_id, s.{column}, s.starts_at, s.ends_at, -s.id
    FROM (SELECT DISTINCT unit_id, {who} AS who FROM load_slot WHERE problems IS NULL AND {who} IS NOT NULL) t
    JOIN slot s ON s.unit_id = t.unit_id AND s.{column} = t.who
    WHERE NOT EXISTS (SELECT 1 FROM load_existing e WHERE e.id = s.id)
), ordered AS (
    SELECT unit_id, who, starts_at, ends_at, ref,
           max(ARRAY[extract(epoch FROM ends_at)::float8, ref::float8]) OVER (
               PARTITION BY unit_id, who ORDER BY starts_at, ref
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev
    FROM rows
)
SELECT u.hsa_id, {name}, ref, starts_at, ends_at, prev[2]::bigint AS prev_ref
FROM ordered o JOIN care_unit u ON u.id = o.unit_id WHERE prev[1] > extract(epoch FROM starts_at)::float8
ORDER BY u.hsa_id, 2, starts_at LIMIT %s
"""
_OVERLAP_KINDS = (
    ("performer", "performer_id", "performer_id", "(SELECT p.hsa_id FROM performer p WHERE p.id = o.who)"),
    ("resource", "resource", "resource_id", "o.who"),
)


@dataclass
class SlotCounts:
    created: int
    changed: int
    removed: int
    unchanged: int

    @property
    def matched(self) -> bool:
        """Did any staged slot match one in the calendar?"""
        return bool(self.changed or self.unchanged)


def compare(conn: psycopg.Connection, scopes_overlap: bool, add_only: bool = False) -> SlotCounts:
    """Match the staged slots with the calendar's in scope; `add_only`: remove nothing."""
    conn.execute(EXISTING)
    if scopes_overlap:
        conn.execute(DEDUPLICATE)
    conn.execute("ANALYZE load_existing")  # load_slot: analysed once staged (api._run)
    conn.execute(MATCH)
    if add_only:
        conn.execute(KEEP_UNLISTED)
    created, changed, removed, unchanged = conn.execute(COUNTS).fetchone()
    return SlotCounts(created, changed, removed, unchanged)


def removals(conn: psycopg.Connection, limit: int) -> list[str]:
    """The first `limit` slots the load removes (or, dry, would remove), one line each."""
    return [
        f"{unit} {who} {wall(start)}–{wall(end)[11:]} (T{slot_id})"
        for unit, who, start, end, slot_id in conn.execute(REMOVALS, (limit,)).fetchall()
    ]


def listing(
    conn: psycopg.Connection, limit: int
) -> list[tuple[str, str, str | None, datetime, datetime, str, int | None]]:
    """(what, unit, performer or resource, start, end, time type, slot id) of each slot the load
    would create, change (as it would be) or remove: at most `limit` of each."""
    return conn.execute(LISTING, {"limit": limit}).fetchall()


def scopes_overlap(conn: psycopg.Connection) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM load_scope a JOIN load_scope b ON a.ctid < b.ctid AND a.unit = b.unit"
        " AND a.lo < b.hi AND b.lo < a.hi)"
    ).fetchone()[0]


def booked_conflicts(conn: psycopg.Connection, limit: int) -> list[tuple[int, int | None, str]]:
    """(src, line, message) for every booked slot the load would change or remove."""
    out = []
    for src, line, booking_id, start in conn.execute(BOOKED_CHANGED, (limit,)).fetchall():
        out.append(
            (src, line, f"the slot at {wall(start)} is booked ({booking_id}): loading never changes a booked slot")
        )
    for src, unit, who, start, end, booking_id in conn.execute(BOOKED_REMOVED, (limit,)).fetchall():
        out.append(
            (
                src,
                None,
                f"booked slot {unit} {who} {wall(start)}–{wall(end)[11:]} ({booking_id}) is not in the load:"
                " loading never removes a booked slot; keep it, or cancel or move the booking first",
            )
        )
    return out[:limit]


def duplicate_matches(conn: psycopg.Connection, counts: SlotCounts) -> bool:
    """Did two staged slots match the same calendar slot? (Nothing to look at when none matched.)"""
    return counts.matched and conn.execute(DUPLICATE_MATCHES).fetchone()[0]


def apply(conn: psycopg.Connection, counts: SlotCounts) -> list[str]:
    """Write the difference; returns problems if a slot was booked while the load ran."""
    problems = []
    if counts.removed:
        removed = conn.execute(REMOVE).rowcount
        if removed != counts.removed:
            problems.append(f"{counts.removed - removed} slot(s) to remove were booked while loading: load again")
    if counts.changed:
        changed = conn.execute(CHANGE).rowcount
        if changed != counts.changed:
            problems.append(f"{counts.changed - changed} slot(s) to change were booked while loading: load again")
    if counts.created:
        conn.execute(CREATE.format(unmatched=UNMATCHED if counts.matched else ""))
    return problems


def overlaps(conn: psycopg.Connection, limit: int, names: dict[int, str]) -> list[tuple[int, int | None, str, str]]:
    """(src, line, field, message) for overlapping slots, naming both sides."""
    out: list[tuple[int, int | None, str, str]] = []
    for who, staged_column, column, name in _OVERLAP_KINDS:
        rows = conn.execute(OVERLAPS.format(who=staged_column, column=column, name=name), (limit,)).fetchall()
        refs = {ref for row in rows for ref in (row[2], row[5])}
        staged = dict(
            (n, (src, line))
            for n, src, line in conn.execute(
                "SELECT n, src, line FROM load_slot WHERE n = ANY(%s)", ([r for r in refs if r > 0],)
            ).fetchall()
        )
        existing = {
            sid: (start, end, booking)
            for sid, start, end, booking in conn.execute(
                "SELECT s.id, s.starts_at, s.ends_at, b.booking_id"
                " FROM slot s LEFT JOIN booking b ON b.pk = s.booking_pk"
                " WHERE s.id = ANY(%s)",
                ([-r for r in refs if r < 0],),
            ).fetchall()
        }
        times = {
            n: (start, end)
            for n, start, end in conn.execute(
                "SELECT n, starts_at, ends_at FROM load_slot WHERE n = ANY(%s)", ([r for r in refs if r > 0],)
            ).fetchall()
        }
        for unit, name, ref, start, end, prev in rows:
            this = f"{who} {name} at {unit}: {wall(start)}–{wall(end)[11:]}"
            if prev > 0:
                p_start, p_end = times[prev]
                p_src, p_line = staged[prev]
                other = f"{wall(p_start)}–{wall(p_end)[11:]} ({names[p_src]}" + (f" line {p_line})" if p_line else ")")
            else:
                p_start, p_end, booking = existing[-prev]
                other = f"existing slot T{-prev} {wall(p_start)}–{wall(p_end)[11:]}" + (
                    f", booked {booking}" if booking else ""
                )
            if ref > 0:
                src, line = staged[ref]
                out.append((src, line, who, f"{this} overlaps {other}"))
            elif prev > 0:
                out.append((p_src, p_line, who, f"{who} {name} at {unit}: {wall(p_start)}–{wall(p_end)[11:]} overlaps "
                            f"existing slot T{-ref} {wall(start)}–{wall(end)[11:]}"))  # fmt: skip
    return out[:limit]


def wall(moment: datetime) -> str:
    return moment.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")
