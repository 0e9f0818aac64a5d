"""A worker's memory of free slots, per care unit and Stockholm day, for GetAvailableTimeslots and
GetAvailableDates.

Most availability calls ask again for what was asked a moment ago (the same unit, the next weeks),
and most of their cost was reading the same rows and writing the same XML. So each worker keeps,
per unit and day, the day's free slots (with each slot's XML written once, in both of its
"changeable" variants) and, for GetAvailableDates, the day's kinds of free slot (performer,
resource, time type, care type) with the first and last start of each. Whatever depends on the
moment of the call (lead times, horizons, the change deadline, past slots) is applied to that
memory per call, exactly as the database query applies it.

Never stale: a day is trusted only while its unit's change token (producer.platform.change_tokens)
is the one noted before the day was read. Every committed change of a slot notifies its unit
(migration 0008), the worker's listener turns the notice into a new token, and a booking change made
through this host's workers writes the new token itself before it answers; while the listener is
not listening nothing is trusted. A day also goes after MAX_AGE_SECONDS, and when its unit's
catalogue or rules change (those are reloaded after producer.calendar.units' TTL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from producer.calendar.units import Names, Unit
from producer.platform import metrics
from producer.platform.change_tokens import ChangeTokens
from producer.platform.on_demand import WouldWait
from producer.sweden.wall_time import day_range_bounds

MAX_AGE_SECONDS = 60.0
ROW_BYTES = 300  # what a remembered row costs, roughly, beside the XML written for it

# (id, start as sent, end as sent, start, performer, resource, time type, care type)
SlotRow = tuple[int, str, str, datetime, str | None, str | None, str, str]
# (performer, resource, time type, care type, first start, last start)
KindRow = tuple[str | None, str | None, str, str, datetime, datetime]

_REMEMBERED = metrics.AVAILABILITY_MEMORY.labels("memory")
_READ = metrics.AVAILABILITY_MEMORY.labels("database")
_UNHEARD = metrics.AVAILABILITY_MEMORY.labels("unheard")
_FROM_REPLICA = metrics.AVAILABILITY_MEMORY.labels("replica")  # of the "database" reads, those a replica answered
Replica = Callable[[float, Callable[[psycopg.Connection], Any]], "tuple[Any] | None"]

_SLOTS_SQL = """
SELECT to_char(s.starts_at AT TIME ZONE 'Europe/Stockholm', 'YYYYMMDD'),
       s.id, to_char(s.starts_at AT TIME ZONE 'Europe/Stockholm', 'YYYYMMDDHH24MISS'),
       to_char(s.ends_at AT TIME ZONE 'Europe/Stockholm', 'YYYYMMDDHH24MISS'), s.starts_at,
       s.performer_id, s.resource_id, s.time_type_id, s.care_type_code
FROM slot s
WHERE s.unit_id = %(unit)s AND s.booking_pk IS NULL AND s.starts_at >= %(start)s AND s.starts_at < %(end)s
ORDER BY s.starts_at, s.id
"""
# per Stockholm day (bounds converted once per day, DST-correct), as availability's FREE_DATES_SQL
_KINDS_SQL = """
SELECT to_char(day.d, 'YYYYMMDD'), f.* FROM
    (SELECT d::date FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') d) day
CROSS JOIN LATERAL (
    SELECT s.performer_id, s.resource_id, s.time_type_id, s.care_type_code, min(s.starts_at), max(s.starts_at)
    FROM slot s
    WHERE s.unit_id = %(unit)s AND s.booking_pk IS NULL
      AND s.starts_at >= day.d::timestamp AT TIME ZONE 'Europe/Stockholm'
      AND s.starts_at < (day.d + 1)::timestamp AT TIME ZONE 'Europe/Stockholm'
    GROUP BY 1, 2, 3, 4
) f
"""


@dataclass
class Day:
    """One unit's free slots (or kinds of free slot) on one day, as of `token`."""

    name: str  # as the wire writes a date: YYYYMMDD
    rows: list[Any]
    token: tuple[int, int]
    unit: Unit
    names: Names
    born: float
    start: datetime  # the day's first instant
    end: datetime  # the next day's first instant
    starts: list[datetime] = field(default_factory=list)  # the rows' starts, for bisect (slots only)
    written: list[list[str] | None] | None = None  # the slots' XML: not changeable, changeable
    size: int = 0  # bytes, roughly: what forgetting it frees
    forgotten: bool = False  # no longer in the memory (a call may still be using it)


@dataclass(frozen=True)
class _Shelf:
    """One of the memory's two kinds of day (free slots, kinds of free slot): where its days are
    kept, the query that reads them, and the order of a day's rows (None: the query's)."""

    days: dict[tuple[str, date], Day]
    sql: str
    order: Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Asked:
    """The days a call asks for: of one unit, as its names stood when the call began."""

    unit: Unit
    names: Names
    first: date
    last: date


class FreeSlots:
    def __init__(
        self,
        tokens: ChangeTokens,
        listening: Callable[[], bool],
        write_slot: Callable[[dict[str, Any]], str],
        budget_bytes: int = 32 * 2**20,
        replica: Replica | None = None,
    ) -> None:
        """write_slot: a timeslotDetail's XML (producer.soap.codec.ResponseWriter.item); budget_bytes:
        how much the worker may remember (TIDBOK_AVAILABILITY_MEMORY_MB); beyond it the days read
        longest ago are forgotten first; replica(since, work): work(conn) on a replica known to hold
        every commit made before `since`, or None (producer.platform.replica.Reads.holding)."""
        self._tokens = tokens
        self._listening = listening
        self._write_slot = write_slot
        self._slots = _Shelf({}, _SLOTS_SQL, None)
        self._kinds = _Shelf({}, _KINDS_SQL, _kind_order)
        self._lock = threading.Lock()  # for the writers; a read of a dict needs none
        self._budget = budget_bytes
        self._replica = replica
        self._size = 0

    def usable(self) -> bool:
        """Whether the memory may be used: only while every change is heard."""
        if self._listening():
            return True
        _UNHEARD.inc()
        return False

    def slot_days(
        self, conn: psycopg.Connection, unit: Unit, names: Names, first: date, last: date
    ) -> list[Day] | None:
        """The unit's free slots of each day first..last (rows as SlotRow, by start and id); None
        when a slot has a code its names lack (the caller reloads them and asks the database)."""
        return self._days(self._slots, conn, _Asked(unit, names, first, last))

    def kind_days(
        self, conn: psycopg.Connection, unit: Unit, names: Names, first: date, last: date
    ) -> list[Day] | None:
        """The unit's kinds of free slot of each day first..last (rows as KindRow, in
        GetAvailableDates' order); None as for slot_days."""
        return self._days(self._kinds, conn, _Asked(unit, names, first, last))

    def written(self, day: Day, changeable: bool, item: Callable[[int, bool], dict[str, Any]]) -> list[str]:
        """Every slot of the day as a timeslotDetail in one of its two variants (changeable or
        not), written the first time that variant is asked for; item(index, changeable) says what
        to write."""
        variants = day.written
        if variants is None:
            variants = day.written = [None, None]
        texts = variants[changeable]
        if texts is None:
            texts = variants[changeable] = [self._write_slot(item(i, changeable)) for i in range(len(day.rows))]
            grown = sum(map(len, texts))
            day.size += grown
            if not day.forgotten:
                self._size += grown
                if self._size > self._budget:
                    with self._lock:
                        self._forget(self._budget * 3 // 4)
        return texts

    def _forget(self, target: int) -> None:
        """Forget the days read longest ago, of either kind, until the memory holds `target` bytes."""
        while self._size > target and (self._slots.days or self._kinds.days):
            oldest = [m for m in (self._slots.days, self._kinds.days) if m]
            memory = min(oldest, key=lambda m: next(iter(m.values())).born)
            key = next(iter(memory))
            day = memory.pop(key)
            day.forgotten = True
            self._size -= day.size

    def _days(self, shelf: _Shelf, conn: psycopg.Connection, asked: _Asked) -> list[Day] | None:
        memory, unit, names, first = shelf.days, asked.unit, asked.names, asked.first
        token = self._tokens.token(unit.hsa_id)
        now = time.monotonic()
        wanted = [first + timedelta(days=i) for i in range((asked.last - first).days + 1)]
        found: list[Day | None] = []
        for day in wanted:
            known = memory.get((unit.hsa_id, day))
            fresh = (
                known is not None and known.token == token and known.names is names and known.unit == unit
                and now - known.born < MAX_AGE_SECONDS
            )  # fmt: skip
            found.append(known if fresh else None)
        missing = [day for day, known in zip(wanted, found, strict=True) if known is None]
        if missing and getattr(conn, "never_wait", False):
            raise WouldWait  # on the event loop: the database (either) is a thread's to wait for (and count)
        (_READ if missing else _REMEMBERED).inc()
        if missing:
            unread = _Asked(unit, names, missing[0], missing[-1])
            read = self._read_days(unit, conn, lambda c: self._read(shelf, c, unread, token, now))
            if read is None:
                return None
            with self._lock:
                for day, known in read.items():
                    old = memory.pop((unit.hsa_id, day), None)  # the new one goes last in the order of use
                    if old is not None:
                        old.forgotten = True
                        self._size -= old.size
                    self._size += known.size
                    memory[(unit.hsa_id, day)] = known
                if self._size > self._budget:
                    self._forget(self._budget * 3 // 4)
            found = [known if known is not None else read[day] for day, known in zip(wanted, found, strict=True)]
        return found  # type: ignore[return-value]

    def _read_days(
        self, unit: Unit, conn: psycopg.Connection, read: Callable[[psycopg.Connection], dict[date, Day] | None]
    ) -> dict[date, Day] | None:
        """read(conn) on a replica that holds every change of the unit's token (it changed when its
        notice or a booking here renewed it: after the commit), else on the primary (conn)."""
        if self._replica is not None:
            held = self._replica(self._tokens.changed_at(unit.hsa_id), read)
            if held is not None:
                _FROM_REPLICA.inc()
                return held[0]
        return read(conn)

    def _read(
        self, shelf: _Shelf, conn: psycopg.Connection, asked: _Asked, token: tuple[int, int], now: float
    ) -> dict[date, Day] | None:
        """The days asked for from the database (the token was noted before: a change committed
        meanwhile makes them stale at once); None if a row has a code the names lack."""
        unit, names, first, last, order = asked.unit, asked.names, asked.first, asked.last, shelf.order
        start, end = day_range_bounds(first, last)
        rows = conn.execute(shelf.sql, {"unit": unit.id, "start": start, "end": end, "first": first, "last": last})
        # the slot table names performers and time types by their keys (migration 0009): the codes
        # are the names' (a key they lack: something added since, the caller reloads them)
        performers, types = names.codes_by_id.get("performer", {}), names.codes_by_id.get("time_type", {})
        by_day: dict[str, list[Any]] = {}
        codes = 5 if order is None else 1  # where performer, resource, time type and care type begin
        for row in rows:
            performer_id, resource, tt_id, ct = row[codes : codes + 4]
            performer, tt = performers.get(performer_id), types.get(tt_id)
            if (
                (performer_id is not None and performer is None)
                or tt is None
                or not (names.knows("resource", resource) and names.knows("care_type", ct))
            ):
                return None
            by_day.setdefault(row[0], []).append((*row[1:codes], performer, resource, tt, ct, *row[codes + 4 :]))
        if order is not None:
            for day_rows in by_day.values():
                day_rows.sort(key=order)
        days = {}
        for i in range((last - first).days + 1):
            day = first + timedelta(days=i)
            name = f"{day:%Y%m%d}"
            day_start, day_end = day_range_bounds(day, day)
            rows = by_day.get(name, [])
            starts = [row[3] for row in rows] if order is None else []
            days[day] = Day(
                name, rows, token, unit, names, now, day_start, day_end, starts, size=ROW_BYTES * (len(rows) + 1)
            )
        return days


def _kind_order(row: KindRow) -> tuple[Any, ...]:
    """GetAvailableDates' order within a day: performer and resource (absent first), time type."""
    performer, resource, tt = row[0], row[1], row[2]
    return (performer is not None, performer or "", resource is not None, resource or "", tt)
